//go:build !linux

package main

import (
	"io/fs"
	"time"
)

// changeTime is when an entry last changed; here, its modification time.
func changeTime(fi fs.FileInfo) time.Time { return fi.ModTime() }
