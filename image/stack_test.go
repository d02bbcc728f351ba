package image

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// failingSource is a place that fails every read, as a disc with a read
// error or a mirror that is down does.
type failingSource struct{ err error }

func (f failingSource) Refs(context.Context) ([]Ref, error) { return nil, f.err }
func (f failingSource) OpenBlob(context.Context, Digest) (Blob, error) {
	return nil, f.err
}
func (f failingSource) StatBlob(context.Context, Digest) (int64, error) { return 0, f.err }

func newLayoutT(t *testing.T, name string) *Layout {
	t.Helper()
	l, err := InitLayout(filepath.Join(t.TempDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func putT(t *testing.T, st Store, b []byte) Digest {
	t.Helper()
	desc, err := PutBlob(context.Background(), st, PackType, b)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := DigestFromHash(desc.Digest)
	return d
}

func TestStackReadsFromTheFirstPlaceThatHasTheBlob(t *testing.T) {
	ctx := context.Background()
	local, usb, dvd := newLayoutT(t, "local"), newLayoutT(t, "usb"), newLayoutT(t, "dvd")
	onLocal := putT(t, local, []byte("local blob"))
	onBoth := putT(t, usb, []byte("usb and dvd"))
	putT(t, dvd, []byte("usb and dvd"))
	onDVD := putT(t, dvd, []byte("only on the dvd"))
	absent := DigestOf([]byte("nowhere"))

	st := NewStack(local, Named("usb", usb), Named("dvd", dvd))
	for d, want := range map[Digest]string{onLocal: "local", onBoth: "usb", onDVD: "dvd"} {
		b, err := st.OpenBlob(ctx, d)
		if err != nil {
			t.Fatalf("open %s: %v", d, err)
		}
		if got := BlobPlace(b); got != want {
			t.Errorf("blob served by %q, want %q", got, want)
		}
		if _, err := io.Copy(io.Discard, io.NewSectionReader(b, 0, b.Size())); err != nil {
			t.Fatal(err)
		}
		b.Close()
		if where, _, err := st.Where(ctx, d); err != nil || where != want {
			t.Errorf("Where(%s) = %q, %v; want %q", d, where, err, want)
		}
	}
	if _, err := st.OpenBlob(ctx, absent); !errors.Is(err, ErrNotFound) {
		t.Errorf("open an absent blob: %v, want ErrNotFound", err)
	}
	if _, err := st.StatBlob(ctx, absent); !errors.Is(err, ErrNotFound) {
		t.Errorf("stat an absent blob: %v, want ErrNotFound", err)
	}
	served := st.Served()
	want := []PlaceUse{{Name: "local", Blobs: 1, Bytes: 10}, {Name: "usb", Blobs: 1, Bytes: 11}, {Name: "dvd", Blobs: 1, Bytes: 15}}
	for i := range want {
		served[i].Time = 0
		if served[i] != want[i] {
			t.Errorf("served[%d] = %+v, want %+v", i, served[i], want[i])
		}
	}

	// Writes go to the local store only.
	d := putT(t, st, []byte("new"))
	if _, err := local.StatBlob(ctx, d); err != nil {
		t.Errorf("a blob written to the stack is not in the local store: %v", err)
	}
	if _, err := usb.StatBlob(ctx, d); !errors.Is(err, ErrNotFound) {
		t.Errorf("a blob written to the stack reached a lower place: %v", err)
	}
	if err := st.UpdateRefs(ctx, func(r []Ref) ([]Ref, error) {
		return append(r, Ref{Name: "x", Desc: descriptor(ManifestType, d, 3)}), nil
	}); err != nil {
		t.Fatal(err)
	}
	refs, err := st.Refs(ctx)
	if err != nil || len(refs) != 1 || refs[0].Name != "x" {
		t.Errorf("refs through the stack = %v, %v; want the local store's one ref", refs, err)
	}
	if refs, _ := usb.Refs(ctx); len(refs) != 0 {
		t.Errorf("refs written to the stack reached a lower place: %v", refs)
	}
}

func TestStackFailingPlaceFallsThroughAndIsNamed(t *testing.T) {
	ctx := context.Background()
	local, dvd := newLayoutT(t, "local"), newLayoutT(t, "dvd")
	d := putT(t, dvd, []byte("on the dvd"))
	down := errors.New("connection refused")
	st := NewStack(local, Named("mirror", failingSource{down}), Named("dvd", dvd))

	b, err := st.OpenBlob(ctx, d)
	if err != nil {
		t.Fatalf("a failing place stopped the stack: %v", err)
	}
	b.Close()
	if n, err := st.StatBlob(ctx, d); err != nil || n != 10 {
		t.Errorf("stat past a failing place = %d, %v", n, err)
	}
	f := st.Faults()
	if len(f) != 1 || f[0].Place != "mirror" || f[0].Damaged || !errors.Is(f[0], down) {
		t.Errorf("faults = %v, want the mirror's failure", f)
	}

	// Not found anywhere, but one place failed: that is not "not found".
	absent := DigestOf([]byte("nowhere"))
	for name, err := range map[string]error{
		"open": func() error { _, err := st.OpenBlob(ctx, absent); return err }(),
		"stat": func() error { _, err := st.StatBlob(ctx, absent); return err }(),
	} {
		if err == nil || errors.Is(err, ErrNotFound) || !errors.Is(err, down) || !strings.Contains(err.Error(), "mirror") {
			t.Errorf("%s with a place down: %v; want the mirror's failure, not ErrNotFound", name, err)
		}
	}
}

func TestReadBlobFallsThroughADamagedCopy(t *testing.T) {
	ctx := context.Background()
	local, usb, dvd := newLayoutT(t, "local"), newLayoutT(t, "usb"), newLayoutT(t, "dvd")
	want := []byte(`{"schemaVersion":2}`)
	d := putT(t, usb, want)
	putT(t, dvd, want)
	flipByte(t, usb, d, 3)

	st := NewStack(local, Named("usb", usb), Named("dvd", dvd))
	got, err := ReadBlob(ctx, st, d, int64(len(want)))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("ReadBlob through a damaged first copy = %q, %v", got, err)
	}
	if err := VerifyBlob(ctx, st, d, int64(len(want))); err != nil {
		t.Errorf("VerifyBlob with an intact copy in the stack: %v", err)
	}
	f := st.Faults()
	if len(f) == 0 || f[0].Place != "usb" || !f[0].Damaged {
		t.Errorf("faults = %v, want the usb named for damaged data", f)
	}
	var de *DigestError
	if !errors.As(f[0].Err, &de) {
		t.Errorf("the usb's fault is %v, want a *DigestError", f[0].Err)
	}

	// With no intact copy, the first failure is returned.
	flipByte(t, dvd, d, 3)
	if _, err := ReadBlob(ctx, st, d, int64(len(want))); !errors.As(err, &de) {
		t.Errorf("ReadBlob with every copy damaged: %v, want a *DigestError", err)
	}
}

// TestStackRestoreFallsBackPerChunk restores through a local store that
// lacks the packs, a disc whose packs each have a flipped byte and an
// intact copy of the store: each chunk that fails to authenticate on the
// disc is read from the intact copy.
func TestStackRestoreFallsBackPerChunk(t *testing.T) {
	ctx := context.Background()
	r, lay := newTestRepo(t)
	home := mkhome(t)
	s, _ := mustSnapshot(t, r, home, SnapshotOptions{})

	copyDir := func(name string) *Layout {
		dst := filepath.Join(t.TempDir(), name)
		if out, err := exec.Command("cp", "-a", lay.Root(), dst).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v\n%s", err, out)
		}
		l, err := OpenLayout(dst)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	local, dvd := copyDir("local"), copyDir("dvd")
	packs := 0
	for _, l := range s.Layers {
		if string(l.MediaType) != PackType {
			continue
		}
		d, _ := DigestFromHash(l.Digest)
		if err := os.Remove(local.blobPath(d)); err != nil {
			t.Fatal(err)
		}
		flipByte(t, dvd, d, l.Size/2)
		packs++
	}
	if packs == 0 {
		t.Fatal("the snapshot names no packs")
	}

	st := NewStack(local, Named("dvd", dvd), Named("intact", lay))
	r2, _, err := Open(ctx, st, []byte("pass"))
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	snaps, _, err := r2.Snapshots(ctx)
	if err != nil || len(snaps) != 1 {
		t.Fatalf("snapshots through the stack: %v, %v", snaps, err)
	}
	mustRestoreEqual(t, r2, snaps[0], home)

	damaged := 0
	for _, f := range st.Faults() {
		if f.Place != "dvd" || !f.Damaged {
			t.Errorf("unexpected fault %v", f)
			continue
		}
		var ce *ChunkError
		if !errors.As(f.Err, &ce) {
			t.Errorf("the dvd's fault is %v, want a *ChunkError", f.Err)
		}
		damaged++
	}
	if damaged == 0 {
		t.Error("no fault names the dvd, which served damaged chunks")
	}
	use := map[string]PlaceUse{}
	for _, u := range st.Served() {
		use[u.Name] = u
	}
	if use["dvd"].Bytes == 0 || use["intact"].Bytes == 0 || use["dvd"].Faults != damaged {
		t.Errorf("served = %+v; want bytes from the dvd and the intact copy, and the dvd's %d faults", st.Served(), damaged)
	}
}
