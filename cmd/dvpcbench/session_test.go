//go:build linux

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestMain lets the test binary serve as the wrapper that runs and
// measures each command (see wrapMain), as dvpcbench itself does.
func TestMain(m *testing.M) {
	if isWrapper() {
		os.Exit(wrapMain())
	}
	os.Exit(m.Run())
}

// TestSessionUnlock runs dvpc's first steps as the bench does: after the
// unlock step, a snapshot opens the store with a wrong passphrase, so it
// took the keys from the run's unlock agent and its figure includes no
// unlock; once the run has ended the agent, the same command fails.
func TestSessionUnlock(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "dvpc")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/dvpc/dvpc/cmd/dvpc").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	b, err := newBench(config{dvpc: bin, work: filepath.Join(t.TempDir(), "work"), tools: "dvpc", timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	locked := false
	t.Cleanup(func() {
		if !locked {
			b.lockAgent()
		}
	})
	if err := os.MkdirAll(b.home, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.home, "notes.txt"), []byte("a home\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dv, tr := b.tools[0], b.runs[0]
	step := func(name string) *result {
		t.Helper()
		b.runStep(stepByName(name), dv)
		return tr.Steps[name]
	}
	if r := step("init"); !r.ok() {
		t.Fatalf("init: %s", r.Error)
	}
	if r := step("unlock"); !r.ok() || r.Check != "" || r.Seconds <= 0 {
		t.Fatalf("unlock: %+v", r)
	}
	if c := rowByKey("unlock_s").value(b, tr); !c.ok() {
		t.Fatalf("the unlock row shows %q", c.why)
	}
	if err := os.WriteFile(b.path("passphrase"), []byte("not the passphrase"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := step("initial"); !r.ok() {
		t.Fatalf("a snapshot after the unlock step unlocked again, with the wrong passphrase: %s", r.Error)
	}
	b.lockAgent()
	locked = true
	if r := step("incremental"); r.ok() {
		t.Fatalf("a snapshot with the wrong passphrase succeeded after the agent was ended")
	}
	if _, err := os.Stat(b.runtime); !os.IsNotExist(err) {
		t.Fatalf("the agent's directory %s is still there: %v", b.runtime, err)
	}
}
