package image

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// dirState maps every path below root to its content ("dir/" for
// directories).
func dirState(t *testing.T, root string) map[string]string {
	t.Helper()
	st := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			st[rel] = "dir/"
			return nil
		}
		b, err := os.ReadFile(p)
		st[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestRestoreLeavesStoresAlone restores a snapshot over the tree it was
// taken from, after a directory in it became a dvpc store and another was
// named a live store: the restore replaces everything else, leaves both
// stores as they are, and reports them.
func TestRestoreLeavesStoresAlone(t *testing.T) {
	ctx := context.Background()
	r, _ := newTestRepo(t)
	home := filepath.Join(t.TempDir(), "home")
	writeFile(t, filepath.Join(home, "doc.txt"), []byte("first"))
	writeFile(t, filepath.Join(home, "other", "store", "index.json"), []byte("old index"))
	writeFile(t, filepath.Join(home, "other", "store", "notes"), []byte("old notes"))
	writeFile(t, filepath.Join(home, "live", "index.json"), []byte("old live index"))
	writeFile(t, filepath.Join(home, "wrap"), []byte("a file once"))
	s, _ := mustSnapshot(t, r, home, SnapshotOptions{})

	// After the snapshot: other/store becomes a dvpc store, live changes,
	// wrap becomes a directory holding a store, doc.txt changes.
	for _, p := range []string{"other/store", "wrap"} {
		if err := os.RemoveAll(filepath.Join(home, p)); err != nil {
			t.Fatal(err)
		}
	}
	for _, dir := range []string{filepath.Join(home, "other", "store"), filepath.Join(home, "wrap", "s")} {
		if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
			t.Fatal(err)
		}
		lay, err := InitLayout(dir)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := Init(ctx, lay, []byte("other"), testArgon); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filepath.Join(home, "wrap")); err == nil {
		t.Fatal("wrap should be a non-empty directory")
	}
	writeFile(t, filepath.Join(home, "live", "index.json"), []byte("new live index"))
	writeFile(t, filepath.Join(home, "doc.txt"), []byte("second"))
	storeBefore := dirState(t, filepath.Join(home, "other", "store"))
	liveBefore := dirState(t, filepath.Join(home, "live"))
	wrapBefore := dirState(t, filepath.Join(home, "wrap"))

	var kept []string
	err := r.Restore(ctx, s, RestoreOptions{Target: home, Overwrite: true, Protect: []string{filepath.Join(home, "live")},
		OnStoreKept: func(dir string) { kept = append(kept, dir) }})
	var pe *PartialError
	if !errors.As(err, &pe) || pe.Failed != 1 {
		t.Fatalf("restore: %v; want one entry refused (wrap, which holds a store)", err)
	}
	if b, _ := os.ReadFile(filepath.Join(home, "doc.txt")); !bytes.Equal(b, []byte("first")) {
		t.Errorf("doc.txt is %q after the restore, want the snapshot's", b)
	}
	for name, before := range map[string]map[string]string{"other/store": storeBefore, "live": liveBefore, "wrap": wrapBefore} {
		after := dirState(t, filepath.Join(home, name))
		if len(after) != len(before) {
			t.Errorf("%s: %d entries before the restore, %d after", name, len(before), len(after))
		}
		for k, v := range before {
			if after[k] != v {
				t.Errorf("%s/%s was changed by the restore", name, k)
			}
		}
	}
	slices.Sort(kept)
	want := []string{filepath.Join(home, "live"), filepath.Join(home, "other", "store")}
	for i := range want {
		want[i], _ = filepath.EvalSymlinks(want[i])
	}
	if !slices.Equal(kept, want) {
		t.Errorf("stores reported left alone: %v, want %v", kept, want)
	}

	// A target inside a store is refused before anything is written.
	for _, target := range []string{filepath.Join(home, "other", "store", "x"), filepath.Join(home, "live", "x")} {
		err := r.Restore(ctx, s, RestoreOptions{Target: target, Protect: []string{filepath.Join(home, "live")}})
		if !errors.Is(err, ErrInsideStore) {
			t.Errorf("restore to %s: %v, want %v", target, err, ErrInsideStore)
		}
		if _, err := os.Lstat(target); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("restore to %s created it", target)
		}
	}
}
