//go:build unix && !linux

package image

import (
	"path/filepath"

	"golang.org/x/sys/unix"
)

func openat2Beneath(dirfd int, rel string) (int, error) { return -1, errNoOpenat2 }

// mkfifoAt makes the named pipe by path: x/sys offers no mkfifoat here.
// The pipe is then opened through d without following links, so its
// metadata never goes elsewhere.
func mkfifoAt(d *dirHandle, name string) error {
	p := filepath.Join(d.host, name)
	if err := unix.Mkfifo(p, 0o600); err != nil {
		return d.pathErr("mkfifo", name, err)
	}
	return nil
}
