//go:build unix

package image

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dvpc/dvpc/internal/treecmp"
)

// storeHome is a home that holds its own store, another dvpc store, cache
// directories and things that only look like them.
type storeHome struct {
	root    string
	store   string // the store snapshots are written to, inside root
	other   string // another dvpc store, inside root
	tagged  string // a directory with a valid CACHEDIR.TAG
	xdg     string // the user's cache directory
	lay     *Layout
	r       *Repo
	cacheSz int64 // bytes of the files in tagged and xdg
}

func newStoreHome(t *testing.T) *storeHome {
	t.Helper()
	ctx := context.Background()
	h := &storeHome{root: filepath.Join(t.TempDir(), "home")}
	h.store = filepath.Join(h.root, ".local", "share", "dvpc", "store")
	h.other = filepath.Join(h.root, "old-pc", "store")
	h.tagged = filepath.Join(h.root, "src", "proj", "target")
	h.xdg = filepath.Join(h.root, ".cache")
	writeFile(t, filepath.Join(h.root, "docs", "a.bin"), seededBytes(11, 1<<20))
	writeFile(t, filepath.Join(h.root, "docs", "b.txt"), []byte("notes\n"))
	writeFile(t, filepath.Join(h.root, "src", "proj", "main.go"), []byte("package main\n"))
	writeFile(t, filepath.Join(h.tagged, CacheDirTag), []byte(cacheDirSignature+"\n# made by a build tool\n"))
	writeFile(t, filepath.Join(h.tagged, "obj", "x.o"), seededBytes(12, 300<<10))
	writeFile(t, filepath.Join(h.xdg, "thumbs", "t.png"), seededBytes(13, 200<<10))
	h.cacheSz = int64(len(cacheDirSignature+"\n# made by a build tool\n")) + 300<<10 + 200<<10
	// Kept: a tag without the signature, and an OCI layout that holds no
	// dvpc keys.
	writeFile(t, filepath.Join(h.root, "fake-cache", CacheDirTag), []byte("Signature: not the right one\n"))
	writeFile(t, filepath.Join(h.root, "fake-cache", "keep.txt"), []byte("keep"))
	if _, err := InitLayout(filepath.Join(h.root, "oci-image")); err != nil {
		t.Fatal(err)
	}

	other, err := InitLayout(h.other)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Init(ctx, other, []byte("other"), testArgon); err != nil {
		t.Fatal(err)
	}
	if _, err := InitLayout(h.store); err != nil {
		t.Fatal(err)
	}
	// The store is opened through a symlink from outside the home: the
	// walk must know it by device and inode, not by path.
	link := filepath.Join(t.TempDir(), "store-link")
	if err := os.Symlink(h.store, link); err != nil {
		t.Fatal(err)
	}
	if h.lay, err = OpenLayout(link); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Init(ctx, h.lay, []byte("pass"), testArgon); err != nil {
		t.Fatal(err)
	}
	h.r = reopen(t, h.lay)
	return h
}

func (h *storeHome) snapshot(t *testing.T, includeCaches bool) (*Snapshot, SnapshotReport) {
	t.Helper()
	var rep SnapshotReport
	s, _ := mustSnapshot(t, h.r, h.root, SnapshotOptions{CacheDirs: []string{h.xdg}, IncludeCaches: includeCaches, Report: &rep})
	return s, rep
}

func snapshotPaths(t *testing.T, r *Repo, s *Snapshot) []string {
	t.Helper()
	var paths []string
	if err := r.Walk(context.Background(), s, func(rel string, n *Node) error {
		paths = append(paths, rel)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return paths
}

func storeBytes(t *testing.T, lay *Layout) int64 {
	t.Helper()
	var n int64
	for _, sz := range blobSet(t, lay) {
		n += sz
	}
	return n
}

// TestSnapshotLeavesOutStoresAndCaches snapshots a home that holds its own
// store three times: the store does not grow by its own content, and no
// snapshot holds a store or a cache.
func TestSnapshotLeavesOutStoresAndCaches(t *testing.T) {
	h := newStoreHome(t)
	rel := func(p string) string {
		r, err := filepath.Rel(h.root, p)
		if err != nil {
			t.Fatal(err)
		}
		return filepath.ToSlash(r)
	}
	leftOut := []string{rel(h.store), rel(h.other), rel(h.tagged), rel(h.xdg)}
	under := func(paths []string, dir string) []string {
		var hits []string
		for _, p := range paths {
			if p == dir || strings.HasPrefix(p, dir+"/") {
				hits = append(hits, p)
			}
		}
		return hits
	}

	var snaps []*Snapshot
	var growth []int64
	for i := range 3 {
		before := storeBytes(t, h.lay)
		s, rep := h.snapshot(t, false)
		growth = append(growth, storeBytes(t, h.lay)-before)
		snaps = append(snaps, s)
		paths := snapshotPaths(t, h.r, s)
		for _, dir := range leftOut {
			if hits := under(paths, dir); len(hits) > 0 {
				t.Errorf("snapshot %d holds %s: %v", i+1, dir, hits)
			}
		}
		for _, p := range []string{"docs/a.bin", "fake-cache/keep.txt", "oci-image/oci-layout", ".local/share/dvpc"} {
			if !slices.Contains(paths, p) {
				t.Errorf("snapshot %d lacks %s", i+1, p)
			}
		}
		var got []string
		var cacheBytes int64
		for _, lo := range rep.LeftOut {
			got = append(got, lo.Kind.String()+" "+rel(lo.Path))
			if lo.Kind == LeftOutStore && lo.ThisStore != (lo.Path == h.store) {
				t.Errorf("left out %s with ThisStore %v", lo.Path, lo.ThisStore)
			}
			if lo.Kind == LeftOutCache {
				if !lo.Exact {
					t.Errorf("cache %s counted only in part", lo.Path)
				}
				cacheBytes += lo.Bytes
			}
		}
		slices.Sort(got)
		want := []string{"cache .cache", "cache src/proj/target", "dvpc store .local/share/dvpc/store", "dvpc store old-pc/store"}
		if !slices.Equal(got, want) {
			t.Errorf("snapshot %d left out %q, want %q", i+1, got, want)
		}
		if cacheBytes != h.cacheSz {
			t.Errorf("snapshot %d counts %d bytes of caches, want %d", i+1, cacheBytes, h.cacheSz)
		}
	}
	// The first snapshot stores the home's 1.5 MiB; an unchanged home
	// then adds a manifest, a config and a signature, not the store.
	for i, g := range growth[1:] {
		if g > 16<<10 {
			t.Errorf("snapshot %d of an unchanged home grew the store by %d bytes (the first by %d)", i+2, g, growth[0])
		}
	}

	out := filepath.Join(t.TempDir(), "out")
	if err := h.r.Restore(context.Background(), snaps[2], RestoreOptions{Target: out}); err != nil {
		t.Fatal(err)
	}
	diffs, err := treecmp.Compare(h.root, out, treecmp.IgnorePaths(func(p string) bool {
		return slices.ContainsFunc(leftOut, func(dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") })
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) > 0 {
		t.Fatalf("restore differs from the home outside the left-out directories:\n%s", treecmp.Format(diffs))
	}

	// --include-caches brings the caches back; stores stay out.
	s, rep := h.snapshot(t, true)
	paths := snapshotPaths(t, h.r, s)
	for _, p := range []string{rel(h.tagged) + "/obj/x.o", rel(h.tagged) + "/" + CacheDirTag, rel(h.xdg) + "/thumbs/t.png"} {
		if !slices.Contains(paths, p) {
			t.Errorf("with caches kept, the snapshot lacks %s", p)
		}
	}
	for _, dir := range []string{rel(h.store), rel(h.other)} {
		if hits := under(paths, dir); len(hits) > 0 {
			t.Errorf("with caches kept, the snapshot holds the store %s: %v", dir, hits)
		}
	}
	if len(rep.LeftOut) != 2 {
		t.Errorf("with caches kept, left out %+v, want the two stores", rep.LeftOut)
	}
}

// TestSnapshotInsideStoreIsRefused: a snapshot of the store, or of a
// directory inside it, would read what it writes.
func TestSnapshotInsideStoreIsRefused(t *testing.T) {
	r, lay := newTestRepo(t)
	for _, dir := range []string{lay.Root(), filepath.Join(lay.Root(), "blobs")} {
		if _, _, err := r.Snapshot(context.Background(), dir, SnapshotOptions{}); err == nil || !strings.Contains(err.Error(), "inside the store") {
			t.Errorf("snapshot of %s: %v, want a refusal", dir, err)
		}
	}
}

func TestCacheDirTag(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		content string
		want    bool
	}{
		{cacheDirSignature, true},
		{cacheDirSignature + "\n# comment\n", true},
		{"Signature: 8a477f597d28d172789f06886806bc5", false},
		{"signature: 8a477f597d28d172789f06886806bc55", false},
		{"", false},
	} {
		p := filepath.Join(dir, "tag")
		writeFile(t, p, []byte(c.content))
		if got := isCacheDirTag(p); got != c.want {
			t.Errorf("tag %q: %v, want %v", c.content, got, c.want)
		}
	}
	// A symlink to a valid tag does not count.
	writeFile(t, filepath.Join(dir, "real"), []byte(cacheDirSignature))
	if err := os.Symlink(filepath.Join(dir, "real"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if isCacheDirTag(filepath.Join(dir, "link")) {
		t.Error("a symlinked CACHEDIR.TAG counts")
	}
}
