//go:build unix

package image

import (
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// sysDir holds the open directory: every call below is relative to fd and
// none follows a link in the name it is given.
type sysDir struct {
	f  *os.File
	fd int
}

const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

func newDirHandle(fd int, host string) *dirHandle {
	d := &dirHandle{sysDir: sysDir{f: os.NewFile(uintptr(fd), host), fd: fd}, host: host}
	d.refs.Store(1)
	return d
}

// openTarget opens the restore target, whose path has its links resolved.
func openTarget(p string) (*dirHandle, error) {
	fd, err := unix.Open(p, dirFlags, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return newDirHandle(fd, p), nil
}

func (d *dirHandle) close() { d.f.Close() }

func (d *dirHandle) file() *os.File { return d.f }

func (d *dirHandle) pathErr(op, name string, err error) error {
	return &os.PathError{Op: op, Path: filepath.Join(d.host, name), Err: err}
}

// lstat reports whether name is a directory; a link is not followed.
func (d *dirHandle) lstat(name string) (isDir bool, err error) {
	var st unix.Stat_t
	if err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return false, d.pathErr("lstat", name, err)
	}
	return st.Mode&unix.S_IFMT == unix.S_IFDIR, nil
}

func (d *dirHandle) mkdir(name string) error {
	if err := unix.Mkdirat(d.fd, name, 0o700); err != nil {
		return d.pathErr("mkdir", name, err)
	}
	return nil
}

// openDir opens the directory name; a link in its place is refused.
func (d *dirHandle) openDir(name string) (*dirHandle, error) {
	fd, err := unix.Openat(d.fd, name, dirFlags, 0)
	if err != nil {
		if err == unix.ELOOP || err == unix.ENOTDIR {
			return nil, d.pathErr("open", name, errors.New("no longer a directory: it was replaced while the restore ran"))
		}
		return nil, d.pathErr("open", name, err)
	}
	return newDirHandle(fd, filepath.Join(d.host, name)), nil
}

func (d *dirHandle) create(name string) (*os.File, error) {
	fd, err := unix.Openat(d.fd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, d.pathErr("create", name, err)
	}
	return os.NewFile(uintptr(fd), filepath.Join(d.host, name)), nil
}

func (d *dirHandle) remove(name string) error {
	if err := unix.Unlinkat(d.fd, name, 0); err != nil {
		return d.pathErr("remove", name, err)
	}
	return nil
}

func (d *dirHandle) symlink(target, name string) error {
	if err := unix.Symlinkat(target, d.fd, name); err != nil {
		return d.pathErr("symlink", name, err)
	}
	return nil
}

// link makes name a hard link to oldName in from; oldName is not followed
// if it is a link.
func (d *dirHandle) link(from *dirHandle, oldName, name string) error {
	if err := unix.Linkat(from.fd, oldName, d.fd, name, 0); err != nil {
		return d.pathErr("link", name, err)
	}
	return nil
}

// removeAll removes name and what is below it, descending through
// directory handles: a link is removed, never followed.
func (d *dirHandle) removeAll(name string) error {
	if err := removeAllAt(d.fd, name); err != nil {
		return d.pathErr("remove", name, err)
	}
	return nil
}

func removeAllAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR && err != unix.EPERM {
		return err
	}
	fd, oerr := unix.Openat(dirfd, name, dirFlags, 0)
	if oerr == unix.ENOENT {
		return nil
	}
	if oerr != nil {
		return err
	}
	dir := os.NewFile(uintptr(fd), name)
	defer dir.Close()
	for attempt := 0; ; attempt++ {
		names, rerr := dir.Readdirnames(-1)
		if rerr != nil && rerr != io.EOF {
			return rerr
		}
		for _, c := range names {
			if err := removeAllAt(fd, c); err != nil {
				return err
			}
		}
		err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
		if err == nil || err == unix.ENOENT {
			return nil
		}
		// Entries added meanwhile: read it again, a few times.
		if (err != unix.ENOTEMPTY && err != unix.EEXIST) || attempt == 3 {
			return err
		}
		if _, err := dir.Seek(0, io.SeekStart); err != nil {
			return err
		}
	}
}

// openBeneath opens the directory rel (slash-separated) below d without
// following any link: with openat2 and RESOLVE_BENEATH where the kernel
// has it, else one component at a time with O_NOFOLLOW.
func (d *dirHandle) openBeneath(rel string) (*dirHandle, error) {
	if rel == "" || rel == "." {
		d.retain()
		return d, nil
	}
	fd, err := openat2Beneath(d.fd, rel)
	if errors.Is(err, errNoOpenat2) {
		fd, err = walkBeneath(d.fd, rel)
	}
	if err != nil {
		return nil, d.pathErr("open", filepath.FromSlash(rel), err)
	}
	return newDirHandle(fd, filepath.Join(d.host, filepath.FromSlash(rel))), nil
}

// errNoOpenat2 means openat2 is not there to use: walk instead.
var errNoOpenat2 = errors.New("openat2 is not available")

// walkBeneath opens rel below dirfd one component at a time, each a
// directory opened with O_NOFOLLOW.
func walkBeneath(dirfd int, rel string) (int, error) {
	cur := dirfd
	for _, c := range strings.Split(path.Clean(rel), "/") {
		if c == ".." || c == "." || c == "" {
			if cur != dirfd {
				unix.Close(cur)
			}
			return -1, errors.New("path leaves the target")
		}
		fd, err := unix.Openat(cur, c, dirFlags, 0)
		if cur != dirfd {
			unix.Close(cur)
		}
		if err != nil {
			return -1, err
		}
		cur = fd
	}
	return cur, nil
}

// makeFIFO makes the named pipe name and sets its metadata through a
// handle of it, opened without blocking and checked to be the pipe.
func (rs *restorer) makeFIFO(d *dirHandle, name string, n *Node) error {
	if err := mkfifoAt(d, name); err != nil {
		return err
	}
	fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return d.pathErr("open", name, err)
	}
	f := os.NewFile(uintptr(fd), filepath.Join(d.host, name))
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return d.pathErr("stat", name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return d.pathErr("open", name, errors.New("no longer a named pipe: it was replaced while the restore ran"))
	}
	return rs.setMeta(d, name, n, f)
}

// setMeta applies owner (as root), mode, xattrs and times to name in
// parent, or to the path name when parent is nil (the target itself).
// f is a handle of the entry itself, nil for a symlink: all but the times
// are set through it.
func (rs *restorer) setMeta(parent *dirHandle, name string, n *Node, f *os.File) error {
	dirfd, host := unix.AT_FDCWD, name
	if parent != nil {
		dirfd, host = parent.fd, filepath.Join(parent.host, name)
	}
	if n.Type != TypeSymlink && f == nil {
		return &os.PathError{Op: "chmod", Path: host, Err: errors.New("no handle")}
	}
	if rs.isRoot {
		var err error
		if f != nil {
			err = f.Chown(int(n.UID), int(n.GID))
		} else {
			err = unix.Fchownat(dirfd, name, int(n.UID), int(n.GID), unix.AT_SYMLINK_NOFOLLOW)
		}
		if err != nil {
			return &os.PathError{Op: "chown", Path: host, Err: err}
		}
	}
	if n.Type != TypeSymlink {
		// After the owner: chown clears setuid and setgid.
		if err := f.Chmod(fileMode(rs.mode(host, n))); err != nil {
			return err
		}
		for _, x := range n.Xattrs {
			if err := unix.Fsetxattr(int(f.Fd()), string(x.Name), x.Value, 0); err != nil {
				return &os.PathError{Op: "setxattr " + string(x.Name), Path: host, Err: err}
			}
		}
	}
	t := unix.Timespec{Sec: n.Mtime.Unix(), Nsec: int64(n.Mtime.Nanosecond())}
	ts := []unix.Timespec{t, t}
	if err := unix.UtimesNanoAt(dirfd, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimes", Path: host, Err: err}
	}
	return nil
}
