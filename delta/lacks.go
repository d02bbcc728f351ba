package delta

import (
	"context"
	"errors"

	"golang.org/x/sync/errgroup"

	"github.com/dvpc/dvpc/image"
)

// LackOptions say how [Lacks] checks that a place holds a blob.
type LackOptions struct {
	// Verify also reads each blob the place holds at the right size and
	// checks its bytes against its digest, so that a damaged blob counts
	// as lacking and is fetched again: for a store a pull writes into.
	// Without it, the place's answer for the blob's size is taken (a HEAD
	// request to a registry).
	Verify bool
	// Strict fails on a check that neither finds the blob nor finds it
	// absent (refused credentials, a network failure), instead of counting
	// the blob as lacking. Absent is [image.ErrNotFound], another size, or
	// a registry's server error (an upload killed midway can leave a blob
	// that answers 500 until it is sent again).
	Strict bool
}

// Lacks returns the blobs of want that dst does not hold, in the order of
// want and each once: what a pull, a push, a login or `mirror status`
// would have to send. A blob of unknown size (Size < 0) is held at any
// size. Up to [concurrency] blobs are checked at once. The error is ctx's,
// or with [LackOptions.Strict] the first check that failed.
func Lacks(ctx context.Context, dst image.Source, want []image.BlobRef, opts LackOptions) ([]image.BlobRef, error) {
	var uniq []image.BlobRef
	seen := map[image.Digest]bool{}
	for _, b := range want {
		if !seen[b.Digest] {
			seen[b.Digest] = true
			uniq = append(uniq, b)
		}
	}
	lacking := make([]bool, len(uniq))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	for i, b := range uniq {
		g.Go(func() error {
			held, err := holds(gctx, dst, b, opts)
			if err != nil {
				return err
			}
			lacking[i] = !held
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []image.BlobRef
	for i, b := range uniq {
		if lacking[i] {
			out = append(out, b)
		}
	}
	return out, nil
}

// holds reports whether dst holds b as opts asks.
func holds(ctx context.Context, dst image.Source, b image.BlobRef, opts LackOptions) (bool, error) {
	n, err := dst.StatBlob(ctx, b.Digest)
	switch {
	case ctx.Err() != nil:
		return false, ctx.Err()
	case err != nil:
		if opts.Strict && !absent(err) {
			return false, err
		}
		return false, nil
	case b.Size >= 0 && n != b.Size:
		return false, nil
	case !opts.Verify:
		return true, nil
	}
	size := b.Size
	if size < 0 {
		size = n
	}
	if err := image.VerifyBlob(ctx, dst, b.Digest, size); err != nil {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		return false, nil
	}
	return true, nil
}

// absent reports whether a failed check says the blob is not there (or not
// there whole) rather than that the place could not be asked.
func absent(err error) bool {
	var he *HTTPError
	return errors.Is(err, image.ErrNotFound) || errors.As(err, &he) && he.Status >= 500
}

// lacksWanted is [Lacks] over the blobs a pull wants, keeping their bytes
// at hand.
func lacksWanted(ctx context.Context, dst image.Source, want []wantBlob, opts LackOptions) ([]wantBlob, error) {
	refs := make([]image.BlobRef, len(want))
	byDigest := make(map[image.Digest]wantBlob, len(want))
	for i, b := range want {
		refs[i] = image.BlobRef{Digest: b.digest, Size: b.size}
		if _, ok := byDigest[b.digest]; !ok {
			byDigest[b.digest] = b
		}
	}
	lack, err := Lacks(ctx, dst, refs, opts)
	if err != nil {
		return nil, err
	}
	out := make([]wantBlob, len(lack))
	for i, b := range lack {
		out[i] = byDigest[b.Digest]
	}
	return out, nil
}
