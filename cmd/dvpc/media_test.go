package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dvpc/dvpc/image"
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

// pageLinux is what a medium's README.txt tells a person on Linux: where
// the medium appears when mounted, and the lines to type.
type pageLinux struct {
	mount     string
	commands  []string
	clients   []string // the programs the page says the medium carries
	unmounted string   // the command that reads the medium without mounting
}

// readPageLinux parses README.txt as a person reads it.
func readPageLinux(t *testing.T, readme []byte) pageLinux {
	t.Helper()
	var p pageLinux
	lines := strings.Split(strings.ReplaceAll(string(readme), "\r\n", "\n"), "\n")
	for i, l := range lines {
		if rest, ok := strings.CutPrefix(l, "dvpc programs on this "); ok {
			_, list, _ := strings.Cut(rest, ": ")
			p.clients = strings.Split(list, ", ")
		}
		rest, ok := strings.CutPrefix(l, "Linux: the ")
		if !ok {
			continue
		}
		_, rest, _ = strings.Cut(rest, " appears as ")
		p.mount = strings.TrimSuffix(strings.Fields(rest)[0], ".")
		for _, c := range lines[i+1:] {
			if cmd, ok := strings.CutPrefix(c, "    "); ok {
				p.commands = append(p.commands, cmd)
			} else if u, ok := strings.CutPrefix(c, "  Without mounting, with dvpc installed: "); ok {
				p.unmounted, _, _ = strings.Cut(u, " (")
			} else if !strings.HasPrefix(c, "  ") {
				break
			}
		}
	}
	if p.mount == "" || len(p.commands) == 0 {
		t.Fatalf("README.txt gives no Linux mount point or commands:\n%s", readme)
	}
	return p
}

// runPage types the page's Linux commands in bash, with the medium's files
// at root standing for its mount point, and checks that the restore it
// ends with gives back the snapshot.
func (f *mediaFixture) runPage(t *testing.T, p pageLinux, root string) {
	t.Helper()
	home := t.TempDir()
	for _, line := range p.commands {
		line = strings.ReplaceAll(line, p.mount, root)
		cmd := exec.Command("bash", "-c", line)
		cmd.Dir = home
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "USER=nobody", "TZ=UTC", "LC_ALL=C",
			"DVPC_PASSPHRASE=" + f.cli.env["DVPC_PASSPHRASE"]}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("the page's command %q: %v\n%s", line, err, out)
		}
		if strings.Contains(line, " log") && !strings.Contains(string(out), f.latest) {
			t.Errorf("%q does not list snapshot %s:\n%s", line, f.latest, out)
		}
	}
	requireSameTree(t, f.home, filepath.Join(home, "restored"))
}

// requireClientsListed checks that the page lists exactly the programs in
// dir, and that they are the dvpc being tested.
func requireClientsListed(t *testing.T, p pageLinux, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var have []string
	for _, e := range ents {
		// Next to the programs: their signatures and allowed_signers.
		if strings.HasSuffix(e.Name(), ".sig") || e.Name() == "allowed_signers" {
			continue
		}
		have = append(have, "dvpc/"+e.Name())
	}
	if !slices.Equal(have, p.clients) {
		t.Errorf("the page lists the programs %v, the medium carries %v", p.clients, have)
	}
}

// TestMediaPageCommands types the commands a DVD's and a USB key's pages
// give, from the paths they name, on the medium's files as osirrox and
// mtools extract them.
func TestMediaPageCommands(t *testing.T) {
	osirrox := requireTool(t, "osirrox", "xorriso")
	sgdisk := requireTool(t, "sgdisk", "gdisk")
	mcopy := requireTool(t, "mcopy", "mtools")
	f := newMediaFixture(t)
	dir := t.TempDir()

	t.Run("DVD", func(t *testing.T) {
		iso := filepath.Join(dir, "weekly.iso")
		r := f.cli.must("media", "iso", "--out", iso)
		if !strings.Contains(r.stderr, "make clients") {
			t.Errorf("media iso with one client does not say how to add the others:\n%s", r)
		}
		ext := filepath.Join(dir, "iso")
		if out, err := exec.Command(osirrox, "-indev", iso, "-extract", "/", ext).CombinedOutput(); err != nil {
			t.Fatalf("osirrox: %v\n%s", err, out)
		}
		readme, err := os.ReadFile(filepath.Join(ext, "README.txt"))
		if err != nil {
			t.Fatal(err)
		}
		p := readPageLinux(t, readme)
		requireClientsListed(t, p, filepath.Join(ext, "dvpc"))
		if p.unmounted != "dvpc --store /dev/sr0 log" {
			t.Errorf("without mounting: %q", p.unmounted)
		}
		for _, w := range []string{"make clients", "--clients"} {
			if !strings.Contains(string(readme), w) {
				t.Errorf("README.txt does not say how to get the other systems' programs (%q)", w)
			}
		}
		f.runPage(t, p, ext)
	})

	t.Run("DVD with --clients", func(t *testing.T) {
		clients := filepath.Join(dir, "dist")
		os.Mkdir(clients, 0o755)
		for _, n := range []string{"dvpc-darwin-arm64", "dvpc-windows-amd64.exe"} {
			if err := os.WriteFile(filepath.Join(clients, n), []byte("a client for "+n), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		iso := filepath.Join(dir, "clients.iso")
		if r := f.cli.must("media", "iso", "--out", iso, "--clients", clients); strings.Contains(r.stderr, "make clients") {
			t.Errorf("media iso with every system's client still says to add them:\n%s", r)
		}
		ext := filepath.Join(dir, "clients-iso")
		if out, err := exec.Command(osirrox, "-indev", iso, "-extract", "/", ext).CombinedOutput(); err != nil {
			t.Fatalf("osirrox: %v\n%s", err, out)
		}
		readme, err := os.ReadFile(filepath.Join(ext, "README.txt"))
		if err != nil {
			t.Fatal(err)
		}
		p := readPageLinux(t, readme)
		requireClientsListed(t, p, filepath.Join(ext, "dvpc"))
		for _, w := range []string{`D:\dvpc\dvpc-windows-amd64.exe --store D:\ restore latest`, "/Volumes/DVPC_", "/dvpc/dvpc-darwin-arm64 --store"} {
			if !strings.Contains(string(readme), w) {
				t.Errorf("README.txt lacks %q:\n%s", w, readme)
			}
		}
		if strings.Contains(string(readme), "make clients") {
			t.Errorf("README.txt says how to get clients the disc carries:\n%s", readme)
		}
	})

	t.Run("USB key", func(t *testing.T) {
		img := filepath.Join(dir, "key.img")
		f.cli.must("media", "usb", "--out", img)
		parts := partitions(t, sgdisk, img)
		if len(parts) != 2 {
			t.Fatalf("want 2 partitions, got %v", parts)
		}
		var roots []string
		for i, part := range parts {
			root := filepath.Join(dir, fmt.Sprintf("usb-part%d", i+1))
			os.Mkdir(root, 0o755)
			src := fmt.Sprintf("%s@@%d", img, part[0]*512)
			if out, err := exec.Command(mcopy, "-s", "-n", "-i", src, "::/", root).CombinedOutput(); err != nil {
				t.Fatalf("mcopy partition %d: %v\n%s", i+1, err, out)
			}
			roots = append(roots, root)
		}
		data := roots[1]
		readme, err := os.ReadFile(filepath.Join(data, "README.txt"))
		if err != nil {
			t.Fatal(err)
		}
		p := readPageLinux(t, readme)
		// Both partitions carry the programs; Windows mounts only the data
		// partition.
		requireClientsListed(t, p, filepath.Join(data, "dvpc"))
		requireClientsListed(t, p, filepath.Join(roots[0], "dvpc"))
		if p.unmounted != "dvpc --store /dev/sdX log" || strings.Contains(string(readme), "/dev/sr0") {
			t.Errorf("without mounting, a USB key's page should name /dev/sdX, not /dev/sr0: %q\n%s", p.unmounted, readme)
		}
		if !strings.HasSuffix(p.mount, "/DVPC") {
			t.Errorf("the data partition is labelled DVPC, the page mounts %s", p.mount)
		}
		f.runPage(t, p, data)
	})
}

// packsOf returns the digests of a snapshot's packs.
func packsOf(t *testing.T, store, id string) []string {
	t.Helper()
	_, m := snapshotManifest(t, store, id)
	var out []string
	for _, l := range m.Layers {
		if string(l.MediaType) == image.PackType {
			out = append(out, l.Digest.Hex)
		}
	}
	return out
}

// cutFixture is a store with two snapshots of different folders, which
// share no pack: a medium cut inside the pack laid out last (media lay
// packs out by digest) still restores the snapshot that does not need it.
type cutFixture struct {
	cli   *dvpcCLI
	store string
	whole string // the snapshot that does not need the last pack
	cut   string // the snapshot that does
	want  string // what whole restores to
	last  string // the digest (hex) of the pack laid out last
}

func newCutFixture(t *testing.T) *cutFixture {
	t.Helper()
	dir := t.TempDir()
	f := &cutFixture{store: filepath.Join(dir, "store")}
	f.cli = newCLI(t, f.store, "media test passphrase")
	f.cli.must("init", "--argon2-memory", "8")
	home, music := filepath.Join(dir, "home"), filepath.Join(dir, "music")
	mkhome(t, home)
	if err := os.Mkdir(music, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		randomFile(t, filepath.Join(music, fmt.Sprintf("track-%d.flac", i)), uint64(300+i), 400<<10)
	}
	ids := []string{f.cli.snapshot(home), f.cli.snapshot(music)}
	owner := map[string]string{}
	for _, id := range ids {
		for _, p := range packsOf(t, f.store, id) {
			if o, ok := owner[p]; ok && o != id {
				t.Fatalf("snapshots %s and %s share pack %s", o, id, p)
			}
			owner[p] = id
		}
	}
	f.last = slices.Max(slices.Collect(maps.Keys(owner)))
	f.cut = owner[f.last]
	f.whole = ids[0]
	if f.whole == f.cut {
		f.whole = ids[1]
	}
	f.want = filepath.Join(dir, "want")
	f.cli.must("restore", f.whole, "--to", f.want)
	return f
}

// cutInLastPack writes a copy of img cut in the middle of the last pack,
// which lies at or after from.
func (f *cutFixture) cutInLastPack(t *testing.T, img string, from int64) string {
	t.Helper()
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	pack, err := os.ReadFile(filepath.Join(f.store, "blobs", "sha256", f.last))
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b[from:], pack[:min(len(pack), 4096)])
	if i < 0 {
		t.Fatalf("pack %s is not on %s", f.last, img)
	}
	return cutCopy(t, b, from+int64(i)+int64(len(pack)/2))
}

func cutCopy(t *testing.T, b []byte, n int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), fmt.Sprintf("cut-%d.img", n))
	if err := os.WriteFile(p, b[:n], 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// requireSalvage checks what dvpc makes of a medium cut inside the last
// pack: attach names the pack and says which snapshot restores whole (exit
// 6), that snapshot restores, and the other is refused, naming the pack
// (exit 6).
func (f *cutFixture) requireSalvage(t *testing.T, cut string) {
	t.Helper()
	r := f.cli.expect(exitIntegrity, "attach", cut)
	if !strings.Contains(r.stdout, f.last) || !strings.Contains(r.stdout, "CUT SHORT") {
		t.Errorf("attach does not name the pack %s cut off:\n%s", f.last, r)
	}
	rows := 0
	for _, l := range strings.Split(r.stdout, "\n") {
		switch {
		case strings.HasPrefix(l, f.whole+" "):
			rows++
			if !strings.HasSuffix(l, "complete") {
				t.Errorf("attach: snapshot %s should be complete: %q", f.whole, l)
			}
		case strings.HasPrefix(l, f.cut+" "):
			rows++
			if !strings.HasSuffix(l, "unreadable") {
				t.Errorf("attach: snapshot %s needs the pack cut off: %q", f.cut, l)
			}
		}
	}
	if rows != 2 {
		t.Errorf("attach lists %d of the 2 snapshots:\n%s", rows, r)
	}
	var att struct {
		Snapshots []struct {
			ID       string `json:"id"`
			Complete bool   `json:"complete"`
		} `json:"snapshots"`
	}
	r = f.cli.expect(exitIntegrity, "--json", "attach", cut)
	if err := json.Unmarshal([]byte(r.stdout), &att); err != nil || len(att.Snapshots) != 2 {
		t.Fatalf("attach --json: %v\n%s", err, r)
	}
	for _, s := range att.Snapshots {
		if s.Complete != (s.ID == f.whole) {
			t.Errorf("attach --json: snapshot %s complete: %v", s.ID, s.Complete)
		}
	}
	to := filepath.Join(t.TempDir(), "whole")
	f.cli.onStore(cut).must("restore", f.whole, "--to", to)
	requireSameTree(t, f.want, to)
	r = f.cli.onStore(cut).expect(exitIntegrity, "restore", f.cut, "--to", filepath.Join(t.TempDir(), "cut"))
	if !strings.Contains(r.stderr, f.last) {
		t.Errorf("restore of a snapshot that needs the pack cut off does not name it:\n%s", r)
	}
}

// TestMediaCutShort reads a DVD image and a USB image cut short inside
// their packs, and cut before their directories.
func TestMediaCutShort(t *testing.T) {
	sgdisk := requireTool(t, "sgdisk", "gdisk")
	f := newCutFixture(t)
	dir := t.TempDir()

	t.Run("DVD", func(t *testing.T) {
		iso := filepath.Join(dir, "weekly.iso")
		f.cli.must("media", "iso", "--out", iso)
		f.requireSalvage(t, f.cutInLastPack(t, iso, 0))

		// Cut before the root directory's records (its place is in the
		// primary volume descriptor at block 16).
		b, err := os.ReadFile(iso)
		if err != nil {
			t.Fatal(err)
		}
		root := int64(binary.LittleEndian.Uint32(b[16*2048+156+2:]))
		r := f.cli.expect(exitIntegrity, "attach", cutCopy(t, b, root*2048))
		if !strings.Contains(r.stderr, "cut short") {
			t.Errorf("attach of a disc cut before its directories:\n%s", r)
		}
	})

	t.Run("USB key", func(t *testing.T) {
		img := filepath.Join(dir, "key.img")
		f.cli.must("media", "usb", "--out", img)
		parts := partitions(t, sgdisk, img)
		data := parts[1][0] * 512
		f.requireSalvage(t, f.cutInLastPack(t, img, data))

		b, err := os.ReadFile(img)
		if err != nil {
			t.Fatal(err)
		}
		r := f.cli.expect(exitIntegrity, "attach", cutCopy(t, b, data+4096))
		if !strings.Contains(r.stderr, "cut off") {
			t.Errorf("attach of a key cut before its directories:\n%s", r)
		}
	})
}
