package image

import (
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
)

// TestFSSource reads a store through fs.FS, as media readers do, including
// a file system whose files can only seek and read.
func TestFSSource(t *testing.T) {
	r, lay := newTestRepo(t)
	home := t.TempDir()
	writeFile(t, home+"/a.txt", []byte("alpha"))
	writeFile(t, home+"/b.bin", seededBytes(9, 700<<10))
	mustSnapshot(t, r, home, SnapshotOptions{})
	src, err := OpenFSSource(os.DirFS(lay.Root()), ".")
	if err != nil {
		t.Fatal(err)
	}
	mem := fstest.MapFS{}
	copyToMapFS(t, lay.Root(), mem)
	msrc, err := OpenFSSource(seekOnlyFS{mem}, ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []Source{src, msrc} {
		r2, _, err := Open(context.Background(), s, []byte("pass"))
		if err != nil {
			t.Fatal(err)
		}
		snaps, probs, err := r2.Snapshots(context.Background())
		if err != nil || len(probs) > 0 || len(snaps) != 1 {
			t.Fatalf("%v %v %v", snaps, probs, err)
		}
		mustRestoreEqual(t, r2, snaps[0], home)
		rep, err := r2.Verify(context.Background(), VerifyOptions{ReadData: true})
		if err != nil || len(rep.Problems) > 0 {
			t.Fatalf("verify: %v %v", rep.Problems, err)
		}
		if _, _, err := r2.Snapshot(context.Background(), home, SnapshotOptions{}); err != ErrReadOnly {
			t.Fatalf("snapshot into a read-only source: %v", err)
		}
		r2.Close()
	}
}

func copyToMapFS(t *testing.T, root string, m fstest.MapFS) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		b, err := os.ReadFile(p)
		m[filepath.ToSlash(rel)] = &fstest.MapFile{Data: b, Mode: 0o644}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// seekOnlyFS hides ReadAt, like file systems read from disk images.
type seekOnlyFS struct{ fs.FS }

type seekOnlyFile struct {
	fs.File
	io.Seeker
}

func (s seekOnlyFS) Open(name string) (fs.File, error) {
	f, err := s.FS.Open(name)
	if err != nil {
		return nil, err
	}
	if sk, ok := f.(io.Seeker); ok {
		return seekOnlyFile{File: f, Seeker: sk}, nil
	}
	return f, nil
}

func (s seekOnlyFS) Stat(name string) (fs.FileInfo, error) { return fs.Stat(s.FS, name) }
