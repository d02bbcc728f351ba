//go:build linux

package main

import (
	"io/fs"
	"syscall"
	"time"
)

// changeTime is when an entry last changed, content or metadata.
func changeTime(fi fs.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		sec, nsec := st.Ctim.Unix()
		return time.Unix(sec, nsec)
	}
	return fi.ModTime()
}
