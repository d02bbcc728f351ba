package image

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"
)

// Problem is one thing verify found wrong.
type Problem struct {
	Blob      Digest   // the blob at fault; zero when none applies
	Snapshots []string // IDs or tags of the snapshots it affects
	Err       error
}

func (p Problem) Error() string {
	s := p.Err.Error()
	if !p.Blob.IsZero() {
		s = fmt.Sprintf("blob %s: %s", p.Blob, s)
	}
	if len(p.Snapshots) > 0 {
		s += fmt.Sprintf(" (affects snapshots %v)", p.Snapshots)
	}
	return s
}

// VerifyOptions tune [Repo.Verify].
type VerifyOptions struct {
	// ReadData reads every blob in full: digests, pack headers and every
	// chunk's seal and ID.
	ReadData bool
	Progress *Progress
}

// VerifyReport is what verify checked and found.
type VerifyReport struct {
	Snapshots int
	Trees     int
	Blobs     int
	BytesRead int64
	Problems  []Problem
}

// Verify checks every snapshot signature, manifest, index and tree, and with
// ReadData every blob's bytes. It never modifies the store.
func (r *Repo) Verify(ctx context.Context, opts VerifyOptions) (*VerifyReport, error) {
	rep := &VerifyReport{}
	snaps, probs, err := r.Snapshots(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range probs {
		rep.Problems = append(rep.Problems, Problem{Blob: p.Manifest, Snapshots: []string{p.Ref}, Err: p.Err})
	}
	rep.Snapshots = len(snaps)
	users := map[Digest][]string{}
	sizes := map[Digest]int64{}
	kinds := map[Digest]string{}
	for _, s := range snaps {
		for _, l := range s.Layers {
			d, err := DigestFromHash(l.Digest)
			if err != nil {
				rep.Problems = append(rep.Problems, Problem{Snapshots: []string{s.ID}, Err: err})
				continue
			}
			users[d] = append(users[d], s.ID)
			sizes[d] = l.Size
			kinds[d] = string(l.MediaType)
		}
	}
	blobs := make([]Digest, 0, len(users))
	for d := range users {
		blobs = append(blobs, d)
	}
	slices.SortFunc(blobs, func(a, b Digest) int { return compareDigest(a, b) })
	rep.Blobs = len(blobs)
	bad := map[Digest]bool{}
	for _, d := range blobs {
		n, err := r.src.StatBlob(ctx, d)
		if err == nil && n != sizes[d] {
			err = fmt.Errorf("size %d, want %d", n, sizes[d])
		}
		if err != nil {
			bad[d] = true
			rep.Problems = append(rep.Problems, Problem{Blob: d, Snapshots: users[d], Err: err})
		}
	}
	// Indexes and trees.
	seen := map[ChunkID]bool{}
	for _, s := range snaps {
		if err := r.LoadIndex(ctx, s); err != nil {
			rep.Problems = append(rep.Problems, Problem{Blob: blobOf(err), Snapshots: []string{s.ID}, Err: err})
			continue
		}
		inSnap := map[Digest]bool{}
		for _, l := range s.Layers {
			d, _ := DigestFromHash(l.Digest)
			inSnap[d] = true
		}
		check := func(id ChunkID, what string) error {
			loc, ok := r.idx.lookup(id)
			if !ok {
				return fmt.Errorf("%s chunk %s is in no index", what, id.String()[:16])
			}
			if !inSnap[loc.pack] {
				return fmt.Errorf("%s chunk %s is in pack %s, which the manifest does not list", what, id.String()[:16], loc.pack.Short())
			}
			return nil
		}
		var walk func(id ChunkID, rel string)
		walk = func(id ChunkID, rel string) {
			if seen[id] {
				return
			}
			if err := check(id, "tree"); err != nil {
				rep.Problems = append(rep.Problems, Problem{Snapshots: []string{s.ID}, Err: fmt.Errorf("%s: %w", rel, err)})
				return
			}
			t, err := r.LoadTree(ctx, id)
			if err != nil {
				rep.Problems = append(rep.Problems, Problem{Blob: blobOf(err), Snapshots: []string{s.ID}, Err: fmt.Errorf("/%s: %w", rel, err)})
				return
			}
			seen[id] = true
			rep.Trees++
			for _, n := range t.Nodes {
				crel := joinRel(rel, string(n.Name))
				for _, p := range n.Parts {
					if p.Hole == 0 {
						if err := check(p.Chunk, "data"); err != nil {
							rep.Problems = append(rep.Problems, Problem{Snapshots: []string{s.ID}, Err: fmt.Errorf("%s: %w", crel, err)})
							break
						}
					}
				}
				if n.Type == TypeDir {
					walk(n.Subtree, crel)
				}
			}
		}
		walk(s.Config.Root, "")
	}
	if opts.ReadData {
		var mu sync.Mutex
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(2)
		for _, d := range blobs {
			if bad[d] {
				continue
			}
			g.Go(func() error {
				n, err := r.readBlobFully(gctx, d, sizes[d], kinds[d])
				mu.Lock()
				defer mu.Unlock()
				rep.BytesRead += n
				if err != nil {
					if gctx.Err() != nil {
						return gctx.Err()
					}
					rep.Problems = append(rep.Problems, Problem{Blob: d, Snapshots: users[d], Err: err})
				}
				if opts.Progress != nil {
					opts.Progress.Files.Add(1)
					opts.Progress.Bytes.Add(n)
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

func joinRel(rel, name string) string {
	if rel == "" {
		return name
	}
	return rel + "/" + name
}

func compareDigest(a, b Digest) int {
	for i := range a {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return 0
}

// blobOf extracts the blob an error names, if any.
func blobOf(err error) Digest {
	var ce *ChunkError
	if errors.As(err, &ce) {
		return ce.Pack
	}
	var de *DigestError
	if errors.As(err, &de) {
		return de.Want
	}
	return Digest{}
}

// readBlobFully checks a blob's digest and, for packs, every chunk in it.
func (r *Repo) readBlobFully(ctx context.Context, d Digest, size int64, kind string) (int64, error) {
	if err := VerifyBlob(ctx, r.src, d, size); err != nil {
		return 0, err
	}
	if kind != PackType {
		return size, nil
	}
	b, err := r.src.OpenBlob(ctx, d)
	if err != nil {
		return size, err
	}
	defer b.Close()
	entries, err := r.keys.ParsePackHeader(b, b.Size())
	if err != nil {
		return size, err
	}
	var buf []byte
	for _, en := range entries {
		sealed := make([]byte, en.Length)
		if _, err := b.ReadAt(sealed, int64(en.Offset)); err != nil {
			return size, err
		}
		if _, err := r.openChunk(en.Kind, en.ID, sealed, int64(en.Raw), buf); err != nil {
			return size, &ChunkError{ID: en.ID, Pack: d, Err: err}
		}
	}
	return size, nil
}
