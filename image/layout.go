package image

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Layout is a store in a local OCI image layout directory. It reads
// through [FSSource] and writes blobs and index.json atomically.
type Layout struct {
	root string
	*FSSource
}

var _ Store = (*Layout)(nil)

const (
	refNameAnnotation = "org.opencontainers.image.ref.name"
	tmpDir            = ".dvpc-tmp"
)

// InitLayout creates an empty OCI layout at dir, which must not exist or be
// empty.
func InitLayout(dir string) (*Layout, error) {
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("create store: %s is not empty; choose another --store or remove it", dir)
	}
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o700); err != nil {
		return nil, fmt.Errorf("create store: %w", err)
	}
	l := newLayout(dir)
	if err := writeFileAtomic(dir, "oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return nil, err
	}
	if err := l.writeIndex(nil); err != nil {
		return nil, err
	}
	return l, nil
}

// OpenLayout opens an existing OCI layout at dir.
func OpenLayout(dir string) (*Layout, error) {
	b, err := os.ReadFile(filepath.Join(dir, "oci-layout"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open store %s: no oci-layout file; run `dvpc init` or name the right --store: %w", dir, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	var lay struct {
		Version string `json:"imageLayoutVersion"`
	}
	if err := json.Unmarshal(b, &lay); err != nil || lay.Version != "1.0.0" {
		return nil, fmt.Errorf("open store %s: oci-layout is not version 1.0.0", dir)
	}
	return newLayout(dir), nil
}

func newLayout(dir string) *Layout {
	return &Layout{root: dir, FSSource: &FSSource{fsys: os.DirFS(dir), dir: "."}}
}

// Root returns the layout's directory.
func (l *Layout) Root() string { return l.root }

func (l *Layout) blobPath(d Digest) string {
	return filepath.Join(l.root, "blobs", "sha256", d.Hex())
}

// parseIndex decodes an OCI index.json into refs.
func parseIndex(b []byte) ([]Ref, error) {
	var idx v1.IndexManifest
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("parse index.json: %w", err)
	}
	refs := make([]Ref, 0, len(idx.Manifests))
	for _, d := range idx.Manifests {
		if _, err := DigestFromHash(d.Digest); err != nil {
			return nil, fmt.Errorf("parse index.json: %w", err)
		}
		refs = append(refs, Ref{Name: d.Annotations[refNameAnnotation], Desc: d})
	}
	return refs, nil
}

// CreateBlob implements [Store]: the blob goes to a temporary file in the
// layout and is renamed to its digest on Commit.
func (l *Layout) CreateBlob(ctx context.Context) (BlobWriter, error) {
	dir := filepath.Join(l.root, tmpDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create blob: %w", err)
	}
	f, err := os.CreateTemp(dir, "blob-*")
	if err != nil {
		return nil, fmt.Errorf("create blob: %w", err)
	}
	bw := bufio.NewWriterSize(f, 128<<10) // large writes (sealed chunks) pass straight through
	return &layoutWriter{l: l, f: f, bw: bw, hw: &hashingWriter{w: bw, h: sha256.New()}}, nil
}

type layoutWriter struct {
	l    *Layout
	f    *os.File
	bw   *bufio.Writer
	hw   *hashingWriter
	done bool
}

func (w *layoutWriter) Write(p []byte) (int, error) { return w.hw.Write(p) }

func (w *layoutWriter) Commit(ctx context.Context) (Digest, int64, error) {
	var d Digest
	w.hw.h.Sum(d[:0])
	err := w.bw.Flush()
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(w.f.Name())
		return d, 0, fmt.Errorf("write blob %s: %w", d, err)
	}
	w.done = true
	final := w.l.blobPath(d)
	if fi, err := os.Stat(final); err == nil && fi.Size() == w.hw.n && VerifyBlob(ctx, w.l, d, w.hw.n) == nil {
		os.Remove(w.f.Name()) // already there and intact: blobs are immutable
		return d, w.hw.n, nil
	}
	// A damaged copy is replaced by the rename, in one step: it is never
	// removed before the good one is in place.
	if err := os.Rename(w.f.Name(), final); err != nil {
		os.Remove(w.f.Name())
		return d, 0, fmt.Errorf("write blob %s: %w", d, err)
	}
	if err := syncDir(filepath.Dir(final)); err != nil {
		return d, 0, err
	}
	return d, w.hw.n, nil
}

func (w *layoutWriter) Abort() {
	if !w.done {
		w.done = true
		w.f.Close()
		os.Remove(w.f.Name())
	}
}

// UpdateRefs implements [Store]. The caller should hold the lock.
func (l *Layout) UpdateRefs(ctx context.Context, fn func([]Ref) ([]Ref, error)) error {
	refs, err := l.Refs(ctx)
	if err != nil {
		return err
	}
	refs, err = fn(refs)
	if err != nil {
		return err
	}
	return l.writeIndex(refs)
}

func (l *Layout) writeIndex(refs []Ref) error {
	b, err := encodeIndex(refs)
	if err != nil {
		return err
	}
	return writeFileAtomic(l.root, "index.json", b)
}

func encodeIndex(refs []Ref) ([]byte, error) {
	refs = slices.Clone(refs)
	sort.SliceStable(refs, func(i, j int) bool { return refs[i].Name < refs[j].Name })
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{}}
	for _, r := range refs {
		d := r.Desc
		ann := map[string]string{}
		for k, v := range d.Annotations {
			ann[k] = v
		}
		if r.Name != "" {
			ann[refNameAnnotation] = r.Name
		}
		d.Annotations = ann
		idx.Manifests = append(idx.Manifests, d)
	}
	return json.MarshalIndent(idx, "", "  ")
}

// Lock implements [Store] with an flock on a file in the layout.
func (l *Layout) Lock(ctx context.Context) (func(), error) {
	f, err := os.OpenFile(filepath.Join(l.root, tmpDir+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock store: %w", err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock store %s: another dvpc is writing to it; wait for it to finish", l.root)
	}
	// Holding the lock, nobody else is writing: temporary files are what an
	// interrupted run left behind.
	if ents, err := os.ReadDir(filepath.Join(l.root, tmpDir)); err == nil {
		for _, e := range ents {
			os.Remove(filepath.Join(l.root, tmpDir, e.Name()))
		}
	}
	return func() { f.Close() }, nil
}

// WriteFileAtomic writes dir/name through a synced temporary file and a
// rename, so readers see the old or the new content, never a mix.
func WriteFileAtomic(dir, name string, b []byte) error { return writeFileAtomic(dir, name, b) }

func writeFileAtomic(dir, name string, b []byte) error {
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", name, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
