package media

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
)

// ErrNotRegular means a file of a mounted or extracted medium is a
// symbolic link, a FIFO, a socket or a device. A dvpc medium holds only
// regular files and directories, so such a file was put there by someone
// else: reading through it could leave the medium (a link) or block
// forever (a FIFO).
var ErrNotRegular = errors.New("not a regular file or directory")

// dirFS reads the files of a medium mounted or extracted at a directory,
// and nothing else. Unlike [os.DirFS] it follows no symbolic link, in any
// element of a path, and opens only regular files and directories: it
// checks each element without following it, then opens the file beneath
// an [os.Root] (so nothing outside the directory is reached even if the
// tree changes meanwhile), without blocking (a FIFO swapped in cannot
// stall the open), and checks that what it opened is what it checked.
type dirFS struct{ root *os.Root }

var (
	_ fs.FS     = dirFS{}
	_ fs.StatFS = dirFS{}
)

func openDirFS(dir string) (dirFS, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return dirFS{}, err
	}
	return dirFS{root: r}, nil
}

func (d dirFS) Close() error { return d.root.Close() }

// Stat implements [fs.StatFS].
func (d dirFS) Stat(name string) (fs.FileInfo, error) { return d.check("stat", name) }

// Open implements [fs.FS].
func (d dirFS) Open(name string) (fs.File, error) {
	want, err := d.check("open", name)
	if err != nil {
		return nil, err
	}
	f, err := d.root.OpenFile(name, os.O_RDONLY|openNonblock, 0)
	if err != nil {
		return nil, err
	}
	got, err := f.Stat()
	if err == nil && (!os.SameFile(want, got) || kindOf(got) != "") {
		err = &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("replaced while it was opened: %w", ErrNotRegular)}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// check returns the file information of name after checking every element
// of its path without following it.
func (d dirFS) check(op, name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	var fi fs.FileInfo
	elems := strings.Split(name, "/")
	for i := range elems {
		p := path.Join(elems[:i+1]...)
		var err error
		if fi, err = d.root.Lstat(p); err != nil {
			return nil, err
		}
		if k := kindOf(fi); k != "" {
			return nil, &fs.PathError{Op: op, Path: p, Err: fmt.Errorf("%s: %w", k, ErrNotRegular)}
		}
		if i < len(elems)-1 && !fi.IsDir() {
			return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
	}
	return fi, nil
}

// kindOf names what fi is when it is neither a regular file nor a
// directory, and returns "" when it is one of those.
func kindOf(fi fs.FileInfo) string {
	m := fi.Mode()
	switch {
	case m.IsRegular(), m.IsDir():
		return ""
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "a special file"
}
