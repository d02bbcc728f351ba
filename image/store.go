package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ErrNotFound means a blob or ref is not in the store.
var ErrNotFound = errors.New("not found")

// DigestError means a blob's bytes do not match its name.
type DigestError struct {
	Want     Digest
	Got      Digest
	WantSize int64
	GotSize  int64
}

func (e *DigestError) Error() string {
	if e.WantSize >= 0 && e.GotSize != e.WantSize {
		return fmt.Sprintf("blob %s is corrupt: %d bytes, want %d", e.Want, e.GotSize, e.WantSize)
	}
	return fmt.Sprintf("blob %s is corrupt: its content hashes to %s", e.Want, e.Got)
}

// Ref is a named manifest: one entry of index.json.
type Ref struct {
	Name string
	Desc v1.Descriptor
}

// Blob is an open blob that may be read at any offset. Range reads are not
// checked against the blob digest; sealed data authenticates itself.
type Blob interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

// Source is a store that can be read: a local layout, a medium, a mirror.
type Source interface {
	// Refs lists the named manifests.
	Refs(ctx context.Context) ([]Ref, error)
	// OpenBlob opens a blob for reading. It wraps ErrNotFound when absent.
	OpenBlob(ctx context.Context, d Digest) (Blob, error)
	// StatBlob returns a blob's size. It wraps ErrNotFound when absent.
	StatBlob(ctx context.Context, d Digest) (int64, error)
}

// BlobWriter receives one blob; Commit names it by its digest.
type BlobWriter interface {
	io.Writer
	// Commit makes the blob durable under its digest and returns it.
	Commit(ctx context.Context) (Digest, int64, error)
	// Abort drops what was written. It is a no-op after Commit.
	Abort()
}

// Store is a Source that can also be written.
type Store interface {
	Source
	// CreateBlob starts a new blob.
	CreateBlob(ctx context.Context) (BlobWriter, error)
	// UpdateRefs replaces the named manifests with what fn returns, atomically.
	UpdateRefs(ctx context.Context, fn func([]Ref) ([]Ref, error)) error
	// Lock takes the store's write lock until unlock is called.
	Lock(ctx context.Context) (unlock func(), err error)
}

// ReadBlob reads a whole blob and checks its digest (and size, if want ≥ 0).
// Use it only for small blobs: manifests, configs, indexes, keys. From a
// [FallbackSource], a copy that fails the check is read from the next place.
func ReadBlob(ctx context.Context, src Source, d Digest, wantSize int64) ([]byte, error) {
	if wantSize > maxMetaBlob {
		return nil, fmt.Errorf("blob %s: size %d exceeds the %d-byte limit of metadata blobs", d, wantSize, maxMetaBlob)
	}
	var buf []byte
	err := readFallback(ctx, src, d, func(b Blob) error {
		var err error
		buf, err = readWhole(b, d, wantSize)
		return err
	})
	return buf, err
}

func readWhole(b Blob, d Digest, wantSize int64) ([]byte, error) {
	if b.Size() > maxMetaBlob {
		return nil, fmt.Errorf("blob %s: size %d exceeds the %d-byte limit of metadata blobs", d, b.Size(), maxMetaBlob)
	}
	buf := make([]byte, b.Size())
	if _, err := b.ReadAt(buf, 0); err != nil && !(errors.Is(err, io.EOF) && len(buf) == 0) {
		return nil, fmt.Errorf("read blob %s: %w", d, err)
	}
	if err := checkDigest(d, wantSize, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// readFallback opens blob d and calls fn on it. When fn fails and src is a
// [FallbackSource], it calls fn again on the copy of the next place that
// holds d, until one passes; it returns the first failure when none does.
func readFallback(ctx context.Context, src Source, d Digest, fn func(Blob) error) error {
	b, err := src.OpenBlob(ctx, d)
	if err != nil {
		return err
	}
	first := fn(b)
	ferr := first
	for ferr != nil {
		fs, ok := src.(FallbackSource)
		if !ok || ctx.Err() != nil {
			break
		}
		nb, err := fs.OpenBlobAfter(ctx, b, ferr)
		if err != nil {
			break
		}
		b.Close()
		b = nb
		ferr = fn(b)
	}
	b.Close()
	if ferr != nil {
		return first
	}
	return nil
}

// maxMetaBlob bounds the blobs that are read whole into memory.
const maxMetaBlob = 256 << 20

func checkDigest(d Digest, wantSize int64, buf []byte) error {
	got := DigestOf(buf)
	if got != d || (wantSize >= 0 && int64(len(buf)) != wantSize) {
		return &DigestError{Want: d, Got: got, WantSize: wantSize, GotSize: int64(len(buf))}
	}
	return nil
}

// VerifyBlob streams a whole blob and checks its digest and size. From a
// [FallbackSource], it passes when any place holds the blob intact.
func VerifyBlob(ctx context.Context, src Source, d Digest, wantSize int64) error {
	return readFallback(ctx, src, d, func(b Blob) error {
		h := sha256.New()
		n, err := io.Copy(h, io.NewSectionReader(b, 0, b.Size()))
		if err != nil {
			return fmt.Errorf("read blob %s: %w", d, err)
		}
		var got Digest
		h.Sum(got[:0])
		if got != d || (wantSize >= 0 && n != wantSize) {
			return &DigestError{Want: d, Got: got, WantSize: wantSize, GotSize: n}
		}
		return nil
	})
}

// PutBlob stores b and returns its descriptor with the given media type.
func PutBlob(ctx context.Context, st Store, mediaType string, b []byte) (v1.Descriptor, error) {
	w, err := st.CreateBlob(ctx)
	if err != nil {
		return v1.Descriptor{}, err
	}
	if _, err := io.Copy(w, bytes.NewReader(b)); err != nil {
		w.Abort()
		return v1.Descriptor{}, err
	}
	d, n, err := w.Commit(ctx)
	if err != nil {
		return v1.Descriptor{}, err
	}
	return descriptor(mediaType, d, n), nil
}

func descriptor(mediaType string, d Digest, size int64) v1.Descriptor {
	return v1.Descriptor{MediaType: mediaTypeOf(mediaType), Digest: d.Hash(), Size: size}
}

// hashingWriter tracks the digest and length of what passes through it.
type hashingWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (hw *hashingWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	hw.h.Write(p[:n])
	hw.n += int64(n)
	return n, err
}
