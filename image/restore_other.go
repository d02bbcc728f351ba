//go:build !unix

package image

import (
	"errors"
	"os"
)

func createNoFollow(p string) (*os.File, error) {
	return os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
}

func mkfifo(p string) error {
	return &os.PathError{Op: "mkfifo", Path: p, Err: errors.New("named pipes cannot be made on this system")}
}

// setMeta applies the mode bits and mtime this system keeps; owners and
// extended attributes stay in the snapshot.
func (rs *restorer) setMeta(host string, n *Node, f *os.File) error {
	if n.Type == TypeSymlink {
		return nil
	}
	if err := os.Chmod(host, fileMode(n.Mode)); err != nil {
		return err
	}
	return os.Chtimes(host, n.Mtime, n.Mtime)
}
