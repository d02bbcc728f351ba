package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestWhatThePersonReads: counts of one are singular; `mirror add` says
// what it added and what to run next; `mirror status` shows snapshot IDs
// as log does and no -1 for what it could not learn; and pull's total of
// fetched blobs is what its mirrors served, added up.
func TestWhatThePersonReads(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	randomFile(t, filepath.Join(home, "only.bin"), 3, 1<<20)
	const pass = "output test passphrase"
	cli := newCLI(t, filepath.Join(dir, "store"), pass)
	cli.must("init", "--argon2-memory", "8")

	a, b := filepath.Join(dir, "mirror-a"), filepath.Join(dir, "mirror-b")
	r := cli.must("mirror", "add", "oci:"+a, "--name", "a")
	if !strings.Contains(r.stdout, "added mirror a (oci:"+a+")") || !strings.Contains(r.stdout, "`dvpc push`") {
		t.Errorf("mirror add does not confirm and say what to run next:\n%s", r)
	}
	cli.must("mirror", "add", "oci:"+b, "--name", "b")
	cli.must("mirror", "add", "127.0.0.1:1/dvpc/down", "--name", "down")

	r = cli.must("snapshot", home)
	id := strings.TrimSpace(r.stdout)
	if !strings.Contains(r.stderr, ": 1 file, 0 dirs,") || !strings.Contains(r.stderr, "queued for 3 mirrors") {
		t.Errorf("snapshot summary:\n%s", r)
	}
	cli.expect(exitPartial, "push") // "down" is down

	r = cli.must("mirror", "status")
	if slices.Contains(strings.Fields(r.stdout), "-1") {
		t.Errorf("mirror status shows -1:\n%s", r)
	}
	for _, line := range strings.Split(r.stdout, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 3 && (f[0] == "a" || f[0] == "b"):
			if f[3] != id {
				t.Errorf("mirror %s: newest verified %q, want the ID %s as log shows it:\n%s", f[0], f[3], id, r)
			}
		case len(f) > 3 && f[0] == "down":
			if f[2] != "no" || f[3] != "?" {
				t.Errorf("mirror down: want unreachable and ? for what is missing:\n%s", r)
			}
		}
	}

	// A new store pulls from both local mirrors.
	fresh := cli.onStore(filepath.Join(dir, "fresh"))
	r = fresh.must("pull", "oci:"+a, "oci:"+b)
	total := regexp.MustCompile(`(?m)^pulled 1 snapshot: (\d+) blobs? `).FindStringSubmatch(r.stdout)
	if total == nil {
		t.Fatalf("pull summary:\n%s", r)
	}
	sum := 0
	for _, m := range regexp.MustCompile(`(?m)^  from \S+: (\d+) blobs? `).FindAllStringSubmatch(r.stdout, -1) {
		n, _ := strconv.Atoi(m[1])
		sum += n
	}
	if want, _ := strconv.Atoi(total[1]); sum != want {
		t.Errorf("pull says %d blobs fetched, but its mirrors served %d:\n%s", want, sum, r)
	}
	fresh.requireRestores("latest", home)
}
