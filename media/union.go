package media

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/dvpc/dvpc/image"
)

// Union reads a store spread over several media (the discs of a set): refs
// from the first, blobs from whichever holds them. It is an
// [image.StackSource] of the discs, with nothing written, and names the
// disc that holds a blob none of the attached discs has.
type Union struct {
	*image.StackSource
	listing *SetListing
	have    map[int]bool // disc numbers attached
}

var _ image.FallbackSource = (*Union)(nil)

// NewUnion joins the stores of several media. listing, when not nil, names
// the disc of every pack so a missing disc can be named. discs, when it
// gives one number per part, names the parts in the union's report
// ("disc 2").
func NewUnion(parts []image.Source, listing *SetListing, discs []int) *Union {
	have := map[int]bool{}
	for _, d := range discs {
		have[d] = true
	}
	named := make([]image.Source, len(parts))
	for i, p := range parts {
		named[i] = p
		if len(discs) == len(parts) {
			named[i] = image.Named("disc "+strconv.Itoa(discs[i]), p)
		}
	}
	return &Union{StackSource: image.NewStackSource(named...), listing: listing, have: have}
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

// OpenBlob implements [image.Source]. A blob on no attached disc is a
// [*MissingDiscError] when the set listing names its disc.
func (u *Union) OpenBlob(ctx context.Context, d image.Digest) (image.Blob, error) {
	b, err := u.StackSource.OpenBlob(ctx, d)
	return b, u.notFound(d, err)
}

// StatBlob implements [image.Source].
func (u *Union) StatBlob(ctx context.Context, d image.Digest) (int64, error) {
	n, err := u.StackSource.StatBlob(ctx, d)
	return n, u.notFound(d, err)
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

// notFound names the missing disc when err says no attached disc holds d.
func (u *Union) notFound(d image.Digest, err error) error {
	if err == nil || !errors.Is(err, image.ErrNotFound) {
		return err
	}
	if u.listing != nil {
		if n, ok := u.listing.Packs[d.Hex()]; ok {
			return &MissingDiscError{Blob: d, Disc: n, Discs: u.listing.Discs, Label: DiscLabel(u.listing.Label, n)}
		}
	}
	return err
}
