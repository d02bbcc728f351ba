package image

// Restore safety and format hostility: a snapshot is data from a store that
// may have been tampered with, and a restore target may hold anything. A
// restore must never write outside its target, nor through a link it finds
// there.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var sfArgon = Argon2Params{Time: 1, MemoryKiB: 8 << 10, Threads: 1}

// sfRepo makes and unlocks a fresh store in a temporary directory.
func sfRepo(t *testing.T) *Repo {
	t.Helper()
	ctx := context.Background()
	lay, err := InitLayout(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Init(ctx, lay, []byte("safety"), sfArgon); err != nil {
		t.Fatal(err)
	}
	r, _, err := Open(ctx, lay, []byte("safety"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// sfWrite creates the files of m (slash path → content) under dir.
func sfWrite(t *testing.T, dir string, m map[string]string) {
	t.Helper()
	for name, content := range m {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// sfState describes everything below dir, links not followed: one line per
// entry with its type, and a file's content or a link's target.
func sfState(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out = append(out, rel+" -> "+target)
		case d.IsDir():
			out = append(out, rel+"/")
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out = append(out, fmt.Sprintf("%s = %q", rel, b))
		default:
			out = append(out, rel+" ("+d.Type().String()+")")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sfWantState(t *testing.T, dir string, want ...string) {
	t.Helper()
	got := sfState(t, dir)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("%s holds:\n  %s\nwant:\n  %s", dir, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// sfSnapshot records dir with Repo.Snapshot.
func sfSnapshot(t *testing.T, r *Repo, dir string) *Snapshot {
	t.Helper()
	s, _, err := r.Snapshot(context.Background(), dir, SnapshotOptions{
		Host: "test", NoParent: true,
		OnError: func(p string, err error) { t.Errorf("snapshot: %s: %v", p, err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sfForge stores a snapshot whose root directory holds the entries of
// children, as anyone holding the store's keys could write it: trees are
// encoded without validation, then sealed, packed, indexed and signed like
// real ones. subtrees maps a directory entry's name to the entries of its
// tree. The snapshot is returned as Snapshots loads and verifies it.
func sfForge(t *testing.T, r *Repo, children []*Node, subtrees map[string][]*Node) *Snapshot {
	t.Helper()
	ctx := context.Background()
	unlock, err := r.st.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	pk := newPacker(r.st, r.keys, r.idx, KindTree, 1)
	used := map[ChunkID]bool{}
	store := func(nodes []*Node) ChunkID {
		enc := (&Tree{Nodes: nodes}).Encode()
		id := r.keys.ChunkID(enc)
		used[id] = true
		if r.idx.reserve(id) {
			var buf []byte
			if err := pk.add(ctx, 0, id, r.sealChunk(KindTree, id, enc, &buf), len(enc)); err != nil {
				t.Fatal(err)
			}
		}
		return id
	}
	for _, n := range children {
		if n.Type == TypeDir {
			n.Subtree = store(subtrees[string(n.Name)])
		}
	}
	now := time.Now()
	rootID := store([]*Node{{Name: []byte("home"), Type: TypeDir, Mode: 0o755, UID: uint32(os.Getuid()), GID: uint32(os.Getgid()),
		Mtime: now, Ctime: now, Subtree: store(children)}})
	if err := pk.flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.writeIndexBlob(ctx, used); err != nil {
		t.Fatal(err)
	}
	layers, err := r.layersFor(ctx, used)
	if err != nil {
		t.Fatal(err)
	}
	snaps, _, err := r.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var seq uint64
	for _, s := range snaps {
		seq = max(seq, s.Config.Seq)
	}
	s, err := r.commitSnapshot(ctx, &SnapshotConfig{Version: 1, Root: rootID, Time: now, Host: "forged", Path: "/forged", Seq: seq + 1}, layers, nil)
	if err != nil {
		t.Fatal(err)
	}
	snaps, probs, err := r.Snapshots(ctx)
	if err != nil || len(probs) > 0 {
		t.Fatalf("the forged snapshot does not load: %v %v", err, probs)
	}
	loaded, err := FindSnapshot(snaps, s.Manifest.String())
	if err != nil {
		t.Fatal(err)
	}
	return loaded
}

// sfNode is an ordinary-looking entry: it encodes to more than the smallest
// record, so a refusal is about its name, not its size.
func sfNode(name string, typ NodeType) *Node {
	t0 := time.Unix(1700000000, 123456789)
	n := &Node{Name: []byte(name), Type: typ, Mode: 0o644, UID: 1000, GID: 1000, Mtime: t0, Ctime: t0, Inode: 12345}
	switch typ {
	case TypeDir:
		n.Mode = 0o755
	case TypeSymlink:
		n.Target = []byte("target")
	}
	return n
}

func TestDecodeTreeRefusesHostileNames(t *testing.T) {
	cases := []struct {
		name string
		bad  []*Node
		good []*Node // the same tree made harmless: it must decode
	}{
		{"empty name", []*Node{sfNode("", TypeFile)}, []*Node{sfNode("x", TypeFile)}},
		{"dot", []*Node{sfNode(".", TypeDir)}, []*Node{sfNode("x", TypeDir)}},
		{"dot dot", []*Node{sfNode("..", TypeDir)}, []*Node{sfNode("...", TypeDir)}},
		{"dot dot after a name", []*Node{sfNode("a", TypeFile), sfNode("..", TypeFile)}, []*Node{sfNode("..a", TypeFile), sfNode("a", TypeFile)}},
		{"slash inside", []*Node{sfNode("a/b", TypeFile)}, []*Node{sfNode("a\\b", TypeFile)}},
		{"climbing path", []*Node{sfNode("../../etc/passwd", TypeFile)}, []*Node{sfNode("passwd", TypeFile)}},
		{"absolute path", []*Node{sfNode("/etc", TypeDir)}, []*Node{sfNode("etc", TypeDir)}},
		{"slash alone", []*Node{sfNode("/", TypeDir)}, []*Node{sfNode("-", TypeDir)}},
		{"NUL inside", []*Node{sfNode("a\x00b", TypeFile)}, []*Node{sfNode("a\x01b", TypeFile)}},
		{"NUL alone", []*Node{sfNode("\x00", TypeFile)}, []*Node{sfNode("\x01", TypeFile)}},
		{"name too long", []*Node{sfNode(strings.Repeat("n", maxName+1), TypeFile)}, []*Node{sfNode(strings.Repeat("n", maxName), TypeFile)}},
		{"unsorted", []*Node{sfNode("b", TypeFile), sfNode("a", TypeFile)}, []*Node{sfNode("a", TypeFile), sfNode("b", TypeFile)}},
		{"duplicate", []*Node{sfNode("a", TypeFile), sfNode("a", TypeFile)}, []*Node{sfNode("a", TypeFile), sfNode("a2", TypeFile)}},
		{"symlink and directory of one name", []*Node{sfNode("evil", TypeDir), sfNode("evil", TypeSymlink)},
			[]*Node{sfNode("evil", TypeDir), sfNode("evil2", TypeSymlink)}},
		{"duplicate after others", []*Node{sfNode("a", TypeFile), sfNode("b", TypeDir), sfNode("b", TypeFile)},
			[]*Node{sfNode("a", TypeFile), sfNode("b", TypeDir), sfNode("c", TypeFile)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr, err := DecodeTree((&Tree{Nodes: c.bad}).Encode())
			if err == nil || tr != nil {
				t.Fatalf("DecodeTree accepted a hostile tree: %v", err)
			}
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			if _, err := DecodeTree((&Tree{Nodes: c.good}).Encode()); err != nil {
				t.Fatalf("the harmless variant is refused too: %v", err)
			}
		})
	}
	for _, name := range []string{"...", ".a", "a.", "a\nb", " ", "-rf", "\xff\xfe", "Müsli – café.txt", strings.Repeat("n", maxName)} {
		if !ValidName([]byte(name)) {
			t.Errorf("ValidName(%q) = false, want true", name)
		}
	}
}

// TestRestoreHostileSnapshot restores forged and real snapshots into
// targets that hold links to a directory outside, and checks that nothing
// is ever written there.
func TestRestoreHostileSnapshot(t *testing.T) {
	ctx := context.Background()
	r := sfRepo(t)
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	sfWrite(t, outside, map[string]string{"victim": "precious"})
	outsideState := sfState(t, outside)
	checkOutside := func(t *testing.T) {
		t.Helper()
		if got := sfState(t, outside); !slices.Equal(got, outsideState) {
			t.Fatalf("the restore wrote outside its target: %s holds %q, want %q", outside, got, outsideState)
		}
	}

	src := filepath.Join(base, "src")
	sfWrite(t, src, map[string]string{"docs/a": "alpha\n", "docs/b": "beta\n", "top.txt": "top\n"})
	snap := sfSnapshot(t, r, src)
	wantSnap := []string{"docs/", `docs/a = "alpha\n"`, `docs/b = "beta\n"`, `top.txt = "top\n"`}

	t.Run("forged tree with a symlink and a directory of one name", func(t *testing.T) {
		link := sfNode("evil", TypeSymlink)
		link.Target = []byte(outside)
		dir := sfNode("evil", TypeDir)
		s := sfForge(t, r, []*Node{link, dir}, map[string][]*Node{"evil": {sfNode("planted", TypeFile)}})
		target := filepath.Join(base, "t-forged")
		err := r.Restore(ctx, s, RestoreOptions{Target: target})
		if !errors.Is(err, ErrFormat) {
			t.Fatalf("restore of a tree with a repeated name: %v, want ErrFormat", err)
		}
		sfWantState(t, target)
		checkOutside(t)
	})

	t.Run("forged link then forged directory of its name, with overwrite", func(t *testing.T) {
		link := sfNode("evil", TypeSymlink)
		link.Target = []byte(outside)
		sLink := sfForge(t, r, []*Node{link}, nil)
		sDir := sfForge(t, r, []*Node{sfNode("evil", TypeDir), sfNode("victim", TypeFile)},
			map[string][]*Node{"evil": {sfNode("planted", TypeFile), sfNode("victim", TypeFile)}})
		target := filepath.Join(base, "t-link-then-dir")
		if err := r.Restore(ctx, sLink, RestoreOptions{Target: target}); err != nil {
			t.Fatal(err)
		}
		sfWantState(t, target, "evil -> "+outside)
		if err := r.Restore(ctx, sDir, RestoreOptions{Target: target, Overwrite: true}); err != nil {
			t.Fatal(err)
		}
		sfWantState(t, target, "evil/", `evil/planted = ""`, `evil/victim = ""`, `victim = ""`)
		checkOutside(t)
	})

	t.Run("target holds links where the snapshot has a directory and a file, with overwrite", func(t *testing.T) {
		target := filepath.Join(base, "t-docs-link")
		if err := os.MkdirAll(target, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, filepath.Join(target, "docs")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(outside, "victim"), filepath.Join(target, "top.txt")); err != nil {
			t.Fatal(err)
		}
		if err := r.Restore(ctx, snap, RestoreOptions{Target: target, Overwrite: true}); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(filepath.Join(target, "docs"))
		if err != nil || !fi.IsDir() {
			t.Fatalf("docs is not a real directory after the restore: %v, %v", fi.Mode(), err)
		}
		sfWantState(t, target, wantSnap...)
		checkOutside(t)
	})

	t.Run("a real snapshot of a link, then a directory of its name, with overwrite", func(t *testing.T) {
		evilSrc := filepath.Join(base, "src-evil")
		if err := os.MkdirAll(evilSrc, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, filepath.Join(evilSrc, "docs")); err != nil {
			t.Fatal(err)
		}
		evil := sfSnapshot(t, r, evilSrc)
		target := filepath.Join(base, "t-real-link")
		if err := r.Restore(ctx, evil, RestoreOptions{Target: target}); err != nil {
			t.Fatal(err)
		}
		sfWantState(t, target, "docs -> "+outside)
		if err := r.Restore(ctx, snap, RestoreOptions{Target: target, Overwrite: true}); err != nil {
			t.Fatal(err)
		}
		sfWantState(t, target, wantSnap...)
		checkOutside(t)
	})

	t.Run("chosen path below a link, with overwrite", func(t *testing.T) {
		target := filepath.Join(base, "t-path-link")
		if err := os.MkdirAll(target, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, filepath.Join(target, "docs")); err != nil {
			t.Fatal(err)
		}
		if err := r.Restore(ctx, snap, RestoreOptions{Target: target, Paths: []string{"docs/a"}, Overwrite: true}); err != nil {
			t.Fatal(err)
		}
		sfWantState(t, target, "docs/", `docs/a = "alpha\n"`)
		checkOutside(t)
	})

	t.Run("non-empty target without overwrite", func(t *testing.T) {
		target := filepath.Join(base, "t-refused")
		sfWrite(t, target, map[string]string{"keep.txt": "mine", "docs/b": "my b"})
		if err := os.Symlink(outside, filepath.Join(target, "top.txt")); err != nil {
			t.Fatal(err)
		}
		before := sfState(t, target)
		for _, paths := range [][]string{nil, {"docs/a"}} {
			err := r.Restore(ctx, snap, RestoreOptions{Target: target, Paths: paths})
			if !errors.Is(err, ErrTargetNotEmpty) {
				t.Fatalf("restore of %v into a non-empty target: %v, want ErrTargetNotEmpty", paths, err)
			}
			if got := sfState(t, target); !slices.Equal(got, before) {
				t.Fatalf("a refused restore changed the target: %q, was %q", got, before)
			}
		}
		checkOutside(t)
	})
}

func TestCleanPath(t *testing.T) {
	for _, p := range []string{"..", "../x", "a/../../b", "../../etc/passwd", "/../x", "a/b/../../..", "./.."} {
		if c, err := CleanPath(p); err == nil {
			t.Errorf("CleanPath(%q) = %q, want an error: the path climbs out of the snapshot", p, c)
		}
	}
	for p, want := range map[string]string{
		"": "", ".": "", "/": "", "/a//b/": "a/b", "a/./b": "a/b", "a/b/..": "a", "docs/a": "docs/a", "a/../b": "b",
	} {
		if c, err := CleanPath(p); err != nil || c != want {
			t.Errorf("CleanPath(%q) = %q, %v; want %q", p, c, err, want)
		}
	}
}

func TestRestoreChosenPath(t *testing.T) {
	ctx := context.Background()
	r := sfRepo(t)
	src := filepath.Join(t.TempDir(), "src")
	sfWrite(t, src, map[string]string{"docs/a": "alpha\n", "docs/ab": "not a\n", "docs/b": "beta\n", "top.txt": "top\n", "other/c": "c\n"})
	s := sfSnapshot(t, r, src)
	for _, p := range []string{"docs/a", "/docs//a/"} {
		target := filepath.Join(t.TempDir(), "out")
		if err := r.Restore(ctx, s, RestoreOptions{Target: target, Paths: []string{p}}); err != nil {
			t.Fatal(err)
		}
		sfWantState(t, target, "docs/", `docs/a = "alpha\n"`)
	}
	target := filepath.Join(t.TempDir(), "out")
	err := r.Restore(ctx, s, RestoreOptions{Target: target, Paths: []string{"docs/missing"}})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("restore of a missing path: %v, want ErrNotFound", err)
	}
}

// TestRestoreKeepsMtimes restores files whose mtimes lie at the Unix epoch
// and, where the file system holds them (ext4 with 256-byte inodes, xfs with
// bigtime, tmpfs, btrfs), beyond the range of int64 nanoseconds: years before
// 1678 or after 2262.
func TestRestoreKeepsMtimes(t *testing.T) {
	ctx := context.Background()
	r := sfRepo(t)
	src := filepath.Join(t.TempDir(), "src")
	times := map[string]time.Time{
		"epoch":  time.Unix(0, 0),
		"recent": time.Unix(1700000000, 123456789),
		"y2300":  time.Date(2300, 1, 2, 3, 4, 5, 0, time.UTC),
		"y1600":  time.Date(1600, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	for name, mt := range times {
		sfWrite(t, src, map[string]string{name: name})
		if err := os.Chtimes(filepath.Join(src, name), mt, mt); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(mt) {
			if name == "epoch" || name == "recent" {
				t.Fatalf("the file system keeps mtime %s as %s", mt, fi.ModTime())
			}
			// 32-bit timestamps: this file system cannot hold the case.
			t.Logf("the file system keeps mtime %s as %s; not checked", mt.UTC(), fi.ModTime().UTC())
			delete(times, name)
			if err := os.Remove(filepath.Join(src, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	s := sfSnapshot(t, r, src)
	target := filepath.Join(t.TempDir(), "out")
	if err := r.Restore(ctx, s, RestoreOptions{Target: target}); err != nil {
		t.Fatal(err)
	}
	for name, mt := range times {
		fi, err := os.Stat(filepath.Join(target, name))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(mt) {
			t.Errorf("%s: restored mtime %s, want %s", name, fi.ModTime().UTC(), mt.UTC())
		}
	}
}
