//go:build !unix

package image

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// sysDir is empty here: this system's restore works by path, each
// directory checked not to be a link before it is entered.
type sysDir struct{}

func openTarget(p string) (*dirHandle, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, &os.PathError{Op: "open", Path: p, Err: errors.New("not a directory")}
	}
	d := &dirHandle{host: p}
	d.refs.Store(1)
	return d, nil
}

func (d *dirHandle) close() {}

func (d *dirHandle) file() *os.File { return nil }

func (d *dirHandle) at(name string) string { return filepath.Join(d.host, name) }

func (d *dirHandle) lstat(name string) (bool, error) {
	fi, err := os.Lstat(d.at(name))
	if err != nil {
		return false, err
	}
	return fi.IsDir(), nil
}

func (d *dirHandle) mkdir(name string) error { return os.Mkdir(d.at(name), 0o700) }

func (d *dirHandle) openDir(name string) (*dirHandle, error) {
	fi, err := os.Lstat(d.at(name))
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() || fi.Mode()&os.ModeSymlink != 0 {
		return nil, &os.PathError{Op: "open", Path: d.at(name), Err: errors.New("no longer a directory: it was replaced while the restore ran")}
	}
	s := &dirHandle{host: d.at(name)}
	s.refs.Store(1)
	return s, nil
}

func (d *dirHandle) create(name string) (*os.File, error) {
	return os.OpenFile(d.at(name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
}

func (d *dirHandle) remove(name string) error { return os.Remove(d.at(name)) }

func (d *dirHandle) symlink(target, name string) error { return os.Symlink(target, d.at(name)) }

func (d *dirHandle) link(from *dirHandle, oldName, name string) error {
	return os.Link(from.at(oldName), d.at(name))
}

func (d *dirHandle) removeAll(name string) error { return os.RemoveAll(d.at(name)) }

func (d *dirHandle) openBeneath(rel string) (*dirHandle, error) {
	cur := d
	cur.retain()
	if rel == "" || rel == "." {
		return cur, nil
	}
	for _, c := range strings.Split(rel, "/") {
		next, err := cur.openDir(c)
		cur.release()
		if err != nil {
			return nil, err
		}
		cur = next
	}
	return cur, nil
}

func (rs *restorer) makeFIFO(d *dirHandle, name string, n *Node) error {
	return &os.PathError{Op: "mkfifo", Path: d.at(name), Err: errors.New("named pipes cannot be made on this system")}
}

// setMeta applies the mode bits and mtime this system keeps; owners and
// extended attributes stay in the snapshot.
func (rs *restorer) setMeta(parent *dirHandle, name string, n *Node, f *os.File) error {
	if n.Type == TypeSymlink {
		return nil
	}
	host := name
	if parent != nil {
		host = parent.at(name)
	}
	if err := os.Chmod(host, fileMode(rs.mode(host, n))); err != nil {
		return err
	}
	return os.Chtimes(host, n.Mtime, n.Mtime)
}
