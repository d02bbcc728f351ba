//go:build unix && !linux

package image

const oNoAtime = 0
