package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestMediaLatestEveryHome: `--snapshots latest` carries the newest
// snapshot of every home, so a snapshot of ~/Music taken last does not
// leave the home itself off the disc.
func TestMediaLatestEveryHome(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	music := filepath.Join(dir, "Music")
	for _, d := range []string{home, music} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeText(t, filepath.Join(home, "todo.md"), "one\n")
	writeText(t, filepath.Join(music, "song.txt"), "la\n")
	d := newCLI(t, filepath.Join(dir, "store"), e2ePass)
	d.must("init", "--argon2-memory", "8")
	d.snapshot(home)
	writeText(t, filepath.Join(home, "todo.md"), "two\n")
	homeHead := d.snapshot(home)
	musicHead := d.snapshot(music)

	iso := filepath.Join(dir, "w.iso")
	d.must("media", "iso", "--out", iso, "--snapshots", "latest")
	got := logIDs(d.onStore(iso).log())
	slices.Sort(got)
	want := []string{homeHead, musicHead}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("a disc of the latest snapshots holds %v, want the head of each home %v", got, want)
	}
}
