//go:build unix

package image

import (
	"os"

	"golang.org/x/sys/unix"
)

func createNoFollow(p string) (*os.File, error) {
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, &os.PathError{Op: "create", Path: p, Err: err}
	}
	return os.NewFile(uintptr(fd), p), nil
}

func mkfifo(p string) error {
	if err := unix.Mkfifo(p, 0o600); err != nil {
		return &os.PathError{Op: "mkfifo", Path: p, Err: err}
	}
	return nil
}

// setMeta applies owner (as root), mode, xattrs and times.
func (rs *restorer) setMeta(host string, n *Node, f *os.File) error {
	if rs.isRoot {
		if err := os.Lchown(host, int(n.UID), int(n.GID)); err != nil {
			return err
		}
	}
	if n.Type != TypeSymlink {
		var err error
		if f != nil {
			err = f.Chmod(fileMode(n.Mode))
		} else {
			err = os.Chmod(host, fileMode(n.Mode))
		}
		if err != nil {
			return err
		}
		for _, x := range n.Xattrs {
			if err := unix.Lsetxattr(host, string(x.Name), x.Value, 0); err != nil {
				return &os.PathError{Op: "setxattr " + string(x.Name), Path: host, Err: err}
			}
		}
	}
	t := unix.Timespec{Sec: n.Mtime.Unix(), Nsec: int64(n.Mtime.Nanosecond())}
	ts := []unix.Timespec{t, t}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, host, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimes", Path: host, Err: err}
	}
	return nil
}
