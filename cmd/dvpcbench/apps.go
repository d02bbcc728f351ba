//go:build linux

package main

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	crmutate "github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// dvpc's apps (the "apps" stage, dvpc only, after the others): three apps
// of appsMiB MiB unpacked in all (less for a home under that size), built
// from generated data (half random bytes, as binaries are, half text) as
// OCI images for this PC's platform and pushed to local registry
// appsRegistry. On a PC of its own (WORK/apps/home, its store in the
// default place inside that home, argon2id at 64 MiB, unlocked once into
// the run's agent like the main store), dvpc app add names the three,
// then:
//
//   - "apps-install": dvpc app install, timed: every layer fetched from
//     the registry, checked and unpacked into the store's apps directory;
//   - "apps-snapshot": dvpc snapshot --json of that home, whose bytes_new
//     is what the installed apps cost a snapshot (the aim: ≤ 1% of the
//     apps' bytes);
//   - "apps-inside": the same home with the apps' unpacked files copied
//     into it as plain files (opt/NAME), snapshotted into a store of its
//     own: what the apps would cost if they were part of the home.
//
// The limit "skopeo copy" copies the same three images from the same
// registry into an OCI layout, one after the other, without unpacking
// them: the time any client needs to fetch them. (skopeo is a Debian
// package; crane, which could also unpack them, is not.)

// appsMiB is the unpacked size of the three apps.
const appsMiB = 200

// appsRegistry is the local registry the apps are pushed to.
const appsRegistry = 1

var appNames = []string{"editor", "compiler", "viewer"}

// appsRun is what the apps stage set up.
type appsRun struct {
	Bytes int64             `json:"bytes"` // unpacked bytes of the three apps
	Refs  map[string]string `json:"refs"`  // by app name
}

func (b *bench) appsPC() string { return b.path("apps", "home") }
func (b *bench) appsStore() string {
	return filepath.Join(b.appsPC(), ".local", "share", "dvpc", "store")
}

// appsCmd is a dvpc command on the apps' PC, with the store at store.
func (b *bench) appsCmd(t *tool, store string, args ...string) *exec.Cmd {
	c := exec.Command(t.bin, append([]string{"--store", store}, args...)...)
	c.Env = append(slices.Clone(t.env), "HOME="+b.appsPC(), "XDG_CONFIG_HOME="+b.path("apps", "config"))
	return c
}

// runApps runs the apps stage; a failure is recorded in the step it
// stopped and the run goes on.
func (b *bench) runApps() error {
	tr := b.toolRun("dvpc")
	if tr == nil {
		return nil
	}
	var t *tool
	for _, x := range b.tools {
		if x.name == "dvpc" {
			t = x
		}
	}
	if err := b.appsSetUp(t); err != nil {
		tr.Steps["apps-install"] = &result{Error: err.Error()}
		b.logf("%-12s %-7s failed: %v", "apps", "dvpc", err)
		return nil
	}
	for _, s := range []struct {
		name string
		cmd  func() (*exec.Cmd, error)
	}{
		{"apps-install", func() (*exec.Cmd, error) { return b.appsCmd(t, b.appsStore(), "app", "install"), nil }},
		{"apps-snapshot", func() (*exec.Cmd, error) {
			return b.appsCmd(t, b.appsStore(), "snapshot", "--json", b.appsPC()), nil
		}},
		{"apps-inside", func() (*exec.Cmd, error) {
			store, err := b.appsInside(t)
			if err != nil {
				return nil, err
			}
			return b.appsCmd(t, store, "snapshot", "--json", b.path("apps", "inside")), nil
		}},
	} {
		c, err := s.cmd()
		if err != nil {
			tr.Steps[s.name] = &result{Error: err.Error()}
			b.logf("%-12s %-7s failed: %v", s.name, "dvpc", err)
			return nil
		}
		r, err := b.exec(s.name, c, nil)
		tr.Steps[s.name] = r
		if err != nil {
			b.logf("%-12s %-7s failed: %v (see %s)", s.name, "dvpc", err, r.Log)
			return nil
		}
		r.Report = json.RawMessage(trimSpace(r.stdout))
		b.logf("%-12s %-7s %.2f s", s.name, "dvpc", r.Seconds)
	}
	return nil
}

// appsSetUp builds and pushes the apps, and makes the apps' PC: its home,
// its store, the three apps added.
func (b *bench) appsSetUp(t *tool) error {
	if err := b.startRegistries(); err != nil {
		return err
	}
	if err := os.RemoveAll(b.path("apps")); err != nil {
		return err
	}
	a, err := buildApps(b.path("apps", "images"), b.registries[appsRegistry].addr, b.cfg.seed, appsBytes(b.cfg.sizeMiB))
	if err != nil {
		return err
	}
	b.apps = a
	if err := os.MkdirAll(filepath.Join(b.appsPC(), "docs"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(b.appsPC(), "docs", "notes.txt"), []byte("the apps' PC\n"), 0o644); err != nil {
		return err
	}
	prep := func(name string, c *exec.Cmd) error {
		if r, err := b.exec(name, c, nil); err != nil {
			return fmt.Errorf("%s: %w (see %s)", strings.Join(c.Args[1:], " "), err, r.Log)
		}
		return nil
	}
	if err := prep("apps-init", b.appsCmd(t, b.appsStore(), "init", "--argon2-memory", "64")); err != nil {
		return err
	}
	for _, n := range appNames {
		if err := prep("apps-add-"+n, b.appsCmd(t, b.appsStore(), "app", "add", n, a.Refs[n])); err != nil {
			return err
		}
	}
	return nil
}

// appsInside makes the home of the apps-inside step, the apps' PC's files
// with the installed apps' files under opt/NAME, and a store for it; it
// returns the store.
func (b *bench) appsInside(t *tool) (string, error) {
	dir := b.path("apps", "inside")
	if err := os.MkdirAll(filepath.Join(dir, "opt"), 0o755); err != nil {
		return "", err
	}
	if r, err := b.exec("apps-inside-docs", exec.Command("cp", "-a", filepath.Join(b.appsPC(), "docs"), dir), nil); err != nil {
		return "", fmt.Errorf("copy the home: %w (see %s)", err, r.Log)
	}
	roots, err := filepath.Glob(filepath.Join(b.appsStore(), "apps", "*", "rootfs"))
	if err != nil || len(roots) != len(appNames) {
		return "", fmt.Errorf("the store holds %d installed apps, want %d", len(roots), len(appNames))
	}
	for i, root := range roots {
		if r, err := b.exec("apps-inside-copy", exec.Command("cp", "-a", root, filepath.Join(dir, "opt", fmt.Sprint("app", i))), nil); err != nil {
			return "", fmt.Errorf("copy an app: %w (see %s)", err, r.Log)
		}
	}
	store := b.path("apps", "inside-store")
	if r, err := b.exec("apps-inside-init", b.appsCmd(t, store, "init", "--argon2-memory", "64"), nil); err != nil {
		return "", fmt.Errorf("init: %w (see %s)", err, r.Log)
	}
	return store, nil
}

// appsBytes is the unpacked size of the apps for a home of sizeMiB.
func appsBytes(sizeMiB int) int64 { return int64(min(appsMiB, sizeMiB)) * mib }

// buildApps writes the three apps' layers under dir, pushes each as an
// OCI image for this PC's platform to REGISTRY/dvpcbench/apps/NAME:1, and
// returns their references.
func buildApps(dir, registry string, seed uint64, total int64) (*appsRun, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	a := &appsRun{Refs: map[string]string{}}
	for i, n := range appNames {
		size := total / int64(len(appNames))
		if i == len(appNames)-1 {
			size = total - a.Bytes
		}
		layerFile := filepath.Join(dir, n+".tar.gz")
		got, err := writeAppLayer(layerFile, n, rand.NewChaCha8(appSeed(seed, i)), size)
		if err != nil {
			return nil, fmt.Errorf("app %s: %w", n, err)
		}
		a.Bytes += got
		l, err := tarball.LayerFromFile(layerFile, tarball.WithMediaType(types.OCILayer))
		if err != nil {
			return nil, fmt.Errorf("app %s: %w", n, err)
		}
		img, err := crmutate.Append(crmutate.ConfigMediaType(crmutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON),
			crmutate.Addendum{Layer: l, MediaType: types.OCILayer})
		if err != nil {
			return nil, fmt.Errorf("app %s: %w", n, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = runtime.GOOS, runtime.GOARCH
		cf.Config.Entrypoint = []string{"/bin/" + n}
		if img, err = crmutate.ConfigFile(img, cf); err != nil {
			return nil, err
		}
		ref := registry + "/dvpcbench/apps/" + n + ":1"
		r, err := name.ParseReference(ref, name.Insecure)
		if err != nil {
			return nil, err
		}
		if err := remote.Write(r, img); err != nil {
			return nil, fmt.Errorf("push app %s: %w", n, err)
		}
		a.Refs[n] = ref
	}
	return a, nil
}

func appSeed(seed uint64, i int) [32]byte {
	var s [32]byte
	copy(s[:], fmt.Sprintf("dvpcbench apps %d %d", seed, i))
	return s
}

// writeAppLayer writes a gzipped tar of about size bytes of files: the
// app's binary (random bytes, half the size) and text files of its share
// directory. It returns the bytes of the files.
func writeAppLayer(path, app string, src *rand.ChaCha8, size int64) (int64, error) {
	rng := rand.New(src)
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	zw, err := gzip.NewWriterLevel(f, gzip.BestSpeed)
	if err != nil {
		return 0, err
	}
	tw := tar.NewWriter(zw)
	dirs := []string{"bin/", "share/", "share/" + app + "/"}
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
			return 0, err
		}
	}
	var total int64
	file := func(name string, mode int64, n int64, body io.Reader) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode, Size: n}); err != nil {
			return err
		}
		if _, err := io.CopyN(tw, body, n); err != nil {
			return err
		}
		total += n
		return nil
	}
	if err := file("bin/"+app, 0o755, size/2, src); err != nil {
		return 0, err
	}
	words := []string{"the", "app", "settings", "window", "file", "open", "save", "value", "error", "user", "path", "config"}
	for i := 0; total < size; i++ {
		var sb strings.Builder
		for sb.Len() < 64<<10 {
			sb.WriteString(words[rng.IntN(len(words))])
			sb.WriteByte(" \n"[rng.IntN(8)/7])
		}
		n := min(int64(sb.Len()), size-total)
		if err := file(fmt.Sprintf("share/%s/doc%04d.txt", app, i), 0o644, n, strings.NewReader(sb.String())); err != nil {
			return 0, err
		}
	}
	if err := tw.Close(); err != nil {
		return 0, err
	}
	if err := zw.Close(); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	return total, f.Close()
}

// skopeoApps copies the three apps' images from the registry into an OCI
// layout, one after the other, as the "skopeo copy" limit.
func skopeoApps(b *bench) *exec.Cmd {
	var cmds []string
	for _, n := range appNames {
		ref := ""
		if b.apps != nil {
			ref = b.apps.Refs[n]
		}
		cmds = append(cmds, fmt.Sprintf("skopeo copy -q --src-tls-verify=false docker://%s oci:%s:%s",
			ref, b.path("apps", "skopeo"), n))
	}
	return exec.Command("sh", "-c", strings.Join(cmds, " && "))
}

// appsInstalled is the prepare of the apps' limits: dvpc installed the
// apps from the registry they read.
func appsInstalled(b *bench) error {
	if tr := b.toolRun("dvpc"); tr == nil || !tr.Steps["apps-install"].ok() || b.apps == nil {
		return errors.New("dvpc did not install the apps")
	}
	return nil
}

// appsCell is a figure of the apps stage, for dvpc only.
func appsCell(step string, f func(b *bench, r *result) (float64, bool)) func(b *bench, tr *toolRun) cell {
	return func(b *bench, tr *toolRun) cell {
		c := stepCell(step, seconds)(b, tr)
		if !c.ok() {
			return c
		}
		v, ok := f(b, tr.Steps[step])
		if !ok {
			return cell{why: "failed"}
		}
		return cell{v: v}
	}
}

// bytesNew is the bytes_new of a dvpc snapshot --json report.
func bytesNew(r *result) (int64, bool) {
	var rep struct {
		BytesNew *int64 `json:"bytes_new"`
	}
	if json.Unmarshal(r.Report, &rep) != nil || rep.BytesNew == nil {
		return 0, false
	}
	return *rep.BytesNew, true
}

var (
	appsInstalledMiB = appsCell("apps-snapshot", func(_ *bench, r *result) (float64, bool) {
		n, ok := bytesNew(r)
		return float64(n) / mib, ok
	})
	appsInsideMiB = appsCell("apps-inside", func(_ *bench, r *result) (float64, bool) {
		n, ok := bytesNew(r)
		return float64(n) / mib, ok
	})
	// appsStoredPct is the snapshot of the home with the apps installed,
	// all of it counted as app bytes, in percent of the apps' bytes.
	appsStoredPct = appsCell("apps-snapshot", func(b *bench, r *result) (float64, bool) {
		n, ok := bytesNew(r)
		if !ok || b.apps == nil || b.apps.Bytes == 0 {
			return 0, false
		}
		return 100 * float64(n) / float64(b.apps.Bytes), true
	})
	appsInstallVsSkopeo = func(b *bench, tr *toolRun) cell {
		c := stepCell("apps-install", seconds)(b, tr)
		l := b.limitResults["skopeo-apps"]
		if !c.ok() || !l.ok() || l.Seconds == 0 {
			if c.ok() {
				c.why = "-"
			}
			return c
		}
		return cell{v: c.v / l.Seconds}
	}
)
