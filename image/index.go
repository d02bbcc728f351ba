package image

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
)

// Index maps chunk IDs to where they are stored. It is safe for concurrent
// use.
type Index struct {
	mu     sync.RWMutex
	packs  []packSlot
	bySlot map[Digest]uint32
	chunks map[ChunkID]chunkLoc
}

type packSlot struct {
	digest Digest // zero while the pack is being written
	size   int64
	index  Digest // the index blob that lists this pack; zero if new
}

type chunkLoc struct {
	slot   uint32
	kind   byte
	off    uint32
	length uint32
	raw    uint32
}

// reservedSlot marks a chunk that a worker is sealing right now.
const reservedSlot = ^uint32(0)

func newIndex() *Index {
	return &Index{bySlot: map[Digest]uint32{}, chunks: map[ChunkID]chunkLoc{}}
}

// Len returns the number of chunks indexed.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.chunks)
}

// Has reports whether id is stored or being stored.
func (x *Index) Has(id ChunkID) bool {
	x.mu.RLock()
	_, ok := x.chunks[id]
	x.mu.RUnlock()
	return ok
}

// reserve claims id for the caller to store; false means it is already
// stored or claimed.
func (x *Index) reserve(id ChunkID) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.chunks[id]; ok {
		return false
	}
	x.chunks[id] = chunkLoc{slot: reservedSlot}
	return true
}

// unreserve drops a claim whose chunk was never stored.
func (x *Index) unreserve(id ChunkID) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if l, ok := x.chunks[id]; ok && l.slot == reservedSlot {
		delete(x.chunks, id)
	}
}

func (x *Index) newPackSlot() uint32 {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.packs = append(x.packs, packSlot{})
	return uint32(len(x.packs) - 1)
}

func (x *Index) place(id ChunkID, slot uint32, en packEntry) {
	x.mu.Lock()
	x.chunks[id] = chunkLoc{slot: slot, kind: en.Kind, off: en.Offset, length: en.Length, raw: en.Raw}
	x.mu.Unlock()
}

func (x *Index) packDone(slot uint32, d Digest, size int64) {
	x.mu.Lock()
	x.packs[slot].digest, x.packs[slot].size = d, size
	x.bySlot[d] = slot
	x.mu.Unlock()
}

// location is a resolved chunk location.
type location struct {
	pack   Digest
	kind   byte
	off    int64
	length int64
	raw    int64
}

// lookup finds a stored chunk.
func (x *Index) lookup(id ChunkID) (location, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	l, ok := x.chunks[id]
	if !ok || l.slot == reservedSlot || x.packs[l.slot].digest.IsZero() {
		return location{}, false
	}
	return location{pack: x.packs[l.slot].digest, kind: l.kind, off: int64(l.off), length: int64(l.length), raw: int64(l.raw)}, true
}

// packIndexBlob returns the index blob that lists pack d.
func (x *Index) packInfo(d Digest) (size int64, index Digest, ok bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	s, ok := x.bySlot[d]
	if !ok {
		return 0, Digest{}, false
	}
	return x.packs[s].size, x.packs[s].index, true
}

// indexPack is one pack as an index blob lists it.
type indexPack struct {
	Digest  Digest
	Size    int64
	Entries []packEntry
}

// addBlob merges a decoded index blob.
func (x *Index) addBlob(blob Digest, packs []indexPack) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, p := range packs {
		slot, ok := x.bySlot[p.Digest]
		if !ok {
			x.packs = append(x.packs, packSlot{digest: p.Digest, size: p.Size, index: blob})
			slot = uint32(len(x.packs) - 1)
			x.bySlot[p.Digest] = slot
		}
		for _, en := range p.Entries {
			if _, dup := x.chunks[en.ID]; !dup {
				x.chunks[en.ID] = chunkLoc{slot: slot, kind: en.Kind, off: en.Offset, length: en.Length, raw: en.Raw}
			}
		}
	}
}

// unlistedPacks returns the packs that no index blob lists yet (written
// or adopted in this run) and that hold a chunk in used, with their
// entries, for the run's index blob. A pack no chunk of the snapshot needs
// stays unlisted: an index blob names only packs its snapshot keeps, so a
// prune never leaves an index pointing at a deleted pack.
func (x *Index) unlistedPacks(used map[ChunkID]bool) []indexPack {
	x.mu.RLock()
	defer x.mu.RUnlock()
	bySlot := map[uint32]*indexPack{}
	for i, p := range x.packs {
		if p.index.IsZero() && !p.digest.IsZero() {
			bySlot[uint32(i)] = &indexPack{Digest: p.digest, Size: p.size}
		}
	}
	needed := map[uint32]bool{}
	for id, l := range x.chunks {
		if ip, ok := bySlot[l.slot]; ok {
			ip.Entries = append(ip.Entries, packEntry{Kind: l.kind, ID: id, Offset: l.off, Length: l.length, Raw: l.raw})
			if used[id] {
				needed[l.slot] = true
			}
		}
	}
	var res []indexPack
	for slot, ip := range bySlot {
		if needed[slot] {
			sortEntries(ip.Entries)
			res = append(res, *ip)
		}
	}
	slices.SortFunc(res, func(a, b indexPack) int { return bytes.Compare(a.Digest[:], b.Digest[:]) })
	return res
}

// adoptPack adds a stored pack that no loaded index blob lists, so that its
// chunks dedup; the next index blob lists it if the snapshot uses it. It
// returns how many of its chunks were new to the index.
func (x *Index) adoptPack(d Digest, size int64, entries []packEntry) int {
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.bySlot[d]; ok {
		return 0
	}
	x.packs = append(x.packs, packSlot{digest: d, size: size})
	slot := uint32(len(x.packs) - 1)
	x.bySlot[d] = slot
	n := 0
	for _, en := range entries {
		if _, dup := x.chunks[en.ID]; !dup {
			x.chunks[en.ID] = chunkLoc{slot: slot, kind: en.Kind, off: en.Offset, length: en.Length, raw: en.Raw}
			n++
		}
	}
	return n
}

// hasPack reports whether pack d is known: listed by a loaded index blob,
// written or adopted.
func (x *Index) hasPack(d Digest) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	_, ok := x.bySlot[d]
	return ok
}

// dropUnstored forgets the chunks that a stopped run claimed or placed in
// packs that were never committed, so a later run on this index stores
// them again.
func (x *Index) dropUnstored() {
	x.mu.Lock()
	defer x.mu.Unlock()
	for id, l := range x.chunks {
		if l.slot == reservedSlot || x.packs[l.slot].digest.IsZero() {
			delete(x.chunks, id)
		}
	}
}

func (x *Index) setListed(blob Digest, packs []indexPack) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, p := range packs {
		if s, ok := x.bySlot[p.Digest]; ok {
			x.packs[s].index = blob
		}
	}
}

const indexMagic = "DVPI"

func encodeIndexBlob(packs []indexPack) []byte {
	var e encoder
	e.raw([]byte(indexMagic))
	e.uvarint(uint64(len(packs)))
	for _, p := range packs {
		e.raw(p.Digest[:])
		e.uvarint(uint64(p.Size))
		encodeEntries(&e, p.Entries)
	}
	return e.b
}

// decodeIndexBlob parses the plaintext of an index blob.
func decodeIndexBlob(pt []byte) ([]indexPack, error) {
	d := decoder{b: pt}
	d.magic(indexMagic)
	n := d.count(32 + 2)
	packs := make([]indexPack, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		var p indexPack
		copy(p.Digest[:], d.raw(32))
		p.Size = int64(d.uvarint())
		if p.Size < 0 || p.Size > 1<<40 {
			d.fail(fmt.Sprintf("pack %d size %d out of range", i, p.Size))
		}
		p.Entries = decodeEntries(&d, p.Size)
		packs = append(packs, p)
	}
	if err := d.end(); err != nil {
		return nil, fmt.Errorf("index blob: %w", err)
	}
	return packs, nil
}
