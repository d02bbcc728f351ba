//go:build unix

package main

import "golang.org/x/sys/unix"

// writableDir reports whether this process may write into dir.
func writableDir(dir string) bool { return unix.Access(dir, unix.W_OK) == nil }
