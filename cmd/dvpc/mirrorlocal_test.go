package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLocalMirror: a directory (another disk, a mounted USB key) as a
// mirror, named oci:DIR. Push fills it, a second push sends nothing, and a
// new store pulled from it restores identically.
func TestLocalMirror(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	mkhome(t, home)
	cli := newCLI(t, filepath.Join(dir, "store"), "local mirror passphrase")
	cli.must("init", "--argon2-memory", "8")
	mirror := filepath.Join(dir, "usb", "dvpc")
	cli.must("mirror", "add", "oci:"+mirror, "--name", "usb")
	id := cli.snapshot(home)
	r := cli.must("push")
	if !strings.Contains(r.stdout, "usb:") {
		t.Fatalf("push:\n%s", r)
	}
	r = cli.must("push")
	if !strings.Contains(r.stdout, "0 blobs (0 B) sent") {
		t.Errorf("a second push to the directory should send nothing:\n%s", r)
	}
	// The directory is a store of its own: readable as --store too.
	cli.onStore(mirror).must("verify", "--read-data")
	fresh := cli.onStore(filepath.Join(dir, "new-pc"))
	fresh.must("pull", "oci:"+mirror)
	fresh.requireRestores(id, home)

	// Three more snapshots on the mirror. A plain pull takes the newest
	// only; pull SNAP takes the one named; pull --all the rest; and each
	// restores identically.
	var ids []string
	var want []string
	if err := os.MkdirAll(filepath.Join(dir, "want"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		randomFile(t, filepath.Join(home, "docs", "more.bin"), uint64(40+i), 300<<10)
		ids = append(ids, cli.snapshot(home))
		w := filepath.Join(dir, "want", ids[i])
		copyTree(t, home, w)
		want = append(want, w)
	}
	cli.must("push")
	snapshots := func() int { return len(fresh.snapshotRefs()) }
	r = fresh.must("pull")
	if !strings.Contains(r.stdout, "pulled 1 snapshot:") || snapshots() != 2 {
		t.Fatalf("pull of the newest:\n%s", r)
	}
	fresh.must("pull", ids[1])
	if n := snapshots(); n != 3 {
		t.Fatalf("after pull %s: %d snapshots, want 3", ids[1], n)
	}
	fresh.expect(exitNotFound, "pull", "ffffffffff")
	r = fresh.must("pull", "--all")
	if !strings.Contains(r.stdout, "pulled 1 snapshot:") || snapshots() != 4 {
		t.Fatalf("pull --all should bring the one snapshot still missing:\n%s", r)
	}
	for i, id := range ids {
		fresh.requireRestores(id, want[i])
	}
}
