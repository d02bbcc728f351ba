package delta

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/dvpc/dvpc/image"
)

// heldBlobs lists every blob the refs of dst name (the key, the snapshots
// and their signatures): the manifests with their config and layers. A
// manifest is read from dst, or from the mirrors when dst's copy is
// missing or damaged; one that neither has intact is left out, with the
// blobs only it names.
func heldBlobs(ctx context.Context, dst image.Source, fo *failover, refs []image.Ref) ([]wantBlob, error) {
	var out []wantBlob
	for _, r := range refs {
		blobs, _, _, err := readManifestBlobs(ctx, dst, r.Desc)
		if err != nil && fo != nil {
			blobs, _, _, err = readManifestBlobs(ctx, fo, r.Desc)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			continue
		}
		// The manifest's bytes are fetched again, so that the report
		// names where they came from.
		blobs[0].raw = nil
		out = append(out, blobs...)
	}
	return out, nil
}

// RepairOptions tune [Repair].
type RepairOptions struct {
	// Health and Speed rank the sources as [PullOptions] does.
	Health []int
	Speed  []float64
	// Progress, when set, counts the blobs fetched and their bytes.
	Progress *image.Progress
}

// RepairedBlob is one blob [Repair] put back, and where it came from.
type RepairedBlob struct {
	Digest image.Digest
	Size   int64
	Source string
}

// UnrepairedBlob is one blob [Repair] could not put back, and why.
type UnrepairedBlob struct {
	Digest image.Digest
	Err    error
}

func (u UnrepairedBlob) Error() string { return fmt.Sprintf("blob %s: %v", u.Digest, u.Err) }

func (u UnrepairedBlob) Unwrap() error { return u.Err }

// RepairReport says what [Repair] put back and what it could not.
type RepairReport struct {
	Repaired   []RepairedBlob
	Unrepaired []UnrepairedBlob
	// Failures lists what each source could not serve, including what
	// another source made up for.
	Failures []MirrorFailure
}

// maxCheckedMeta is the size up to which Repair reads every blob the
// store's refs name to check it: metadata, which verify does not read.
const maxCheckedMeta = 1 << 20

// ErrIntactCopy means a blob that was reported damaged matches its digest:
// the damage is in what was written, and every copy holds the same bytes.
var ErrIntactCopy = errors.New("the store's copy matches its digest; the damage was there when it was written, and no copy can mend it")

// Repair fetches again each blob of bad (found damaged or missing in dst,
// by verify) and every other blob dst's refs name that dst lacks, from
// the first source that serves it intact, as a pull does. Each blob is
// checked against its digest before it takes the place of the damaged
// copy, in one rename: the damaged copy is never removed first. A blob
// that no source serves intact is reported, not fatal; an error means dst
// itself could not be written.
func Repair(ctx context.Context, sources []Endpoint, dst image.Store, bad []image.Digest, opts RepairOptions) (rep RepairReport, err error) {
	unlock, err := dst.Lock(ctx)
	if err != nil {
		return rep, err
	}
	defer unlock()
	refs, err := dst.Refs(ctx)
	if err != nil {
		return rep, err
	}
	fo := &failover{}
	for i, src := range sources {
		st := newMirrorState(i, src, MirrorOptions{Health: opts.Health, Speed: opts.Speed})
		st.use.Reachable = true
		fo.mirrors = append(fo.mirrors, st)
	}
	defer func() { rep.Failures = fo.failures }()

	named, err := heldBlobs(ctx, dst, fo, refs)
	if err != nil {
		return rep, err
	}
	isBad := map[image.Digest]bool{}
	for _, d := range bad {
		isBad[d] = true
	}
	// What to fetch: the bad blobs, the named ones dst does not hold at
	// their size (a damaged manifest hid them from verify), and the small
	// ones whose bytes do not match: signatures, configs and manifests,
	// whose damage verify reports as the snapshot's.
	var fetch, meta, large []wantBlob
	seen := map[image.Digest]bool{}
	for _, b := range named {
		if seen[b.digest] {
			continue
		}
		seen[b.digest] = true
		switch {
		case isBad[b.digest]:
			fetch = append(fetch, b)
		case b.size <= maxCheckedMeta:
			meta = append(meta, b)
		default:
			large = append(large, b)
		}
	}
	for _, c := range []struct {
		blobs []wantBlob
		opts  LackOptions
	}{{meta, LackOptions{Verify: true}}, {large, LackOptions{}}} {
		lack, err := lacksWanted(ctx, dst, c.blobs, c.opts)
		if err != nil {
			return rep, err
		}
		fetch = append(fetch, lack...)
	}
	for _, d := range bad {
		if !seen[d] {
			seen[d] = true
			rep.Unrepaired = append(rep.Unrepaired, UnrepairedBlob{Digest: d,
				Err: fmt.Errorf("no manifest that the store or a source holds intact names it, so its size is unknown: %w", image.ErrNotFound)})
		}
	}
	if len(fetch) > 0 && len(sources) == 0 {
		for _, b := range fetch {
			rep.Unrepaired = append(rep.Unrepaired, UnrepairedBlob{Digest: b.digest, Err: errors.New("no mirror or medium to fetch it from")})
		}
		return rep, nil
	}

	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	for _, b := range fetch {
		g.Go(func() error {
			if lack, err := lacksWanted(gctx, dst, []wantBlob{b}, LackOptions{Verify: true}); err != nil {
				return err
			} else if len(lack) == 0 {
				mu.Lock()
				defer mu.Unlock()
				rep.Unrepaired = append(rep.Unrepaired, UnrepairedBlob{Digest: b.digest, Err: ErrIntactCopy})
				return nil
			}
			n, from, err := copyBlob(gctx, fo, dst, b)
			if gctx.Err() != nil {
				return gctx.Err()
			}
			if err != nil && !isSourceError(err) {
				return err // dst failed
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				rep.Unrepaired = append(rep.Unrepaired, UnrepairedBlob{Digest: b.digest, Err: err})
				return nil
			}
			rep.Repaired = append(rep.Repaired, RepairedBlob{Digest: b.digest, Size: n, Source: from})
			if p := opts.Progress; p != nil {
				p.Files.Add(1)
				p.Bytes.Add(n)
				p.BytesNew.Add(n)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return rep, err
	}
	byDigest := func(a, b image.Digest) int { return slices.Compare(a[:], b[:]) }
	slices.SortFunc(rep.Repaired, func(a, b RepairedBlob) int { return byDigest(a.Digest, b.Digest) })
	slices.SortFunc(rep.Unrepaired, func(a, b UnrepairedBlob) int { return byDigest(a.Digest, b.Digest) })
	return rep, nil
}

// isSourceError reports whether err is copyBlob's "no mirror serves it
// intact", as opposed to a failure of the store written to.
func isSourceError(err error) bool {
	var nm *noSourceError
	return errors.As(err, &nm)
}
