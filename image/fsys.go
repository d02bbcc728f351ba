//go:build unix

package image

import (
	"bytes"
	"errors"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

func openNoFollow(p string) (*os.File, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|oNoAtime, 0)
	if errors.Is(err, unix.EPERM) {
		fd, err = unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return os.NewFile(uintptr(fd), p), nil
}

func readlinkBytes(p string) ([]byte, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlink(p, buf)
		if err != nil {
			return nil, &os.PathError{Op: "readlink", Path: p, Err: err}
		}
		if n < size {
			return buf[:n], nil
		}
		if size > maxTarget {
			return nil, &os.PathError{Op: "readlink", Path: p, Err: unix.ENAMETOOLONG}
		}
	}
}

// readXattrs returns the user.* extended attributes of p, sorted.
func readXattrs(p string) ([]Xattr, error) {
	sz, err := unix.Llistxattr(p, nil)
	if err != nil || sz == 0 {
		if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EPERM) {
			return nil, nil
		}
		if err != nil {
			return nil, &os.PathError{Op: "listxattr", Path: p, Err: err}
		}
		return nil, nil
	}
	buf := make([]byte, sz)
	sz, err = unix.Llistxattr(p, buf)
	if err != nil {
		return nil, &os.PathError{Op: "listxattr", Path: p, Err: err}
	}
	var out []Xattr
	for _, name := range bytes.Split(buf[:sz], []byte{0}) {
		if !bytes.HasPrefix(name, []byte("user.")) {
			continue
		}
		vsz, err := unix.Lgetxattr(p, string(name), nil)
		if err != nil {
			return nil, &os.PathError{Op: "getxattr", Path: p, Err: err}
		}
		val := make([]byte, vsz)
		if vsz > 0 {
			if vsz, err = unix.Lgetxattr(p, string(name), val); err != nil {
				return nil, &os.PathError{Op: "getxattr", Path: p, Err: err}
			}
		}
		out = append(out, Xattr{Name: bytes.Clone(name), Value: val[:vsz]})
	}
	slices.SortFunc(out, func(a, b Xattr) int { return bytes.Compare(a.Name, b.Name) })
	return out, nil
}

type region struct{ off, len int64 }

// dataRegions lists the data of a file, leaving out holes when the file is
// sparse (fewer blocks allocated than its size needs).
func dataRegions(f *os.File, size, blocks int64) ([]region, error) {
	if size == 0 {
		return nil, nil
	}
	if blocks*512 >= size {
		return []region{{0, size}}, nil
	}
	fd := int(f.Fd())
	var out []region
	var off int64
	for off < size {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole remains
		}
		if err != nil {
			return []region{{0, size}}, nil // no SEEK_DATA here: read it all
		}
		if data >= size {
			break
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil || hole > size {
			hole = size
		}
		out = append(out, region{data, hole - data})
		off = hole
	}
	return out, nil
}
