//go:build unix

package image

import (
	"os"

	"golang.org/x/sys/unix"
)

// lockFile takes an exclusive lock that the kernel drops if dvpc dies.
func lockFile(f *os.File) error { return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) }
