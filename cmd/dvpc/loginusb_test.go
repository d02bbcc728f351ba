package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// keyDataPart returns the offset and size of a USB image's data partition
// as sgdisk reads them.
func keyDataPart(t *testing.T, img string) (off, size int64) {
	t.Helper()
	out, err := exec.Command("sgdisk", "-i", "2", img).CombinedOutput()
	if err != nil {
		t.Fatalf("sgdisk -i 2: %v\n%s", err, out)
	}
	first := regexp.MustCompile(`First sector: (\d+)`).FindSubmatch(out)
	n := regexp.MustCompile(`Partition size: (\d+) sectors`).FindSubmatch(out)
	if first == nil || n == nil {
		t.Fatalf("sgdisk -i 2 gives no first sector or size:\n%s", out)
	}
	a, _ := strconv.ParseInt(string(first[1]), 10, 64)
	b, _ := strconv.ParseInt(string(n[1]), 10, 64)
	return a * 512, b * 512
}

// fsckKey runs fsck.fat -n on the key's data partition, copied out at the
// offset the partition table gives, and wants no finding.
func fsckKey(t *testing.T, img string) {
	t.Helper()
	off, size := keyDataPart(t, img)
	in, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	part := filepath.Join(t.TempDir(), "data.part")
	out, err := os.Create(part)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, io.NewSectionReader(in, off, size)); err != nil {
		t.Fatal(err)
	}
	out.Close()
	b, err := exec.Command("fsck.fat", "-n", part).CombinedOutput()
	if err != nil {
		t.Fatalf("fsck.fat -n on the key's data partition: %v\n%s", err, b)
	}
	for _, bad := range []string{"Reclaimed", "differ", "wrong", "uninitialized", "Truncating", "Dirty", "lost"} {
		if strings.Contains(string(b), bad) {
			t.Fatalf("fsck.fat -n on the key's data partition reports %q:\n%s", bad, b)
		}
	}
}

func fileSum(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

var syncedID = regexp.MustCompile(`snapshot ([0-9a-f]{12}) of `)

// TestOfflineThenOnlineUSB: a strange PC logs in from a USB image, the
// person edits, and a sync with every mirror down writes the snapshot onto
// the key in place (read back by attach, restore, fsck.fat and mtools) and
// queues it for the mirrors; with the mirrors back, the next sync delivers.
// A key marked read-only is named and left as it was.
func TestOfflineThenOnlineUSB(t *testing.T) {
	for _, tool := range []string{"sgdisk", "fsck.fat", "mdir"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: install gdisk, dosfstools and mtools", tool)
		}
	}
	h := newHomePC(t, 2)
	h.cli.snapshot(h.home)
	h.cli.must("push")
	key := filepath.Join(h.dir, "key.img")
	h.cli.must("media", "usb", "--out", key)

	pc := h.strangePC(t, "pc")
	dir := filepath.Join(t.TempDir(), "work")
	pc.must("login", "--from", key, "--to", dir)
	writeFileString(t, filepath.Join(dir, "offline.txt"), "written on the train\n")
	writeFileString(t, filepath.Join(dir, "notes", "more.txt"), strings.Repeat("more notes ", 3000))
	for _, r := range h.regs {
		r.Stop()
	}

	// Offline: the key takes the snapshot, the mirrors queue it. The key
	// the login used is found again without --from.
	r := pc.must("sync", dir)
	m := syncedID.FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("sync names no snapshot:\n%s", r)
	}
	id := m[1]
	if !strings.Contains(r.stderr, "the USB key "+key) || !strings.Contains(r.stderr, "written") {
		t.Errorf("sync does not say it wrote the key:\n%s", r)
	}
	if !strings.Contains(r.stderr, "queued") {
		t.Errorf("an offline sync does not say it queued:\n%s", r)
	}
	if ml := pc.must("--json", "mirror", "list"); !strings.Contains(ml.stdout, `"snapshots_pending":1`) {
		t.Errorf("mirror list does not show the queued snapshot:\n%s", ml)
	}
	a := pc.must("attach", key)
	if !strings.Contains(a.stdout, id) {
		t.Errorf("attach does not show snapshot %s on the key:\n%s", id, a)
	}
	pc.onStore(key).requireRestores(id, dir)
	fsckKey(t, key)
	off, _ := keyDataPart(t, key)
	loc := fmt.Sprintf("%s@@%d", key, off)
	out, err := exec.Command("mdir", "-i", loc, "::store").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "index") {
		t.Fatalf("mdir ::store: %v\n%s", err, out)
	}
	idx, err := exec.Command("mtype", "-i", loc, "::store/index.json").CombinedOutput()
	if err != nil || !bytes.Contains(idx, []byte(id)) {
		t.Fatalf("mtype ::store/index.json does not name snapshot %s: %v\n%s", id, err, idx)
	}

	// Online again: the next sync delivers to the mirrors.
	for _, r := range h.regs {
		r.Restart(t)
	}
	pc.must("sync", dir)
	if ml := pc.must("--json", "mirror", "list"); strings.Contains(ml.stdout, `"snapshots_pending":1`) {
		t.Errorf("mirror list still shows a queued snapshot:\n%s", ml)
	}
	pc2 := h.strangePC(t, "pc2")
	d2 := filepath.Join(t.TempDir(), "w2")
	pc2.must("login", "--mirror", h.proxies[1].addr+"/dvpc/home", "--to", d2)
	if b, err := os.ReadFile(filepath.Join(d2, "offline.txt")); err != nil || string(b) != "written on the train\n" {
		t.Errorf("the snapshot did not reach the mirrors: %q, %v", b, err)
	}

	// A key marked read-only: sync says so, queues, and leaves it alone.
	if err := os.Chmod(key, 0o444); err != nil {
		t.Fatal(err)
	}
	before := fileSum(t, key)
	for _, r := range h.regs {
		r.Stop()
	}
	writeFileString(t, filepath.Join(dir, "later.txt"), "after the key was locked\n")
	r = pc.must("sync", "--from", key, dir)
	if !strings.Contains(r.stderr, "read-only") || !strings.Contains(r.stderr, key) {
		t.Errorf("sync to a read-only key does not say so:\n%s", r)
	}
	if !strings.Contains(r.stderr, "queued") {
		t.Errorf("sync to a read-only key with the mirrors down does not queue:\n%s", r)
	}
	if ml := pc.must("--json", "mirror", "list"); !strings.Contains(ml.stdout, `"snapshots_pending":1`) {
		t.Errorf("mirror list does not show the queued snapshot:\n%s", ml)
	}
	if fileSum(t, key) != before {
		t.Error("the read-only key changed")
	}
}

// TestSyncToFullKey: a snapshot that does not fit on the key is refused
// before anything is written, naming the blob and what is missing.
func TestSyncToFullKey(t *testing.T) {
	h := newHomePC(t, 0)
	h.cli.snapshot(h.home)
	key := filepath.Join(h.dir, "key.img")
	h.cli.must("media", "usb", "--out", key, "--size", "320M")
	pc := h.strangePC(t, "pc")
	dir := filepath.Join(t.TempDir(), "work")
	pc.must("login", "--from", key, "--to", dir)
	before := fileSum(t, key)
	randomFile(t, filepath.Join(dir, "film.bin"), 11, 80<<20)
	r := pc.must("sync", dir)
	full := regexp.MustCompile(`the USB key \S+ is full: blob sha256:[0-9a-f]{64} and the rest need [0-9.]+ [KMG]i?B, [0-9.]+ [KMG]i?B more than the [0-9.]+ [KMG]i?B free`)
	if !full.MatchString(r.stderr) {
		t.Errorf("sync to a full key does not name the blob and what is missing:\n%s", r)
	}
	if fileSum(t, key) != before {
		t.Error("a sync that did not fit changed the key")
	}
	fsckKey(t, key)
}
