package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// A snapshot that stops before it is committed (interrupted, or failed)
// leaves the packs it finished in the store, and finishes the ones it was
// filling (see packer.checkpoint). No manifest names them, so no index
// blob lists them either. The next snapshot adopts them: it reads the
// sealed header of every stored pack that no loaded index blob lists, and
// the chunks of those that open with this store's keys join the index, so
// they dedup instead of being stored again. Its index blob then lists the
// adopted packs that it uses. Blobs that are not packs, packs of another
// store, and damaged headers are passed over; only the trailer and the
// header of each are read.

// blobLister is a store that can list the blobs it holds.
type blobLister interface {
	listBlobs(ctx context.Context) ([]BlobRef, error)
}

var _ blobLister = (*Layout)(nil)

// listBlobs lists the files of blobs/sha256 that are named like blobs.
func (l *Layout) listBlobs(ctx context.Context) ([]BlobRef, error) {
	dir := filepath.Join(l.root, "blobs", "sha256")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list blobs: %w", err)
	}
	out := make([]BlobRef, 0, len(ents))
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		d, err := ParseDigest("sha256:" + e.Name())
		if err != nil || d.Hex() != e.Name() || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, BlobRef{Digest: d, Size: fi.Size()})
	}
	return out, nil
}

// Adopted counts the packs a snapshot found in the store from runs that
// stopped before they were committed, and took in.
type Adopted struct {
	Packs  int
	Bytes  int64
	Chunks int
}

// adoptPacks reads the headers of the stored blobs that none of snaps
// names and that are no pack the index knows, and adopts the packs of this
// store among them. The caller holds the store's lock and has loaded the
// index blobs of snaps.
func (r *Repo) adoptPacks(ctx context.Context, snaps []*Snapshot) (Adopted, error) {
	var ad Adopted
	bl, ok := r.st.(blobLister)
	if !ok {
		return ad, nil
	}
	skip := map[Digest]bool{}
	for _, s := range snaps {
		skip[s.Manifest] = true
		for _, l := range s.Layers {
			if d, err := DigestFromHash(l.Digest); err == nil {
				skip[d] = true
			}
		}
	}
	blobs, err := bl.listBlobs(ctx)
	if err != nil {
		return ad, fmt.Errorf("look for the packs of an interrupted snapshot: %w", err)
	}
	for _, b := range blobs {
		if err := ctx.Err(); err != nil {
			return ad, err
		}
		if skip[b.Digest] || b.Size < packTrailerLen+sealOverhead || r.idx.hasPack(b.Digest) {
			continue
		}
		entries, err := r.packHeader(ctx, b.Digest, b.Size)
		if err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return ad, err
			}
			continue // not a pack of this store, or damaged: left alone
		}
		ad.Packs++
		ad.Bytes += b.Size
		ad.Chunks += r.idx.adoptPack(b.Digest, b.Size, entries)
	}
	return ad, nil
}

func (r *Repo) packHeader(ctx context.Context, d Digest, size int64) ([]packEntry, error) {
	blob, err := r.src.OpenBlob(ctx, d)
	if err != nil {
		return nil, err
	}
	defer blob.Close()
	if blob.Size() != size {
		return nil, fmt.Errorf("pack %s changed size: %w", d, ErrFormat)
	}
	return r.keys.ParsePackHeader(blob, size)
}

// StoppedError is a snapshot that stopped before it was committed. The
// packs it wrote stay in the store and the next snapshot reuses them.
type StoppedError struct {
	Packs int   // packs committed by the stopped run
	Bytes int64 // their size
	Err   error // why it stopped
}

func (e *StoppedError) Error() string {
	if e.Packs == 0 {
		return e.Err.Error()
	}
	return fmt.Sprintf("%v (%d packs of %d bytes already written are kept; the next snapshot reuses them)", e.Err, e.Packs, e.Bytes)
}

func (e *StoppedError) Unwrap() error { return e.Err }
