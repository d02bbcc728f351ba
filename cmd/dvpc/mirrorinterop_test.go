package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dvpc/dvpc/image/regtest"
)

// TestMirrorInterop: what dvpc pushes is an ordinary OCI repository.
// skopeo lists its tags and returns the signed manifest bytes unchanged, a
// skopeo copy to another registry keeps the digests, and dvpc pulls from
// that copy, verifies it and restores identically.
func TestMirrorInterop(t *testing.T) {
	skopeo := requireTool(t, "skopeo", "skopeo")
	regs := regtest.StartN(t, 2)
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
	got := filepath.Join(dir, "restored")
	other.must("restore", id, "--to", got)
	requireSameTree(t, home, got)
	other.must("verify", "--read-data")
}
