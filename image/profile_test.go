package image

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestProfileTravelsSealedInEverySnapshot(t *testing.T) {
	ctx := context.Background()
	r, lay := newTestRepo(t)
	home := filepath.Join(t.TempDir(), "home")
	writeFile(t, filepath.Join(home, "a"), []byte("a"))
	if _, _, err := r.Profile(ctx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("profile of a new store: %v, want ErrNotFound", err)
	}
	s0, _ := mustSnapshot(t, r, home, SnapshotOptions{})
	if s0.Config.Profile != "" {
		t.Fatalf("a snapshot without a profile names %q", s0.Config.Profile)
	}
	doc1 := []byte(`{"version":1,"apps":[{"name":"secret-app-name-one"}]}`)
	d1, err := r.SaveProfile(ctx, doc1)
	if err != nil {
		t.Fatal(err)
	}
	s1, _ := mustSnapshot(t, r, home, SnapshotOptions{})
	doc2 := []byte(`{"version":1,"apps":[{"name":"secret-app-name-two"}]}`)
	d2, err := r.SaveProfile(ctx, doc2)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(home, "b"), []byte("b"))
	s2, _ := mustSnapshot(t, r, home, SnapshotOptions{})

	r2 := reopen(t, lay)
	snaps, probs, err := r2.Snapshots(ctx)
	if err != nil || len(probs) > 0 || len(snaps) != 3 {
		t.Fatalf("snapshots: %d, problems %v, %v", len(snaps), probs, err)
	}
	for _, c := range []struct {
		snap *Snapshot
		d    Digest
		doc  []byte
	}{{snaps[1], d1, doc1}, {snaps[2], d2, doc2}} {
		if c.snap.Config.Profile != c.d.String() {
			t.Errorf("snapshot %s names profile %q, want %s", c.snap.ID, c.snap.Config.Profile, c.d)
		}
		got, err := r2.SnapshotProfile(ctx, c.snap)
		if err != nil || !bytes.Equal(got, c.doc) {
			t.Errorf("profile of snapshot %s: %q, %v; want %q", c.snap.ID, got, err, c.doc)
		}
	}
	if s1.Manifest != snaps[1].Manifest || s2.Manifest != snaps[2].Manifest {
		t.Fatal("snapshot order")
	}
	if _, err := r2.SnapshotProfile(ctx, snaps[0]); !errors.Is(err, ErrNotFound) {
		t.Errorf("profile of the snapshot made before: %v, want ErrNotFound", err)
	}
	cur, d, err := r2.Profile(ctx)
	if err != nil || d != d2 || !bytes.Equal(cur, doc2) {
		t.Errorf("current profile: %q %s %v", cur, d, err)
	}
	if rep, err := r2.Verify(ctx, VerifyOptions{}); err != nil || len(rep.Problems) > 0 {
		t.Errorf("verify: %v %v", rep, err)
	}
	// Nothing in the store says which apps: the profile is sealed.
	filepath.Walk(lay.Root(), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			if bytes.Contains(b, []byte("secret-app-name")) {
				t.Errorf("%s holds an app name in the clear", p)
			}
		}
		return nil
	})
}

func TestProfileRefusesAnotherStoresProfile(t *testing.T) {
	ctx := context.Background()
	r, lay := newTestRepo(t)
	other, olay := newTestRepo(t)
	if _, err := other.SaveProfile(ctx, []byte(`{"version":1}`)); err != nil {
		t.Fatal(err)
	}
	// Copy the other store's profile blobs and ref into this store.
	refs, _ := olay.Refs(ctx)
	ref, _ := findRef(refs, ProfileRef)
	blobs, err := BlobsOf(ctx, olay, []Ref{ref})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		data, err := ReadBlob(ctx, olay, b.Digest, -1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := PutBlob(ctx, lay, b.MediaType, data); err != nil {
			t.Fatal(err)
		}
	}
	lay.UpdateRefs(ctx, func(rs []Ref) ([]Ref, error) { return setRef(rs, ref), nil })
	if _, _, err := r.Profile(ctx); !errors.Is(err, ErrSeal) {
		t.Errorf("another store's profile: %v, want ErrSeal", err)
	}
}
