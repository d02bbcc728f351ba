package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dvpc/dvpc/media"
)

// pageSnap is one snapshot as `dvpc --json attach` shows it once unlocked.
type pageSnap struct {
	ID    string    `json:"id"`
	Time  time.Time `json:"time"`
	Host  string    `json:"host"`
	Files int64     `json:"files"`
	Bytes int64     `json:"bytes"`
}

// extractISO extracts an ISO image with osirrox and returns the directory.
func extractISO(t *testing.T, osirrox, iso string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "iso")
	if out, err := exec.Command(osirrox, "-indev", iso, "-extract", "/", dir).CombinedOutput(); err != nil {
		t.Fatalf("osirrox: %v\n%s", err, out)
	}
	return dir
}

// extractUSB copies both partitions of a USB image out with mtools and
// returns the directories: the EFI system partition, then the data
// partition.
func extractUSB(t *testing.T, sgdisk, mcopy, img string) (esp, data string) {
	t.Helper()
	parts := partitions(t, sgdisk, img)
	if len(parts) != 2 {
		t.Fatalf("want 2 partitions, got %v", parts)
	}
	var roots []string
	for i, part := range parts {
		root := filepath.Join(t.TempDir(), fmt.Sprintf("part%d", i+1))
		os.Mkdir(root, 0o755)
		src := fmt.Sprintf("%s@@%d", img, part[0]*512)
		if out, err := exec.Command(mcopy, "-s", "-n", "-i", src, "::/", root).CombinedOutput(); err != nil {
			t.Fatalf("mcopy partition %d: %v\n%s", i+1, err, out)
		}
		roots = append(roots, root)
	}
	return roots[0], roots[1]
}

// TestMediaPagesPrivate builds DVD images and USB keys with and without
// --public-details, extracts them with osirrox and mtools, and reads their
// pages as a finder would: by default they name no host, no snapshot, no
// time, file count or size, and with --public-details they do. The client
// shows all of it once unlocked.
func TestMediaPagesPrivate(t *testing.T) {
	osirrox := requireTool(t, "osirrox", "xorriso")
	sgdisk := requireTool(t, "sgdisk", "gdisk")
	mcopy := requireTool(t, "mcopy", "mtools")
	f := newMediaFixture(t)
	const host = "quokka-ws-7f3a9c"
	f.cli.must("snapshot", "--host", host, f.home)
	dir := t.TempDir()
	iso := filepath.Join(dir, "private.iso")
	f.cli.must("media", "iso", "--out", iso)

	// Once unlocked, attach shows what the pages leave out.
	var att struct {
		Signer    string     `json:"signer"`
		Snapshots []pageSnap `json:"snapshots"`
	}
	r := f.cli.must("--json", "attach", iso)
	if err := json.Unmarshal([]byte(r.stdout), &att); err != nil || len(att.Snapshots) != 3 {
		t.Fatalf("attach --json: %v\n%s", err, r)
	}
	if att.Snapshots[2].Host != host {
		t.Fatalf("attach shows host %q, want %q", att.Snapshots[2].Host, host)
	}
	// What a page may not show unless asked: the host, and each snapshot's
	// ID, time, file count and size, as each page writes them.
	secrets := map[string][]string{"index.html": {host}, "README.txt": {host}}
	for _, s := range att.Snapshots {
		for _, page := range []string{"index.html", "README.txt"} {
			secrets[page] = append(secrets[page], s.ID, s.Time.UTC().Format("2006-01-02 15:04:05"), media.HumanBytes(s.Bytes))
		}
		secrets["index.html"] = append(secrets["index.html"], fmt.Sprintf(`<td class="n">%d</td>`, s.Files))
		secrets["README.txt"] = append(secrets["README.txt"], fmt.Sprintf("%d files", s.Files))
	}
	signerKey := strings.Fields(att.Signer)[1]

	pagesOf := func(roots ...string) map[string]string {
		out := map[string]string{}
		for _, root := range roots {
			for _, p := range []string{"index.html", "README.txt"} {
				b, err := os.ReadFile(filepath.Join(root, p))
				if err != nil {
					t.Fatal(err)
				}
				// html/template writes the key's + as &#43;.
				out[filepath.Join(filepath.Base(root), p)] = strings.ReplaceAll(string(b), "&#43;", "+")
			}
		}
		return out
	}
	isoDetails := filepath.Join(dir, "details.iso")
	f.cli.must("media", "iso", "--out", isoDetails, "--public-details")
	usb := filepath.Join(dir, "private.img")
	f.cli.must("media", "usb", "--out", usb)
	usbDetails := filepath.Join(dir, "details.img")
	f.cli.must("media", "usb", "--out", usbDetails, "--public-details")
	espPriv, dataPriv := extractUSB(t, sgdisk, mcopy, usb)
	espPub, dataPub := extractUSB(t, sgdisk, mcopy, usbDetails)

	for what, pages := range map[string]map[string]string{
		"DVD": pagesOf(extractISO(t, osirrox, iso)), "USB key": pagesOf(espPriv, dataPriv)} {
		for name, page := range pages {
			for _, s := range secrets[filepath.Base(name)] {
				if strings.Contains(page, s) {
					t.Errorf("%s %s shows %q without --public-details", what, name, s)
				}
			}
			for _, want := range []string{"DVPC_", "SHA256:", signerKey, "dvpc attach", "dvpc/dvpc-linux-amd64", "ssh-keygen -Y verify"} {
				if !strings.Contains(page, want) {
					t.Errorf("%s %s lacks %q", what, name, want)
				}
			}
		}
	}
	for what, pages := range map[string]map[string]string{
		"DVD": pagesOf(extractISO(t, osirrox, isoDetails)), "USB key": pagesOf(espPub, dataPub)} {
		for name, page := range pages {
			for _, s := range secrets[filepath.Base(name)] {
				if !strings.Contains(page, s) {
					t.Errorf("%s %s with --public-details lacks %q", what, name, s)
				}
			}
		}
	}
}

// TestMediaSignedPrograms checks the programs on a DVD image and a USB
// key: OpenSSH's ssh-keygen accepts each one with the line README.txt
// gives, and refuses an altered one; attach and verify check them and
// name one whose bytes, signature or allowed_signers were changed.
func TestMediaSignedPrograms(t *testing.T) {
	osirrox := requireTool(t, "osirrox", "xorriso")
	sgdisk := requireTool(t, "sgdisk", "gdisk")
	mcopy := requireTool(t, "mcopy", "mtools")
	requireTool(t, "ssh-keygen", "openssh-client")
	f := newMediaFixture(t)
	dir := t.TempDir()
	clients := filepath.Join(dir, "dist")
	os.Mkdir(clients, 0o755)
	const winClient = "a client for dvpc-windows-amd64.exe, which no test runs"
	if err := os.WriteFile(filepath.Join(clients, "dvpc-windows-amd64.exe"), []byte(winClient), 0o755); err != nil {
		t.Fatal(err)
	}
	iso := filepath.Join(dir, "signed.iso")
	f.cli.must("media", "iso", "--out", iso, "--clients", clients)
	img := filepath.Join(dir, "signed.img")
	f.cli.must("media", "usb", "--out", img, "--clients", clients)
	ext := extractISO(t, osirrox, iso)
	esp, data := extractUSB(t, sgdisk, mcopy, img)
	want := []string{"dvpc-linux-amd64", "dvpc-windows-amd64.exe"}

	for _, root := range []string{ext, esp, data} {
		readme, err := os.ReadFile(filepath.Join(root, "README.txt"))
		if err != nil {
			t.Fatal(err)
		}
		var line, fp string
		for _, l := range strings.Split(strings.ReplaceAll(string(readme), "\r\n", "\n"), "\n") {
			if c, ok := strings.CutPrefix(l, "    ssh-keygen "); ok {
				line = "ssh-keygen " + c
			}
			if s, ok := strings.CutPrefix(l, "Signer: "); ok {
				fp = s
			}
		}
		if line == "" || fp == "" {
			t.Fatalf("%s: README.txt gives no ssh-keygen line or no signer:\n%s", root, readme)
		}
		check := func(folder, client string) (string, error) {
			cmd := exec.Command("bash", "-c", strings.ReplaceAll(line, "CLIENT", client))
			cmd.Dir = folder
			out, err := cmd.CombinedOutput()
			return string(out), err
		}
		for _, c := range want {
			out, err := check(filepath.Join(root, "dvpc"), c)
			if err != nil || !strings.Contains(out, `Good "dvpc-client" signature for dvpc with ED25519 key `+fp) {
				t.Errorf("%s: %s: %v\n%s", root, c, err, out)
			}
		}
		// An altered copy fails the same check.
		alt := t.TempDir()
		for _, n := range []string{"allowed_signers", want[1] + ".sig"} {
			b, _ := os.ReadFile(filepath.Join(root, "dvpc", n))
			os.WriteFile(filepath.Join(alt, n), b, 0o644)
		}
		os.WriteFile(filepath.Join(alt, want[1]), []byte(strings.Replace(winClient, "no test", "a test", 1)), 0o755)
		if out, err := check(alt, want[1]); err == nil {
			t.Errorf("ssh-keygen accepts an altered program:\n%s", out)
		}
	}

	r := f.cli.must("attach", iso)
	if !strings.Contains(r.stdout, "programs signed by the store's key: dvpc/dvpc-linux-amd64, dvpc/dvpc-windows-amd64.exe") {
		t.Errorf("attach does not list the signed programs:\n%s", r)
	}
	r = f.cli.must("attach", img)
	if !strings.Contains(r.stdout, "EFI partition: dvpc/dvpc-windows-amd64.exe") {
		t.Errorf("attach does not check the EFI partition's programs:\n%s", r)
	}

	// One byte of a program flipped inside the ISO image: attach and
	// verify fail as damage (6), naming it.
	b, err := os.ReadFile(iso)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte(winClient))
	if i < 0 {
		t.Fatal("the program's bytes are not in the image")
	}
	flipByte(t, iso, int64(i+5))
	for _, args := range [][]string{{"attach", iso}, {"--store", iso, "verify"}} {
		r := f.cli.expect(exitIntegrity, args...)
		if !strings.Contains(r.stdout, "BAD PROGRAM program dvpc/dvpc-windows-amd64.exe") || !strings.Contains(r.stderr, "dvpc/dvpc-windows-amd64.exe") ||
			strings.Contains(r.stdout, "dvpc-linux-amd64:") {
			t.Errorf("%v does not name the altered program (only):\n%s", args, r)
		}
	}

	// On a medium read as a directory: a signature removed, allowed_signers
	// naming another key, a program added.
	for _, c := range []struct {
		name, want string
		change     func(folder string)
	}{
		{"signature removed", "dvpc/dvpc-linux-amd64: it carries no signature", func(d string) { os.Remove(filepath.Join(d, "dvpc-linux-amd64.sig")) }},
		{"allowed_signers replaced", "dvpc/allowed_signers: it does not name the store's signing key", func(d string) {
			os.WriteFile(filepath.Join(d, "allowed_signers"), []byte("dvpc namespaces=\"dvpc-client\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGaTVo+0PfPHyqnur9zw+7Qd/RXc2T9PVynMGRvDV+IC\n"), 0o644)
		}},
		{"program added", "dvpc/setup.exe: it carries no signature", func(d string) {
			os.WriteFile(filepath.Join(d, "setup.exe"), []byte("run me"), 0o755)
		}},
	} {
		root := filepath.Join(t.TempDir(), "medium")
		copyTree(t, data, root)
		c.change(filepath.Join(root, "dvpc"))
		r := f.cli.expect(exitIntegrity, "attach", root)
		if !strings.Contains(r.stdout, "BAD PROGRAM program "+c.want) {
			t.Errorf("%s: attach does not say %q:\n%s", c.name, c.want, r)
		}
	}
}

// TestMediaDirSpecialFiles reads an extracted disc in which a blob is a
// FIFO that no one writes, and another a symbolic link out of the medium:
// restore fails at once as damage (6), naming the file, instead of
// hanging or reading outside.
func TestMediaDirSpecialFiles(t *testing.T) {
	osirrox := requireTool(t, "osirrox", "xorriso")
	f := newMediaFixture(t)
	iso := filepath.Join(t.TempDir(), "disc.iso")
	f.cli.must("media", "iso", "--out", iso, "--no-clients")
	pack, _ := f.largestPack(t)
	for _, c := range []struct {
		name, want string
		make       func(blob string) error
	}{
		{"FIFO", "a FIFO: not a regular file", func(blob string) error { return syscall.Mkfifo(blob, 0o644) }},
		{"link", "a symbolic link: not a regular file", func(blob string) error { return os.Symlink(pack, blob) }},
	} {
		ext := extractISO(t, osirrox, iso)
		blob := filepath.Join(ext, "store", "blobs", "sha256", filepath.Base(pack))
		if err := os.Remove(blob); err != nil {
			t.Fatal(err)
		}
		if err := c.make(blob); err != nil {
			t.Fatal(err)
		}
		r := f.cli.onStore(ext).expect(exitIntegrity, "restore", "latest", "--to", filepath.Join(t.TempDir(), "out"))
		if !strings.Contains(r.stderr, filepath.Base(pack)+": "+c.want) {
			t.Errorf("%s: restore does not name the blob:\n%s", c.name, r)
		}
	}
}
