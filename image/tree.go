package image

import (
	"bytes"
	"fmt"
	"slices"
	"time"
)

// NodeType is the kind of a directory entry.
type NodeType byte

// Node types.
const (
	TypeFile    NodeType = 1
	TypeDir     NodeType = 2
	TypeSymlink NodeType = 3
	TypeFIFO    NodeType = 4
)

func (t NodeType) String() string {
	switch t {
	case TypeFile:
		return "file"
	case TypeDir:
		return "dir"
	case TypeSymlink:
		return "symlink"
	case TypeFIFO:
		return "fifo"
	}
	return fmt.Sprintf("type(%d)", byte(t))
}

// Part is one piece of a file's content: a chunk, or a hole of Hole zero
// bytes that is not stored (sparse files).
type Part struct {
	Chunk ChunkID
	Size  uint32 // chunk plaintext length; zero for a hole
	Hole  uint64
}

// Length returns how many bytes of the file the part covers.
func (p Part) Length() int64 {
	if p.Hole > 0 {
		return int64(p.Hole)
	}
	return int64(p.Size)
}

// Xattr is one extended attribute.
type Xattr struct {
	Name  []byte
	Value []byte
}

// Node is one directory entry. Names are bytes: any byte but '/' and NUL.
type Node struct {
	Name  []byte
	Type  NodeType
	Mode  uint32 // permission bits with setuid, setgid and sticky (07777)
	UID   uint32
	GID   uint32
	Mtime time.Time
	Size  int64
	// Target is the link target of a symlink.
	Target []byte
	// Subtree is the tree of a directory.
	Subtree ChunkID
	// Parts is the content of a regular file.
	Parts []Part
	// LinkGroup, when not zero, is shared by the hard links of one file in
	// one snapshot; each member keeps its own copy of Parts.
	LinkGroup uint64
	Xattrs    []Xattr
	// Ctime and Inode are what the next snapshot compares to decide that a
	// file is unchanged. Inode zero means "always read again".
	Ctime time.Time
	Inode uint64
}

// Tree is one directory's entries, sorted by name.
type Tree struct {
	Nodes []*Node
}

// Find returns the entry called name, or nil.
func (t *Tree) Find(name []byte) *Node {
	i, ok := slices.BinarySearchFunc(t.Nodes, name, func(n *Node, name []byte) int { return bytes.Compare(n.Name, name) })
	if !ok {
		return nil
	}
	return t.Nodes[i]
}

// Sort orders the entries by name.
func (t *Tree) Sort() {
	slices.SortFunc(t.Nodes, func(a, b *Node) int { return bytes.Compare(a.Name, b.Name) })
}

const treeMagic = "DVT1"

// limits of decoded trees
const (
	maxName   = 4096
	maxTarget = 64 << 10
	maxXattr  = 64 << 10
)

// Encode serialises the tree (sorted) deterministically.
func (t *Tree) Encode() []byte {
	var e encoder
	e.raw([]byte(treeMagic))
	e.uvarint(uint64(len(t.Nodes)))
	for _, n := range t.Nodes {
		e.bytes(n.Name)
		e.byte(byte(n.Type))
		e.uvarint(uint64(n.Mode))
		e.uvarint(uint64(n.UID))
		e.uvarint(uint64(n.GID))
		encodeTime(&e, n.Mtime)
		encodeTime(&e, n.Ctime)
		e.uvarint(n.Inode)
		e.uvarint(uint64(n.Size))
		e.uvarint(n.LinkGroup)
		switch n.Type {
		case TypeSymlink:
			e.bytes(n.Target)
		case TypeDir:
			e.raw(n.Subtree[:])
		case TypeFile:
			e.uvarint(uint64(len(n.Parts)))
			for _, p := range n.Parts {
				if p.Hole > 0 {
					e.byte(1)
					e.uvarint(p.Hole)
				} else {
					e.byte(0)
					e.raw(p.Chunk[:])
					e.uvarint(uint64(p.Size))
				}
			}
		}
		e.uvarint(uint64(len(n.Xattrs)))
		for _, x := range n.Xattrs {
			e.bytes(x.Name)
			e.bytes(x.Value)
		}
	}
	return e.b
}

func encodeTime(e *encoder, t time.Time) {
	e.varint(t.Unix())
	e.uvarint(uint64(t.Nanosecond()))
}

func decodeTime(d *decoder) time.Time {
	s, ns := d.varint(), d.uvarint()
	if ns >= 1e9 {
		d.fail("nanoseconds out of range")
		return time.Time{}
	}
	return time.Unix(s, int64(ns))
}

// ValidName reports whether name may be a directory entry: not empty, not
// "." or "..", and free of '/' and NUL.
func ValidName(name []byte) bool {
	return len(name) > 0 && len(name) <= maxName && !bytes.Equal(name, []byte(".")) &&
		!bytes.Equal(name, []byte("..")) && bytes.IndexByte(name, '/') < 0 && bytes.IndexByte(name, 0) < 0
}

// DecodeTree parses an encoded tree. It refuses names that could escape a
// restore target, duplicate or unsorted names, and out-of-range fields.
func DecodeTree(b []byte) (*Tree, error) {
	d := decoder{b: b}
	d.magic(treeMagic)
	n := d.count(14)
	t := &Tree{Nodes: make([]*Node, 0, n)}
	for i := 0; i < n && d.err == nil; i++ {
		nd := &Node{}
		nd.Name = d.bytes(maxName)
		nd.Type = NodeType(d.byte())
		mode, uid, gid := d.uvarint(), d.uvarint(), d.uvarint()
		if mode > 0o7777 || uid > 1<<32-1 || gid > 1<<32-1 {
			d.fail("mode or owner out of range")
		}
		nd.Mode, nd.UID, nd.GID = uint32(mode), uint32(uid), uint32(gid)
		nd.Mtime = decodeTime(&d)
		nd.Ctime = decodeTime(&d)
		nd.Inode = d.uvarint()
		size := d.uvarint()
		if size > 1<<62 {
			d.fail("size out of range")
		}
		nd.Size = int64(size)
		nd.LinkGroup = d.uvarint()
		switch nd.Type {
		case TypeSymlink:
			nd.Target = d.bytes(maxTarget)
		case TypeDir:
			copy(nd.Subtree[:], d.raw(32))
		case TypeFile:
			np := d.count(2)
			nd.Parts = make([]Part, 0, np)
			var total uint64
			for j := 0; j < np && d.err == nil; j++ {
				var p Part
				switch d.byte() {
				case 1:
					p.Hole = d.uvarint()
					if p.Hole == 0 {
						d.fail("empty hole")
					}
				case 0:
					copy(p.Chunk[:], d.raw(32))
					sz := d.uvarint()
					if sz == 0 || sz > maxTreeBlob {
						d.fail("chunk size out of range")
					}
					p.Size = uint32(sz)
				default:
					d.fail("unknown part kind")
				}
				total += uint64(p.Length())
				nd.Parts = append(nd.Parts, p)
			}
			if d.err == nil && total != size {
				d.fail(fmt.Sprintf("parts add up to %d bytes, size is %d", total, size))
			}
		case TypeFIFO:
		default:
			d.fail(fmt.Sprintf("unknown node type %d", nd.Type))
		}
		nx := d.count(2)
		for j := 0; j < nx && d.err == nil; j++ {
			nd.Xattrs = append(nd.Xattrs, Xattr{Name: d.bytes(255), Value: d.bytes(maxXattr)})
		}
		if d.err != nil {
			break
		}
		if !ValidName(nd.Name) {
			return nil, fmt.Errorf("tree entry %d: name %q is not a safe file name: %w", i, nd.Name, ErrFormat)
		}
		if i > 0 && bytes.Compare(t.Nodes[i-1].Name, nd.Name) >= 0 {
			return nil, fmt.Errorf("tree entry %d: names unsorted or repeated at %q: %w", i, nd.Name, ErrFormat)
		}
		t.Nodes = append(t.Nodes, nd)
	}
	if err := d.end(); err != nil {
		return nil, fmt.Errorf("tree: %w", err)
	}
	return t, nil
}
