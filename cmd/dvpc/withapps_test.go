package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/dvpc/dvpc/internal/regtest"
)

// TestLoginInstallsAppsFromMedium: a DVD made --with-apps carries the
// app's blobs and names the app on its pages. A strange PC logs in from
// it (or from a USB key made --with-apps) with the app registry down, with
// a mirror for the store and then with none, and the app installs and
// runs; app install takes it from the disc too. A flipped byte in the app's
// layer on the disc is refused and named: the layer comes from the
// registry while it is up, and the app is not installed once it is down,
// while the login still completes.
func TestLoginInstallsAppsFromMedium(t *testing.T) {
	if runtimePlatform() != "linux/amd64" {
		t.Fatalf("this test runs the linux/amd64 build; this PC is %s", runtimePlatform())
	}
	osirrox := requireTool(t, "osirrox", "xorriso")
	apps := regtest.Start(t)
	ref := apps.Addr() + "/apps/hello:1"
	_, plat := pushHello(t, ref, buildHello(t), "v1")
	h := newHomePC(t, 1)
	h.cli.must("app", "add", "hello", ref)
	h.cli.snapshot(h.home)
	h.cli.must("push")

	iso := filepath.Join(h.dir, "apps.iso")
	h.cli.must("media", "iso", "--out", iso, "--no-clients", "--with-apps")
	onISO := extractISO(t, osirrox, iso)
	for _, page := range []string{"index.html", "README.txt"} {
		b, err := os.ReadFile(filepath.Join(onISO, page))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"hello", ref, "linux/arm64", "public images"} {
			if !strings.Contains(string(b), want) {
				t.Errorf("%s of a disc made --with-apps does not say %q", page, want)
			}
		}
	}
	// Every blob of every platform's image is on the disc, by digest.
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r.Context().Digest(plat["linux/amd64"].String()))
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	layer := m.Layers[0].Digest
	for p, d := range plat {
		if _, err := os.Stat(filepath.Join(onISO, "store", "blobs", "sha256", d.Hex)); err != nil {
			t.Errorf("the disc lacks the %s manifest: %v", p, err)
		}
	}
	for _, d := range append(m.Layers, m.Config) {
		if _, err := os.Stat(filepath.Join(onISO, "store", "blobs", "sha256", d.Digest.Hex)); err != nil {
			t.Errorf("the disc lacks %s: %v", d.Digest, err)
		}
	}
	// Only the platforms named: the others' manifests stay off the disc.
	one := filepath.Join(h.dir, "one.iso")
	h.cli.must("media", "iso", "--out", one, "--no-clients", "--with-apps", "linux/amd64")
	onOne := extractISO(t, osirrox, one)
	for p, d := range plat {
		_, err := os.Stat(filepath.Join(onOne, "store", "blobs", "sha256", d.Hex))
		if (p == "linux/amd64") != (err == nil) {
			t.Errorf("--with-apps linux/amd64: the %s manifest: %v", p, err)
		}
	}
	if r := h.cli.expect(exitUsage, "media", "iso", "--out", filepath.Join(h.dir, "none.iso"), "--with-apps", "darwin/arm64"); !strings.Contains(r.stderr, "darwin/arm64") {
		t.Errorf("--with-apps for a platform no app has:\n%s", r)
	}

	layerBytes, err := os.ReadFile(filepath.Join(apps.Storage(), "docker", "registry", "v2", "blobs", "sha256", layer.Hex[:2], layer.Hex, "data"))
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(h.dir, "key.img")
	h.cli.must("media", "usb", "--out", key, "--no-clients", "--with-apps")
	bad := filepath.Join(h.dir, "bad.iso")
	copyFileT(t, iso, bad)
	flipInImage(t, bad, layerBytes)

	// The flipped layer on the disc is refused and named; the registry,
	// still up, gives a good copy.
	pc := h.strangePC(t, "pc-bad-up")
	dir := filepath.Join(t.TempDir(), "work")
	res := pc.must("login", "--from", bad, "--to", dir)
	if !strings.Contains(res.stderr, "refused "+layer.String()+" from "+bad) {
		t.Errorf("login does not name the flipped layer %s on %s:\n%s", layer, bad, res)
	}
	if !strings.Contains(res.stdout, "app hello installed for linux/amd64") {
		t.Errorf("login did not install the app from the registry:\n%s", res)
	}
	if out := pc.must("app", "run", "hello", "--", "fixed"); out.stdout != "hello linux/amd64 greeting=v1 args=fixed\n" {
		t.Errorf("app run: %q", out.stdout)
	}

	apps.Stop()
	// On the home PC, whose store never held the app's blobs: app install
	// fails with the registry down, and installs from the disc it is given.
	if r := h.cli.run("app", "install"); r.code == exitOK || !strings.Contains(r.stdout+r.stderr, "not installed") {
		t.Errorf("app install with the registry down and no medium:\n%s", r)
	}
	if r := h.cli.must("app", "install", "--from", iso); !strings.Contains(r.stdout, "installed hello (linux/amd64") {
		t.Errorf("app install --from the disc:\n%s", r)
	}
	if out := h.cli.must("app", "run", "hello", "--", "home"); out.stdout != "hello linux/amd64 greeting=v1 args=home\n" {
		t.Errorf("app run: %q", out.stdout)
	}
	// A session logged in from the disc with --no-apps: app install finds
	// the disc again.
	pcLater := h.strangePC(t, "pc-later")
	pcLater.must("login", "--no-apps", "--from", iso, "--to", filepath.Join(t.TempDir(), "work"))
	if r := pcLater.must("app", "install"); !strings.Contains(r.stdout, "installed hello (linux/amd64") {
		t.Errorf("app install in a session from the disc:\n%s", r)
	}

	// With a mirror for the store, and with none: the app comes from the
	// disc alone.
	for _, c := range []struct {
		name string
		args []string
	}{
		{"mirror", []string{"--mirror", h.proxies[0].addr + "/dvpc/home"}},
		{"none", nil},
	} {
		if c.name == "none" {
			h.regs[0].Stop()
		}
		pc := h.strangePC(t, "pc-"+c.name)
		dir := filepath.Join(t.TempDir(), "work")
		res := pc.must(append(append([]string{"login", "--from", iso}, c.args...), "--to", dir)...)
		if !strings.Contains(res.stdout, "app hello installed for linux/amd64") {
			t.Errorf("%s: login with the app registry down did not install the app from the disc:\n%s", c.name, res)
		}
		requireSameTree(t, h.home, dir)
		if out := pc.must("app", "run", "hello", "--", "offline"); out.stdout != "hello linux/amd64 greeting=v1 args=offline\n" {
			t.Errorf("%s: app run: %q", c.name, out.stdout)
		}
		if es := appList(t, pc); len(es) != 1 || !es[0].Installed || es[0].InstalledDigest != plat["linux/amd64"].String() {
			t.Errorf("%s: app list: %+v", c.name, es)
		}
	}

	// A USB key made --with-apps does the same.
	pcKey := h.strangePC(t, "pc-key")
	res = pcKey.must("login", "--from", key, "--to", filepath.Join(t.TempDir(), "work"))
	if !strings.Contains(res.stdout, "app hello installed for linux/amd64") {
		t.Errorf("login from a USB key made --with-apps, registry down:\n%s", res)
	}

	// The flipped layer with the registry down: refused, named, not
	// installed; the login completes.
	pc = h.strangePC(t, "pc-bad-down")
	dir = filepath.Join(t.TempDir(), "work")
	res = pc.must("login", "--from", bad, "--to", dir)
	if !strings.Contains(res.stderr, "app hello was not installed") || !strings.Contains(res.stderr, layer.String()) {
		t.Errorf("login from a disc with a flipped layer and the registry down:\n%s", res)
	}
	requireSameTree(t, h.home, dir)
	if es := appList(t, pc); len(es) != 1 || es[0].Installed {
		t.Errorf("app list after a refused layer: %+v", es)
	}
}

func copyFileT(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestWithAppsFlagValue(t *testing.T) {
	for _, c := range []struct{ in, want []string }{
		{[]string{"media", "iso", "--with-apps"}, []string{"media", "iso", "--with-apps=all"}},
		{[]string{"media", "iso", "--with-apps", "--out", "x.iso"}, []string{"media", "iso", "--with-apps=all", "--out", "x.iso"}},
		{[]string{"media", "iso", "--with-apps", "linux/amd64,windows/amd64"}, []string{"media", "iso", "--with-apps", "linux/amd64,windows/amd64"}},
		{[]string{"media", "iso", "--with-apps=linux/arm64"}, []string{"media", "iso", "--with-apps=linux/arm64"}},
		{[]string{"cat", "--", "--with-apps"}, []string{"cat", "--", "--with-apps"}},
	} {
		if got := withAppsFlag(c.in); strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("%q: %q, want %q", c.in, got, c.want)
		}
	}
}
