package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dvpc/dvpc/image"
	"github.com/dvpc/dvpc/internal/treecmp"
)

// dirBytes adds up the sizes of the files directly in dir; none if it does
// not exist.
func dirBytes(t testing.TB, dir string) int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
	}
	return n
}

func storeBlobBytes(t testing.TB, store string) int64 {
	t.Helper()
	return dirBytes(t, filepath.Join(store, "blobs", "sha256"))
}

// lsPaths lists the paths in a snapshot, as `dvpc --json ls` gives them.
func (d *dvpcCLI) lsPaths(id string) []string {
	d.t.Helper()
	r := d.must("--json", "ls", id)
	var list []struct {
		Path string `json:"path"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		d.t.Fatalf("ls printed no JSON list: %v\n%s", err, r)
	}
	var paths []string
	for _, e := range list {
		paths = append(paths, e.Path)
	}
	return paths
}

func pathsUnder(paths []string, dir string) []string {
	var hits []string
	for _, p := range paths {
		if p == dir || strings.HasPrefix(p, dir+"/") {
			hits = append(hits, p)
		}
	}
	return hits
}

// TestSnapshotOfHomeLeavesOutTheStore takes three snapshots of an unchanged
// home that holds the store (the default place, inside $HOME), another
// dvpc store and caches. The store grows only by each snapshot's manifest,
// config and signature; no snapshot holds a store or a cache, and the
// summary says what was left out. --include-caches keeps the caches.
func TestSnapshotOfHomeLeavesOutTheStore(t *testing.T) {
	d := newCLI(t, "", "first day passphrase")
	home := d.dir // $HOME of every run
	d.store = filepath.Join(home, ".local", "share", "dvpc", "store")
	d.must("init", "--argon2-memory", "8")
	other := filepath.Join(home, "old-pc", "store")
	d.onStore(other).must("init", "--argon2-memory", "8")
	for _, dir := range []string{"docs", "src/proj/target/obj", ".cache/thumbs", "fake-cache"} {
		if err := os.MkdirAll(filepath.Join(home, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	randomFile(t, filepath.Join(home, "docs", "report.bin"), 1, 2<<20)
	if err := os.WriteFile(filepath.Join(home, "docs", "todo.md"), []byte("- buy milk\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "src", "proj", "target", "CACHEDIR.TAG"),
		[]byte("Signature: 8a477f597d28d172789f06886806bc55\n# This directory is a cache.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	randomFile(t, filepath.Join(home, "src", "proj", "target", "obj", "main.o"), 2, 300<<10)
	randomFile(t, filepath.Join(home, ".cache", "thumbs", "a.png"), 3, 200<<10)
	// A tag without the signature is not a cache.
	if err := os.WriteFile(filepath.Join(home, "fake-cache", "CACHEDIR.TAG"), []byte("not a cache\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	leftOut := []string{".local/share/dvpc/store", "old-pc/store", "src/proj/target", ".cache"}

	var ids []string
	var growth []int64
	for i := range 3 {
		before := storeBlobBytes(t, d.store)
		r := d.must("snapshot")
		growth = append(growth, storeBlobBytes(t, d.store)-before)
		ids = append(ids, strings.TrimSpace(r.stdout))
		for _, want := range []string{
			"left out " + d.store + ": the store this snapshot is written to\n",
			"left out " + other + ": another dvpc store\n",
			"left out: 2 dvpc stores, 2 cache directories (",
			"; --include-caches keeps them\n",
		} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("snapshot %d does not say %q:\n%s", i+1, want, r)
			}
		}
		paths := d.lsPaths(ids[i])
		for _, dir := range leftOut {
			if hits := pathsUnder(paths, dir); len(hits) > 0 {
				t.Errorf("snapshot %d holds %s: %v", i+1, dir, hits)
			}
		}
		for _, p := range []string{"docs/report.bin", "fake-cache/CACHEDIR.TAG", ".local/share/dvpc"} {
			if !slices.Contains(paths, p) {
				t.Errorf("snapshot %d lacks %s", i+1, p)
			}
		}
	}
	t.Logf("the three snapshots grew the store by %v bytes", growth)
	for i, g := range growth[1:] {
		if g > 16<<10 {
			t.Errorf("snapshot %d of an unchanged home grew the store by %d bytes (the first by %d)", i+2, g, growth[0])
		}
	}

	out := filepath.Join(t.TempDir(), "restored")
	d.must("restore", ids[2], "--to", out)
	diffs, err := treecmp.Compare(home, out, treecmp.IgnorePaths(func(p string) bool {
		return slices.ContainsFunc(leftOut, func(dir string) bool { return len(pathsUnder([]string{p}, dir)) > 0 })
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) > 0 {
		t.Fatalf("the restore differs from the home outside what was left out:\n%s", treecmp.Format(diffs))
	}

	r := d.must("snapshot", "--include-caches")
	if !strings.Contains(r.stderr, "left out: 2 dvpc stores\n") {
		t.Errorf("with caches kept, the summary is not about the two stores alone:\n%s", r)
	}
	paths := d.lsPaths(strings.TrimSpace(r.stdout))
	for _, p := range []string{"src/proj/target/CACHEDIR.TAG", "src/proj/target/obj/main.o", ".cache/thumbs/a.png"} {
		if !slices.Contains(paths, p) {
			t.Errorf("with caches kept, the snapshot lacks %s", p)
		}
	}
	for _, dir := range leftOut[:2] {
		if hits := pathsUnder(paths, dir); len(hits) > 0 {
			t.Errorf("with caches kept, the snapshot holds the store %s: %v", dir, hits)
		}
	}

	r = d.must("--json", "snapshot")
	var js struct {
		LeftOut []struct {
			Path      string `json:"path"`
			Kind      string `json:"kind"`
			ThisStore bool   `json:"this_store"`
			Bytes     int64  `json:"bytes"`
			Exact     bool   `json:"exact"`
		} `json:"left_out"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &js); err != nil {
		t.Fatalf("snapshot --json: %v\n%s", err, r)
	}
	var got []string
	for _, lo := range js.LeftOut {
		rel, _ := filepath.Rel(home, lo.Path)
		got = append(got, fmt.Sprintf("%s %s %v %d %v", lo.Kind, rel, lo.ThisStore, lo.Bytes, lo.Exact))
	}
	slices.Sort(got)
	tag := int64(len("Signature: 8a477f597d28d172789f06886806bc55\n# This directory is a cache.\n"))
	want := []string{
		fmt.Sprintf("cache .cache false %d true", 200<<10),
		fmt.Sprintf("cache src/proj/target false %d true", 300<<10+tag),
		"dvpc store .local/share/dvpc/store true 0 false",
		"dvpc store old-pc/store false 0 false",
	}
	if !slices.Equal(got, want) {
		t.Errorf("snapshot --json lists left out %q, want %q", got, want)
	}
}

// TestInterruptedSnapshotResumes sends SIGINT to `dvpc snapshot` once it
// has stored half of a home. It exits 130 saying what it keeps, and the
// next snapshot stores only what the first had not.
func TestInterruptedSnapshotResumes(t *testing.T) {
	work := t.TempDir()
	home := filepath.Join(work, "home")
	for i := range 12 {
		dir := filepath.Join(home, fmt.Sprintf("dir%d", i%3))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		randomFile(t, filepath.Join(dir, fmt.Sprintf("file%02d.bin", i)), uint64(40+i), 4<<20)
	}

	clean := newCLI(t, filepath.Join(work, "clean"), "pass")
	clean.must("init", "--argon2-memory", "8")
	before := storeBlobBytes(t, clean.store)
	clean.snapshot(home)
	full := storeBlobBytes(t, clean.store) - before

	d := clean.onStore(filepath.Join(work, "store"))
	d.must("init", "--argon2-memory", "8")
	before = storeBlobBytes(t, d.store)
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd, args := d.command(ctx, "snapshot", home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	stored := func() int64 {
		return storeBlobBytes(t, d.store) - before + dirBytes(t, filepath.Join(d.store, ".dvpc-tmp"))
	}
wait:
	for {
		select {
		case err = <-done:
			t.Fatalf("dvpc %s finished before it had stored half of %d bytes: %v\n%s", strings.Join(args, " "), full, err, stderr.String())
		case <-time.After(2 * time.Millisecond):
			if stored() >= full/2 {
				if err := cmd.Process.Signal(os.Interrupt); err != nil {
					t.Fatal(err)
				}
				err = <-done
				break wait
			}
		}
	}
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupt {
		t.Fatalf("interrupted snapshot: %v, want exit %d\n%s", err, exitInterrupt, r)
	}
	if !regexp.MustCompile(`dvpc: interrupted: \d+ packs? \([0-9.]+ [KMG]i?B\) already written (is|are) kept; the next snapshot reuses them\n`).MatchString(r.stderr) {
		t.Errorf("the interrupt message does not say what is kept:\n%s", r)
	}
	first := storeBlobBytes(t, d.store) - before
	if first < full/3 {
		t.Fatalf("the run interrupted after storing half of %d bytes kept %d bytes\n%s", full, first, r)
	}

	before = storeBlobBytes(t, d.store)
	r = d.must("snapshot", home)
	second := storeBlobBytes(t, d.store) - before
	if !regexp.MustCompile(`reused \d+ packs? \([0-9.]+ [KMG]i?B\) written by an interrupted snapshot\n`).MatchString(r.stderr) {
		t.Errorf("the rerun does not say it reused the kept packs:\n%s", r)
	}
	again := first + second - full
	t.Logf("clean run %d bytes; interrupted run %d, rerun %d: %d stored twice", full, first, second, again)
	if again > first/20 {
		t.Errorf("the rerun stored %d bytes that the interrupted run had stored (it stored %d; at most 5%% may be stored again)", again, first)
	}
	d.requireRestores(strings.TrimSpace(r.stdout), home)
	d.must("verify", "--read-data")
}

func TestExplainStopped(t *testing.T) {
	live := context.Background()
	gone, cancel := context.WithCancel(live)
	cancel()
	disk := errors.New("write blob: no space left on device")
	for _, c := range []struct {
		ctx  context.Context
		err  error
		want string
		code int
	}{
		{gone, &image.StoppedError{Packs: 4, Bytes: 131 << 20, Err: context.Canceled},
			"interrupted: 4 packs (131.0 MiB) already written are kept; the next snapshot reuses them", exitInterrupt},
		{gone, &image.StoppedError{Packs: 1, Bytes: 3 << 20, Err: context.Canceled},
			"interrupted: 1 pack (3.0 MiB) already written is kept; the next snapshot reuses them", exitInterrupt},
		{gone, &image.StoppedError{Err: context.Canceled}, "interrupted before any data was stored", exitInterrupt},
		{live, &image.StoppedError{Packs: 2, Bytes: 64 << 20, Err: disk},
			"write blob: no space left on device; 2 packs (64.0 MiB) already written are kept; the next snapshot reuses them", exitError},
		{live, disk, disk.Error(), exitError},
	} {
		err := explainStopped(c.ctx, c.err)
		if err.Error() != c.want {
			t.Errorf("%v: says %q, want %q", c.err, err, c.want)
		}
		if code, _ := classify(c.ctx, err, "snapshot"); code != c.code {
			t.Errorf("%v: exit %d, want %d", c.err, code, c.code)
		}
	}
}
