package media

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"os"
	"path"

	"github.com/dvpc/dvpc/image"
)

// StoreDir is where a medium keeps its store.
const StoreDir = "store"

// StoreEntries lists the files of an OCI layout under dir holding the given
// refs and every blob they need, read from src. Every blob is checked
// against its digest as it is copied.
func StoreEntries(ctx context.Context, src image.Source, refs []image.Ref, dir string) ([]Entry, error) {
	blobs, err := image.BlobsOf(ctx, src, refs)
	if err != nil {
		return nil, err
	}
	idx, err := image.IndexJSON(refs)
	if err != nil {
		return nil, err
	}
	es := []Entry{
		bytesEntry(path.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`)),
		bytesEntry(path.Join(dir, "index.json"), idx),
	}
	for _, b := range blobs {
		es = append(es, blobEntry(ctx, src, dir, b))
	}
	return es, nil
}

func bytesEntry(p string, b []byte) Entry {
	return Entry{Path: p, Size: int64(len(b)), Open: func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}}
}

func blobEntry(ctx context.Context, src image.Source, dir string, b image.BlobRef) Entry {
	return Entry{
		Path:      path.Join(dir, "blobs", "sha256", b.Digest.Hex()),
		Size:      b.Size,
		MediaType: b.MediaType,
		Open: func() (io.ReadCloser, error) {
			f, err := src.OpenBlob(ctx, b.Digest)
			if err != nil {
				return nil, err
			}
			if f.Size() != b.Size {
				f.Close()
				return nil, &image.DigestError{Want: b.Digest, WantSize: b.Size, GotSize: f.Size()}
			}
			return &verifyingReader{r: io.NewSectionReader(f, 0, b.Size), c: f, h: sha256.New(), want: b}, nil
		},
	}
}

// verifyingReader returns a DigestError at EOF when the bytes read do not
// match the blob's digest.
type verifyingReader struct {
	r    io.Reader
	c    io.Closer
	h    hash.Hash
	n    int64
	want image.BlobRef
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if err == io.EOF {
		var got image.Digest
		v.h.Sum(got[:0])
		if got != v.want.Digest || v.n != v.want.Size {
			return n, &image.DigestError{Want: v.want.Digest, Got: got, WantSize: v.want.Size, GotSize: v.n}
		}
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.c.Close() }

// FileEntry is a file from the local disk, such as a dvpc client binary.
func FileEntry(p, local string) (Entry, error) {
	fi, err := os.Stat(local)
	if err != nil {
		return Entry{}, err
	}
	if !fi.Mode().IsRegular() {
		return Entry{}, fmt.Errorf("%s is not a regular file", local)
	}
	return Entry{Path: p, Size: fi.Size(), Open: func() (io.ReadCloser, error) { return os.Open(local) }}, nil
}
