//go:build unix

package media

import (
	"os"

	"golang.org/x/sys/unix"
)

// lockKey takes an exclusive lock on an opened key, so that two dvpc
// processes never write it at once; the kernel drops it when dvpc dies.
func lockKey(f *os.File) error { return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) }
