package image

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

func TestScratchExperiments(t *testing.T) {
	b := append([]byte("DVT1"), 0x80, 0x00)
	tr, err := DecodeTree(b)
	fmt.Println("nonminimal:", tr, err)
	if err == nil {
		fmt.Println("reencode equal:", bytes.Equal(tr.Encode(), b))
	}
	n := &Node{Name: []byte("a"), Type: TypeFIFO, Mtime: time.Unix(-62135596800, 0)}
	fmt.Println("iszero", n.Mtime.IsZero())
	var e encoder
	e.raw([]byte(treeMagic))
	e.uvarint(1)
	e.bytes([]byte("a"))
	e.byte(byte(TypeFIFO))
	e.uvarint(0); e.uvarint(0); e.uvarint(0)
	e.varint(-62135596800); e.uvarint(0)
	e.varint(0); e.uvarint(0)
	e.uvarint(0); e.uvarint(0); e.uvarint(0)
	e.uvarint(0)
	tr, err = DecodeTree(e.b)
	fmt.Println("zero time:", err, err == nil && bytes.Equal(tr.Encode(), e.b))
	fmt.Println("epoch encodes like zero:", bytes.Equal((&Tree{Nodes: []*Node{{Name: []byte("a"), Type: TypeFIFO, Mtime: time.Unix(0, 0)}}}).Encode(), (&Tree{Nodes: []*Node{{Name: []byte("a"), Type: TypeFIFO}}}).Encode()))
	fmt.Println("zero UnixNano", time.Time{}.UnixNano(), time.Unix(0, time.Time{}.UnixNano()).UTC())

	var pe encoder
	pe.raw([]byte("DVPH"))
	pe.uvarint(1)
	pe.byte(KindData)
	pe.raw(make([]byte, 32))
	pe.uvarint(^uint64(0))
	pe.uvarint(41)
	pe.uvarint(1)
	es, err := decodePackHeader(pe.b, 100)
	fmt.Printf("overflow: %+v %v\n", es, err)
	var pe2 encoder
	pe2.raw([]byte("DVPH"))
	pe2.uvarint(1)
	pe2.byte(KindData)
	pe2.raw(make([]byte, 32))
	pe2.uvarint(1 << 33)
	pe2.uvarint(100)
	pe2.uvarint(1)
	es, err = decodePackHeader(pe2.b, 1<<34)
	fmt.Printf("truncation: %+v %v\n", es, err)

	for _, p := range []string{"../x", "a/../../b", "/a//b/", "..", "a/.."} {
		c, err := CleanPath(p)
		fmt.Printf("CleanPath(%q) = %q, %v\n", p, c, err)
	}
}
