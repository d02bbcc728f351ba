package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dvpc/dvpc/internal/regtest"
)

// TestMirrorInterop: what dvpc pushes is an ordinary OCI repository.
// skopeo and crane list its tags and return the signed manifest bytes
// unchanged, a skopeo copy and a crane copy to other registries keep the
// digests, and dvpc pulls from each copy, verifies it and restores
// identically.
func TestMirrorInterop(t *testing.T) {
	skopeo := requireTool(t, "skopeo", "skopeo")
	crane := requireCrane(t)
	regs := regtest.StartN(t, 3)
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	mkhome(t, home)
	cli := newCLI(t, filepath.Join(dir, "store"), "interop passphrase")
	cli.must("init", "--argon2-memory", "8")
	src := regs[0].Addr() + "/dvpc/home"
	cli.must("mirror", "add", src)
	id := cli.snapshot(home)
	cli.must("push")

	out, err := exec.Command(skopeo, "list-tags", "--tls-verify=false", "docker://"+src).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo list-tags: %v\n%s", err, out)
	}
	var tags []string
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.Trim(strings.TrimSpace(line), `",`)
		if line == "keys" || strings.HasPrefix(line, "snap-") || strings.HasSuffix(line, ".sig") {
			tags = append(tags, line)
		}
	}
	if len(tags) != 3 {
		t.Fatalf("skopeo sees tags %v, want keys, a snapshot and its signature\n%s", tags, out)
	}
	for _, tag := range tags {
		raw, err := exec.Command(skopeo, "inspect", "--raw", "--tls-verify=false", "docker://"+src+":"+tag).Output()
		if err != nil {
			t.Fatalf("skopeo inspect --raw %s: %v", tag, err)
		}
		sum := sha256.Sum256(raw)
		if strings.HasPrefix(tag, "snap-") && !strings.HasSuffix(tag, hex.EncodeToString(sum[:])[:12]) {
			t.Errorf("manifest of %s hashes to %x: bytes changed on the way", tag, sum[:6])
		}
		dst := regs[1].Addr() + "/copied/home"
		if out, err := exec.Command(skopeo, "copy", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false",
			"docker://"+src+":"+tag, "docker://"+dst+":"+tag).CombinedOutput(); err != nil {
			t.Fatalf("skopeo copy %s: %v\n%s", tag, err, out)
		}
	}
	other := cli.onStore(filepath.Join(dir, "from-copy"))
	other.must("pull", regs[1].Addr()+"/copied/home")
	other.requireRestores(id, home)
	other.must("verify", "--read-data")

	// crane sees the same tags and manifest digests, and copies the whole
	// repository.
	craneOut := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(crane, append(args, "--insecure")...).CombinedOutput()
		if err != nil {
			t.Fatalf("crane %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	listed := strings.Fields(craneOut("ls", src))
	slices.Sort(listed)
	slices.Sort(tags)
	if !slices.Equal(listed, tags) {
		t.Fatalf("crane ls: %v, skopeo: %v", listed, tags)
	}
	for _, tag := range tags {
		if d := craneOut("digest", src+":"+tag); strings.HasPrefix(tag, "snap-") && !strings.HasPrefix(d, "sha256:"+tag[len(tag)-12:]) {
			t.Errorf("crane digest of %s: %s", tag, d)
		}
	}
	craneDst := regs[2].Addr() + "/crane/home"
	craneOut("copy", "--all-tags", src, craneDst)
	third := cli.onStore(filepath.Join(dir, "from-crane"))
	third.must("pull", craneDst)
	third.requireRestores(id, home)
	third.must("verify", "--read-data")
}

// requireCrane finds crane, which `make deps` installs from the Go module
// proxy: in PATH, or in $(go env GOPATH)/bin.
func requireCrane(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("crane"); err == nil {
		return p
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
			p := filepath.Join(dir, "bin", "crane")
			if _, err := exec.LookPath(p); err == nil {
				return p
			}
		}
	}
	t.Fatalf("crane is not installed; run `make deps` (go install github.com/google/go-containerregistry/cmd/crane)")
	return ""
}
