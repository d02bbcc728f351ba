package media

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"

	"github.com/dvpc/dvpc/image"
)

// Reading a damaged medium.
//
// An image file or a device may be cut short: a burn, copy or download that
// stopped. dvpc then reads what lies before the cut. Files, directories and
// file system structures past it give a [*CutError] (wrapping
// [ErrDamaged]); [Medium.Damage] lists them; and a blob of the store that is
// cut off reads as an [*image.DigestError] naming it, so that everything
// that does not need it still works. Media lay out the store's index, keys
// and manifests before the packs ([Placed]), so a cut inside the packs keeps
// every snapshot listed and the older ones restorable.

// ErrDamaged means a medium is damaged or cut short: part of what it lists
// cannot be read.
var ErrDamaged = errors.New("the medium is damaged")

// CutError means that a file, a directory or a file system structure lies
// in part or whole past the end of an image or device that was cut short.
type CutError struct {
	What string // a path on the medium, or a structure ("partition 2")
	Size int64  // its bytes
	Have int64  // how many of them are on the medium
	// End is where the medium ends and Want where it should end, in bytes.
	End, Want int64
}

func (e *CutError) Error() string {
	return fmt.Sprintf("%s is cut off: %d of its %d bytes are there (the medium is cut short at %s of %s)",
		e.What, max(e.Have, 0), e.Size, HumanBytes(e.End), HumanBytes(e.Want))
}

func (e *CutError) Unwrap() error { return ErrDamaged }

// cutAt returns the CutError of what lies at [off, off+size) on a medium
// that ends at end but should end at want, or nil when it is all there.
func cutAt(what string, off, size, end, want int64) error {
	if off+size <= end {
		return nil
	}
	return &CutError{What: what, Size: size, Have: end - off, End: end, Want: want}
}

// Damage is what [Medium.Damage] finds.
type Damage struct {
	// End and Want are the medium's size and the size it should have
	// (equal when it is not cut short).
	End, Want int64
	// Files are the paths on the medium of the files and directories that
	// cannot be read, with why.
	Files []DamagedFile
}

// DamagedFile is one file or directory that cannot be read.
type DamagedFile struct {
	Path string
	Err  error // a [*CutError] when it lies past the end of a medium cut short
}

// Cut reports whether the medium is cut short.
func (d *Damage) Cut() bool { return d.End < d.Want }

// Damage walks the medium's files and lists those that cannot be read
// because they lie past its end. It reads no file data: a medium whose
// bytes are unreadable in the middle needs `verify --read-data`.
func (m *Medium) Damage(ctx context.Context) (*Damage, error) {
	d := &Damage{End: m.end, Want: m.want}
	if m.fsys == nil {
		return d, nil
	}
	bad := func(p string, err error) {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		d.Files = append(d.Files, DamagedFile{Path: p, Err: err})
	}
	err := fs.WalkDir(m.fsys, ".", func(p string, de fs.DirEntry, err error) error {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		if err != nil {
			if !errors.Is(err, ErrDamaged) {
				return err
			}
			bad(p, err)
			if de != nil && de.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if de.IsDir() {
			return nil
		}
		f, err := m.fsys.Open(p)
		if err != nil {
			bad(p, err)
			return nil
		}
		return f.Close()
	})
	if err != nil {
		return nil, fmt.Errorf("check %s: %w", m.Path, err)
	}
	slices.SortFunc(d.Files, func(a, b DamagedFile) int {
		switch {
		case a.Path < b.Path:
			return -1
		case a.Path > b.Path:
			return 1
		}
		return 0
	})
	return d, nil
}

// salvageSource is a medium's store: a blob cut off reads as an
// [*image.DigestError] naming it, which [image] and the CLI treat as a
// damaged blob.
type salvageSource struct {
	*image.FSSource
}

func (s salvageSource) OpenBlob(ctx context.Context, d image.Digest) (image.Blob, error) {
	b, err := s.FSSource.OpenBlob(ctx, d)
	return b, cutBlob(d, err)
}

func (s salvageSource) StatBlob(ctx context.Context, d image.Digest) (int64, error) {
	n, err := s.FSSource.StatBlob(ctx, d)
	return n, cutBlob(d, err)
}

func cutBlob(d image.Digest, err error) error {
	var ce *CutError
	if !errors.As(err, &ce) {
		return err
	}
	return &cutBlobError{de: &image.DigestError{Want: d, WantSize: ce.Size, GotSize: max(ce.Have, 0)}, cut: ce}
}

// cutBlobError is a blob cut off: both an [*image.DigestError] and a
// [*CutError].
type cutBlobError struct {
	de  *image.DigestError
	cut *CutError
}

func (e *cutBlobError) Error() string {
	return fmt.Sprintf("blob %s is cut off: %d of its %d bytes are on the medium, which is cut short at %s of %s",
		e.de.Want, e.de.GotSize, e.de.WantSize, HumanBytes(e.cut.End), HumanBytes(e.cut.Want))
}

func (e *cutBlobError) Unwrap() []error { return []error{e.de, e.cut} }
