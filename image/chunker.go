package image

import (
	"encoding/binary"
	"errors"
	"io"

	"github.com/zeebo/blake3"
)

// Chunk size bounds of file data. The average is about 1 MiB.
const (
	MinChunk = 256 << 10
	AvgChunk = 1 << 20
	MaxChunk = 4 << 20
)

// cutMask: a cut where the top 20 bits of the gear hash are zero, past the
// minimum size, gives chunks of about MinChunk + 1 MiB. One mask for every
// position keeps boundaries purely content-defined, so after an edit they
// realign within a chunk or two; FastCDC's two-mask normalisation made
// them depend on the chunk's start and took three on average, up to nine.
const cutMask = uint64(0xFFFFF00000000000)

// GearTable is the 256-entry table of a gear-hash chunker. Deriving it from
// the store's key keeps chunk boundaries from identifying known files.
type GearTable [256]uint64

// NewGearTable derives a gear table from key material.
func NewGearTable(key []byte) *GearTable {
	var raw [256 * 8]byte
	blake3.DeriveKey("dvpc v1 gear table", key, raw[:])
	var g GearTable
	for i := range g {
		g[i] = binary.LittleEndian.Uint64(raw[i*8:])
	}
	return &g
}

// Chunker cuts a stream into content-defined chunks.
type Chunker struct {
	r          io.Reader
	gear       *GearTable
	buf        []byte
	start, end int
	eof        bool
}

// NewChunker returns a chunker reading r. buf, if at least 2*MaxChunk long,
// is used as its buffer, so callers can pool buffers.
func NewChunker(r io.Reader, gear *GearTable, buf []byte) *Chunker {
	if cap(buf) < 2*MaxChunk {
		buf = make([]byte, 2*MaxChunk)
	}
	return &Chunker{r: r, gear: gear, buf: buf[:cap(buf)]}
}

// Next returns the next chunk. The slice is valid until the next call. At
// the end of the stream it returns io.EOF.
func (c *Chunker) Next() ([]byte, error) {
	if c.end-c.start < MaxChunk && !c.eof {
		n := copy(c.buf, c.buf[c.start:c.end])
		c.start, c.end = 0, n
		for c.end < len(c.buf) && !c.eof {
			m, err := c.r.Read(c.buf[c.end:])
			c.end += m
			if errors.Is(err, io.EOF) {
				c.eof = true
			} else if err != nil {
				return nil, err
			}
		}
	}
	if c.start == c.end {
		return nil, io.EOF
	}
	n := cut(c.buf[c.start:c.end], c.gear)
	chunk := c.buf[c.start : c.start+n]
	c.start += n
	return chunk, nil
}

// cut returns the length of the first chunk of data.
func cut(data []byte, g *GearTable) int {
	n := len(data)
	if n <= MinChunk {
		return n
	}
	if n > MaxChunk {
		n = MaxChunk
	}
	var h uint64
	i := MinChunk
	for ; i < n; i++ {
		h = h<<1 + g[data[i]]
		if h&cutMask == 0 {
			return i + 1
		}
	}
	return n
}
