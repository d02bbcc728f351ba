package image

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"golang.org/x/crypto/chacha20poly1305"
)

// Reused buffers for a chunk's plain bytes, for its sealed bytes, and for
// the chunkers. Each list keeps as many as a snapshot or a restore has in
// use at once on a machine of up to 8 cores; more are made when needed.
var (
	dataPool    = newBufList(16, MaxChunk, false)
	sealPool    = newBufList(16, MaxChunk+MaxChunk/8+64, false)
	chunkerPool = newBufList(8, 2*MaxChunk, true)
)

func chunkAD(kind byte, id ChunkID) []byte {
	ad := make([]byte, 0, 33)
	return append(append(ad, kind), id[:]...)
}

// sealChunk compresses (when that shrinks it) and seals one chunk in
// *buf, which it may grow, and returns the sealed bytes: nonce, then the
// codec byte and payload sealed in place, then the tag. They alias *buf.
func (r *Repo) sealChunk(kind byte, id ChunkID, data []byte, buf *[]byte) []byte {
	const ns = chacha20poly1305.NonceSizeX
	var room [ns]byte
	pt := append((*buf)[:0], room[:]...) // for the nonce
	pt = append(pt, codecZstd)
	if worthCompressing(data) {
		pt = r.zenc.EncodeAll(data, pt)
	}
	if len(pt) == ns+1 || len(pt)-ns-1 >= len(data) {
		pt = append(pt[:ns], codecRaw)
		pt = append(pt, data...)
	}
	if cap(pt) < len(pt)+chacha20poly1305.Overhead {
		pt = append(pt, make([]byte, chacha20poly1305.Overhead)...)[:len(pt)]
	}
	*buf = pt
	return sealInPlace(r.keys.blob, pt, chunkAD(kind, id))
}

// worthCompressing guesses from a sample whether zstd will shrink data;
// photos, videos and archives are stored as they are, cheaply.
func worthCompressing(data []byte) bool {
	if len(data) < 64<<10 {
		return true
	}
	var seen [256]uint16
	sample := data[:16<<10]
	for _, b := range sample {
		seen[b]++
	}
	// An even spread of byte values (near-random data) barely compresses.
	var maxCount uint16
	distinct := 0
	for _, c := range seen {
		if c > 0 {
			distinct++
		}
		maxCount = max(maxCount, c)
	}
	return distinct < 250 || int(maxCount) > 2*len(sample)/256
}

// loadChunk reads, opens and checks one chunk.
func (r *Repo) loadChunk(ctx context.Context, kind byte, id ChunkID, dst []byte) ([]byte, error) {
	loc, ok := r.idx.lookup(id)
	if !ok {
		return nil, fmt.Errorf("chunk %s is in no index of this store: %w", id.String()[:16], ErrNotFound)
	}
	if loc.kind != kind {
		return nil, &ChunkError{ID: id, Pack: loc.pack, Err: fmt.Errorf("indexed as kind %d, want %d: %w", loc.kind, kind, ErrFormat)}
	}
	b, err := r.blobs.get(ctx, loc.pack)
	if err != nil {
		return nil, &ChunkError{ID: id, Pack: loc.pack, Err: err}
	}
	bp := sealPool.Get()
	defer sealPool.Put(bp)
	sealed := (*bp)[:0]
	if int64(cap(sealed)) < loc.length {
		sealed = make([]byte, loc.length)
		*bp = sealed
	}
	sealed = sealed[:loc.length]
	var first, last error
	for range maxFallbacks {
		data, err := r.readChunk(b, loc, kind, id, sealed, dst)
		if err == nil {
			return data, nil
		}
		last = err
		if ctx.Err() != nil {
			break
		}
		if errors.Is(err, fs.ErrClosed) {
			// The cache closed the blob to make room meanwhile: open
			// it again, from the same place.
			if b, err = r.blobs.get(ctx, loc.pack); err != nil {
				last = err
				break
			}
			continue
		}
		if first == nil {
			first = err
		}
		// Another place may hold the pack intact (the same pack on a
		// disc and a mirror): read the chunk from there.
		if b, err = r.blobs.next(ctx, loc.pack, b, &ChunkError{ID: id, Pack: loc.pack, Err: err}); err != nil {
			break
		}
	}
	if first == nil {
		first = last
	}
	return nil, &ChunkError{ID: id, Pack: loc.pack, Err: first}
}

// maxFallbacks bounds the places one chunk is read from.
const maxFallbacks = 32

// readChunk reads one chunk out of its pack b into sealed and opens it.
func (r *Repo) readChunk(b Blob, loc location, kind byte, id ChunkID, sealed, dst []byte) ([]byte, error) {
	if _, err := b.ReadAt(sealed, loc.off); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	return r.openChunk(kind, id, sealed, loc.raw, dst)
}

// openChunk authenticates, decompresses and checks one sealed chunk.
func (r *Repo) openChunk(kind byte, id ChunkID, sealed []byte, raw int64, dst []byte) ([]byte, error) {
	if len(sealed) < sealOverhead {
		return nil, fmt.Errorf("sealed chunk of %d bytes is shorter than its envelope: %w", len(sealed), ErrSeal)
	}
	pt, err := r.keys.openBlobInPlace(sealed, chunkAD(kind, id))
	if err != nil {
		return nil, err
	}
	if len(pt) < 1 {
		return nil, ErrFormat
	}
	var data []byte
	switch pt[0] {
	case codecRaw:
		data = append(dst[:0], pt[1:]...)
	case codecZstd:
		data, err = r.zdec.DecodeAll(pt[1:], dst[:0])
		if err != nil {
			return nil, fmt.Errorf("decompress: %w", err)
		}
	default:
		return nil, fmt.Errorf("unknown codec %d: %w", pt[0], ErrFormat)
	}
	if int64(len(data)) != raw || r.keys.ChunkID(data) != id {
		return nil, errIDMismatch
	}
	return data, nil
}

// LoadTree reads and decodes one directory.
func (r *Repo) LoadTree(ctx context.Context, id ChunkID) (*Tree, error) {
	b, err := r.loadChunk(ctx, KindTree, id, nil)
	if err != nil {
		return nil, fmt.Errorf("tree %s: %w", id.String()[:16], err)
	}
	t, err := DecodeTree(b)
	if err != nil {
		return nil, fmt.Errorf("tree %s: %w", id.String()[:16], err)
	}
	return t, nil
}

// LoadIndex reads the index blobs a snapshot names, once each.
func (r *Repo) LoadIndex(ctx context.Context, s *Snapshot) error {
	for _, l := range s.Layers {
		if string(l.MediaType) != IndexType {
			continue
		}
		d, err := DigestFromHash(l.Digest)
		if err != nil {
			return err
		}
		if err := r.loadIndexBlob(ctx, d, l.Size); err != nil {
			return err
		}
	}
	return nil
}

func (r *Repo) loadIndexBlob(ctx context.Context, d Digest, size int64) error {
	r.idxMu.Lock()
	defer r.idxMu.Unlock()
	if r.idxLoaded[d] {
		return nil
	}
	sealed, err := ReadBlob(ctx, r.src, d, size)
	if err != nil {
		return fmt.Errorf("index blob: %w", err)
	}
	pt, err := r.keys.openMeta(sealed, []byte("dvpc v1 index"))
	if err != nil {
		return fmt.Errorf("index blob %s: %w", d, err)
	}
	packs, err := decodeIndexBlob(pt)
	if err != nil {
		return fmt.Errorf("index blob %s: %w", d, err)
	}
	r.idx.addBlob(d, packs)
	r.idxLoaded[d] = true
	return nil
}

// writeIndexBlob stores an index blob for the packs written or adopted in
// this run that hold chunks in used.
func (r *Repo) writeIndexBlob(ctx context.Context, used map[ChunkID]bool) error {
	packs := r.idx.unlistedPacks(used)
	if len(packs) == 0 {
		return nil
	}
	sealed := seal(r.keys.meta, nil, encodeIndexBlob(packs), []byte("dvpc v1 index"))
	desc, err := PutBlob(ctx, r.st, IndexType, sealed)
	if err != nil {
		return err
	}
	d, _ := DigestFromHash(desc.Digest)
	r.idx.setListed(d, packs)
	r.idxMu.Lock()
	r.idxLoaded[d] = true
	r.idxMu.Unlock()
	return nil
}
