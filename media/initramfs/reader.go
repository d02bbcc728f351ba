package initramfs

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
)

// Reader reads a newc cpio archive entry by entry.
type Reader struct {
	r    *bufio.Reader
	off  int64
	left int64 // data bytes of the current entry not yet read
	pad  int64 // padding after the current entry's data
	done bool
}

// NewReader returns a Reader over r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReader(r)}
}

// Next skips the rest of the current entry and returns the next header. It
// returns io.EOF after the trailer.
func (r *Reader) Next() (*Header, error) {
	if r.done {
		return nil, io.EOF
	}
	if err := r.skip(r.left + r.pad); err != nil {
		return nil, fmt.Errorf("cpio read entry: %w", err)
	}
	r.left, r.pad = 0, 0
	var raw [headerSize]byte
	if err := r.full(raw[:]); err != nil {
		return nil, fmt.Errorf("cpio read header at %d: %w", r.off, noEOF(err))
	}
	if string(raw[:6]) != newcMagic {
		return nil, fmt.Errorf("cpio read header at %d: %w: magic %q", r.off-headerSize, ErrFormat, raw[:6])
	}
	var f [13]uint32
	for i := range f {
		v, err := strconv.ParseUint(string(raw[6+8*i:14+8*i]), 16, 32)
		if err != nil {
			return nil, fmt.Errorf("cpio read header at %d: %w: field %d", r.off-headerSize, ErrFormat, i)
		}
		f[i] = uint32(v)
	}
	namesize := int64(f[11])
	if namesize < 1 || namesize > maxNameSize {
		return nil, fmt.Errorf("cpio read header at %d: %w: name size %d", r.off-headerSize, ErrFormat, namesize)
	}
	name := make([]byte, namesize)
	if err := r.full(name); err != nil {
		return nil, fmt.Errorf("cpio read name: %w", noEOF(err))
	}
	if name[namesize-1] != 0 {
		return nil, fmt.Errorf("cpio read name: %w: name not NUL-terminated", ErrFormat)
	}
	if err := r.skip(pad4(r.off)); err != nil {
		return nil, fmt.Errorf("cpio read name: %w", noEOF(err))
	}
	h := &Header{
		Name:  string(name[:namesize-1]),
		Ino:   f[0],
		Mode:  f[1],
		Nlink: f[4],
		Size:  int64(f[6]),
		Major: f[9],
		Minor: f[10],
	}
	if h.Name == trailer {
		r.done = true
		return nil, io.EOF
	}
	r.left = h.Size
	r.pad = pad4(h.Size)
	return h, nil
}

// Read reads the current entry's data.
func (r *Reader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.r.Read(p)
	r.off += int64(n)
	r.left -= int64(n)
	if err == io.EOF && r.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (r *Reader) full(p []byte) error {
	n, err := io.ReadFull(r.r, p)
	r.off += int64(n)
	return err
}

func (r *Reader) skip(n int64) error {
	m, err := io.CopyN(io.Discard, r.r, n)
	r.off += m
	return noEOF(err)
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func pad4(n int64) int64 { return (4 - n%4) % 4 }
