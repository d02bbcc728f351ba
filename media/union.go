package media

import (
	"context"
	"errors"
	"fmt"

	"github.com/dvpc/dvpc/image"
)

// Union reads a store spread over several media (the discs of a set): refs
// from the first, blobs from whichever holds them.
type Union struct {
	parts   []image.Source
	listing *SetListing
	have    map[int]bool // disc numbers attached
}

var _ image.Source = (*Union)(nil)

// NewUnion joins the stores of several media. listing, when not nil, names
// the disc of every pack so a missing disc can be named.
func NewUnion(parts []image.Source, listing *SetListing, discs []int) *Union {
	have := map[int]bool{}
	for _, d := range discs {
		have[d] = true
	}
	return &Union{parts: parts, listing: listing, have: have}
}

// Missing lists the discs of the set that are not attached.
func (u *Union) Missing() []int {
	if u.listing == nil {
		return nil
	}
	var out []int
	for i := 1; i <= u.listing.Discs; i++ {
		if !u.have[i] {
			out = append(out, i)
		}
	}
	return out
}

// Refs implements [image.Source].
func (u *Union) Refs(ctx context.Context) ([]image.Ref, error) { return u.parts[0].Refs(ctx) }

// OpenBlob implements [image.Source].
func (u *Union) OpenBlob(ctx context.Context, d image.Digest) (image.Blob, error) {
	for _, p := range u.parts {
		b, err := p.OpenBlob(ctx, d)
		if err == nil {
			return b, nil
		}
		if !errors.Is(err, image.ErrNotFound) {
			return nil, err
		}
	}
	return nil, u.notFound(d)
}

// StatBlob implements [image.Source].
func (u *Union) StatBlob(ctx context.Context, d image.Digest) (int64, error) {
	for _, p := range u.parts {
		n, err := p.StatBlob(ctx, d)
		if err == nil {
			return n, nil
		}
		if !errors.Is(err, image.ErrNotFound) {
			return 0, err
		}
	}
	return 0, u.notFound(d)
}

// MissingDiscError names the disc that holds a blob that was asked for.
type MissingDiscError struct {
	Blob  image.Digest
	Disc  int
	Discs int
	Label string
}

func (e *MissingDiscError) Error() string {
	return fmt.Sprintf("blob %s is on disc %d of %d (%s), which is not attached; name every disc of the set", e.Blob, e.Disc, e.Discs, e.Label)
}

func (e *MissingDiscError) Unwrap() error { return image.ErrNotFound }

func (u *Union) notFound(d image.Digest) error {
	if u.listing != nil {
		if n, ok := u.listing.Packs[d.Hex()]; ok {
			return &MissingDiscError{Blob: d, Disc: n, Discs: u.listing.Discs, Label: DiscLabel(u.listing.Label, n)}
		}
	}
	return fmt.Errorf("blob %s: %w", d, image.ErrNotFound)
}
