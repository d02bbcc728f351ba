package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestForgetPrune: a policy forgets the older snapshots, prune frees their
// data, what is left verifies and restores identically; a dry run changes
// nothing, and a medium is refused.
func TestForgetPrune(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	mkhome(t, home)
	store := filepath.Join(dir, "store")
	cli := newCLI(t, store, "forget passphrase")
	cli.must("init", "--argon2-memory", "8")
	var ids []string
	for i := range 3 {
		randomFile(t, filepath.Join(home, "docs", "weekly.bin"), uint64(70+i), 2<<20)
		ids = append(ids, cli.snapshot(home))
	}
	count := func() int { return len(cli.snapshotRefs()) }
	size := func() int64 {
		t.Helper()
		var n int64
		ents, err := os.ReadDir(filepath.Join(store, "blobs", "sha256"))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			fi, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			n += fi.Size()
		}
		return n
	}

	cli.expect(exitUsage, "forget")
	cli.expect(exitUsage, "forget", ids[0], "--keep-last", "1")
	before := size()
	r := cli.must("forget", "--keep-last", "1", "--dry-run", "--prune")
	if !strings.Contains(r.stdout, "would remove 2 of 3 snapshots") || !strings.Contains(r.stdout, "would delete") {
		t.Errorf("dry run:\n%s", r)
	}
	if count() != 3 || size() != before {
		t.Fatal("a dry run changed the store")
	}
	r = cli.must("forget", ids[0])
	if !strings.Contains(r.stdout, "removed 1 of 3") || count() != 2 || size() != before {
		t.Fatalf("forget %s: %d snapshots, %d bytes (were %d)\n%s", ids[0], count(), size(), before, r)
	}
	r = cli.must("forget", "--keep-last", "1", "--prune")
	if !strings.Contains(r.stdout, "removed 1 of 2") || count() != 1 {
		t.Fatalf("forget --keep-last 1:\n%s", r)
	}
	// The first snapshot's pack also holds the home the newest still
	// needs, so it stays; the second's pack held only its 2 MiB file.
	if after := size(); after > before-2<<20 {
		t.Errorf("prune freed %d bytes of %d; the second snapshot had 2 MiB of its own", before-after, before)
	}
	cli.must("verify", "--read-data")
	cli.requireRestores(ids[2], home)
	r = cli.must("prune")
	if !strings.Contains(r.stdout, "deleted 0 blobs") {
		t.Errorf("second prune:\n%s", r)
	}

	iso := filepath.Join(dir, "weekly.iso")
	cli.must("media", "iso", "--out", iso, "--no-clients")
	cli.onStore(iso).expect(exitUsage, "forget", "--keep-last", "1")
}
