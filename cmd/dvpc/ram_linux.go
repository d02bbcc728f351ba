package main

import "golang.org/x/sys/unix"

// inRAM reports whether dir is on a file system held in memory (tmpfs or
// ramfs), whose content never reaches a disk unless the PC swaps.
func inRAM(dir string) bool {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil {
		return false
	}
	return st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC
}

// ownPrivateDir makes dir (mode 0700) or checks that it is a real
// directory of this user's that only they may enter: in a shared place
// such as /dev/shm, another user could have made it first.
func ownPrivateDir(dir string) bool {
	if err := unix.Mkdir(dir, 0o700); err != nil && err != unix.EEXIST {
		return false
	}
	var st unix.Stat_t
	if unix.Lstat(dir, &st) != nil {
		return false
	}
	return st.Mode&unix.S_IFMT == unix.S_IFDIR && int(st.Uid) == unix.Getuid() && st.Mode&0o077 == 0
}
