package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnreadableFileIsSkipped: a file dvpc cannot read is reported and
// skipped; the snapshot completes with the rest, says so in its summary and
// exits 5. As root, dvpc runs as nobody (setpriv) so permissions bite.
func TestUnreadableFileIsSkipped(t *testing.T) {
	work, err := os.MkdirTemp("", "dvpc-unreadable-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	for _, d := range []string{work, filepath.Join(work, "home"), filepath.Join(work, "home", "docs")} {
		os.MkdirAll(d, 0o755)
		os.Chmod(d, 0o755)
	}
	bin := filepath.Join(work, "dvpc")
	b, err := os.ReadFile(dvpcBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(work, "home")
	os.WriteFile(filepath.Join(home, "docs", "ok.txt"), []byte("readable"), 0o644)
	os.WriteFile(filepath.Join(home, "secret.txt"), []byte("not for dvpc"), 0o000)
	store := filepath.Join(work, "store")

	var prefix []string
	if os.Geteuid() == 0 {
		setpriv := requireTool(t, "setpriv", "util-linux")
		prefix = []string{setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"}
		for _, p := range []string{work, home, filepath.Join(home, "docs"), filepath.Join(home, "docs", "ok.txt")} {
			if err := os.Chown(p, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}
	}
	run := func(args ...string) (int, string, string) {
		argv := append(append(prefix, bin, "--store", store), args...)
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + work, "DVPC_PASSPHRASE=pw", "DVPC_NO_AGENT=1"}
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, out.String(), errb.String()
	}
	if code, _, stderr := run("init", "--argon2-memory", "8"); code != 0 {
		t.Fatalf("init: %d %s", code, stderr)
	}
	code, stdout, stderr := run("--json", "snapshot", home)
	if code != exitPartial {
		t.Fatalf("snapshot with an unreadable file exited %d, want %d\n%s", code, exitPartial, stderr)
	}
	if !strings.Contains(stderr, "secret.txt") || !strings.Contains(stderr, "permission denied") {
		t.Errorf("stderr does not name the unreadable file and why:\n%s", stderr)
	}
	var sum struct {
		ID     string `json:"id"`
		Files  int    `json:"files"`
		Errors int    `json:"errors"`
	}
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil || sum.Errors != 1 || sum.ID == "" {
		t.Fatalf("summary %q: %+v %v", stdout, sum, err)
	}
	if code, out, stderr := run("ls", "latest"); code != 0 || !strings.Contains(out, "docs/ok.txt") || strings.Contains(out, "secret.txt") {
		t.Fatalf("ls after a partial snapshot: %d\n%s\n%s", code, out, stderr)
	}
	if code, _, stderr := run("verify", "--read-data"); code != 0 {
		t.Fatalf("verify after a partial snapshot: %d %s", code, stderr)
	}
}
