package main

import (
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
	got := filepath.Join(dir, "restored")
	fresh.must("restore", id, "--to", got)
	requireSameTree(t, home, got)
}
