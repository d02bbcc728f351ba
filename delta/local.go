package delta

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dvpc/dvpc/image"
)

// Endpoint is one mirror: a registry repository, or a local OCI layout
// (a directory on another disk, a mounted USB key).
type Endpoint interface {
	image.Source
	String() string
	Tags(ctx context.Context) ([]string, error)
}

// WritableEndpoint is a mirror that dvpc writes itself, blob by blob: a
// local layout, or the store on a USB key written in place.
type WritableEndpoint interface {
	Endpoint
	image.Store
}

// roomChecker is a store that can tell, before anything is written,
// whether blobs fit (a USB key).
type roomChecker interface {
	CheckRoom(ctx context.Context, blobs []image.BlobRef) error
}

var (
	_ Endpoint         = (*Registry)(nil)
	_ WritableEndpoint = (*LocalMirror)(nil)
)

// LocalPrefix marks a mirror URL that names a local directory.
const LocalPrefix = "oci:"

// LocalMirror is a mirror in a local OCI layout.
type LocalMirror struct {
	*image.Layout
	path string
}

// OpenLocal opens the layout at path, creating an empty one if the
// directory does not exist or is empty.
func OpenLocal(path string) (*LocalMirror, error) {
	if path == "" {
		return nil, errors.New("oci: mirror needs a directory, such as oci:/media/key/dvpc")
	}
	var lay *image.Layout
	var err error
	if _, serr := os.Stat(filepath.Join(path, "oci-layout")); serr == nil {
		lay, err = image.OpenLayout(path)
	} else {
		lay, err = image.InitLayout(path)
	}
	if err != nil {
		return nil, fmt.Errorf("mirror %s%s: %w", LocalPrefix, path, err)
	}
	return &LocalMirror{Layout: lay, path: path}, nil
}

func (l *LocalMirror) String() string { return LocalPrefix + l.path }

// Tags lists the layout's tags.
func (l *LocalMirror) Tags(ctx context.Context) ([]string, error) {
	refs, err := l.Refs(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range refs {
		out = append(out, r.Name)
	}
	return out, nil
}

// OpenEndpoint opens a mirror URL: "oci:DIR" or a registry repository.
func OpenEndpoint(url string, opts RegistryOptions) (Endpoint, error) {
	if p, ok := strings.CutPrefix(url, LocalPrefix); ok {
		return OpenLocal(p)
	}
	return NewRegistry(url, opts)
}

// CopyTo sends a writable mirror what it lacks, in the order a registry
// gets it: blobs first (each checked against its digest), then the key, the
// signatures and the snapshots, named in one atomic update. A mirror that
// can tell beforehand that the blobs do not fit gets nothing.
func CopyTo(ctx context.Context, src image.Source, dst WritableEndpoint, opts PushOptions) (PushReport, error) {
	var rep PushReport
	unlock, err := dst.Lock(ctx)
	if err != nil {
		return rep, err
	}
	defer unlock()
	refs, err := src.Refs(ctx)
	if err != nil {
		return rep, err
	}
	main, sigs, refused, err := pushRefs(ctx, src, refs)
	if err != nil {
		return rep, err
	}
	rep.Refused = len(refused)
	send := append(append([]image.Ref{}, main...), sigs...)
	blobs, err := image.BlobsOf(ctx, src, send)
	if err != nil {
		return rep, err
	}
	lack, err := Lacks(ctx, dst, blobs, LackOptions{})
	if err != nil {
		return rep, err
	}
	if rc, ok := dst.(roomChecker); ok {
		if err := rc.CheckRoom(ctx, lack); err != nil {
			return rep, err
		}
	}
	lacking := map[image.Digest]bool{}
	for _, b := range lack {
		lacking[b.Digest] = true
	}
	for _, b := range blobs {
		res := blobSkipped
		if lacking[b.Digest] {
			if err := copyOne(ctx, src, dst, b); err != nil {
				return rep, err
			}
			res = blobUploaded
		}
		rep.count(res, b.Size, opts.Progress)
	}
	err = dst.UpdateRefs(ctx, func(have []image.Ref) ([]image.Ref, error) {
		for _, r := range append(append([]image.Ref{}, sigs...), main...) {
			have = setRef(have, r)
			rep.Manifests++
		}
		return have, nil
	})
	return rep, err
}

// copyOne copies one blob into the mirror through its own temporary area,
// no more than its declared size, and commits it only when it matches.
func copyOne(ctx context.Context, src image.Source, dst WritableEndpoint, b image.BlobRef) error {
	_, err := fetchInto(ctx, src, dst, b.Digest, b.Size)
	var se *storeError
	if errors.As(err, &se) {
		return fmt.Errorf("mirror %s: %w", dst, se.err)
	}
	return err
}
