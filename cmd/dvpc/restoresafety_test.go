//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRestoreSetidCLI restores a setuid program: the bit is cleared and the
// restore says so once; with --keep-setid it is kept.
func TestRestoreSetidCLI(t *testing.T) {
	store := filepath.Join(t.TempDir(), "store")
	d := newCLI(t, store, "setid passphrase")
	d.must("init", "--argon2-memory", "8")
	home := filepath.Join(t.TempDir(), "home")
	if err := os.MkdirAll(filepath.Join(home, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b", "plain"} {
		writeFileAt(t, filepath.Join(home, "bin", name), []byte("#!/bin/sh\n"), time.Unix(1700000000, 0))
	}
	for name, mode := range map[string]os.FileMode{"a": 0o755 | os.ModeSetuid, "b": 0o755 | os.ModeSetgid | os.ModeSetuid, "plain": 0o755} {
		if err := os.Chmod(filepath.Join(home, "bin", name), mode); err != nil {
			t.Fatal(err)
		}
	}
	id := d.snapshot(home)

	to := filepath.Join(t.TempDir(), "out")
	r := d.must("restore", id, "--to", to)
	if n := strings.Count(r.stderr, "setuid/setgid"); n != 1 || !strings.Contains(r.stderr, "cleared the setuid/setgid bits of 2 files; add --keep-setid") {
		t.Errorf("the restore does not say once that it cleared two files' bits:\n%s", r)
	}
	for _, name := range []string{"a", "b", "plain"} {
		if fi, err := os.Stat(filepath.Join(to, "bin", name)); err != nil || fi.Mode() != 0o755 {
			t.Errorf("bin/%s restored as %v (%v), want -rwxr-xr-x", name, fi.Mode(), err)
		}
	}

	kept := filepath.Join(t.TempDir(), "kept")
	r = d.must("restore", id, "--to", kept, "--keep-setid")
	if strings.Contains(r.stderr, "setuid") {
		t.Errorf("--keep-setid still reports cleared bits:\n%s", r)
	}
	requireSameTree(t, home, kept)
}

// TestSafetyPassphraseFile gives dvpc passphrase files others could read
// or change: like ssh with a private key, dvpc refuses them, names the
// problem and the fix, and writes nothing.
func TestSafetyPassphraseFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test gives a passphrase file to another user with chown, which needs root: run it as root")
	}
	dir := t.TempDir()
	write := func(name string, mode os.FileMode, uid int) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("a file passphrase\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, -1); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct {
		name, why string
		mode      os.FileMode
		uid       int
	}{
		{"world-readable", "permissions 0644", 0o644, 0},
		{"group-readable", "permissions 0640", 0o640, 0},
		{"group-writable", "permissions 0620", 0o620, 0},
		{"another user's", "belongs to user 4242", 0o600, 4242},
	} {
		t.Run(c.name, func(t *testing.T) {
			store := filepath.Join(t.TempDir(), "store")
			pf := write(strings.ReplaceAll(c.name, " ", "-"), c.mode, c.uid)
			r := newCLI(t, store, "").with("DVPC_PASSPHRASE_FILE", pf).expect(exitPassphrase, "init", "--argon2-memory", "8")
			if !strings.Contains(r.stderr, c.why) || !strings.Contains(r.stderr, "not private") {
				t.Errorf("the refusal does not say why:\n%s", r)
			}
			if c.uid == 0 && !strings.Contains(r.stderr, "chmod 600 "+pf) {
				t.Errorf("the refusal does not give the fix:\n%s", r)
			}
			if _, err := os.Stat(filepath.Join(store, "index.json")); err == nil {
				t.Errorf("a store was made with a refused passphrase file")
			}
		})
	}
	// A private file is taken.
	store := filepath.Join(t.TempDir(), "store")
	pf := write("private", 0o400, 0)
	d := newCLI(t, store, "").with("DVPC_PASSPHRASE_FILE", pf)
	d.must("init", "--argon2-memory", "8")
	d.must("log")
}
