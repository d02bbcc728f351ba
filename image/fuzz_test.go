package image

// Fuzz targets for every parser of stored bytes. A store may come from a
// mirror, a medium or a damaged disk, so each parser must refuse what it does
// not understand with an error and never panic, hang or allocate without
// bound. Each target is seeded with encodings made by the real encoders (most
// of them taken from a real snapshot) and a few truncations of them; the seeds
// also run as ordinary tests under `go test`.
//
//	go test -run XXX -fuzz FuzzDecodeTree -fuzztime 20s ./image/

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fzArgon keeps key derivation cheap in fuzz seeds.
var fzArgon = Argon2Params{Time: 1, MemoryKiB: 8 << 10, Threads: 1}

const fzPass = "fuzz passphrase"

// fzChunk is one sealed chunk as it lies in a pack.
type fzChunk struct {
	kind   byte
	id     ChunkID
	sealed []byte
	raw    int64
	pt     []byte // opened plaintext: codec byte and payload
}

// fzFixture is a real store with one snapshot, and the stored bytes of every
// kind that the fuzz targets parse.
type fzFixture struct {
	repo      *Repo
	lay       *Layout
	snap      *Snapshot
	keyBlob   []byte   // the key blob as stored
	indexJSON []byte   // index.json
	emptyJSON []byte   // index.json of a new layout
	packs     [][]byte // whole pack blobs
	headers   [][]byte // opened pack headers ("DVPH" ...)
	indexes   [][]byte // opened index blobs ("DVPI" ...)
	chunks    []fzChunk
	trees     [][]byte // encoded trees, as stored in tree chunks
	signature []byte   // the snapshot's armored SSHSIG signature
}

// newFzFixture snapshots a small directory into a fresh store and collects
// what the store holds.
func newFzFixture(tb testing.TB) *fzFixture {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	empty, err := InitLayout(filepath.Join(dir, "empty"))
	if err != nil {
		tb.Fatal(err)
	}
	lay, err := InitLayout(filepath.Join(dir, "store"))
	if err != nil {
		tb.Fatal(err)
	}
	if _, _, err := Init(ctx, lay, []byte(fzPass), fzArgon); err != nil {
		tb.Fatal(err)
	}
	r, _, err := Open(ctx, lay, []byte(fzPass))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Close() })

	src := filepath.Join(dir, "src")
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	noise := make([]byte, 300<<10)
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	files := map[string][]byte{
		"docs/a":           []byte("alpha\n"),
		"docs/b":           bytes.Repeat([]byte("compressible line of text\n"), 4000),
		"noise.bin":        noise,
		"empty":            nil,
		"sub/deeper/leaf":  []byte("leaf"),
		"name with spaces": []byte("spaces"),
	}
	for name, b := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	if err := os.Symlink("docs/a", filepath.Join(src, "link")); err != nil {
		tb.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(src, "fifo"), 0o600); err != nil {
		tb.Fatal(err)
	}
	snap, _, err := r.Snapshot(ctx, src, SnapshotOptions{
		Host: "fuzz", NoParent: true,
		OnError: func(p string, err error) { tb.Errorf("snapshot: %s: %v", p, err) },
	})
	if err != nil {
		tb.Fatal(err)
	}

	fx := &fzFixture{repo: r, lay: lay, snap: snap}
	if fx.keyBlob, err = r.KeyFile().Marshal(); err != nil {
		tb.Fatal(err)
	}
	if fx.indexJSON, err = os.ReadFile(filepath.Join(lay.Root(), "index.json")); err != nil {
		tb.Fatal(err)
	}
	if fx.emptyJSON, err = os.ReadFile(filepath.Join(empty.Root(), "index.json")); err != nil {
		tb.Fatal(err)
	}
	if fx.signature, err = r.Signature(ctx, snap); err != nil {
		tb.Fatal(err)
	}
	for _, l := range snap.Layers {
		d, err := DigestFromHash(l.Digest)
		if err != nil {
			tb.Fatal(err)
		}
		switch string(l.MediaType) {
		case IndexType:
			sealed, err := ReadBlob(ctx, lay, d, l.Size)
			if err != nil {
				tb.Fatal(err)
			}
			pt, err := open(r.keys.meta, nil, sealed, []byte("dvpc v1 index"))
			if err != nil {
				tb.Fatal(err)
			}
			fx.indexes = append(fx.indexes, pt)
		case PackType:
			pack, err := os.ReadFile(filepath.Join(lay.Root(), "blobs", "sha256", d.Hex()))
			if err != nil {
				tb.Fatal(err)
			}
			fx.packs = append(fx.packs, pack)
			fx.addPack(tb, pack)
		}
	}
	if len(fx.indexes) == 0 || len(fx.packs) < 2 || len(fx.trees) < 3 {
		tb.Fatalf("fixture: %d index blobs, %d packs, %d trees; want a data and a tree pack", len(fx.indexes), len(fx.packs), len(fx.trees))
	}
	return fx
}

// addPack opens a pack's header and every chunk in it.
func (fx *fzFixture) addPack(tb testing.TB, pack []byte) {
	tb.Helper()
	r := fx.repo
	n := len(pack)
	hlen := int(binary.LittleEndian.Uint32(pack[n-packTrailerLen:]))
	hdr, err := open(r.keys.meta, nil, pack[n-packTrailerLen-hlen:n-packTrailerLen], []byte("dvpc v1 pack header"))
	if err != nil {
		tb.Fatal(err)
	}
	fx.headers = append(fx.headers, hdr)
	entries, err := r.keys.ParsePackHeader(bytes.NewReader(pack), int64(n))
	if err != nil {
		tb.Fatal(err)
	}
	for _, en := range entries {
		sealed := bytes.Clone(pack[en.Offset : en.Offset+en.Length])
		pt, err := open(r.keys.blob, nil, sealed, chunkAD(en.Kind, en.ID))
		if err != nil {
			tb.Fatal(err)
		}
		fx.chunks = append(fx.chunks, fzChunk{kind: en.Kind, id: en.ID, sealed: sealed, raw: int64(en.Raw), pt: pt})
		if en.Kind == KindTree {
			data, err := r.openChunk(en.Kind, en.ID, bytes.Clone(sealed), int64(en.Raw), nil)
			if err != nil {
				tb.Fatal(err)
			}
			fx.trees = append(fx.trees, data)
		}
	}
}

// fzNoPanic turns a panic of the code under test into a test failure, so a
// crashing seed fails its own target instead of ending the test binary.
// Deferred first thing in every fuzz function.
func fzNoPanic(t *testing.T) {
	if p := recover(); p != nil {
		// The stack from the panicking call down to the fuzz function.
		stack := string(debug.Stack())
		if i := strings.Index(stack, "\npanic("); i >= 0 {
			stack = stack[i+1:]
		}
		if i := strings.Index(stack, "\nreflect."); i >= 0 {
			stack = stack[:i]
		}
		t.Fatalf("panic: %v\n%s", p, stack)
	}
}

// fzTruncations returns b and a few prefixes of it.
func fzTruncations(b []byte) [][]byte {
	out := [][]byte{b}
	for _, n := range []int{len(b) - 1, len(b) / 2, 4, 0} {
		if n >= 0 && n < len(b) {
			out = append(out, b[:n])
		}
	}
	return out
}

// fzSampleTrees are trees with every kind of entry and field, made by hand.
func fzSampleTrees() []*Tree {
	var id1, id2, sub ChunkID
	for i := range id1 {
		id1[i], id2[i], sub[i] = byte(i), byte(255-i), byte(i*7)
	}
	t0 := time.Unix(1700000000, 123456789)
	full := &Tree{Nodes: []*Node{
		{Name: []byte(".hidden"), Type: TypeFile, Mode: 0o7777, UID: 1<<32 - 1, GID: 0, Mtime: t0, Ctime: time.Unix(-1, 999999999),
			Inode: 1 << 63, LinkGroup: 3, Size: 100 + 4096 + 7,
			Parts:  []Part{{Chunk: id1, Size: 100}, {Hole: 4096}, {Chunk: id2, Size: 7}},
			Xattrs: []Xattr{{Name: []byte("user.a"), Value: []byte("value")}, {Name: []byte("user.b"), Value: nil}}},
		{Name: []byte("dir"), Type: TypeDir, Mode: 0o755, UID: 1000, GID: 1000, Mtime: t0, Ctime: t0, Subtree: sub},
		{Name: []byte("empty"), Type: TypeFile, Mode: 0o600, UID: 1000, GID: 1000, Mtime: t0, Ctime: t0, Inode: 42},
		{Name: []byte("fifo"), Type: TypeFIFO, Mode: 0o600, UID: 1000, GID: 1000, Mtime: t0, Ctime: t0},
		{Name: []byte("link"), Type: TypeSymlink, Mode: 0o777, UID: 1000, GID: 1000, Mtime: t0, Ctime: t0, Target: []byte("../../elsewhere")},
		{Name: []byte("sparse"), Type: TypeFile, Mode: 0o644, UID: 1000, GID: 1000, Mtime: t0, Ctime: t0, Size: 1 << 40,
			Parts: []Part{{Hole: 1 << 40}}},
		{Name: []byte("\xff\xfe not UTF-8"), Type: TypeFile, Mode: 0o644, UID: 1000, GID: 1000, Mtime: t0, Ctime: t0, Size: 3,
			Parts: []Part{{Chunk: id1, Size: 3}}},
	}}
	full.Sort()
	top := &Tree{Nodes: []*Node{{Name: []byte("home"), Type: TypeDir, Mode: 0o700, UID: 1000, GID: 1000, Mtime: t0, Ctime: t0, Inode: 7, Subtree: sub}}}
	return []*Tree{{}, full, top}
}

// fzCheckTree checks what DecodeTree promises about a tree it accepted.
func fzCheckTree(t *testing.T, tr *Tree) {
	t.Helper()
	for i, n := range tr.Nodes {
		if !ValidName(n.Name) {
			t.Fatalf("entry %d: unsafe name %q accepted", i, n.Name)
		}
		if i > 0 && bytes.Compare(tr.Nodes[i-1].Name, n.Name) >= 0 {
			t.Fatalf("entry %d: names %q, %q unsorted or repeated", i, tr.Nodes[i-1].Name, n.Name)
		}
		if tr.Find(n.Name) != n {
			t.Fatalf("entry %d: Find(%q) does not find it", i, n.Name)
		}
		if n.Mode > 0o7777 || n.Size < 0 {
			t.Fatalf("entry %d: mode %o, size %d", i, n.Mode, n.Size)
		}
		switch n.Type {
		case TypeFile:
			var total int64
			for _, p := range n.Parts {
				if p.Length() <= 0 {
					t.Fatalf("entry %d: empty part %+v", i, p)
				}
				total += p.Length()
			}
			if total != n.Size {
				t.Fatalf("entry %d: parts add up to %d, size is %d", i, total, n.Size)
			}
		case TypeDir, TypeSymlink, TypeFIFO:
		default:
			t.Fatalf("entry %d: unknown type %d accepted", i, n.Type)
		}
	}
}

func FuzzDecodeTree(f *testing.F) {
	fx := newFzFixture(f)
	seeds := append([][]byte{}, fx.trees...)
	for _, tr := range fzSampleTrees() {
		seeds = append(seeds, tr.Encode())
	}
	for _, s := range seeds {
		for _, b := range fzTruncations(s) {
			f.Add(b)
		}
	}
	// Regression seeds: encodings the decoder accepts but the encoder never
	// writes, so the same tree has two encodings (and two chunk IDs).
	f.Add(append([]byte(treeMagic), 0x80, 0x00)) // entry count 0 as a two-byte varint
	f.Add(fzYearOneTree())                       // a time of 0001-01-01, which decodes as the zero time
	f.Fuzz(func(t *testing.T, b []byte) {
		defer fzNoPanic(t)
		tr, err := DecodeTree(b)
		if err != nil {
			if tr != nil {
				t.Fatalf("DecodeTree returned a tree with error %v", err)
			}
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		fzCheckTree(t, tr)
		if enc := tr.Encode(); !bytes.Equal(enc, b) {
			t.Fatalf("decoding is not canonical: re-encoding differs\n in:  %x\n out: %x", b, enc)
		}
	})
}

// fzYearOneTree encodes one FIFO whose mtime is 0001-01-01T00:00:00Z written
// as Unix seconds, not as the (0, 0) that marks the zero time.
func fzYearOneTree() []byte {
	var e encoder
	e.raw([]byte(treeMagic))
	e.uvarint(1)
	e.bytes([]byte("fifo"))
	e.byte(byte(TypeFIFO))
	e.uvarint(0o644)
	e.uvarint(1000)
	e.uvarint(1000)
	e.varint(time.Time{}.Unix()) // mtime
	e.uvarint(0)
	e.varint(1700000000) // ctime
	e.uvarint(1)
	e.uvarint(0) // inode
	e.uvarint(0) // size
	e.uvarint(0) // link group
	e.uvarint(0) // xattrs
	return e.b
}

// fzTreesEqual compares trees field by field, times with time.Equal.
func fzTreesEqual(a, b *Tree) bool {
	if len(a.Nodes) != len(b.Nodes) {
		return false
	}
	for i, x := range a.Nodes {
		y := b.Nodes[i]
		if !bytes.Equal(x.Name, y.Name) || x.Type != y.Type || x.Mode != y.Mode || x.UID != y.UID || x.GID != y.GID ||
			!x.Mtime.Equal(y.Mtime) || !x.Ctime.Equal(y.Ctime) || x.Inode != y.Inode || x.Size != y.Size ||
			!bytes.Equal(x.Target, y.Target) || x.Subtree != y.Subtree || x.LinkGroup != y.LinkGroup ||
			len(x.Parts) != len(y.Parts) || len(x.Xattrs) != len(y.Xattrs) {
			return false
		}
		for j := range x.Parts {
			if x.Parts[j] != y.Parts[j] {
				return false
			}
		}
		for j := range x.Xattrs {
			if !bytes.Equal(x.Xattrs[j].Name, y.Xattrs[j].Name) || !bytes.Equal(x.Xattrs[j].Value, y.Xattrs[j].Value) {
				return false
			}
		}
	}
	return true
}

// TestTreeEncodeDecode checks that every valid tree the encoder writes
// decodes to the same tree: the other half of FuzzDecodeTree's canonical
// check.
func TestTreeEncodeDecode(t *testing.T) {
	cases := map[string]*Tree{}
	for i, tr := range fzSampleTrees() {
		cases[string(rune('A'+i))+" sample"] = tr
	}
	// The smallest entries there are: all fields zero (14 bytes each).
	cases["one minimal fifo"] = &Tree{Nodes: []*Node{{Name: []byte("a"), Type: TypeFIFO}}}
	cases["two minimal fifos"] = &Tree{Nodes: []*Node{{Name: []byte("a"), Type: TypeFIFO}, {Name: []byte("b"), Type: TypeFIFO}}}
	// A file last modified at the Unix epoch (touch -d @0), as Snapshot
	// records it: time.Unix(0, 0), which is not the zero time.Time.
	t0 := time.Unix(1700000000, 5)
	cases["mtime at the Unix epoch"] = &Tree{Nodes: []*Node{{Name: []byte("old"), Type: TypeFile, Mode: 0o644, UID: 1000, GID: 1000,
		Mtime: time.Unix(0, 0), Ctime: t0, Inode: 99}}}
	for name, tr := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := DecodeTree(tr.Encode())
			if err != nil {
				t.Fatalf("DecodeTree refuses what Encode wrote: %v", err)
			}
			if !fzTreesEqual(tr, got) {
				for i := range min(len(tr.Nodes), len(got.Nodes)) {
					t.Logf("wrote %+v\nread  %+v", *tr.Nodes[i], *got.Nodes[i])
				}
				t.Fatal("the decoded tree differs from the encoded one")
			}
		})
	}
}

// fzRawEntry is a pack entry as its bytes say, before any range check.
type fzRawEntry struct {
	kind             byte
	id               ChunkID
	off, length, raw uint64
}

// fzReader is an independent reader of the pack header and index blob
// formats; it keeps every number at its full width.
type fzReader struct {
	b  []byte
	ok bool
}

func (r *fzReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.ok = false
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *fzReader) take(n int) []byte {
	if len(r.b) < n {
		r.ok = false
		return make([]byte, n)
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *fzReader) entries() []fzRawEntry {
	n := r.uvarint()
	var out []fzRawEntry
	for i := uint64(0); i < n && r.ok; i++ {
		var e fzRawEntry
		e.kind = r.take(1)[0]
		copy(e.id[:], r.take(32))
		e.off, e.length, e.raw = r.uvarint(), r.uvarint(), r.uvarint()
		out = append(out, e)
	}
	return out
}

// fzCheckEntries checks decoded pack entries against their raw fields: each
// must be read without loss and lie inside a pack of dataSize bytes.
func fzCheckEntries(t *testing.T, got []packEntry, want []fzRawEntry, dataSize uint64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("decoded %d entries, the bytes hold %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Kind != w.kind || g.ID != w.id || uint64(g.Offset) != w.off || uint64(g.Length) != w.length || uint64(g.Raw) != w.raw {
			t.Fatalf("entry %d: stored offset %d, length %d, raw %d decoded as %d, %d, %d", i, w.off, w.length, w.raw, g.Offset, g.Length, g.Raw)
		}
		if g.Kind != KindData && g.Kind != KindTree {
			t.Fatalf("entry %d: unknown kind %d accepted", i, g.Kind)
		}
		if w.off > dataSize || w.length > dataSize-w.off {
			t.Fatalf("entry %d: offset %d + length %d lies outside a %d-byte pack", i, w.off, w.length, dataSize)
		}
		if w.length < sealOverhead+1 || w.raw > maxTreeBlob {
			t.Fatalf("entry %d: length %d, raw %d out of range", i, w.length, w.raw)
		}
	}
}

// fzEntriesBlob encodes entries with raw field values, as a forger could.
func fzEntriesBlob(magic string, entries ...fzRawEntry) []byte {
	var e encoder
	e.raw([]byte(magic))
	e.uvarint(uint64(len(entries)))
	for _, en := range entries {
		e.byte(en.kind)
		e.raw(en.id[:])
		e.uvarint(en.off)
		e.uvarint(en.length)
		e.uvarint(en.raw)
	}
	return e.b
}

// Forged entries that must be refused: one whose offset + length wraps
// around 2^64, and one whose offset does not fit the uint32 it is kept in.
var (
	fzWrapEntry = fzRawEntry{kind: KindData, off: math.MaxUint64, length: 64, raw: 1}
	fzWideEntry = fzRawEntry{kind: KindData, off: 1 << 33, length: 64, raw: 1}
)

func fzSamplePacks() []indexPack {
	var d Digest
	var id ChunkID
	for i := range d {
		d[i], id[i] = byte(i), byte(^i)
	}
	return []indexPack{
		{Digest: d, Size: 1000, Entries: []packEntry{
			{Kind: KindData, ID: id, Offset: 0, Length: 100, Raw: 60},
			{Kind: KindTree, ID: ChunkID(d), Offset: 100, Length: 900, Raw: 2000},
		}},
		{Digest: Digest(id), Size: 0},
	}
}

func FuzzDecodeIndexBlob(f *testing.F) {
	fx := newFzFixture(f)
	seeds := append([][]byte{}, fx.indexes...)
	seeds = append(seeds, encodeIndexBlob(fzSamplePacks()), encodeIndexBlob(nil))
	for _, s := range seeds {
		for _, b := range fzTruncations(s) {
			f.Add(b)
		}
	}
	// Regression seeds: entries that lie outside their pack.
	for _, en := range []fzRawEntry{fzWrapEntry, fzWideEntry} {
		var e encoder
		e.raw([]byte(indexMagic))
		e.uvarint(1)
		e.raw(make([]byte, 32))
		e.uvarint(1 << 34)
		f.Add(append(e.b, fzEntriesBlob("", en)...))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		defer fzNoPanic(t)
		packs, err := decodeIndexBlob(b)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		r := fzReader{b: b[len(indexMagic):], ok: true}
		n := r.uvarint()
		if uint64(len(packs)) != n {
			t.Fatalf("decoded %d packs, the bytes hold %d", len(packs), n)
		}
		for _, p := range packs {
			var d Digest
			copy(d[:], r.take(32))
			size := r.uvarint()
			if p.Digest != d || uint64(p.Size) != size || p.Size < 0 || p.Size > 1<<40 {
				t.Fatalf("pack %s of %d bytes decoded as %s of %d", d, size, p.Digest, p.Size)
			}
			fzCheckEntries(t, p.Entries, r.entries(), size)
		}
		if !r.ok || len(r.b) != 0 {
			t.Fatal("decodeIndexBlob accepted bytes the reference reader cannot read")
		}
	})
}

func FuzzDecodePackHeader(f *testing.F) {
	fx := newFzFixture(f)
	for i, h := range fx.headers {
		size := int64(len(fx.packs[i]) - packTrailerLen - (len(h) + sealOverhead))
		for _, b := range fzTruncations(h) {
			f.Add(b, size)
		}
		f.Add(h, size-1)
		f.Add(h, int64(0))
	}
	var e encoder
	e.raw([]byte("DVPH"))
	encodeEntries(&e, fzSamplePacks()[0].Entries)
	f.Add(e.b, int64(1000))
	f.Add(e.b, int64(999))
	// Regression seeds: entries that lie outside their pack.
	f.Add(fzEntriesBlob("DVPH", fzWrapEntry), int64(1000))
	f.Add(fzEntriesBlob("DVPH", fzWideEntry), int64(1<<34))
	f.Fuzz(func(t *testing.T, pt []byte, dataSize int64) {
		defer fzNoPanic(t)
		dataSize &= math.MaxInt64 // ParsePackHeader never passes a negative size
		entries, err := decodePackHeader(pt, dataSize)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		r := fzReader{b: pt[4:], ok: true}
		fzCheckEntries(t, entries, r.entries(), uint64(dataSize))
		if !r.ok || len(r.b) != 0 {
			t.Fatal("decodePackHeader accepted bytes the reference reader cannot read")
		}
	})
}

// fzSealPack makes a pack of body and a header sealed under k, as a writer
// holding the store's keys would.
func fzSealPack(k *Keys, body, hdr []byte) []byte {
	sealed := seal(k.meta, nil, hdr, []byte("dvpc v1 pack header"))
	out := append(append(bytes.Clone(body), sealed...), 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(out[len(out)-4:], uint32(len(sealed)))
	return append(out, packMagic...)
}

func FuzzParsePackHeader(f *testing.F) {
	fx := newFzFixture(f)
	keys := fx.repo.keys
	for i, p := range fx.packs {
		hdr := fx.headers[i]
		body := p[:len(p)-packTrailerLen-len(hdr)-sealOverhead]
		for _, b := range fzTruncations(p) {
			f.Add(b, body, hdr)
		}
		f.Add(p[1:], body[1:], hdr)
		f.Add(p[len(p)-packTrailerLen:], []byte(nil), hdr[:len(hdr)-1])
	}
	// Regression seeds: entries that lie outside their pack.
	f.Add([]byte(nil), make([]byte, 1000), fzEntriesBlob("DVPH", fzWrapEntry))
	f.Fuzz(func(t *testing.T, pack, body, hdr []byte) {
		defer fzNoPanic(t)
		// Any bytes as a pack: nearly all fail authentication.
		entries, err := keys.ParsePackHeader(bytes.NewReader(pack), int64(len(pack)))
		if err == nil {
			n := len(pack)
			hlen := int(binary.LittleEndian.Uint32(pack[n-packTrailerLen:]))
			r := fzReader{b: []byte{}, ok: true}
			if pt, err := open(keys.meta, nil, pack[n-packTrailerLen-hlen:n-packTrailerLen], []byte("dvpc v1 pack header")); err == nil {
				r.b = pt[4:]
			}
			fzCheckEntries(t, entries, r.entries(), uint64(n-packTrailerLen-hlen))
		}
		// An authentic header around any plaintext: the table is parsed.
		forged := fzSealPack(keys, body, hdr)
		entries, err = keys.ParsePackHeader(bytes.NewReader(forged), int64(len(forged)))
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("authentic header: error %v does not wrap ErrFormat", err)
			}
			return
		}
		r := fzReader{b: hdr[4:], ok: true}
		fzCheckEntries(t, entries, r.entries(), uint64(len(body)))
	})
}

func FuzzParseKeyFile(f *testing.F) {
	fx := newFzFixture(f)
	var kf map[string]any
	if err := json.Unmarshal(fx.keyBlob, &kf); err != nil {
		f.Fatal(err)
	}
	compact, err := json.Marshal(kf)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range [][]byte{fx.keyBlob, compact} {
		for _, b := range fzTruncations(s) {
			f.Add(b)
		}
	}
	f.Add([]byte(strings.Replace(string(compact), `"version":1`, `"version":2`, 1)))
	f.Add([]byte(`{}`))
	wrong := [][]byte{
		[]byte("not the passphrase"),
		[]byte("1-AAAAA-AAAAA-AAAAA-AAAAA-AAAAA-A"), // reads as a recovery code
		nil,
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		defer fzNoPanic(t)
		kf, err := ParseKeyFile(b)
		if err != nil {
			if kf != nil {
				t.Fatal("ParseKeyFile returned a key file with an error")
			}
			return
		}
		if (kf.Version != 1 && kf.Version != 2) || kf.StoreID == "" || kf.Argon2.validate() != nil {
			t.Fatalf("ParseKeyFile accepted %+v", kf)
		}
		if bytes.Equal(b, fx.keyBlob) {
			if _, err := kf.Unlock([]byte(fzPass)); err != nil {
				t.Fatalf("the real key blob does not unlock: %v", err)
			}
		}
		// The key file names its own Argon2 cost; what is under test is the
		// unwrapping, so a costly one is made cheap.
		if kf.Argon2.Time > 2 || kf.Argon2.MemoryKiB > 16<<10 || kf.Argon2.Threads > 4 {
			kf.Argon2 = fzArgon
		}
		for _, w := range wrong {
			u, err := kf.Unlock(w)
			if err == nil || u != nil {
				t.Fatalf("Unlock(%q) = %v, %v; want an error", w, u, err)
			}
			if !errors.Is(err, ErrWrongPassphrase) {
				t.Fatalf("Unlock(%q): %v; want ErrWrongPassphrase", w, err)
			}
		}
	})
}

func FuzzParseIndex(f *testing.F) {
	fx := newFzFixture(f)
	for _, s := range [][]byte{fx.indexJSON, fx.emptyJSON} {
		for _, b := range fzTruncations(s) {
			f.Add(b)
		}
	}
	for _, s := range []string{`{}`, `null`, `[]`, `{"manifests":[null]}`, `{"manifests":[{"digest":"sha256:00"}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		defer fzNoPanic(t)
		refs, err := parseIndex(b)
		if err != nil {
			return
		}
		for _, r := range refs {
			if _, err := DigestFromHash(r.Desc.Digest); err != nil {
				t.Fatalf("ref %q with digest %q accepted: %v", r.Name, r.Desc.Digest, err)
			}
			if r.Name != r.Desc.Annotations[refNameAnnotation] {
				t.Fatalf("ref named %q, annotation says %q", r.Name, r.Desc.Annotations[refNameAnnotation])
			}
		}
		if bytes.Equal(b, fx.indexJSON) {
			if _, ok := findRef(refs, KeysRef); !ok {
				t.Fatal("the real index.json has no keys ref")
			}
			if _, ok := findRef(refs, fx.snap.Ref); !ok {
				t.Fatalf("the real index.json lacks %s", fx.snap.Ref)
			}
		}
	})
}

func FuzzVerifySSHSIG(f *testing.F) {
	fx := newFzFixture(f)
	pub := fx.repo.KeyFile().SigningPublic
	sign := fx.repo.keys.sign
	other, _, _, err := NewKeyFile([]byte("another"), fzArgon)
	if err != nil {
		f.Fatal(err)
	}
	raw := fx.snap.RawManifest()
	for _, b := range fzTruncations(fx.signature) {
		f.Add(raw, b, uint32(0))
	}
	f.Add(raw, []byte(strings.Replace(string(fx.signature), "A", "B", 1)), uint32(7<<16|3))
	empty, err := sign.signSSHSIG(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte{}, empty, uint32(0))
	f.Add([]byte("message"), []byte("-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n"), uint32(1))
	f.Fuzz(func(t *testing.T, msg, sig []byte, flip uint32) {
		defer fzNoPanic(t)
		flipped := bytes.Clone(msg)
		if len(flipped) == 0 {
			flipped = []byte{0}
		} else {
			flipped[int(flip%uint32(len(flipped)))] ^= 1 << (flip >> 16 % 8)
		}
		// Any signature: it verifies, or fails with ErrBadSignature.
		if err := VerifySSHSIG(pub, msg, sig); err != nil {
			if !errors.Is(err, ErrBadSignature) {
				t.Fatalf("error %v does not wrap ErrBadSignature", err)
			}
		} else if err := VerifySSHSIG(pub, flipped, sig); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("a signature verifies for two messages: %v", err)
		}
		// A real signature of msg: it verifies for msg only, under its key only.
		good, err := sign.signSSHSIG(msg)
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifySSHSIG(pub, msg, good); err != nil {
			t.Fatalf("a valid signature fails: %v", err)
		}
		if err := VerifySSHSIG(pub, flipped, good); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("a signature verifies for a changed message: %v", err)
		}
		if err := VerifySSHSIG(other.SigningPublic, msg, good); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("a signature verifies under another key: %v", err)
		}
	})
}

// fzShortReader returns at most n bytes per Read.
type fzShortReader struct {
	r io.Reader
	n int
}

func (s *fzShortReader) Read(p []byte) (int, error) { return s.r.Read(p[:min(len(p), s.n)]) }

// fzCutAll returns the chunk lengths a chunker cuts, checking that the
// chunks concatenate to stream.
func fzCutAll(t *testing.T, c *Chunker, stream []byte) []int {
	t.Helper()
	var lens []int
	pos := 0
	for {
		chunk, err := c.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(chunk) == 0 || pos+len(chunk) > len(stream) || !bytes.Equal(chunk, stream[pos:pos+len(chunk)]) {
			t.Fatalf("chunk %d (%d bytes at %d) is not the next part of the input", len(lens), len(chunk), pos)
		}
		pos += len(chunk)
		lens = append(lens, len(chunk))
	}
	if pos != len(stream) {
		t.Fatalf("chunks cover %d of %d bytes", pos, len(stream))
	}
	return lens
}

func FuzzChunker(f *testing.F) {
	f.Add([]byte(nil), uint32(0), uint16(0), false)
	f.Add([]byte("a"), uint32(1), uint16(0), true)
	f.Add([]byte("key"), uint32(MinChunk), uint16(4095), true)
	f.Add([]byte("key"), uint32(MinChunk+1), uint16(1<<15), true)
	f.Add([]byte("key"), uint32(MaxChunk), uint16(65535), true)
	f.Add([]byte("key"), uint32(MaxChunk+1), uint16(100), true)
	f.Add([]byte("other key"), uint32(2*MaxChunk+12345), uint16(9999), true)
	f.Add([]byte(nil), uint32(2*MaxChunk+1), uint16(0), false) // zeros: no content cut at all
	f.Add([]byte("a repeating pattern, "), uint32(3*MaxChunk/2), uint16(511), false)
	f.Fuzz(func(t *testing.T, data []byte, length uint32, readSize uint16, random bool) {
		defer fzNoPanic(t)
		n := int(length % (2*MaxChunk + MaxChunk/2 + 1))
		stream := make([]byte, n)
		switch {
		case random:
			rng := rand.NewChaCha8(sha256.Sum256(data))
			rng.Read(stream)
		case len(data) > 0:
			for i := 0; i < n; i += copy(stream[i:], data) {
			}
		}
		gear := NewGearTable(data)
		lens := fzCutAll(t, NewChunker(bytes.NewReader(stream), gear, nil), stream)
		for i, l := range lens {
			if l > MaxChunk {
				t.Fatalf("chunk %d of %d: %d bytes, over MaxChunk", i, len(lens), l)
			}
			if i < len(lens)-1 && l < MinChunk {
				t.Fatalf("chunk %d of %d: %d bytes, under MinChunk", i, len(lens), l)
			}
		}
		// Boundaries depend on the content only, not on how it is read or
		// on the buffer given.
		short := &fzShortReader{r: bytes.NewReader(stream), n: int(readSize)%(64<<10) + 1}
		again := fzCutAll(t, NewChunker(short, gear, make([]byte, 2*MaxChunk+int(readSize))), stream)
		if len(again) != len(lens) {
			t.Fatalf("short reads: %d chunks, want %d", len(again), len(lens))
		}
		for i := range lens {
			if again[i] != lens[i] {
				t.Fatalf("short reads: chunk %d is %d bytes, want %d", i, again[i], lens[i])
			}
		}
	})
}

func FuzzOpenChunk(f *testing.F) {
	fx := newFzFixture(f)
	r := fx.repo
	for _, c := range fx.chunks[:min(len(fx.chunks), 6)] {
		for _, b := range fzTruncations(c.sealed) {
			f.Add(c.kind, c.id[:], b, c.raw, c.pt)
		}
		f.Add(c.kind, c.id[:], c.sealed[:sealOverhead], c.raw, c.pt[:1])
		f.Add(KindData+KindTree-c.kind, c.id[:], c.sealed, c.raw, c.pt) // the other kind
		f.Add(c.kind, c.id[:], c.sealed, c.raw+1, []byte{2})
	}
	f.Add(KindData, []byte{}, []byte{}, int64(0), []byte{codecZstd})
	f.Fuzz(func(t *testing.T, kind byte, id, sealed []byte, raw int64, pt []byte) {
		defer fzNoPanic(t)
		var cid ChunkID
		copy(cid[:], id)
		check := func(what string, data []byte, err error, cid ChunkID, raw int64) {
			t.Helper()
			if err == nil && (int64(len(data)) != raw || r.keys.ChunkID(data) != cid) {
				t.Fatalf("%s: openChunk returned %d bytes that do not match id %s and length %d", what, len(data), cid, raw)
			}
		}
		// Any bytes as a sealed chunk. openChunk opens in place, so it gets
		// a copy with no spare capacity, as a read of exactly the stored
		// length gives.
		buf := make([]byte, len(sealed))
		copy(buf, sealed)
		data, err := r.openChunk(kind, cid, buf, raw, nil)
		check("random sealed bytes", data, err, cid, raw)

		// An authentic envelope around any plaintext: codec byte, then raw
		// or zstd data.
		env := seal(r.keys.blob, nil, pt, chunkAD(kind, cid))
		data, err = r.openChunk(kind, cid, env, raw, make([]byte, 0, 16))
		check("authentic envelope", data, err, cid, raw)

		// A raw chunk under its true ID opens to itself.
		content := pt
		good := r.keys.ChunkID(content)
		env = seal(r.keys.blob, nil, append([]byte{codecRaw}, content...), chunkAD(kind, good))
		data, err = r.openChunk(kind, good, env, int64(len(content)), nil)
		if err != nil || !bytes.Equal(data, content) {
			t.Fatalf("a raw chunk does not open to its content: %v", err)
		}
	})
}
