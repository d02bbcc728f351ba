package image

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNewRescan(t *testing.T) {
	tests := []struct {
		in   []string
		want []string
	}{
		{[]string{}, nil},
		{[]string{"."}, []string{""}},
		{[]string{"a/b", "a", "a-c", "a/b/c"}, []string{"a", "a-c"}},
		{[]string{"x/", "./y/../z", "x"}, []string{"x", "z"}},
		{[]string{"docs", "a b", "a/b", "", "q"}, []string{""}},
	}
	for _, tt := range tests {
		s, err := newRescan(tt.in)
		if err != nil {
			t.Fatalf("newRescan(%q): %v", tt.in, err)
		}
		if !slices.Equal(s.dirs, tt.want) {
			t.Errorf("newRescan(%q) = %q, want %q", tt.in, s.dirs, tt.want)
		}
	}
	for _, bad := range []string{"../x", "a/../../b", "/etc", "a\x00b"} {
		if _, err := newRescan([]string{bad}); err == nil {
			t.Errorf("newRescan(%q) accepted a path outside the root", bad)
		}
	}
	if s, _ := newRescan(nil); s != nil || !s.all("any/dir") {
		t.Errorf("newRescan(nil) is not a full rescan")
	}
	s, _ := newRescan([]string{"a/b/c", "a/x", "d"})
	if got := s.below(""); !slices.Equal(got, []string{"a", "d"}) {
		t.Errorf("below root = %q", got)
	}
	if got := s.below("a"); !slices.Equal(got, []string{"b", "x"}) {
		t.Errorf("below a = %q", got)
	}
	if s.all("a") || !s.all("a/b/c/e") || !s.touches("a/b") || s.touches("a/y") || s.touches("dd") {
		t.Errorf("wrong scope for %q", s.dirs)
	}
}

// TestChangedLeavesTheRestUnread shows that a partial rescan does not read
// the disk outside the changed directories: an edit there is not seen, while
// one inside is, new entries included.
func TestChangedLeavesTheRestUnread(t *testing.T) {
	r, _ := newTestRepo(t)
	home := t.TempDir()
	writeFile(t, filepath.Join(home, "a", "f.txt"), []byte("a one"))
	writeFile(t, filepath.Join(home, "b", "f.txt"), []byte("b one"))
	waitPastRacyWindow()
	s1, _ := mustSnapshot(t, r, home, SnapshotOptions{})

	writeFile(t, filepath.Join(home, "a", "f.txt"), []byte("a two, longer"))
	writeFile(t, filepath.Join(home, "a", "new", "g.txt"), []byte("new"))
	writeFile(t, filepath.Join(home, "b", "f.txt"), []byte("b two, longer"))
	writeFile(t, filepath.Join(home, "c", "h.txt"), []byte("c"))
	s2, st := mustSnapshot(t, r, home, SnapshotOptions{Parent: s1, Changed: []string{"a"}})

	ctx := context.Background()
	size := func(s *Snapshot, p string) int64 {
		t.Helper()
		n, err := r.FindNode(ctx, s, p)
		if err != nil {
			t.Fatalf("%s in %s: %v", p, s.ID, err)
		}
		return n.Size
	}
	if got := size(s2, "a/f.txt"); got != int64(len("a two, longer")) {
		t.Errorf("a/f.txt, inside the changed directory, has size %d: the edit was not seen", got)
	}
	if got := size(s2, "a/new/g.txt"); got != 3 {
		t.Errorf("a/new/g.txt has size %d", got)
	}
	if got := size(s2, "b/f.txt"); got != int64(len("b one")) {
		t.Errorf("b/f.txt, outside the changed directory, has size %d: it was read again", got)
	}
	if _, err := r.FindNode(ctx, s2, "c"); !errors.Is(err, ErrNotFound) {
		t.Errorf("c, a new directory outside the changed one, was seen: %v", err)
	}
	// The counts cover the whole tree, taken-over parts included.
	if st.Files != 3 || st.Dirs != 3 {
		t.Errorf("stats %+v, want 3 files in 3 directories", st)
	}

	// The next one, on top of the partial one, takes "a" over in its turn.
	s3, st := mustSnapshot(t, r, home, SnapshotOptions{Parent: s2, Changed: []string{"b"}})
	if got := size(s3, "b/f.txt"); got != int64(len("b two, longer")) {
		t.Errorf("b/f.txt, now changed, has size %d", got)
	}
	if got := size(s3, "a/new/g.txt"); got != 3 {
		t.Errorf("a/new/g.txt, taken over, has size %d", got)
	}
	if st.Files != 3 || st.Dirs != 3 || st.Bytes != int64(len("a two, longer")+3+len("b two, longer")) {
		t.Errorf("stats %+v, want 3 files in 3 directories", st)
	}
	mustRestoreEqualExcept(t, r, s3, home, "c")
}

// mustRestoreEqualExcept restores s and compares it with dir, leaving
// out the top-level entry skip of dir.
func mustRestoreEqualExcept(t *testing.T, r *Repo, s *Snapshot, dir, skip string) {
	t.Helper()
	want := filepath.Join(t.TempDir(), "want")
	if out, err := exec.Command("cp", "-a", dir, want).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	if err := os.RemoveAll(filepath.Join(want, skip)); err != nil {
		t.Fatal(err)
	}
	// Removing the entry moved the directory's mtime: put it back.
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(want, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	mustRestoreEqual(t, r, s, want)
}

// TestChangedEqualsFullSnapshot shows that a partial rescan whose changed
// directories cover every edit gives the same tree as reading everything.
func TestChangedEqualsFullSnapshot(t *testing.T) {
	r, _ := newTestRepo(t)
	home := mkhome(t)
	waitPastRacyWindow()
	s1, _ := mustSnapshot(t, r, home, SnapshotOptions{})

	writeFile(t, filepath.Join(home, "docs", "notes.md"), []byte("rewritten notes\n"))
	if err := os.Link(filepath.Join(home, "docs", "notes.md"), filepath.Join(home, "docs", "notes-link.md")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(home, "src", "project", "newdir", "deep", "x.go"), []byte("package x\n"))
	if err := os.Remove(filepath.Join(home, "logs", "app.log")); err != nil {
		t.Fatal(err)
	}
	// Only the new directory is named, not the one it was made in.
	changed := []string{"docs", "src/project/newdir", "logs"}
	now := time.Now()
	part, pst := mustSnapshot(t, r, home, SnapshotOptions{Parent: s1, Changed: changed, Time: now})
	full, fst := mustSnapshot(t, r, home, SnapshotOptions{Parent: s1, Time: now})
	if part.Config.Root != full.Config.Root {
		t.Errorf("partial rescan of %q gives tree %s, a full one %s", changed, part.Config.Root, full.Config.Root)
	}
	if pst.Files != fst.Files || pst.Dirs != fst.Dirs || pst.Bytes != fst.Bytes {
		t.Errorf("partial rescan counts %+v, a full one %+v", pst, fst)
	}
	mustRestoreEqual(t, r, part, home)
}

// TestChangedLeavesOutANewCache checks that a directory that became a cache
// or a store since the parent is left out even when only a directory below
// it is named as changed.
func TestChangedLeavesOutANewCache(t *testing.T) {
	r, _ := newTestRepo(t)
	home := t.TempDir()
	writeFile(t, filepath.Join(home, "c", "sub", "f"), []byte("f"))
	writeFile(t, filepath.Join(home, "s", "g"), []byte("g"))
	writeFile(t, filepath.Join(home, "keep", "h"), []byte("h"))
	s1, _ := mustSnapshot(t, r, home, SnapshotOptions{})
	writeFile(t, filepath.Join(home, "c", CacheDirTag), []byte(cacheDirSignature))
	writeFile(t, filepath.Join(home, "c", "sub", "f2"), []byte("f2"))
	if err := os.Remove(filepath.Join(home, "s", "g")); err != nil {
		t.Fatal(err)
	}
	lay, err := InitLayout(filepath.Join(home, "s"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Init(context.Background(), lay, []byte("other"), testArgon); err != nil {
		t.Fatal(err)
	}
	s2, _ := mustSnapshot(t, r, home, SnapshotOptions{Parent: s1, Changed: []string{"c/sub", "s/blobs"}})
	for _, p := range []string{"c", "s"} {
		if _, err := r.FindNode(context.Background(), s2, p); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s, left out since the parent, is in the snapshot: %v", p, err)
		}
	}
	if _, err := r.FindNode(context.Background(), s2, "keep/h"); err != nil {
		t.Error(err)
	}
}

// FuzzNewRescan checks that any accepted set of changed directories is
// clean, sorted, inside the root and free of nesting, and that every input
// directory is read wholly.
func FuzzNewRescan(f *testing.F) {
	f.Add("a/b", "a", "../x")
	f.Add(".", "", "c//d/")
	f.Add("a b", "a/b", "a-c")
	f.Fuzz(func(t *testing.T, x, y, z string) {
		in := []string{x, y, z}
		s, err := newRescan(in)
		if err != nil {
			return
		}
		for i, d := range s.dirs {
			if d == "." || d == ".." || strings.HasPrefix(d, "../") || strings.HasPrefix(d, "/") || strings.HasSuffix(d, "/") {
				t.Fatalf("%q gave %q", in, s.dirs)
			}
			for j, e := range s.dirs {
				if i != j && underDir(d, e) {
					t.Fatalf("%q gave %q: %q lies in %q", in, s.dirs, d, e)
				}
			}
			if i > 0 && s.dirs[i-1] >= d {
				t.Fatalf("%q gave %q, not sorted", in, s.dirs)
			}
		}
		for _, d := range in {
			p := path.Clean(d)
			if p == "." {
				p = ""
			}
			if !s.all(p) {
				t.Fatalf("%q gave %q, which does not read %q", in, s.dirs, d)
			}
		}
	})
}
