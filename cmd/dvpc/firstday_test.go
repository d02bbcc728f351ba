package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dvpc/dvpc/internal/regtest"
)

// TestFirstDay is a new user's first day with the defaults: the store in its
// default place inside $HOME, three snapshots of $HOME, yesterday's home
// restored over ~, a damaged pack, then pull, repair and log. No snapshot
// may be lost, and neither the store nor the XDG cache may end up inside a
// snapshot.
func TestFirstDay(t *testing.T) {
	work := t.TempDir()
	home := filepath.Join(work, "home")
	mkhome(t, home)
	// A file large enough that a snapshot which took in the store would
	// grow the store by megabytes.
	randomFile(t, filepath.Join(home, "docs", "photo.raw"), 7, 3<<20)
	if err := os.MkdirAll(filepath.Join(home, ".cache", "thumbnails"), 0o755); err != nil {
		t.Fatal(err)
	}
	randomFile(t, filepath.Join(home, ".cache", "thumbnails", "big.png"), 8, 2<<20)

	store := filepath.Join(home, ".local", "share", "dvpc", "store")
	d := newCLI(t, store, e2ePass)
	d.dir = home // HOME and the working directory
	d.must("init", "--argon2-memory", "8")
	reg := regtest.Start(t)
	d.must("mirror", "add", reg.Addr()+"/alice/home", "--name", "home")

	// The parts of the home a snapshot must hold: everything but the
	// store's tree and the cache.
	entries := func() []string {
		des, err := os.ReadDir(home)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, de := range des {
			if n := de.Name(); n != ".local" && n != ".cache" {
				names = append(names, n)
			}
		}
		return names
	}
	saveState := func(dst string) {
		if err := os.MkdirAll(dst, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, n := range entries() {
			copyTree(t, filepath.Join(home, n), filepath.Join(dst, n))
		}
	}
	requireHomeEquals := func(want, got string) {
		t.Helper()
		for _, n := range entries() {
			requireSameTree(t, filepath.Join(want, n), filepath.Join(got, n))
		}
	}
	idRE := regexp.MustCompile(`(?m)^[0-9a-f]{12}$`)
	snap := func() string {
		t.Helper()
		r := d.must("snapshot")
		id := idRE.FindString(r.stdout)
		if id == "" {
			t.Fatalf("snapshot printed no ID:\n%s", r)
		}
		return id
	}

	var ids []string
	var sizes []int64
	var refs []string
	for i := range 3 {
		if i == 1 {
			writeFileAt(t, filepath.Join(home, ".bashrc"), []byte("export EDITOR=vi\n"), time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
		}
		ids = append(ids, snap())
		sizes = append(sizes, treeSize(t, store))
		ref := filepath.Join(work, "ref", ids[i])
		saveState(ref)
		refs = append(refs, ref)
	}
	// An unchanged or nearly unchanged home adds little to the store: had
	// the store been snapshotted too, each snapshot would add the store again.
	for i := 1; i < 3; i++ {
		if grown := sizes[i] - sizes[i-1]; grown > 512<<10 {
			t.Errorf("snapshot %d grew the store by %d bytes (sizes %v); the store or the cache went into it", i+1, grown, sizes)
		}
	}
	// Neither the store nor the cache is in any snapshot.
	for _, id := range ids {
		r := d.must("ls", id)
		for _, bad := range []string{"dvpc/store", ".cache/thumbnails"} {
			for _, line := range strings.Split(r.stdout, "\n") {
				if strings.Contains(line, bad) {
					t.Errorf("snapshot %s holds %s", id, line)
					break
				}
			}
		}
	}
	d.must("push")

	// Yesterday's home over ~: the store is left alone, so no history is
	// lost.
	index := filepath.Join(store, "index.json")
	before, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	r := d.must("restore", ids[0], "--to", home, "--overwrite")
	if !strings.Contains(r.stderr, "left the store "+store+" alone") {
		t.Errorf("restore over the home does not say it left the store alone:\n%s", r)
	}
	after, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatalf("restore over the home changed the live index.json")
	}
	requireHomeEquals(refs[0], home)
	if got := logIDs(d.log()); !slices.Equal(got, ids) {
		t.Fatalf("after the restore, log lists %v, want %v", got, ids)
	}

	// A damaged pack: verify finds it, pull and repair bring it back intact
	// from the mirror.
	pack := largestBlob(t, store)
	flipByte(t, pack, 4096)
	d.expect(6, "verify", "--read-data")
	d.must("pull")
	r = d.must("repair")
	if !strings.Contains(r.stdout+r.stderr, reg.Addr()) {
		t.Errorf("repair does not name the mirror it fetched from:\n%s", r)
	}
	d.must("verify", "--read-data")
	d.must("prune")

	if got := logIDs(d.log()); !slices.Equal(got, ids) {
		t.Fatalf("at the end of the day, log lists %v, want %v", got, ids)
	}
	for i, id := range ids {
		got := filepath.Join(t.TempDir(), "restored")
		d.must("restore", id, "--to", got)
		requireHomeEquals(refs[i], got)
		if _, err := os.Lstat(filepath.Join(got, ".local", "share", "dvpc", "store")); err == nil {
			t.Errorf("snapshot %s restores a copy of the store", id)
		}
	}
}

// treeSize is the total size of the regular files below root.
func treeSize(t testing.TB, root string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if de.Type().IsRegular() {
			fi, err := de.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// largestBlob is the path of the largest blob in a store.
func largestBlob(t testing.TB, store string) string {
	t.Helper()
	dir := filepath.Join(store, "blobs", "sha256")
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var best string
	var size int64
	for _, de := range des {
		fi, err := de.Info()
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > size {
			best, size = filepath.Join(dir, de.Name()), fi.Size()
		}
	}
	return best
}
