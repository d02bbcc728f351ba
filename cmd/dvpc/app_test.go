package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/dvpc/dvpc/internal/regtest"
)

// helloSource is the app the tests build: a static program that prints
// its platform, its arguments and the greeting file its layer holds next
// to it.
const helloSource = `package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

func main() {
	g := "none"
	if exe, err := os.Executable(); err == nil {
		if b, err := os.ReadFile(filepath.Join(filepath.Dir(exe), "greeting")); err == nil {
			g = strings.TrimSpace(string(b))
		}
	}
	fmt.Printf("hello %s/%s greeting=%s args=%s\n", runtime.GOOS, runtime.GOARCH, g, strings.Join(os.Args[1:], ","))
	if len(os.Args) > 1 && os.Args[1] == "fail" {
		os.Exit(7)
	}
}
`

var helloPlatforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}, {OS: "windows", Architecture: "amd64"}}

// buildHello builds the app for each platform and returns the binaries.
func buildHello(t *testing.T) map[string][]byte {
	t.Helper()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(helloSource), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module hello\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, p := range helloPlatforms {
		bin := filepath.Join(src, "hello-"+p.OS+"-"+p.Architecture)
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, ".")
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture, "GOFLAGS=-buildvcs=false")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build hello for %s/%s: %v\n%s", p.OS, p.Architecture, err, b)
		}
		b, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		out[p.OS+"/"+p.Architecture] = b
	}
	return out
}

// tarEntry is one entry of a test layer.
type tarEntry struct {
	hdr  tar.Header
	body []byte
}

func file(name string, mode int64, body []byte) tarEntry {
	return tarEntry{hdr: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(body))}, body: body}
}

// gzLayer is a gzip-compressed tar layer with its true digests.
type gzLayer struct{ tarB, gz []byte }

func newLayer(t *testing.T, entries ...tarEntry) *gzLayer {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for _, e := range entries {
		h := e.hdr
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		tw.Write(e.body)
	}
	tw.Close()
	var gb bytes.Buffer
	zw := gzip.NewWriter(&gb)
	zw.Write(tb.Bytes())
	zw.Close()
	return &gzLayer{tarB: tb.Bytes(), gz: gb.Bytes()}
}

func sha(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

func (l *gzLayer) Digest() (v1.Hash, error) { return sha(l.gz), nil }
func (l *gzLayer) DiffID() (v1.Hash, error) { return sha(l.tarB), nil }
func (l *gzLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.gz)), nil
}
func (l *gzLayer) Uncompressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.tarB)), nil
}
func (l *gzLayer) Size() (int64, error)                { return int64(len(l.gz)), nil }
func (l *gzLayer) MediaType() (types.MediaType, error) { return types.OCILayer, nil }

// ociImage packs layers as an OCI image for p with an entrypoint.
func ociImage(t *testing.T, p v1.Platform, entrypoint []string, layers ...*gzLayer) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for _, l := range layers {
		var err error
		if img, err = mutate.Append(img, mutate.Addendum{Layer: l, MediaType: types.OCILayer}); err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = p.OS, p.Architecture
	cf.Config.Entrypoint = entrypoint
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// pushHello pushes the app for every platform, as one OCI index, with
// greeting in each image's layer, and returns the index digest and each
// platform's manifest digest.
func pushHello(t *testing.T, ref string, bins map[string][]byte, greeting string) (v1.Hash, map[string]v1.Hash) {
	t.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	idx = mutate.Annotations(idx, map[string]string{"dev.dvpc.settings.linux": "~/.config/hello", "dev.dvpc.settings.windows": `%APPDATA%\hello`}).(v1.ImageIndex)
	digests := map[string]v1.Hash{}
	for _, p := range helloPlatforms {
		exe := "app/hello"
		if p.OS == "windows" {
			exe = "app/hello.exe"
		}
		l := newLayer(t, tarEntry{hdr: tar.Header{Name: "app/", Typeflag: tar.TypeDir, Mode: 0o755}},
			file(exe, 0o755, bins[p.OS+"/"+p.Architecture]), file("app/greeting", 0o644, []byte(greeting+"\n")))
		img := ociImage(t, p, []string{"/" + exe}, l)
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests[p.OS+"/"+p.Architecture] = d
		pp := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &pp}})
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d, digests
}

// pushImage pushes one linux/amd64 image.
func pushImage(t *testing.T, ref string, img v1.Image) v1.Hash {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, _ := img.Digest()
	return d
}

type appListEntry struct {
	Name      string `json:"name"`
	Ref       string `json:"ref"`
	Digest    string `json:"digest"`
	Platforms []struct {
		Platform string `json:"platform"`
		Digest   string `json:"digest"`
	} `json:"platforms"`
	Settings        map[string]string `json:"settings"`
	Installed       bool              `json:"installed"`
	InstalledDigest string            `json:"installed_digest"`
}

func appList(t *testing.T, cli *dvpcCLI) []appListEntry {
	t.Helper()
	var es []appListEntry
	r := cli.must("app", "list", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &es); err != nil {
		t.Fatalf("app list --json: %v\n%s", err, r)
	}
	return es
}

// TestAppAddInstallRunUpdate: a multi-platform app pushed to a real
// registry is pinned for every platform, installed for this PC's, linked
// into ~/.local/bin, runs offline, and an update after a new push shows
// old -> new while the earlier snapshot keeps the old profile.
func TestAppAddInstallRunUpdate(t *testing.T) {
	if hostPlatform := "linux/amd64"; runtimePlatform() != hostPlatform {
		t.Fatalf("this test runs the linux/amd64 build; this PC is %s", runtimePlatform())
	}
	reg := regtest.Start(t)
	bins := buildHello(t)
	ref := reg.Addr() + "/apps/hello:1"
	idx1, plat1 := pushHello(t, ref, bins, "v1")

	store := filepath.Join(t.TempDir(), "store")
	cli := newCLI(t, store, "app passphrase")
	cli.must("init", "--argon2-memory", "8")
	home := filepath.Join(t.TempDir(), "home")
	writeFileString(t, filepath.Join(home, "notes.txt"), "notes")

	r := cli.must("app", "add", "hello", ref)
	if !strings.Contains(r.stdout, idx1.String()) {
		t.Errorf("add does not name the pinned digest %s:\n%s", idx1, r)
	}
	es := appList(t, cli)
	if len(es) != 1 || es[0].Digest != idx1.String() || len(es[0].Platforms) != 3 || es[0].Installed {
		t.Fatalf("app list after add: %+v", es)
	}
	for _, p := range es[0].Platforms {
		if plat1[p.Platform].String() != p.Digest {
			t.Errorf("%s pinned at %s, pushed %s", p.Platform, p.Digest, plat1[p.Platform])
		}
	}
	if es[0].Settings["linux"] != "~/.config/hello" || es[0].Settings["windows"] != `%APPDATA%\hello` {
		t.Errorf("settings from the index annotations: %v", es[0].Settings)
	}

	r = cli.must("app", "install")
	if !strings.Contains(r.stdout, plat1["linux/amd64"].String()) {
		t.Errorf("install does not name the linux/amd64 digest:\n%s", r)
	}
	appDir := filepath.Join(store, "apps", plat1["linux/amd64"].Hex)
	if _, err := os.Stat(filepath.Join(appDir, "rootfs", "app", "hello")); err != nil {
		t.Fatalf("installed app: %v", err)
	}
	link := filepath.Join(cli.dir, ".local", "bin", "hello")
	out, err := exec.Command(link, "x").Output()
	if err != nil || string(out) != "hello linux/amd64 greeting=v1 args=x\n" {
		t.Errorf("~/.local/bin/hello x: %q, %v", out, err)
	}
	es = appList(t, cli)
	if !es[0].Installed || es[0].InstalledDigest != plat1["linux/amd64"].String() {
		t.Errorf("app list after install: %+v", es)
	}

	// Snapshots carry the profile; the installed app is not in them.
	snap1 := cli.snapshot(home)
	cfg1 := catConfig(t, cli, snap1)
	if cfg1.Profile == "" {
		t.Fatalf("snapshot %s carries no profile", snap1)
	}

	// Offline: the registry is gone, the app still runs.
	reg.Stop()
	r = cli.must("app", "run", "hello", "--", "a", "b")
	if r.stdout != "hello linux/amd64 greeting=v1 args=a,b\n" {
		t.Errorf("app run offline: %q", r.stdout)
	}
	r = cli.expect(7, "app", "run", "hello", "--", "fail")
	reg.Restart(t)

	// A new push: update shows old -> new for every platform.
	idx2, plat2 := pushHello(t, ref, bins, "v2")
	if idx2 == idx1 {
		t.Fatal("the second push has the same digest")
	}
	r = cli.must("app", "update")
	for _, p := range helloPlatforms {
		k := p.OS + "/" + p.Architecture
		want := "hello " + k + ": " + plat1[k].String() + " -> " + plat2[k].String()
		if !strings.Contains(r.stdout, want) {
			t.Errorf("update does not show %q:\n%s", want, r)
		}
	}
	es = appList(t, cli)
	if es[0].Digest != idx2.String() || es[0].Installed {
		t.Errorf("after update: digest %s (want %s), installed %v (the new digest is not installed yet)", es[0].Digest, idx2, es[0].Installed)
	}
	cli.must("app", "install", "hello")
	r = cli.must("app", "run", "hello")
	if r.stdout != "hello linux/amd64 greeting=v2 args=\n" {
		t.Errorf("app run after update: %q", r.stdout)
	}
	writeFileString(t, filepath.Join(home, "notes.txt"), "more notes")
	snap2 := cli.snapshot(home)
	if cfg1again, cfg2 := catConfig(t, cli, snap1), catConfig(t, cli, snap2); cfg1again.Profile != cfg1.Profile || cfg2.Profile == cfg1.Profile {
		t.Errorf("profiles: first snapshot %s (was %s), second %s", cfg1again.Profile, cfg1.Profile, cfg2.Profile)
	}

	// Remove: gone from the profile, the PC and ~/.local/bin.
	cli.must("app", "remove", "hello")
	if _, err := os.Lstat(link); !os.IsNotExist(err) {
		t.Errorf("~/.local/bin/hello after remove: %v", err)
	}
	if _, err := os.Stat(filepath.Join(store, "apps", plat2["linux/amd64"].Hex)); !os.IsNotExist(err) {
		t.Errorf("installed directory after remove: %v", err)
	}
	if es := appList(t, cli); len(es) != 0 {
		t.Errorf("app list after remove: %+v", es)
	}
	cli.expect(exitNotFound, "app", "run", "hello")
}

func runtimePlatform() string {
	out, _ := exec.Command("go", "env", "GOOS", "GOARCH").Output()
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return ""
	}
	return f[0] + "/" + f[1]
}

type snapConfig struct {
	Profile string `json:"profile"`
}

func catConfig(t *testing.T, cli *dvpcCLI, snap string) snapConfig {
	t.Helper()
	var c snapConfig
	r := cli.must("cat", "config", snap)
	if err := json.Unmarshal([]byte(r.stdout), &c); err != nil {
		t.Fatalf("cat config: %v\n%s", err, r)
	}
	return c
}

// TestAppInstallRefusesFlippedLayer: a layer whose bytes on the registry
// no longer match its digest is refused and named; nothing is installed.
func TestAppInstallRefusesFlippedLayer(t *testing.T) {
	reg := regtest.Start(t)
	l := newLayer(t, file("app/tool", 0o755, bytes.Repeat([]byte("#!/bin/sh\necho tool\n"), 64)))
	img := ociImage(t, v1.Platform{OS: "linux", Architecture: "amd64"}, []string{"/app/tool"}, l)
	ref := reg.Addr() + "/apps/tool:1"
	d := pushImage(t, ref, img)
	ld, _ := l.Digest()
	blob := filepath.Join(reg.Storage(), "docker", "registry", "v2", "blobs", "sha256", ld.Hex[:2], ld.Hex, "data")
	flipByte(t, blob, 40)

	store := filepath.Join(t.TempDir(), "store")
	cli := newCLI(t, store, "app passphrase")
	cli.must("init", "--argon2-memory", "8")
	cli.must("app", "add", "tool", ref)
	r := cli.expect(exitIntegrity, "app", "install", "tool")
	if !strings.Contains(r.stdout+r.stderr, ld.String()) {
		t.Errorf("install does not name the bad layer %s:\n%s", ld, r)
	}
	if _, err := os.Stat(filepath.Join(store, "apps", d.Hex)); !os.IsNotExist(err) {
		t.Errorf("the app was installed from a corrupt layer: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(store, "apps", ".install-*")); len(left) > 0 {
		t.Errorf("install left %v behind", left)
	}
	if _, err := os.Lstat(filepath.Join(cli.dir, ".local", "bin", "tool")); !os.IsNotExist(err) {
		t.Errorf("a binary was linked for an app not installed: %v", err)
	}
}

// TestAppInstallHostileLayers: layers from a registry that climb out with
// ../, link out by hard link, make absolute symlinks or device nodes are
// refused or neutralised; nothing outside the app's directory changes.
func TestAppInstallHostileLayers(t *testing.T) {
	reg := regtest.Start(t)
	store := filepath.Join(t.TempDir(), "store")
	cli := newCLI(t, store, "app passphrase")
	cli.must("init", "--argon2-memory", "8")
	amd := v1.Platform{OS: "linux", Architecture: "amd64"}
	tool := file("app/tool", 0o755, []byte("#!/bin/sh\necho tool\n"))

	for _, c := range []struct {
		name  string
		entry tarEntry
	}{
		{"climb", file("../../../escaped", 0o644, []byte("x"))},
		{"hardlink", tarEntry{hdr: tar.Header{Name: "app/passwd", Typeflag: tar.TypeLink, Linkname: "../../../../../../etc/passwd"}}},
	} {
		d := pushImage(t, reg.Addr()+"/apps/"+c.name+":1", ociImage(t, amd, []string{"/app/tool"}, newLayer(t, tool, c.entry)))
		cli.must("app", "add", c.name, reg.Addr()+"/apps/"+c.name+":1")
		r := cli.expect(exitIntegrity, "app", "install", c.name)
		if !strings.Contains(r.stdout+r.stderr, "hostile") && !strings.Contains(r.stdout+r.stderr, "outside") && !strings.Contains(r.stdout+r.stderr, "climbs") {
			t.Errorf("%s: the refusal does not say why:\n%s", c.name, r)
		}
		if _, err := os.Stat(filepath.Join(store, "apps", d.Hex)); !os.IsNotExist(err) {
			t.Errorf("%s: installed: %v", c.name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(store), "escaped")); !os.IsNotExist(err) {
		t.Errorf("a layer wrote outside: %v", err)
	}

	// Neutralised: an absolute symlink and a device node.
	d := pushImage(t, reg.Addr()+"/apps/odd:1", ociImage(t, amd, []string{"/app/tool"}, newLayer(t, tool,
		tarEntry{hdr: tar.Header{Name: "app/etc", Typeflag: tar.TypeSymlink, Linkname: "/etc"}},
		tarEntry{hdr: tar.Header{Name: "app/sda", Typeflag: tar.TypeBlock, Devmajor: 8, Mode: 0o660}},
		file("app/suid", 0o4755, []byte("x")),
	)))
	cli.must("app", "add", "odd", reg.Addr()+"/apps/odd:1")
	r := cli.must("app", "install", "odd")
	root := filepath.Join(store, "apps", d.Hex, "rootfs")
	if t2, err := os.Readlink(filepath.Join(root, "app", "etc")); err != nil || t2 != "../etc" {
		t.Errorf("app/etc -> %q (%v), want ../etc, inside the app", t2, err)
	}
	if _, err := os.Lstat(filepath.Join(root, "app", "sda")); !os.IsNotExist(err) {
		t.Errorf("a device node was made: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(root, "app", "suid")); err != nil || fi.Mode()&fs.ModeSetuid != 0 {
		t.Errorf("app/suid: %v %v, want no set-user-ID bit", fi, err)
	}
	if !strings.Contains(r.stdout, "app/sda") || !strings.Contains(r.stdout, "app/etc") {
		t.Errorf("install does not say what it left out and rewrote:\n%s", r)
	}
}

// TestAppBytesNotInSnapshots: with the store in its default place under
// HOME, a snapshot of HOME holds none of an installed app's bytes.
func TestAppBytesNotInSnapshots(t *testing.T) {
	reg := regtest.Start(t)
	data := randomFile(t, filepath.Join(t.TempDir(), "data"), 10, 4<<20)
	d := pushImage(t, reg.Addr()+"/apps/big:1", ociImage(t, v1.Platform{OS: "linux", Architecture: "amd64"}, []string{"/app/tool"},
		newLayer(t, file("app/tool", 0o755, []byte("#!/bin/sh\necho big\n")), file("app/data", 0o644, data))))
	cli := newCLI(t, "", "app passphrase")
	cli = cli.onStore(filepath.Join(cli.dir, ".local", "share", "dvpc", "store"))
	cli.must("init", "--argon2-memory", "8")
	cli.must("app", "add", "big", reg.Addr()+"/apps/big:1")
	cli.must("app", "install", "big")
	if _, err := os.Stat(filepath.Join(cli.store, "apps", d.Hex, "rootfs", "app", "data")); err != nil {
		t.Fatal(err)
	}
	writeFileString(t, filepath.Join(cli.dir, "notes.txt"), "notes")
	snap := cli.snapshot(cli.dir)
	var cfg struct {
		Stats struct {
			Bytes int64 `json:"bytes"`
		} `json:"stats"`
	}
	r := cli.must("cat", "config", snap)
	if err := json.Unmarshal([]byte(r.stdout), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Stats.Bytes >= int64(len(data)) {
		t.Errorf("the snapshot holds %d bytes of files; the app alone is %d", cfg.Stats.Bytes, len(data))
	}
	r = cli.must("ls", snap)
	for _, line := range strings.Split(r.stdout, "\n") {
		if f := strings.Fields(line); len(f) >= 5 && strings.HasPrefix(f[4], ".local/share/dvpc/store") {
			t.Errorf("the snapshot holds the store: %s", line)
		}
	}
	if !strings.Contains(r.stdout, "notes.txt") {
		t.Errorf("ls of the snapshot:\n%s", r.stdout)
	}
}

// TestAppProfileReachesNewPC: the profile travels with the snapshots
// through a mirror; on a strange PC, after login, `app list` shows the
// app and it installs and runs for linux/amd64.
func TestAppProfileReachesNewPC(t *testing.T) {
	apps := regtest.Start(t)
	ref := apps.Addr() + "/apps/hello:1"
	_, plat := pushHello(t, ref, buildHello(t), "v1")
	h := newHomePC(t, 1)
	h.cli.must("app", "add", "hello", ref)
	h.cli.snapshot(h.home)
	h.cli.must("push")

	// --no-apps: the profile arrives, nothing is installed.
	pc := h.strangePC(t, "pc")
	dir := filepath.Join(t.TempDir(), "work")
	pc.must("login", "--no-apps", "--mirror", h.proxies[0].addr+"/dvpc/home", "--to", dir)
	es := appList(t, pc)
	if len(es) != 1 || es[0].Name != "hello" || es[0].Installed {
		t.Fatalf("app list on the new PC: %+v", es)
	}
	pc.must("app", "install")
	if es := appList(t, pc); !es[0].Installed || es[0].InstalledDigest != plat["linux/amd64"].String() {
		t.Errorf("app list after install on the new PC: %+v", es)
	}
	if r := pc.must("app", "run", "hello", "--", "new-pc"); r.stdout != "hello linux/amd64 greeting=v1 args=new-pc\n" {
		t.Errorf("app run on the new PC: %q", r.stdout)
	}

	// A plain login installs the apps for this PC, and logout takes the
	// links away.
	pc2 := h.strangePC(t, "pc2")
	dir2 := filepath.Join(t.TempDir(), "work")
	r := pc2.must("login", "--mirror", h.proxies[0].addr+"/dvpc/home", "--to", dir2)
	if !strings.Contains(r.stdout, "app hello installed for linux/amd64") {
		t.Errorf("login did not install the app:\n%s", r)
	}
	if es := appList(t, pc2); len(es) != 1 || !es[0].Installed {
		t.Errorf("app list after login: %+v", es)
	}
	link := filepath.Join(pc2.dir, ".local", "bin", "hello")
	if _, err := os.Lstat(link); err != nil {
		t.Errorf("login linked no binary: %v", err)
	}
	pc2.must("logout", dir2)
	if _, err := os.Lstat(link); err == nil {
		t.Errorf("logout left the link %s", link)
	}

	// An app the registry cannot serve is named; the login completes.
	apps.Stop()
	pc3 := h.strangePC(t, "pc3")
	dir3 := filepath.Join(t.TempDir(), "work")
	r = pc3.must("login", "--mirror", h.proxies[0].addr+"/dvpc/home", "--to", dir3)
	if !strings.Contains(r.stderr, "app hello was not installed") {
		t.Errorf("login with the app registry down:\n%s", r)
	}
	requireSameTree(t, h.home, dir3)
}

// TestLoginPlacesSettingsForAnotherOS: a snapshot taken on Linux keeps an
// app's settings at its Linux path; a login that says it is for Windows
// puts them where the Windows build reads them (%APPDATA%\hello), and
// leaves a file already there alone.
func TestLoginPlacesSettingsForAnotherOS(t *testing.T) {
	apps := regtest.Start(t)
	ref := apps.Addr() + "/apps/hello:1"
	pushHello(t, ref, buildHello(t), "v1")
	h := newHomePC(t, 1)
	h.cli.must("app", "add", "hello", ref)
	writeFileString(t, filepath.Join(h.home, ".config", "hello", "prefs.txt"), "colour=blue\n")
	writeFileString(t, filepath.Join(h.home, ".config", "hello", "sub", "keys.txt"), "ctrl-q=quit\n")
	h.cli.snapshot(h.home)
	h.cli.must("push")

	pc := h.strangePC(t, "pc")
	dir := filepath.Join(t.TempDir(), "work")
	r := pc.must("login", "--no-apps", "--os", "windows", "--mirror", h.proxies[0].addr+"/dvpc/home", "--to", dir)
	if !strings.Contains(r.stderr, `settings for hello: ~/.config/hello`) {
		t.Errorf("login does not say where the settings went:\n%s", r)
	}
	for rel, want := range map[string]string{"prefs.txt": "colour=blue\n", "sub/keys.txt": "ctrl-q=quit\n"} {
		b, err := os.ReadFile(filepath.Join(dir, "AppData", "Roaming", "hello", filepath.FromSlash(rel)))
		if err != nil || string(b) != want {
			t.Errorf("%s at the Windows path: %q, %v; want %q", rel, b, err, want)
		}
		if b, err := os.ReadFile(filepath.Join(dir, ".config", "hello", filepath.FromSlash(rel))); err != nil || string(b) != want {
			t.Errorf("%s at the Linux path is gone or changed: %q, %v", rel, b, err)
		}
	}

	// A file already at the Windows path is never replaced.
	pc2 := h.strangePC(t, "pc2")
	dir2 := filepath.Join(t.TempDir(), "work")
	writeFileString(t, filepath.Join(h.home, "AppData", "Roaming", "hello", "prefs.txt"), "colour=red\n")
	h.cli.snapshot(h.home)
	h.cli.must("push")
	pc2.must("login", "--no-apps", "--os", "windows", "--mirror", h.proxies[0].addr+"/dvpc/home", "--to", dir2)
	if b, _ := os.ReadFile(filepath.Join(dir2, "AppData", "Roaming", "hello", "prefs.txt")); string(b) != "colour=red\n" {
		t.Errorf("the Windows path's own file was replaced: %q", b)
	}
	// A login for the system the snapshot was taken on moves nothing.
	pc3 := h.strangePC(t, "pc3")
	dir3 := filepath.Join(t.TempDir(), "work")
	pc3.must("login", "--no-apps", "--mirror", h.proxies[0].addr+"/dvpc/home", "--to", dir3)
	requireSameTree(t, h.home, dir3)
}
