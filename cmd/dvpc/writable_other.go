//go:build !unix

package main

import "os"

// writableDir reports whether dir exists; writing is tried when it is used.
func writableDir(dir string) bool {
	fi, err := os.Stat(dir)
	return err == nil && fi.IsDir()
}
