package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dvpc/dvpc/internal/treecmp"
)

// TestRestoreOverHomeKeepsStore: the store lives inside the home, as the
// default store does; restoring the first of two snapshots over the home
// with --overwrite restores the rest of the home and leaves the store as it
// was: both snapshots stay, index.json is unchanged, the store verifies.
func TestRestoreOverHomeKeepsStore(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	mkhome(t, home)
	storeRel := filepath.Join(".local", "share", "dvpc", "store")
	store := filepath.Join(home, storeRel)
	if err := os.MkdirAll(filepath.Dir(store), 0o755); err != nil {
		t.Fatal(err)
	}
	cli := newCLI(t, store, "restore over home")
	cli.must("init", "--argon2-memory", "8")

	first := cli.snapshot(home)
	ref := filepath.Join(dir, "ref1")
	copyTree(t, home, ref)
	bashrc := filepath.Join(home, ".bashrc")
	b, err := os.ReadFile(bashrc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bashrc, append(b, "export CHANGED=1\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	second := cli.snapshot(home)
	index, err := os.ReadFile(filepath.Join(store, "index.json"))
	if err != nil {
		t.Fatal(err)
	}

	r := cli.must("restore", first, "--to", home, "--overwrite")
	if n := strings.Count(r.stderr, "left the store"); n != 1 || !strings.Contains(r.stderr, store) {
		t.Errorf("restore should say once that it left the store %s alone:\n%s", store, r)
	}
	if got := logIDs(cli.log()); len(got) != 2 || got[0] != first || got[1] != second {
		t.Errorf("log after the restore lists %v, want [%s %s]", got, first, second)
	}
	after, err := os.ReadFile(filepath.Join(store, "index.json"))
	if err != nil || !bytes.Equal(after, index) {
		t.Errorf("index.json changed by the restore (%v):\nbefore %s\nafter %s", err, index, after)
	}
	cli.must("verify", "--read-data")
	inStore := func(rel string) bool {
		return rel == storeRel || strings.HasPrefix(rel, storeRel+string(filepath.Separator))
	}
	diffs, err := treecmp.Compare(ref, home, treecmp.IgnorePaths(inStore))
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) > 0 {
		t.Errorf("the home differs from the first snapshot outside the store: %s", treecmp.Format(diffs))
	}
	// The store cannot be a restore target either.
	r = cli.expect(exitError, "restore", first, "--to", filepath.Join(store, "x"))
	if !strings.Contains(r.stderr, "inside a dvpc store") {
		t.Errorf("a restore into the store should be refused:\n%s", r)
	}
}
