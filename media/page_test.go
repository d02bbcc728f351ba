package media

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func samplePage() Page {
	return Page{
		Label: "DVPC_20261125", StoreID: "AXR45HSZ7O2RMIC4", Medium: "DVD",
		Signer:    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMLV5MaNJKuNiHUE1lioc4xWa0ZPkd8fFGLVDeUgQTQl",
		Signature: "SHA256:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
		Clients:   []string{"dvpc/dvpc-linux-amd64", "dvpc/dvpc-windows-amd64.exe"},
		Snapshots: []PageSnapshot{
			{ID: "0aa47ed2ea34", Time: time.Date(2026, 11, 18, 9, 30, 0, 0, time.UTC), Host: "laptop", Files: 1204, Bytes: 3 << 30},
			{ID: "c6401544be83", Time: time.Date(2026, 11, 25, 9, 31, 7, 0, time.UTC), Host: "laptop", Files: 1210, Bytes: 3<<30 + 5<<20},
		},
	}
}

// TestIndexHTMLInChromium renders the disc's index page in headless
// Chromium, as a phone or a strange PC would show it, and checks the text of
// the rendered page and that a screenshot is drawn.
func TestIndexHTMLInChromium(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: apt-get install chromium")
	}
	html, err := IndexHTML(samplePage())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "index.html")
	if err := os.WriteFile(page, html, 0o644); err != nil {
		t.Fatal(err)
	}
	flags := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + filepath.Join(dir, "profile"), "--window-size=412,915"}
	shot := filepath.Join(dir, "shot.png")
	out, err := exec.Command(chromium, append(flags, "--screenshot="+shot, "file://"+page)...).CombinedOutput()
	if err != nil {
		t.Fatalf("chromium screenshot: %v\n%s", err, out)
	}
	png, err := os.ReadFile(shot)
	if err != nil || len(png) < 1000 || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("no screenshot drawn (%d bytes, %v)", len(png), err)
	}
	// The text of the rendered page, as the browser laid it out.
	text, err := exec.Command(chromium, append(flags, "--dump-dom", "file://"+page)...).Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v", err)
	}
	for _, want := range []string{"0aa47ed2ea34", "c6401544be83", "2026-11-25 09:31:07 UTC", "3.0 GiB", "SHA256:abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
		"Linux", "macOS", "Windows", "dvpc-windows-amd64.exe"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("rendered page lacks %q", want)
		}
	}
}

func TestReadme(t *testing.T) {
	txt := string(ReadmeTXT(samplePage()))
	for _, want := range []string{"0aa47ed2ea34", "2026-11-25 09:31:07 UTC", "index.html", "restore latest", "\r\n"} {
		if !strings.Contains(txt, want) {
			t.Errorf("README.txt lacks %q", want)
		}
	}
}

func TestParseCapacity(t *testing.T) {
	for in, want := range map[string]int64{"dvd": 4_700_372_992, "BD": 25_025_314_816, "700M": 700 << 20, "1.5GiB": 3 << 29, "4.7GB": 4_700_000_000, "123": 123} {
		got, err := ParseCapacity(in)
		if err != nil || got != want {
			t.Errorf("ParseCapacity(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-5M", "lots", "0"} {
		if _, err := ParseCapacity(in); err == nil {
			t.Errorf("ParseCapacity(%q) accepted", in)
		}
	}
}
