//go:build unix

package image

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"testing"
)

// TestExcluderAgreesWithSnapshot checks, for every entry of a home that
// holds each kind of thing a snapshot leaves out, that the Excluder says
// "left out" exactly when the snapshot does not record the entry.
func TestExcluderAgreesWithSnapshot(t *testing.T) {
	ctx := context.Background()
	home := filepath.Join(t.TempDir(), "home")
	writeFile(t, filepath.Join(home, "keep.txt"), []byte("k"))
	writeFile(t, filepath.Join(home, "a", "b.log"), []byte("excluded by pattern"))
	writeFile(t, filepath.Join(home, "a", "c.txt"), []byte("kept"))
	writeFile(t, filepath.Join(home, "proj", IgnoreFile), []byte("build/\n*.o\n"))
	writeFile(t, filepath.Join(home, "proj", "main.c"), []byte("int main;"))
	writeFile(t, filepath.Join(home, "proj", "main.o"), []byte("obj"))
	writeFile(t, filepath.Join(home, "proj", "build", "out", "x"), []byte("built"))
	writeFile(t, filepath.Join(home, "proj", "sub", "build"), []byte("a file, not a directory"))
	writeFile(t, filepath.Join(home, "tagged", CacheDirTag), []byte(cacheDirSignature+"\n"))
	writeFile(t, filepath.Join(home, "tagged", "blob"), []byte("cached"))
	writeFile(t, filepath.Join(home, "fakecache", CacheDirTag), []byte("not the signature"))
	writeFile(t, filepath.Join(home, ".cache", "thumb", "1.png"), []byte("png"))
	writeFile(t, filepath.Join(home, "deep", "er", "still.txt"), []byte("kept"))

	// This store lives in the home; another store too.
	lay, err := InitLayout(filepath.Join(home, ".local", "share", "dvpc", "store"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Init(ctx, lay, []byte("pass"), testArgon); err != nil {
		t.Fatal(err)
	}
	other, err := InitLayout(filepath.Join(home, "backup", "store"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Init(ctx, other, []byte("other"), testArgon); err != nil {
		t.Fatal(err)
	}
	r := reopen(t, lay)

	opts := SnapshotOptions{Excludes: []string{"*.log"}, CacheDirs: []string{filepath.Join(home, ".cache")}}
	s, _ := mustSnapshot(t, r, home, opts)
	ex, err := r.Excluder(home, opts)
	if err != nil {
		t.Fatal(err)
	}
	var checked, out int
	err = filepath.WalkDir(home, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == home {
			return err
		}
		rel, _ := filepath.Rel(home, p)
		rel = filepath.ToSlash(rel)
		_, ferr := r.FindNode(ctx, s, rel)
		recorded := ferr == nil
		if ferr != nil && !errors.Is(ferr, ErrNotFound) {
			t.Fatalf("find %s: %v", rel, ferr)
		}
		checked++
		if got := ex.Excluded(rel, d.IsDir()); got == recorded {
			t.Errorf("%s: Excluded says %v, but the snapshot recorded it: %v", rel, got, recorded)
		}
		if !recorded {
			out++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Every rule must have been met, not only "kept".
	for rel, isDir := range map[string]bool{
		"a/b.log": false, "proj/main.o": false, "proj/build": true, "proj/build/out/x": false,
		"tagged": true, "tagged/blob": false, ".cache/thumb": true, ".local/share/dvpc/store": true,
		"backup/store/index.json": false,
	} {
		if !ex.Excluded(rel, isDir) {
			t.Errorf("%s is not excluded", rel)
		}
	}
	for rel, isDir := range map[string]bool{"proj/sub/build": false, "fakecache/blob": false, "deep/er/still.txt": false, "new-file": false} {
		if ex.Excluded(rel, isDir) {
			t.Errorf("%s is excluded", rel)
		}
	}
	if checked < 20 || out < 10 {
		t.Errorf("checked %d entries, %d left out: the home is not what the test means", checked, out)
	}
	// A new CACHEDIR.TAG is seen at once.
	writeFile(t, filepath.Join(home, "deep", CacheDirTag), []byte(cacheDirSignature))
	if !ex.Excluded("deep/er/still.txt", false) {
		t.Errorf("a file below a directory tagged after the Excluder was made is not excluded")
	}
}

func TestExcluderIncludeCaches(t *testing.T) {
	r, _ := newTestRepo(t)
	home := t.TempDir()
	writeFile(t, filepath.Join(home, "tagged", CacheDirTag), []byte(cacheDirSignature))
	ex, err := r.Excluder(home, SnapshotOptions{IncludeCaches: true})
	if err != nil {
		t.Fatal(err)
	}
	if ex.Excluded("tagged", true) || ex.Excluded("tagged/x", false) {
		t.Errorf("a tagged cache is excluded although caches are kept")
	}
}
