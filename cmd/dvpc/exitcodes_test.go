package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestExitCodes provokes every exit code the README documents, each on a
// store of its own, and checks the code and what the person reads: the
// error, at most one hint, and with --json the error as one JSON object
// on stderr naming the same code.
func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	randomFile(t, filepath.Join(home, "a.bin"), 1, 1<<20)
	if err := os.WriteFile(filepath.Join(home, "notes.txt"), []byte("notes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const pass = "exit code test passphrase"
	store := filepath.Join(dir, "store")
	base := newCLI(t, store, pass)
	base.must("init", "--argon2-memory", "8")
	id := base.snapshot(home)

	// scratch gives a row its own copy of the store.
	scratch := func(t *testing.T) (string, *dvpcCLI) {
		s := filepath.Join(t.TempDir(), "store")
		copyStore(t, store, s)
		return s, newCLI(t, s, pass)
	}
	rows := []struct {
		name string
		code int
		// setup returns the CLI and the arguments to run.
		setup     func(t *testing.T) (*dvpcCLI, []string)
		stderrHas []string
		stderrNot []string
	}{
		{name: "success", code: exitOK, setup: func(t *testing.T) (*dvpcCLI, []string) {
			return base, []string{"log"}
		}},
		{name: "error: init on an existing store", code: exitError, setup: func(t *testing.T) (*dvpcCLI, []string) {
			_, d := scratch(t)
			return d, []string{"init", "--argon2-memory", "8"}
		}, stderrHas: []string{"not empty"}},
		{name: "usage: a misspelt flag", code: exitUsage, setup: func(t *testing.T) (*dvpcCLI, []string) {
			return base, []string{"snapshot", "--exclud", "x", home}
		}, stderrHas: []string{"did you mean --exclude?"}, stderrNot: []string{" -exclud"}},
		{name: "usage: a misspelt command", code: exitUsage, setup: func(t *testing.T) (*dvpcCLI, []string) {
			return base, []string{"snapshto", home}
		}, stderrHas: []string{"did you mean `dvpc snapshot`?"}},
		{name: "usage: help for a misspelt command", code: exitUsage, setup: func(t *testing.T) (*dvpcCLI, []string) {
			return base, []string{"help", "restroe"}
		}, stderrHas: []string{"did you mean `dvpc restore`?"}},
		{name: "usage: a misspelt subcommand", code: exitUsage, setup: func(t *testing.T) (*dvpcCLI, []string) {
			return base, []string{"mirror", "ad", "example.com/x"}
		}, stderrHas: []string{"did you mean `dvpc mirror add`?"}},
		{name: "usage: a bad flag value is shown with two dashes", code: exitUsage, setup: func(t *testing.T) (*dvpcCLI, []string) {
			return base, []string{"forget", "--keep-last", "many"}
		}, stderrHas: []string{"--keep-last"}, stderrNot: []string{" -keep-last"}},
		{name: "usage: a required flag left out", code: exitUsage, setup: func(t *testing.T) (*dvpcCLI, []string) {
			return base, []string{"media", "iso", "--no-clients"}
		}, stderrHas: []string{"needs --out"}},
		{name: "usage: a write on a medium", code: exitUsage, setup: func(t *testing.T) (*dvpcCLI, []string) {
			iso := filepath.Join(t.TempDir(), "weekly.iso")
			base.must("media", "iso", "--out", iso, "--no-clients")
			return base.onStore(iso), []string{"snapshot", home}
		}, stderrHas: []string{"read-only"}, stderrNot: []string{"not a directory"}},
		{name: "wrong passphrase", code: exitPassphrase, setup: func(t *testing.T) (*dvpcCLI, []string) {
			return base.with("DVPC_PASSPHRASE", "not the passphrase"), []string{"log"}
		}},
		{name: "not found: a snapshot of a missing path", code: exitNotFound, setup: func(t *testing.T) (*dvpcCLI, []string) {
			_, d := scratch(t)
			return d, []string{"snapshot", filepath.Join(dir, "no-such-dir")}
		}, stderrHas: []string{"no-such-dir"}},
		{name: "not found: a snapshot ID", code: exitNotFound, setup: func(t *testing.T) (*dvpcCLI, []string) {
			return base, []string{"ls", "0123456789ab"}
		}},
		{name: "not found: the store", code: exitNotFound, setup: func(t *testing.T) (*dvpcCLI, []string) {
			return base.onStore(filepath.Join(t.TempDir(), "none")), []string{"log"}
		}},
		{name: "partial: a mirror that is down", code: exitPartial, setup: func(t *testing.T) (*dvpcCLI, []string) {
			_, d := scratch(t)
			d.must("mirror", "add", "127.0.0.1:1/dvpc/down", "--name", "down")
			return d, []string{"push"}
		}, stderrHas: []string{"down", "the next `dvpc push` catches"}, stderrNot: []string{"entries above were skipped"}},
		{name: "integrity: a damaged pack", code: exitIntegrity, setup: func(t *testing.T) (*dvpcCLI, []string) {
			s, d := scratch(t)
			_, m := snapshotManifest(t, s, id)
			var pack string
			var size int64
			for _, l := range m.Layers {
				if l.Size > size {
					pack, size = blobPath(s, l.Digest), l.Size
				}
			}
			flipByte(t, pack, size/2)
			return d, []string{"verify", "--read-data"}
		}, stderrHas: []string{"verify found 1 problem\n", "dvpc repair"}, stderrNot: []string{"run `dvpc verify --read-data`"}},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			for _, asJSON := range []bool{false, true} {
				d, args := r.setup(t)
				if asJSON {
					args = append([]string{"--json"}, args...)
				}
				res := d.run(args...)
				if res.code != r.code {
					t.Fatalf("want exit %d, got:\n%s", r.code, res)
				}
				if r.code == exitOK {
					continue
				}
				if asJSON {
					requireJSONError(t, res, r.code)
					continue
				}
				if n := strings.Count(res.stderr, "hint: "); n > 1 {
					t.Errorf("%d hints, want at most one:\n%s", n, res)
				}
				for _, s := range r.stderrHas {
					if !strings.Contains(res.stderr, s) {
						t.Errorf("stderr lacks %q:\n%s", s, res)
					}
				}
				for _, s := range r.stderrNot {
					if strings.Contains(res.stderr, s) {
						t.Errorf("stderr has %q:\n%s", s, res)
					}
				}
			}
		})
	}

	t.Run("interrupted", func(t *testing.T) {
		for _, asJSON := range []bool{false, true} {
			_, d := scratch(t)
			res := runInterrupted(t, d, pass, asJSON, "snapshot", home)
			if res.code != exitInterrupt {
				t.Fatalf("want exit %d, got:\n%s", exitInterrupt, res)
			}
			if asJSON {
				requireJSONError(t, res, exitInterrupt)
			} else if !strings.Contains(res.stderr, "interrupted") {
				t.Errorf("stderr does not say it was interrupted:\n%s", res)
			}
		}
	})
}

// requireJSONError requires the last line of stderr to be the error as
// JSON, {"error", "hint", "exit"}, with the process's exit code.
func requireJSONError(t *testing.T, res result, code int) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(res.stderr), "\n")
	var e struct {
		Error *string `json:"error"`
		Hint  *string `json:"hint"`
		Exit  *int    `json:"exit"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &e); err != nil {
		t.Fatalf("the error is not JSON under --json: %v\n%s", err, res)
	}
	if e.Error == nil || *e.Error == "" || e.Hint == nil || e.Exit == nil || *e.Exit != code {
		t.Fatalf("want {\"error\": ..., \"hint\": ..., \"exit\": %d}:\n%s", code, res)
	}
	if strings.Contains(res.stderr, "dvpc: "+*e.Error) {
		t.Errorf("the error is printed as text too:\n%s", res)
	}
}

// runInterrupted runs dvpc with its passphrase read from a FIFO, and sends
// it SIGINT while it waits there: once the FIFO has a reader, dvpc is
// running and handles the signal. Then the passphrase is written, and dvpc
// carries on with its work interrupted.
func runInterrupted(t *testing.T, d *dvpcCLI, pass string, asJSON bool, args ...string) result {
	t.Helper()
	fifo := filepath.Join(t.TempDir(), "passphrase")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	d = d.with("DVPC_PASSPHRASE", "").with("DVPC_PASSPHRASE_FILE", fifo)
	if asJSON {
		args = append([]string{"--json"}, args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd, full := d.command(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0) // returns once dvpc opens it to read
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(pass + "\n"))
	w.Close()
	err = cmd.Wait()
	res := result{args: full, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		res.code = ee.ExitCode()
	default:
		t.Fatalf("dvpc did not exit by itself: %v\n%s", err, res)
	}
	return res
}
