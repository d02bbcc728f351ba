package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// mediaFixture is a store made from the sample home, with two snapshots.
type mediaFixture struct {
	home   string // the state of the latest snapshot
	cli    *dvpcCLI
	store  string
	latest string // ID of the latest snapshot
}

func newMediaFixture(t *testing.T) *mediaFixture {
	t.Helper()
	dir := t.TempDir()
	f := &mediaFixture{home: filepath.Join(dir, "home"), store: filepath.Join(dir, "store")}
	mkhome(t, f.home)
	f.cli = newCLI(t, f.store, "media test passphrase")
	f.cli.must("init", "--argon2-memory", "8")
	f.cli.snapshot(f.home)
	randomFile(t, filepath.Join(f.home, "docs", "scan.bin"), 11, 3<<20)
	f.latest = f.cli.snapshot(f.home)
	return f
}

// storePack returns the path of the largest pack of the latest snapshot.
func (f *mediaFixture) largestPack(t *testing.T) (string, []byte) {
	t.Helper()
	_, m := snapshotManifest(t, f.store, f.latest)
	var best string
	var size int64
	for _, l := range m.Layers {
		if string(l.MediaType) == "application/vnd.dvpc.pack.v1" && l.Size > size {
			best, size = blobPath(f.store, l.Digest), l.Size
		}
	}
	b, err := os.ReadFile(best)
	if err != nil {
		t.Fatal(err)
	}
	return best, b
}

// flipInImage flips one byte of the image inside the copy of needle's middle.
func flipInImage(t *testing.T, img string, needle []byte) {
	t.Helper()
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	mid := needle[len(needle)/2 : len(needle)/2+64]
	i := bytes.Index(b, mid)
	if i < 0 {
		t.Fatalf("pack bytes not found in %s", img)
	}
	flipByte(t, img, int64(i+10))
}

func TestMediaISO(t *testing.T) {
	xorriso := requireTool(t, "xorriso", "xorriso")
	isoinfo := requireTool(t, "isoinfo", "genisoimage")
	osirrox := requireTool(t, "osirrox", "xorriso")
	f := newMediaFixture(t)
	dir := t.TempDir()
	iso := filepath.Join(dir, "weekly.iso")
	f.cli.must("media", "iso", "--out", iso)
	f.cli.expect(1, "media", "iso", "--out", iso) // never overwritten

	// Independent tools list the layout.
	out, err := exec.Command(xorriso, "-indev", iso, "-find", "/", "-type", "f").CombinedOutput()
	if err != nil {
		t.Fatalf("xorriso: %v\n%s", err, out)
	}
	for _, want := range []string{"/store/index.json", "/store/oci-layout", "/index.html", "/README.txt", "/dvpc/dvpc-linux-amd64"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("xorriso does not list %s:\n%s", want, out)
		}
	}
	out, err = exec.Command(isoinfo, "-R", "-l", "-i", iso).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "index.json") || !strings.Contains(string(out), "sha256") {
		t.Fatalf("isoinfo -R -l: %v\n%s", err, out)
	}
	if out, err := exec.Command(isoinfo, "-d", "-i", iso).CombinedOutput(); err != nil || !strings.Contains(string(out), "Volume id: DVPC_") {
		t.Errorf("isoinfo -d: volume label: %v\n%s", err, out)
	}

	// Extracted with osirrox, it restores identically.
	ext := filepath.Join(dir, "extracted")
	if out, err := exec.Command(osirrox, "-indev", iso, "-extract", "/", ext).CombinedOutput(); err != nil {
		t.Fatalf("osirrox: %v\n%s", err, out)
	}
	f.cli.onStore(filepath.Join(ext, "store")).requireRestores("latest", f.home)

	// Straight from the image file, without mounting.
	f.cli.onStore(iso).requireRestores("latest", f.home)
	f.cli.onStore(iso).must("verify", "--read-data")
	r := f.cli.must("attach", iso)
	if !strings.Contains(r.stdout, "DVPC_") || strings.Count(r.stdout, "good") != 2 {
		t.Errorf("attach:\n%s", r)
	}
	// Read-only: a snapshot into the medium is refused.
	f.cli.onStore(iso).expect(exitUsage, "snapshot", f.home)

	// Reproducible: a second build is byte-identical.
	iso2 := filepath.Join(dir, "again.iso")
	f.cli.must("media", "iso", "--out", iso2)
	a, _ := os.ReadFile(iso)
	b, _ := os.ReadFile(iso2)
	if !bytes.Equal(a, b) {
		t.Error("two builds of the same store differ")
	}

	// A flipped byte inside a pack on the disc is found and named.
	pack, pb := f.largestPack(t)
	flipInImage(t, iso2, pb)
	r = f.cli.onStore(iso2).expect(exitIntegrity, "verify", "--read-data")
	if !strings.Contains(r.stdout+r.stderr, filepath.Base(pack)) {
		t.Errorf("verify does not name blob %s:\n%s", filepath.Base(pack), r)
	}
}

func TestMediaISOSpan(t *testing.T) {
	f := newMediaFixture(t)
	for i := range 4 {
		randomFile(t, filepath.Join(f.home, "docs", "big"+string(rune('a'+i))+".bin"), uint64(20+i), 3<<20)
		f.cli.snapshot(f.home)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "set.iso")
	r := f.cli.expect(exitUsage, "media", "iso", "--out", out, "--capacity", "8M", "--no-clients")
	if !strings.Contains(r.stderr, "--span") || !strings.Contains(r.stderr, "--snapshots latest") {
		t.Errorf("a set too large for one disc should suggest --span and --snapshots latest:\n%s", r)
	}
	r = f.cli.must("media", "iso", "--out", out, "--capacity", "8M", "--span", "--no-clients")
	discs := strings.Fields(r.stdout)
	if len(discs) < 3 {
		t.Fatalf("want at least three discs, got %v\n%s", discs, r)
	}
	for _, d := range discs {
		if fi, err := os.Stat(d); err != nil || fi.Size() > 8<<20 {
			t.Fatalf("disc %s: %v (%d bytes, capacity 8 MiB)", d, err, fi.Size())
		}
	}
	all := strings.Join(discs, ",")
	f.cli.onStore(all).requireRestores("latest", f.home)
	f.cli.onStore(all).must("verify", "--read-data")

	// One disc missing: attach and restore name it.
	partial := append([]string{discs[0]}, discs[2:]...)
	r = f.cli.expect(exitPartial, append([]string{"attach"}, partial...)...)
	if !strings.Contains(r.stdout, "MISSING disc 2") {
		t.Errorf("attach without disc 2:\n%s", r)
	}
	r = f.cli.onStore(strings.Join(partial, ",")).run("restore", "latest", "--to", filepath.Join(dir, "partial"))
	if r.code == 0 || !strings.Contains(r.stderr, "disc 2 of") {
		t.Errorf("restore without disc 2 should name it:\n%s", r)
	}
	var att struct {
		Missing []int `json:"missing_discs"`
	}
	r = f.cli.run(append([]string{"--json", "attach"}, partial...)...)
	if err := json.Unmarshal([]byte(r.stdout), &att); err != nil || len(att.Missing) != 1 || att.Missing[0] != 2 {
		t.Errorf("attach --json: %v %+v\n%s", err, att, r)
	}
}

func TestMediaUSB(t *testing.T) {
	sgdisk := requireTool(t, "sgdisk", "gdisk")
	fsck := requireTool(t, "fsck.fat", "dosfstools")
	mcopy := requireTool(t, "mcopy", "mtools")
	f := newMediaFixture(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "key.img")
	f.cli.must("media", "usb", "--out", img)

	if out, err := exec.Command(sgdisk, "-v", img).CombinedOutput(); err != nil || !strings.Contains(string(out), "No problems found") {
		t.Fatalf("sgdisk -v: %v\n%s", err, out)
	}
	parts := partitions(t, sgdisk, img)
	if len(parts) != 2 {
		t.Fatalf("want 2 partitions, got %v", parts)
	}
	for i, p := range parts {
		part := filepath.Join(dir, "part"+string(rune('1'+i)))
		cutOut(t, img, part, p[0], p[1])
		if out, err := exec.Command(fsck, "-n", part).CombinedOutput(); err != nil {
			t.Errorf("fsck.fat -n partition %d: %v\n%s", i+1, err, out)
		}
	}
	ext := filepath.Join(dir, "mcopy")
	os.Mkdir(ext, 0o755)
	if out, err := exec.Command(mcopy, "-s", "-n", "-i", filepath.Join(dir, "part2"), "::store", ext).CombinedOutput(); err != nil {
		t.Fatalf("mcopy: %v\n%s", err, out)
	}
	f.cli.onStore(filepath.Join(ext, "store")).requireRestores("latest", f.home)

	f.cli.onStore(img).requireRestores("latest", f.home)
	f.cli.onStore(img).must("verify", "--read-data")
	f.cli.must("attach", img)

	_, pb := f.largestPack(t)
	flipInImage(t, img, pb)
	f.cli.onStore(img).expect(exitIntegrity, "verify", "--read-data")
}

// partitions returns the first and last sector of each partition.
func partitions(t *testing.T, sgdisk, img string) [][2]int64 {
	t.Helper()
	out, err := exec.Command(sgdisk, "-p", img).CombinedOutput()
	if err != nil {
		t.Fatalf("sgdisk -p: %v\n%s", err, out)
	}
	var ps [][2]int64
	inTable := false
	for _, line := range strings.Split(string(out), "\n") {
		fs := strings.Fields(line)
		if len(fs) > 0 && fs[0] == "Number" {
			inTable = true
			continue
		}
		if inTable && len(fs) >= 3 {
			var a, b int64
			if _, err := fmtSscan(fs[1], &a); err == nil {
				fmtSscan(fs[2], &b)
				ps = append(ps, [2]int64{a, b})
			}
		}
	}
	return ps
}

func cutOut(t *testing.T, img, dst string, first, last int64) {
	t.Helper()
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b[first*512:(last+1)*512], 0o600); err != nil {
		t.Fatal(err)
	}
}

func fmtSscan(s string, v *int64) (int, error) { return fmt.Sscan(s, v) }
