package main

// Interoperability: a dvpc store is an OCI layout that standard tools copy
// through a registry unchanged, and its snapshot signatures are SSHSIG
// signatures that ssh-keygen verifies.

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dvpc/dvpc/internal/regtest"
)

// tool runs an external program with HOME and TMPDIR in the test's
// temporary directory and returns its combined output.
func tool(t *testing.T, stdin []byte, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	tmp := t.TempDir()
	cmd.Env = append(os.Environ(), "HOME="+tmp, "TMPDIR="+tmp)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestInterop(t *testing.T) {
	work := t.TempDir()
	home := filepath.Join(work, "home")
	mkhome(t, home)
	store := filepath.Join(work, "store")
	const pass = "interop passphrase"
	d := newCLI(t, store, pass)
	d.must("init", "--argon2-memory", "8")
	id1 := d.snapshot(home)
	ref1 := filepath.Join(work, "ref1")
	copyTree(t, home, ref1)
	writeFileAt(t, filepath.Join(home, "docs", "second.txt"), []byte("only in the second snapshot\n"), time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC))
	id2 := d.snapshot(home)

	t.Run("skopeo", func(t *testing.T) {
		skopeo := requireTool(t, "skopeo", "skopeo")
		d := newCLI(t, store, pass)
		reg := regtest.Start(t)
		repo := reg.Addr() + "/dvpc/home"

		// The keys first, then each snapshot with its signature.
		_, refs := readStoreIndex(t, store)
		tags := []string{"keys"}
		for _, id := range []string{id1, id2} {
			snap := findRef(t, refs, id)
			tags = append(tags, snap.Name, "sha256-"+snap.Desc.Digest.Hex+".sig")
		}
		digests := map[string]string{}
		for _, r := range refs {
			digests[r.Name] = r.Desc.Digest.String()
		}
		if len(digests) != len(tags) {
			t.Fatalf("the store holds tags %v, want %v", digests, tags)
		}
		for _, tag := range tags {
			if out, err := tool(t, nil, skopeo, "copy", "--preserve-digests", "oci:"+store+":"+tag,
				"docker://"+repo+":"+tag, "--dest-tls-verify=false"); err != nil {
				t.Fatalf("skopeo copy of %s to the registry: %v\n%s", tag, err, out)
			}
		}

		out, err := tool(t, nil, skopeo, "list-tags", "--tls-verify=false", "docker://"+repo)
		if err != nil {
			t.Fatalf("skopeo list-tags: %v\n%s", err, out)
		}
		var listed struct{ Tags []string }
		if err := json.Unmarshal([]byte(out), &listed); err != nil {
			t.Fatalf("skopeo list-tags printed %q: %v", out, err)
		}
		want := slices.Clone(tags)
		slices.Sort(want)
		slices.Sort(listed.Tags)
		if !slices.Equal(listed.Tags, want) {
			t.Errorf("the registry lists tags %v, want %v", listed.Tags, want)
		}

		back := filepath.Join(t.TempDir(), "back")
		for _, tag := range tags {
			if out, err := tool(t, nil, skopeo, "copy", "docker://"+repo+":"+tag, "oci:"+back+":"+tag,
				"--src-tls-verify=false"); err != nil {
				t.Fatalf("skopeo copy of %s from the registry: %v\n%s", tag, err, out)
			}
		}
		// Every manifest came back byte for byte.
		_, brefs := readStoreIndex(t, back)
		for _, r := range brefs {
			if digests[r.Name] != r.Desc.Digest.String() {
				t.Errorf("tag %s came back as %s, was %s", r.Name, r.Desc.Digest, digests[r.Name])
			}
		}
		if len(brefs) != len(tags) {
			t.Errorf("the copy holds %d tags, want %d", len(brefs), len(tags))
		}

		bd := d.onStore(back)
		r := bd.must("verify", "--read-data")
		if !strings.Contains(r.stdout, "of 2 snapshots") || !strings.Contains(r.stdout, ": 0 problems") {
			t.Errorf("verify of the copy:\n%s", r)
		}
		if ids := logIDs(bd.log()); !slices.Equal(ids, []string{id1, id2}) {
			t.Errorf("the copy lists snapshots %v, want %v", ids, []string{id1, id2})
		}
		bd.requireRestores("latest", home)
		bd.requireRestores(id1, ref1)
	})

	t.Run("ssh-keygen", func(t *testing.T) {
		sshKeygen := requireTool(t, "ssh-keygen", "openssh-client")
		d := newCLI(t, store, pass)
		dir := t.TempDir()
		line := strings.TrimSpace(d.must("key", "signer").stdout)
		principal, _, _ := strings.Cut(line, " ")
		if !strings.HasPrefix(principal, "dvpc-") {
			t.Fatalf("key signer printed %q, want a line for principal dvpc-<store id>", line)
		}
		allowed := filepath.Join(dir, "allowed_signers")
		if err := os.WriteFile(allowed, []byte(line+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		verify := func(manifest, sig []byte, principal, namespace string) (string, error) {
			t.Helper()
			sigFile := filepath.Join(t.TempDir(), "m.sig")
			if err := os.WriteFile(sigFile, sig, 0o644); err != nil {
				t.Fatal(err)
			}
			return tool(t, manifest, sshKeygen, "-Y", "verify", "-f", allowed, "-I", principal, "-n", namespace, "-s", sigFile)
		}

		for _, spec := range []string{"latest", id1} {
			manifest := []byte(d.must("cat", "manifest", spec).stdout)
			sig := []byte(d.must("cat", "signature", spec).stdout)
			out, err := verify(manifest, sig, principal, "dvpc-snapshot")
			if err != nil || !strings.Contains(out, `Good "dvpc-snapshot" signature for `+principal) {
				t.Errorf("ssh-keygen -Y verify of snapshot %s: %v\n%s", spec, err, out)
			}

			flipped := bytes.Clone(manifest)
			flipped[len(flipped)/2] ^= 0x01
			out, err = verify(flipped, sig, principal, "dvpc-snapshot")
			if err == nil || strings.Contains(out, "Good") {
				t.Errorf("ssh-keygen accepts snapshot %s's signature over a manifest with a flipped byte (%v):\n%s", spec, err, out)
			}
			out, err = verify(manifest, sig, principal, "file")
			if err == nil || strings.Contains(out, "Good") {
				t.Errorf("ssh-keygen accepts snapshot %s's signature in another namespace (%v):\n%s", spec, err, out)
			}
		}

		// The same key under a principal of the person's choosing.
		line = strings.TrimSpace(d.must("key", "signer", "--principal", "me@example.org").stdout)
		if err := os.WriteFile(allowed, []byte(line+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		manifest := []byte(d.must("cat", "manifest", id2).stdout)
		sig := []byte(d.must("cat", "signature", id2).stdout)
		if out, err := verify(manifest, sig, "me@example.org", "dvpc-snapshot"); err != nil || !strings.Contains(out, "Good") {
			t.Errorf("ssh-keygen -Y verify for principal me@example.org: %v\n%s", err, out)
		}
	})
}
