//go:build unix

package main

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// checkSecretFile refuses a passphrase file that group or others may
// read or write, or that belongs to someone other than the person running
// dvpc or root. Devices and pipes (a terminal, <(command)) are left to
// their maker.
func checkSecretFile(name string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return nil
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%w: %s has permissions %04o, which let others read or change it; run `chmod 600 %s`", errSecretFileOpen, name, perm, name)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if uid := os.Geteuid(); int(st.Uid) != uid && st.Uid != 0 {
			return fmt.Errorf("%w: %s belongs to user %d, not to you (user %d) or root", errSecretFileOpen, name, st.Uid, uid)
		}
	}
	return nil
}
