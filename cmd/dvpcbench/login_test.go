//go:build linux

package main

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// tinyBench is a bench of dvpc and restic on a 16 MiB home in a temporary
// work directory, with a freshly built dvpc; its registries and agent end
// with the test.
func tinyBench(t *testing.T) *bench {
	t.Helper()
	for _, bin := range []string{"restic", "docker-registry"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is not installed (make deps installs it)", bin)
		}
	}
	bin := filepath.Join(t.TempDir(), "dvpc")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/dvpc/dvpc/cmd/dvpc").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	b, err := newBench(config{dvpc: bin, work: filepath.Join(t.TempDir(), "work"), tools: "dvpc,restic",
		sizeMiB: 16, seed: 1, verify: true, timeout: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.stopRegistries()
		b.lockAgent()
	})
	return b
}

// runStages runs the named stages in order, as run does.
func runStages(t *testing.T, b *bench, names ...string) {
	t.Helper()
	for _, n := range names {
		found := false
		for i := range stages {
			if stages[i].name == n {
				found = true
				if err := b.runStage(&stages[i]); err != nil {
					t.Fatalf("stage %s: %v", n, err)
				}
			}
		}
		if !found {
			t.Fatalf("no stage %s", n)
		}
	}
}

// TestLoginBench runs the login rows on a tiny home: the strange PC's
// login from the ISO of the initial snapshot and a mirror materialises the
// incremental snapshot, fetches from the net less than restic's whole
// repository, and is compared with a restore of the same snapshot.
func TestLoginBench(t *testing.T) {
	b := tinyBench(t)
	runStages(t, b, "generate", "init", "unlock", "initial", "login-iso", "mutate", "incremental", "login-restore", "login")
	dv := b.toolRun("dvpc")
	for _, s := range []string{"login-iso", "login-restore", "login"} {
		if r := dv.Steps[s]; !r.ok() {
			t.Fatalf("%s: %+v", s, r)
		}
	}
	if ch := dv.Steps["login"].Check; ch != "ok" {
		t.Errorf("login check: %s", ch)
	}
	if got := rowByKey("login_check").text(b, dv); got != "ok" {
		t.Errorf("login check row: %q", got)
	}
	for _, k := range []string{"login_s", "login_restore_s", "login_vs_restore", "login_net_mib", "login_net_vs_new"} {
		if c := b.value(k, "dvpc"); !c.ok() || c.v <= 0 {
			t.Errorf("row %s for dvpc: %+v", k, c)
		}
	}
	net, whole := b.value("login_net_mib", "dvpc"), b.value("login_net_mib", "restic")
	t.Logf("login %.2f s, restore %.2f s, net %.2f MiB (%.2f× the new blobs), restic's repository %.2f MiB",
		b.value("login_s", "dvpc").v, b.value("login_restore_s", "dvpc").v, net.v, b.value("login_net_vs_new", "dvpc").v, whole.v)
	if !whole.ok() || net.v >= whole.v/2 {
		t.Errorf("login fetched %.2f MiB from the net; restic's whole repository is %+v MiB", net.v, whole)
	}
	if c := b.value("login_s", "restic"); c.why != "-" {
		t.Errorf("restic has a login figure: %+v", c)
	}
	// The ISO of the initial snapshot is gone, and the strange PC's
	// cache is its own: the person's store is untouched by the login.
	if _, err := exec.Command("test", "-e", b.loginISO()).CombinedOutput(); err == nil {
		t.Errorf("the login's ISO %s was kept without -keep", b.loginISO())
	}
	var login aimResult
	for _, a := range b.evalAims() {
		if a.Label == "login ≤ 1.2× restore of the same snapshot" {
			login = a
		}
	}
	if login.Status != "met" && login.Status != "missed" {
		t.Errorf("login aim: %+v", login)
	}
}
