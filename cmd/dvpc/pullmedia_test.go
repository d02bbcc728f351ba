package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/dvpc/dvpc/delta"
	"github.com/dvpc/dvpc/internal/regtest"
)

// mirrorURLs lists the URLs in a store's mirror list.
func mirrorURLs(t *testing.T, store string) []string {
	t.Helper()
	ms, err := delta.LoadMirrors(store)
	if err != nil {
		t.Fatal(err)
	}
	return ms.URLs()
}

// TestPullFromMedia: an ISO image, and an extracted disc named oci:DIR,
// are sources to pull from: a new store is made from each and restores,
// and neither becomes a mirror. A medium that lacks the newer snapshot's
// blobs is asked for them first, and is named on one line.
func TestPullFromMedia(t *testing.T) {
	osirrox := requireTool(t, "osirrox", "xorriso")
	reg := regtest.Start(t)
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	mkhome(t, home)
	ref1 := filepath.Join(dir, "ref1")
	copyTree(t, home, ref1)
	cli := newCLI(t, filepath.Join(dir, "store"), "pull media passphrase")
	cli.must("init", "--argon2-memory", "8")
	url := reg.Addr() + "/dvpc/home"
	cli.must("mirror", "add", url, "--name", "reg")
	first := cli.snapshot(home)
	cli.must("push")
	iso := filepath.Join(dir, "w.iso")
	cli.must("media", "iso", "--out", iso)

	// A new PC pulls from the disc alone; it adopts the mirror the
	// snapshot records, never the disc.
	pcStore := filepath.Join(dir, "pc")
	pc := cli.onStore(pcStore)
	r := pc.must("pull", iso)
	if !strings.Contains(r.stdout, "pulled 1 snapshot:") {
		t.Errorf("pull from the disc:\n%s", r)
	}
	if got := mirrorURLs(t, pcStore); !slices.Equal(got, []string{url}) {
		t.Errorf("after a pull from %s the mirror list is %v, want only the recorded mirror %s", iso, got, url)
	}
	pc.requireRestores(first, ref1)
	pc.must("verify", "--read-data")

	// The extracted disc, named as a local layout, is a medium too.
	ext := filepath.Join(dir, "extracted")
	if out, err := exec.Command(osirrox, "-indev", iso, "-extract", "/", ext).CombinedOutput(); err != nil {
		t.Fatalf("osirrox: %v\n%s", err, out)
	}
	other := cli.onStore(filepath.Join(dir, "other"))
	for _, arg := range []string{"oci:" + filepath.Join(ext, "store"), "oci:" + ext} {
		other.must("pull", "--all", arg)
		if got := mirrorURLs(t, other.store); slices.ContainsFunc(got, func(u string) bool { return strings.Contains(u, ext) }) {
			t.Errorf("pull --all %s added the disc to the mirror list: %v", arg, got)
		}
	}
	other.requireRestores(first, ref1)
	for _, arg := range []string{iso, "oci:" + filepath.Join(ext, "store")} {
		if r := other.expect(exitUsage, "mirror", "add", arg); !strings.Contains(r.stderr, "never a mirror") {
			t.Errorf("mirror add %s should refuse a medium:\n%s", arg, r)
		}
	}

	// A newer snapshot with many new blobs, on the mirror only. The disc
	// is asked first (the mirror failed last time) and lacks them: one
	// line names it, however many blobs it lacks.
	if err := os.Mkdir(filepath.Join(home, "new"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		randomFile(t, filepath.Join(home, "new", fmt.Sprintf("f%d.bin", i)), uint64(90+i), 1<<20)
	}
	second := cli.snapshot(home)
	cli.must("push")
	ms, err := delta.LoadMirrors(pcStore)
	if err != nil {
		t.Fatal(err)
	}
	ms.Mirrors[0].LastError = "failed last time"
	if err := ms.Save(pcStore); err != nil {
		t.Fatal(err)
	}
	r = pc.must("pull", iso)
	if n := strings.Count(r.stderr, iso); n != 1 {
		t.Errorf("the disc is named on %d lines, want one:\n%s", n, r)
	}
	m := regexp.MustCompile(regexp.QuoteMeta(iso) + ` lacks (\d+) blobs`).FindStringSubmatch(r.stderr)
	if m == nil || m[1] == "1" {
		t.Errorf("the line should say how many blobs the disc lacks:\n%s", r)
	}
	if strings.Contains(r.stdout, "behind") {
		t.Errorf("a disc is never behind: no push writes to it:\n%s", r)
	}
	pc.requireRestores(second, home)
	if got := mirrorURLs(t, pcStore); !slices.Equal(got, []string{url}) {
		t.Errorf("after the second pull the mirror list is %v, want %v", got, []string{url})
	}
}
