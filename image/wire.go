package image

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrFormat means stored bytes do not follow the dvpc format.
var ErrFormat = errors.New("malformed data")

// encoder appends the fields of dvpc's binary records.
type encoder struct{ b []byte }

func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) byte(v byte)      { e.b = append(e.b, v) }
func (e *encoder) raw(p []byte)     { e.b = append(e.b, p...) }
func (e *encoder) bytes(p []byte)   { e.uvarint(uint64(len(p))); e.b = append(e.b, p...) }

// decoder reads what encoder wrote. The first error sticks, so callers check
// it once at the end; every length is bounded by what is left.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%s: %w", what, ErrFormat)
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 || n > 1 && d.b[n-1] == 0 {
		d.fail("bad or non-minimal unsigned varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 || n > 1 && d.b[n-1] == 0 {
		d.fail("bad or non-minimal varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) raw(n int) []byte {
	if n < 0 || len(d.b) < n {
		d.fail("truncated")
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// bytes reads a length-prefixed field of at most max bytes.
func (d *decoder) bytes(max int) []byte {
	n := d.uvarint()
	if n > uint64(max) {
		d.fail(fmt.Sprintf("field of %d bytes exceeds %d", n, max))
		return nil
	}
	return d.raw(int(n))
}

// count reads a number of records, each at least minSize bytes long, so a
// forged count cannot make the reader allocate more than the input allows.
func (d *decoder) count(minSize int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)/max(minSize, 1)) {
		d.fail(fmt.Sprintf("count %d exceeds what %d bytes can hold", n, len(d.b)))
		return 0
	}
	return int(n)
}

func (d *decoder) magic(m string) {
	if string(d.raw(len(m))) != m && d.err == nil {
		d.fail("bad magic, want " + m)
	}
}

func (d *decoder) end() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail(fmt.Sprintf("%d trailing bytes", len(d.b)))
	}
	return d.err
}
