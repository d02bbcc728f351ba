package initramfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
)

// newc header field layout: magic then 13 fields of 8 hex digits.
const (
	newcMagic  = "070701"
	headerSize = 110
	trailer    = "TRAILER!!!"
	// maxNameSize bounds the name field a reader accepts.
	maxNameSize = 4096
)

// File type bits of the cpio mode field (as in stat's st_mode).
const (
	typeMask    = 0o170000
	typeDir     = 0o040000
	typeReg     = 0o100000
	typeSymlink = 0o120000
	typeChar    = 0o020000
)

// ErrFormat is returned for an archive that is not a valid newc cpio.
var ErrFormat = errors.New("not a newc cpio archive")

// Header describes one archive entry.
type Header struct {
	Name  string // path inside the archive, without a leading slash
	Mode  uint32 // type and permission bits, as st_mode
	Size  int64  // bytes of data (the target's length for a symlink)
	Major uint32 // device major, for a device node
	Minor uint32 // device minor, for a device node
	Ino   uint32
	Nlink uint32
}

// FileMode returns the entry's mode as an fs.FileMode.
func (h *Header) FileMode() fs.FileMode {
	m := fs.FileMode(h.Mode & 0o777)
	switch h.Mode & typeMask {
	case typeDir:
		m |= fs.ModeDir
	case typeSymlink:
		m |= fs.ModeSymlink
	case typeChar:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case typeReg:
	default:
		m |= fs.ModeIrregular
	}
	return m
}

// Writer streams a newc cpio archive. Call [Writer.Close] to write the
// trailer; it does not close the underlying writer.
type Writer struct {
	w      io.Writer
	off    int64
	ino    uint32
	closed bool
}

// NewWriter returns a Writer that writes an archive to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w}
}

// Dir adds a directory.
func (w *Writer) Dir(name string, perm fs.FileMode) error {
	return w.entry(name, typeDir|uint32(perm.Perm()), 0, 0, 0, nil)
}

// File adds a regular file of size bytes read from r. It fails if r holds
// fewer than size bytes.
func (w *Writer) File(name string, perm fs.FileMode, size int64, r io.Reader) error {
	return w.entry(name, typeReg|uint32(perm.Perm()), size, 0, 0, r)
}

// Symlink adds a symbolic link pointing at target.
func (w *Writer) Symlink(name, target string) error {
	if target == "" {
		return fmt.Errorf("cpio add symlink %s: empty target", name)
	}
	return w.entry(name, typeSymlink|0o777, int64(len(target)), 0, 0, strings.NewReader(target))
}

// CharDevice adds a character device node, such as /dev/console (5, 1).
func (w *Writer) CharDevice(name string, perm fs.FileMode, major, minor uint32) error {
	return w.entry(name, typeChar|uint32(perm.Perm()), 0, major, minor, nil)
}

// Close writes the trailer entry and the padding after it.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	if err := w.writeHeader(trailer, 0, 0, 0, 0, 0, 1); err != nil {
		return fmt.Errorf("cpio write trailer: %w", err)
	}
	w.closed = true
	return nil
}

func (w *Writer) entry(name string, mode uint32, size int64, major, minor uint32, r io.Reader) error {
	if w.closed {
		return fmt.Errorf("cpio add %s: archive closed", name)
	}
	clean, err := cleanName(name)
	if err != nil {
		return err
	}
	if size < 0 || size > 0xffffffff {
		return fmt.Errorf("cpio add %s: size %d out of range", name, size)
	}
	w.ino++
	nlink := uint32(1)
	if mode&typeMask == typeDir {
		nlink = 2
	}
	if err := w.writeHeader(clean, mode, size, major, minor, w.ino, nlink); err != nil {
		return fmt.Errorf("cpio add %s: %w", clean, err)
	}
	if size > 0 {
		n, err := io.Copy(w, io.LimitReader(r, size))
		if err != nil {
			return fmt.Errorf("cpio add %s: %w", clean, err)
		}
		if n != size {
			return fmt.Errorf("cpio add %s: %w after %d of %d bytes", clean, io.ErrUnexpectedEOF, n, size)
		}
		if err := w.pad(); err != nil {
			return fmt.Errorf("cpio add %s: %w", clean, err)
		}
	}
	return nil
}

func (w *Writer) writeHeader(name string, mode uint32, size int64, major, minor, ino, nlink uint32) error {
	hdr := fmt.Sprintf("%s%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		newcMagic, ino, mode, 0, 0, nlink, 0, size, 0, 0, major, minor, len(name)+1, 0)
	if _, err := io.WriteString(w, hdr); err != nil {
		return err
	}
	if _, err := io.WriteString(w, name+"\x00"); err != nil {
		return err
	}
	return w.pad()
}

// Write implements io.Writer for the data copy and counts the offset.
func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.off += int64(n)
	return n, err
}

func (w *Writer) pad() error {
	if r := w.off % 4; r != 0 {
		_, err := w.Write(make([]byte, 4-r))
		return err
	}
	return nil
}

// cleanName turns "/dev/console" or "./init" into "dev/console", "init".
func cleanName(name string) (string, error) {
	c := strings.TrimLeft(path.Clean("/"+name), "/")
	if c == "" || c == "." {
		c = "."
	}
	if name == "" || strings.Contains(name, "\x00") || c == trailer || len(c) >= maxNameSize {
		return "", fmt.Errorf("cpio add %q: invalid name", name)
	}
	return c, nil
}
