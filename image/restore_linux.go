package image

import (
	"golang.org/x/sys/unix"
)

// openat2Beneath opens the directory rel below dirfd with openat2, which
// refuses any link on the way and any path that leaves dirfd. It returns
// errNoOpenat2 where the kernel (before 5.6) or a sandbox lacks openat2.
func openat2Beneath(dirfd int, rel string) (int, error) {
	how := &unix.OpenHow{
		Flags:   uint64(dirFlags),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	for range 3 {
		fd, err := unix.Openat2(dirfd, rel, how)
		switch err {
		case nil:
			return fd, nil
		case unix.EAGAIN:
			// A rename below dirfd raced the lookup: try again.
			continue
		case unix.ENOSYS, unix.EPERM:
			return -1, errNoOpenat2
		}
		return -1, err
	}
	return -1, errNoOpenat2
}

func mkfifoAt(d *dirHandle, name string) error {
	if err := unix.Mkfifoat(d.fd, name, 0o600); err != nil {
		return d.pathErr("mkfifo", name, err)
	}
	return nil
}
