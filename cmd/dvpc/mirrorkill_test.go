package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dvpc/dvpc/internal/regtest"
)

// TestPushSurvivesDyingMirrors: two of four registries are killed while a
// push runs. The push completes on the other two and reports the two
// failures; after a restart the next push completes them, and status shows
// all four current.
func TestPushSurvivesDyingMirrors(t *testing.T) {
	regs := regtest.StartN(t, 4)
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	mkhome(t, home)
	for i := range 6 {
		randomFile(t, filepath.Join(home, fmt.Sprintf("video-%d.bin", i)), uint64(40+i), 8<<20)
	}
	cli := newCLI(t, filepath.Join(dir, "store"), "kill test passphrase")
	cli.must("init", "--argon2-memory", "8")
	for i, r := range regs {
		cli.must("mirror", "add", r.Addr()+"/dvpc/home", "--name", fmt.Sprintf("m%d", i))
	}
	cli.snapshot(home)

	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd, _ := cli.command(ctx, "push")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill m2 and m3 as soon as their first blob has landed.
	deadline := time.Now().Add(cmdTimeout)
	for !(hasBlob(regs[2].Storage()) || hasBlob(regs[3].Storage())) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	regs[2].Stop()
	regs[3].Stop()
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitPartial {
		t.Fatalf("push with two registries killed: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	for _, name := range []string{"m2", "m3"} {
		if !strings.Contains(stderr.String(), "push to "+name) {
			t.Errorf("the failure of %s is not reported:\n%s", name, &stderr)
		}
	}
	for _, name := range []string{"m0:", "m1:"} {
		if !strings.Contains(stdout.String(), name) {
			t.Errorf("%s did not complete:\n%s", name, &stdout)
		}
	}
	regs[2].Restart(t)
	regs[3].Restart(t)
	cli.must("push")
	var st []struct {
		Name      string `json:"name"`
		Reachable *bool  `json:"reachable"`
		Missing   int    `json:"snapshots_missing"`
		LastError string `json:"last_error"`
	}
	r := cli.must("--json", "mirror", "status")
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || len(st) != 4 {
		t.Fatalf("status: %v\n%s", err, r)
	}
	for _, m := range st {
		if !*m.Reachable || m.Missing != 0 || m.LastError != "" {
			t.Errorf("mirror %s not current after the catch-up push: %+v", m.Name, m)
		}
	}
	fresh := cli.onStore(filepath.Join(dir, "from-m3"))
	fresh.must("pull", regs[3].Addr()+"/dvpc/home")
	fresh.requireRestores("latest", home)
}

// hasBlob reports whether a registry's storage holds any blob data yet.
func hasBlob(storage string) bool {
	found := false
	filepath.WalkDir(storage, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "data" && strings.Contains(p, "/blobs/") {
			found = true
			return fs.SkipAll
		}
		return nil
	})
	return found
}
