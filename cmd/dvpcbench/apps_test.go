//go:build linux

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestAppsStage runs the apps stage on a small scale against real
// registries and skopeo: the three apps install from the registry, the
// snapshot of the home they are installed in stores under 1% of their
// bytes while the same home with their files inside stores most of them,
// and the table shows install and skopeo copy side by side.
func TestAppsStage(t *testing.T) {
	for _, bin := range []string{"docker-registry", "skopeo"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is needed (testdata/install-deps.sh installs it): %v", bin, err)
		}
	}
	bin := filepath.Join(t.TempDir(), "dvpc")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/dvpc/dvpc/cmd/dvpc").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	b, err := newBench(config{dvpc: bin, work: filepath.Join(t.TempDir(), "work"), tools: "dvpc", sizeMiB: 24, seed: 3, timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.stopRegistries)
	t.Cleanup(b.lockAgent)
	for _, name := range []string{"apps", "apps-limits"} {
		for i := range stages {
			if stages[i].name == name {
				if err := b.runStage(&stages[i]); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	tr := b.toolRun("dvpc")
	for _, s := range []string{"apps-install", "apps-snapshot", "apps-inside"} {
		if r := tr.Steps[s]; !r.ok() {
			log := ""
			if r != nil {
				data, _ := os.ReadFile(r.Log)
				log = string(data)
			}
			t.Fatalf("%s: %+v\n%s", s, r, log)
		}
	}
	if want := appsBytes(24); b.apps.Bytes != want {
		t.Errorf("the apps hold %d bytes, want %d", b.apps.Bytes, want)
	}
	roots, _ := filepath.Glob(filepath.Join(b.appsStore(), "apps", "*", "rootfs", "bin", "*"))
	if len(roots) != 3 {
		t.Errorf("installed app binaries: %v", roots)
	}
	if r := b.limitResults["skopeo-apps"]; !r.ok() {
		t.Fatalf("skopeo copy: %+v", r)
	}
	stored, inside := b.value("apps_stored_pct", "dvpc"), b.value("apps_inside_mib", "dvpc")
	if !stored.ok() || stored.v >= 1 {
		t.Errorf("the snapshot with the apps installed stores %s%% of their bytes", fmtCell(stored))
	}
	// Half of each app is random bytes: stored as they are when inside.
	if !inside.ok() || inside.v*mib < float64(b.apps.Bytes)/2 {
		t.Errorf("the home with the apps' files inside stores %s MiB of %d MiB of apps", fmtCell(inside), b.apps.Bytes/mib)
	}
	t.Logf("apps %d MiB: install %s s, skopeo copy %.2f s; snapshot with the apps installed %s MiB (%s%%), with their files inside %s MiB",
		b.apps.Bytes/mib, fmtCell(b.value("apps_install_s", "dvpc")), b.limitResults["skopeo-apps"].Seconds,
		fmtCell(b.value("apps_installed_mib", "dvpc")), fmtCell(stored), fmtCell(inside))
	for _, key := range []string{"apps_install_s", "apps_install_vs_skopeo", "apps_installed_mib"} {
		if c := b.value(key, "dvpc"); !c.ok() || c.v <= 0 {
			t.Errorf("row %s shows %q", key, fmtCell(c))
		}
	}
	for _, a := range b.evalAims() {
		if a.Label == "installed apps: ≤ 1% of their bytes stored" && a.Status != "met" {
			t.Errorf("aim %s: %+v", a.Label, a)
		}
	}
}
