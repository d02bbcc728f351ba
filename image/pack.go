package image

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"
)

// Kinds of chunk.
const (
	KindData byte = 1
	KindTree byte = 2
)

// Chunk payload codecs: the first plaintext byte of a sealed chunk.
const (
	codecRaw  byte = 0
	codecZstd byte = 1
)

// PackTarget is the size at which a pack is closed.
const PackTarget = 32 << 20

// maxTreeBlob bounds one encoded directory.
const maxTreeBlob = 64 << 20

const (
	packMagic      = "DVP1"
	packTrailerLen = 8 // sealed header length (uint32 LE) + magic
)

// packEntry locates one sealed chunk inside a pack.
type packEntry struct {
	Kind   byte
	ID     ChunkID
	Offset uint32
	Length uint32 // sealed length
	Raw    uint32 // plaintext length
}

const packEntryMin = 1 + 32 + 3

func encodeEntries(e *encoder, entries []packEntry) {
	e.uvarint(uint64(len(entries)))
	for _, en := range entries {
		e.byte(en.Kind)
		e.raw(en.ID[:])
		e.uvarint(uint64(en.Offset))
		e.uvarint(uint64(en.Length))
		e.uvarint(uint64(en.Raw))
	}
}

func decodeEntries(d *decoder, packSize int64) []packEntry {
	n := d.count(packEntryMin)
	entries := make([]packEntry, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		var en packEntry
		en.Kind = d.byte()
		copy(en.ID[:], d.raw(32))
		off, length, raw := d.uvarint(), d.uvarint(), d.uvarint()
		if en.Kind != KindData && en.Kind != KindTree {
			d.fail(fmt.Sprintf("entry %d has unknown kind %d", i, en.Kind))
		}
		if off > uint64(packSize) || length > uint64(packSize)-off || off > math.MaxUint32 || length > math.MaxUint32 ||
			length < sealOverhead+1 || raw > maxTreeBlob {
			d.fail(fmt.Sprintf("entry %d (offset %d, length %d, raw %d) lies outside a %d-byte pack", i, off, length, raw, packSize))
		}
		en.Offset, en.Length, en.Raw = uint32(off), uint32(length), uint32(raw)
		entries = append(entries, en)
	}
	return entries
}

// ParsePackHeader opens the sealed table of contents at the end of a pack.
func (k *Keys) ParsePackHeader(pack io.ReaderAt, size int64) ([]packEntry, error) {
	if size < packTrailerLen {
		return nil, fmt.Errorf("pack of %d bytes has no trailer: %w", size, ErrFormat)
	}
	var tr [packTrailerLen]byte
	if _, err := pack.ReadAt(tr[:], size-packTrailerLen); err != nil {
		return nil, fmt.Errorf("read pack trailer: %w", err)
	}
	if string(tr[4:]) != packMagic {
		return nil, fmt.Errorf("pack trailer lacks magic %q: %w", packMagic, ErrFormat)
	}
	hlen := int64(binary.LittleEndian.Uint32(tr[:4]))
	if hlen > size-packTrailerLen || hlen > maxMetaBlob {
		return nil, fmt.Errorf("pack header of %d bytes does not fit a %d-byte pack: %w", hlen, size, ErrFormat)
	}
	sealed := make([]byte, hlen)
	if _, err := pack.ReadAt(sealed, size-packTrailerLen-hlen); err != nil {
		return nil, fmt.Errorf("read pack header: %w", err)
	}
	pt, err := k.openMeta(sealed, []byte("dvpc v1 pack header"))
	if err != nil {
		return nil, fmt.Errorf("pack header: %w", err)
	}
	return decodePackHeader(pt, size-packTrailerLen-hlen)
}

func decodePackHeader(pt []byte, dataSize int64) ([]packEntry, error) {
	d := decoder{b: pt}
	d.magic("DVPH")
	entries := decodeEntries(&d, dataSize)
	if err := d.end(); err != nil {
		return nil, fmt.Errorf("pack header: %w", err)
	}
	return entries, nil
}

// openPack is a pack being written.
type openPack struct {
	w       BlobWriter
	slot    uint32
	size    int64
	entries []packEntry
	broken  bool // a write failed: the pack may hold a torn chunk
}

// packer gathers sealed chunks of one kind into packs.
type packer struct {
	st     Store
	keys   *Keys
	idx    *Index
	kind   byte
	target int64

	// Each writer fills its own pack, so hashing and writing run in
	// parallel; slot i is used by writer i.
	slots []packSlotW

	doneMu        sync.Mutex
	finished      []Digest
	finishedBytes int64

	// Full packs are synced and renamed in the background, so sealing goes
	// on while the disk catches up.
	fin     errgroup.Group
	finOnce sync.Once
}

type packSlotW struct {
	mu  sync.Mutex
	cur *openPack
}

func newPacker(st Store, keys *Keys, idx *Index, kind byte, writers int) *packer {
	return &packer{st: st, keys: keys, idx: idx, kind: kind, target: PackTarget, slots: make([]packSlotW, max(writers, 1))}
}

// add appends one sealed chunk to writer's pack; it closes the pack when it
// is full.
func (p *packer) add(ctx context.Context, writer int, id ChunkID, sealed []byte, raw int) error {
	sl := &p.slots[writer%len(p.slots)]
	sl.mu.Lock()
	if sl.cur == nil {
		w, err := p.st.CreateBlob(ctx)
		if err != nil {
			sl.mu.Unlock()
			return err
		}
		sl.cur = &openPack{w: w, slot: p.idx.newPackSlot()}
	}
	cur := sl.cur
	if _, err := cur.w.Write(sealed); err != nil {
		cur.broken = true
		sl.mu.Unlock()
		return fmt.Errorf("write pack: %w", err)
	}
	en := packEntry{Kind: p.kind, ID: id, Offset: uint32(cur.size), Length: uint32(len(sealed)), Raw: uint32(raw)}
	cur.entries = append(cur.entries, en)
	cur.size += int64(len(sealed))
	p.idx.place(id, cur.slot, en)
	var full *openPack
	if cur.size >= p.target {
		full, sl.cur = cur, nil
	}
	sl.mu.Unlock()
	if full != nil {
		p.finOnce.Do(func() { p.fin.SetLimit(2) })
		p.fin.Go(func() error { return p.finish(ctx, full) })
	}
	return nil
}

// flush closes the open packs, if any.
func (p *packer) flush(ctx context.Context) error {
	var err error
	for i := range p.slots {
		sl := &p.slots[i]
		sl.mu.Lock()
		cur := sl.cur
		sl.cur = nil
		sl.mu.Unlock()
		if cur != nil && err == nil {
			err = p.finish(ctx, cur)
		}
	}
	if ferr := p.fin.Wait(); err == nil {
		err = ferr
	}
	return err
}

// checkpoint ends the packs of a run that stopped before its snapshot was
// committed. Each open pack holds whole sealed chunks, so it is finished
// like a full one rather than dropped: the next run adopts every committed
// pack (see [Repo.adoptPacks]) instead of storing its chunks again. A pack
// whose writes failed is dropped. It returns the packs and bytes the run
// committed in all. No add may run meanwhile.
func (p *packer) checkpoint(ctx context.Context) (packs int, bytes int64) {
	ctx = context.WithoutCancel(ctx)
	for i := range p.slots {
		sl := &p.slots[i]
		sl.mu.Lock()
		cur := sl.cur
		sl.cur = nil
		sl.mu.Unlock()
		switch {
		case cur == nil:
		case cur.broken || len(cur.entries) == 0:
			cur.w.Abort()
		default:
			_ = p.finish(ctx, cur) // a pack that cannot be finished is dropped
		}
	}
	_ = p.fin.Wait()
	p.doneMu.Lock()
	defer p.doneMu.Unlock()
	return len(p.finished), p.finishedBytes
}

func (p *packer) finish(ctx context.Context, op *openPack) error {
	var e encoder
	e.raw([]byte("DVPH"))
	encodeEntries(&e, op.entries)
	hdr := seal(p.keys.meta, nil, e.b, []byte("dvpc v1 pack header"))
	var tr [packTrailerLen]byte
	binary.LittleEndian.PutUint32(tr[:4], uint32(len(hdr)))
	copy(tr[4:], packMagic)
	if _, err := op.w.Write(append(hdr, tr[:]...)); err != nil {
		op.w.Abort()
		return fmt.Errorf("write pack: %w", err)
	}
	d, n, err := op.w.Commit(ctx)
	if err != nil {
		return err
	}
	p.idx.packDone(op.slot, d, n)
	p.doneMu.Lock()
	p.finished = append(p.finished, d)
	p.finishedBytes += n
	p.doneMu.Unlock()
	return nil
}

// ChunkError names the chunk and the blob that failed to read.
type ChunkError struct {
	ID   ChunkID
	Pack Digest
	Err  error
}

func (e *ChunkError) Error() string {
	return fmt.Sprintf("chunk %s in blob %s: %v", e.ID.String()[:16], e.Pack, e.Err)
}

func (e *ChunkError) Unwrap() error { return e.Err }

var errIDMismatch = errors.New("content does not match its chunk id")

func sortEntries(es []packEntry) {
	slices.SortFunc(es, func(a, b packEntry) int { return cmp.Compare(a.Offset, b.Offset) })
}
