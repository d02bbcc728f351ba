package sourcetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/dvpc/dvpc/image"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Factory puts blobs and refs in a new place and returns it. Every blob
// is stored under its digest with exactly the bytes given, also when they
// do not hash to it. The refs name manifests among the blobs.
type Factory func(t *testing.T, blobs map[image.Digest][]byte, refs []image.Ref) image.Source

// fixture is what Run puts in a place.
type fixture struct {
	blobs   map[image.Digest][]byte // as stored
	intact  []image.Digest          // every blob whose bytes hash to it
	damaged image.Digest            // a byte flipped
	torn    image.Digest            // cut short
	size    map[image.Digest]int64  // the size each blob should have
	refs    []image.Ref
}

func data(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{blobs: map[image.Digest][]byte{}, size: map[image.Digest]int64{}}
	add := func(b []byte) v1.Descriptor {
		d := image.DigestOf(b)
		f.blobs[d] = b
		f.size[d] = int64(len(b))
		f.intact = append(f.intact, d)
		return v1.Descriptor{MediaType: types.MediaType(image.PackType), Digest: d.Hash(), Size: int64(len(b))}
	}
	cfg := add([]byte("{}"))
	cfg.MediaType = types.MediaType(image.EmptyConfigType)
	small := add([]byte("x"))
	empty := add(nil)
	mid := add(data(1, 70_001))
	big := add(data(2, 300<<10))

	good := data(3, 4096)
	f.damaged = image.DigestOf(good)
	bad := bytes.Clone(good)
	bad[100] ^= 0x40
	f.blobs[f.damaged], f.size[f.damaged] = bad, int64(len(good))
	whole := data(4, 5000)
	f.torn = image.DigestOf(whole)
	f.blobs[f.torn], f.size[f.torn] = whole[:2500], int64(len(whole))
	desc := func(d image.Digest) v1.Descriptor {
		return v1.Descriptor{MediaType: types.MediaType(image.PackType), Digest: d.Hash(), Size: f.size[d]}
	}

	manifest := func(name string, layers ...v1.Descriptor) {
		b, err := json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
			ArtifactType: "application/vnd.dvpc.test.v1", Config: cfg, Layers: layers})
		if err != nil {
			t.Fatal(err)
		}
		md := add(b)
		md.MediaType = types.OCIManifestSchema1
		md.ArtifactType = "application/vnd.dvpc.test.v1"
		f.refs = append(f.refs, image.Ref{Name: name, Desc: md})
	}
	manifest("one", small, mid, desc(f.damaged), desc(f.torn))
	manifest("two", big, empty)
	return f
}

// Run builds a place with open and checks that it behaves as every
// [image.Source] must.
func Run(t *testing.T, open Factory) {
	f := newFixture(t)
	src := open(t, f.blobs, f.refs)
	ctx := context.Background()

	t.Run("Refs", func(t *testing.T) {
		refs, err := src.Refs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := refSet(refs), refSet(f.refs); got != want {
			t.Errorf("refs:\n%s\nwant:\n%s", got, want)
		}
	})

	t.Run("Absent", func(t *testing.T) {
		absent := image.DigestOf([]byte("a blob no place holds"))
		if b, err := src.OpenBlob(ctx, absent); !errors.Is(err, image.ErrNotFound) {
			if b != nil {
				b.Close()
			}
			t.Errorf("OpenBlob of an absent blob: %v, want an error that wraps image.ErrNotFound", err)
		}
		if _, err := src.StatBlob(ctx, absent); !errors.Is(err, image.ErrNotFound) {
			t.Errorf("StatBlob of an absent blob: %v, want an error that wraps image.ErrNotFound", err)
		}
		if err := image.VerifyBlob(ctx, src, absent, -1); !errors.Is(err, image.ErrNotFound) {
			t.Errorf("VerifyBlob of an absent blob: %v, want an error that wraps image.ErrNotFound", err)
		}
	})

	t.Run("Intact", func(t *testing.T) {
		for _, d := range f.intact {
			want := f.blobs[d]
			if n, err := src.StatBlob(ctx, d); err != nil || n != int64(len(want)) {
				t.Errorf("StatBlob(%s) = %d, %v; want %d", d, n, err, len(want))
			}
			if err := image.VerifyBlob(ctx, src, d, int64(len(want))); err != nil {
				t.Errorf("VerifyBlob(%s): %v", d, err)
			}
			if len(want) <= 1<<20 {
				if got, err := image.ReadBlob(ctx, src, d, int64(len(want))); err != nil || !bytes.Equal(got, want) {
					t.Errorf("ReadBlob(%s): %d bytes, %v", d, len(got), err)
				}
			}
			checkReads(t, ctx, src, d, want)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		var big image.Digest
		for _, d := range f.intact {
			if len(f.blobs[d]) > len(f.blobs[big]) {
				big = d
			}
		}
		want := f.blobs[big]
		b, err := src.OpenBlob(ctx, big)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := make([]byte, 4093)
				for i := range 40 {
					off := int64((g*40 + i) * 1877 % (len(want) - len(p)))
					if n, err := b.ReadAt(p, off); n != len(p) || (err != nil && !errors.Is(err, io.EOF)) || !bytes.Equal(p, want[off:off+int64(len(p))]) {
						errs <- fmt.Errorf("ReadAt(%d) from goroutine %d: %d bytes, %v", off, g, n, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	for name, d := range map[string]image.Digest{"Damaged": f.damaged, "Torn": f.torn} {
		t.Run(name, func(t *testing.T) {
			checkBad(t, ctx, src, d, f.size[d])
		})
	}

	// A place that holds nothing (a new mirror, an empty store) has no
	// refs and no blobs; that is not an error.
	t.Run("Empty", func(t *testing.T) {
		src := open(t, map[image.Digest][]byte{}, nil)
		if refs, err := src.Refs(ctx); err != nil || len(refs) != 0 {
			t.Errorf("Refs of an empty place = %v, %v; want none and no error", refs, err)
		}
		for _, d := range f.intact[:2] {
			if _, err := src.StatBlob(ctx, d); !errors.Is(err, image.ErrNotFound) {
				t.Errorf("StatBlob in an empty place: %v, want ErrNotFound", err)
			}
			if b, err := src.OpenBlob(ctx, d); !errors.Is(err, image.ErrNotFound) {
				if b != nil {
					b.Close()
				}
				t.Errorf("OpenBlob in an empty place: %v, want ErrNotFound", err)
			}
		}
	})
}

// checkReads reads blob d at the offsets that matter.
func checkReads(t *testing.T, ctx context.Context, src image.Source, d image.Digest, want []byte) {
	t.Helper()
	b, err := src.OpenBlob(ctx, d)
	if err != nil {
		t.Errorf("OpenBlob(%s): %v", d, err)
		return
	}
	defer b.Close()
	size := int64(len(want))
	if b.Size() != size {
		t.Errorf("blob %s: Size() = %d, want %d", d, b.Size(), size)
		return
	}
	all := make([]byte, size)
	if n, err := b.ReadAt(all, 0); n != len(all) || (err != nil && !errors.Is(err, io.EOF)) || !bytes.Equal(all, want) {
		t.Errorf("blob %s: ReadAt the whole blob: %d bytes, %v, equal %v", d, n, err, bytes.Equal(all, want))
	}
	if size > 2 {
		mid := size / 2
		p := make([]byte, 1)
		if n, err := b.ReadAt(p, mid); n != 1 || err != nil || p[0] != want[mid] {
			t.Errorf("blob %s: ReadAt(1 byte at %d) = %d, %v", d, mid, n, err)
		}
	}
	// A read that reaches the end gets the bytes up to it and io.EOF.
	p := make([]byte, 10)
	off := max(size-4, 0)
	if n, err := b.ReadAt(p, off); int64(n) != size-off || !errors.Is(err, io.EOF) || !bytes.Equal(p[:n], want[off:]) {
		t.Errorf("blob %s: ReadAt(10 bytes at %d of %d) = %d, %v; want %d bytes and io.EOF", d, off, size, n, err, size-off)
	}
	for _, off := range []int64{size, size + 1000} {
		if n, err := b.ReadAt(p, off); n != 0 || !errors.Is(err, io.EOF) {
			t.Errorf("blob %s: ReadAt at %d of %d = %d, %v; want 0 and io.EOF", d, off, size, n, err)
		}
	}
	if n, err := b.ReadAt(p, -1); n != 0 || err == nil {
		t.Errorf("blob %s: ReadAt at -1 = %d, %v; want an error", d, n, err)
	}
}

// checkBad checks what a damaged or torn blob looks like: never absent,
// never passing, always an *image.DigestError.
func checkBad(t *testing.T, ctx context.Context, src image.Source, d image.Digest, size int64) {
	t.Helper()
	if _, err := src.StatBlob(ctx, d); errors.Is(err, image.ErrNotFound) {
		t.Errorf("StatBlob of a damaged blob: %v; it is there, not absent", err)
	}
	var de *image.DigestError
	b, err := src.OpenBlob(ctx, d)
	if err != nil {
		if errors.Is(err, image.ErrNotFound) || !errors.As(err, &de) {
			t.Errorf("OpenBlob refuses a damaged blob with %v; want an *image.DigestError, not ErrNotFound", err)
		}
	} else {
		b.Close()
	}
	for name, err := range map[string]error{
		"VerifyBlob": image.VerifyBlob(ctx, src, d, size),
		"ReadBlob": func() error {
			_, err := image.ReadBlob(ctx, src, d, size)
			return err
		}(),
	} {
		if !errors.As(err, &de) || errors.Is(err, image.ErrNotFound) {
			t.Errorf("%s of a damaged blob: %v; want an *image.DigestError", name, err)
		} else if de.Want != d {
			t.Errorf("%s of a damaged blob: the error names %s, want %s", name, de.Want, d)
		}
	}
}

func refSet(refs []image.Ref) string {
	var lines []string
	for _, r := range refs {
		lines = append(lines, fmt.Sprintf("%s %s %d", r.Name, r.Desc.Digest, r.Desc.Size))
	}
	sort.Strings(lines)
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	return b.String()
}

// RunStore checks that the stores open makes (one per call, empty) are
// written as every [image.Store] must be.
func RunStore(t *testing.T, open func(t *testing.T) image.Store) {
	ctx := context.Background()
	put := func(t *testing.T, st image.Store, b []byte) (image.Digest, int64) {
		t.Helper()
		w, err := st.CreateBlob(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for chunk := range slices(b, 4096) {
			if _, err := w.Write(chunk); err != nil {
				t.Fatal(err)
			}
		}
		d, n, err := w.Commit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return d, n
	}

	t.Run("Commit", func(t *testing.T) {
		st := open(t)
		want := data(5, 100_000)
		d, n := put(t, st, want)
		if d != image.DigestOf(want) || n != int64(len(want)) {
			t.Fatalf("Commit = %s, %d; want %s, %d", d, n, image.DigestOf(want), len(want))
		}
		if got, err := image.ReadBlob(ctx, st, d, n); err != nil || !bytes.Equal(got, want) {
			t.Errorf("read back a committed blob: %d bytes, %v", len(got), err)
		}
		// Blobs are immutable: committing the same bytes again is no error.
		if d2, n2 := put(t, st, want); d2 != d || n2 != n {
			t.Errorf("second Commit = %s, %d", d2, n2)
		}
		if err := image.VerifyBlob(ctx, st, d, n); err != nil {
			t.Errorf("blob committed twice: %v", err)
		}
		// An empty blob is a blob.
		if d, n := put(t, st, nil); d != image.DigestOf(nil) || n != 0 {
			t.Errorf("empty Commit = %s, %d", d, n)
		} else if sz, err := st.StatBlob(ctx, d); err != nil || sz != 0 {
			t.Errorf("StatBlob of the empty blob = %d, %v", sz, err)
		}
	})

	t.Run("Abort", func(t *testing.T) {
		st := open(t)
		w, err := st.CreateBlob(ctx)
		if err != nil {
			t.Fatal(err)
		}
		dropped := []byte("bytes that are dropped")
		if _, err := w.Write(dropped); err != nil {
			t.Fatal(err)
		}
		w.Abort()
		w.Abort()
		if _, err := st.StatBlob(ctx, image.DigestOf(dropped)); !errors.Is(err, image.ErrNotFound) {
			t.Errorf("an aborted blob: StatBlob = %v, want ErrNotFound", err)
		}
		w, err = st.CreateBlob(ctx)
		if err != nil {
			t.Fatal(err)
		}
		kept := []byte("bytes that are kept")
		w.Write(kept)
		d, _, err := w.Commit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		w.Abort()
		if err := image.VerifyBlob(ctx, st, d, int64(len(kept))); err != nil {
			t.Errorf("Abort after Commit dropped the blob: %v", err)
		}
	})

	t.Run("UpdateRefs", func(t *testing.T) {
		st := open(t)
		unlock, err := st.Lock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer unlock()
		da, na := put(t, st, []byte(`{"a":1}`))
		db, nb := put(t, st, []byte(`{"b":2}`))
		ra := image.Ref{Name: "a", Desc: v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: da.Hash(), Size: na}}
		rb := image.Ref{Name: "b", Desc: v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: db.Hash(), Size: nb}}
		if err := st.UpdateRefs(ctx, func(refs []image.Ref) ([]image.Ref, error) {
			return append(refs, ra, rb), nil
		}); err != nil {
			t.Fatal(err)
		}
		wantRefs := func(want ...image.Ref) {
			t.Helper()
			refs, err := st.Refs(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got, w := refSet(refs), refSet(want); got != w {
				t.Errorf("refs:\n%s\nwant:\n%s", got, w)
			}
		}
		wantRefs(ra, rb)
		boom := errors.New("boom")
		if err := st.UpdateRefs(ctx, func(refs []image.Ref) ([]image.Ref, error) {
			return nil, boom
		}); !errors.Is(err, boom) {
			t.Errorf("UpdateRefs whose function fails = %v, want its error", err)
		}
		wantRefs(ra, rb)
		if err := st.UpdateRefs(ctx, func(refs []image.Ref) ([]image.Ref, error) {
			var out []image.Ref
			for _, r := range refs {
				if r.Name != "a" {
					out = append(out, r)
				}
			}
			return out, nil
		}); err != nil {
			t.Fatal(err)
		}
		wantRefs(rb)
	})

	t.Run("Lock", func(t *testing.T) {
		st := open(t)
		for range 2 {
			unlock, err := st.Lock(ctx)
			if err != nil {
				t.Fatalf("Lock after unlock: %v", err)
			}
			unlock()
		}
	})
}

// slices yields b in pieces of at most n bytes.
func slices(b []byte, n int) func(func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for len(b) > 0 {
			k := min(n, len(b))
			if !yield(b[:k]) {
				return
			}
			b = b[k:]
		}
	}
}

// Layout makes a store directory at dir holding blobs as files, exactly
// as given (also when they do not hash to their names), and refs: the
// bytes a Factory of any kind starts from.
func Layout(t *testing.T, dir string, blobs map[image.Digest][]byte, refs []image.Ref) *image.Layout {
	t.Helper()
	lay, err := image.InitLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	for d, b := range blobs {
		if err := os.WriteFile(filepath.Join(lay.Root(), "blobs", "sha256", d.Hex()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := lay.UpdateRefs(context.Background(), func([]image.Ref) ([]image.Ref, error) { return refs, nil }); err != nil {
		t.Fatal(err)
	}
	return lay
}
