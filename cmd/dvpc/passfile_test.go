package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPassphraseFileTooLarge: a passphrase file over 64 KiB is not cut to
// its first 64 KiB and tried: it is refused, naming the file.
func TestPassphraseFileTooLarge(t *testing.T) {
	dir := t.TempDir()
	d := newCLI(t, filepath.Join(dir, "store"), e2ePass)
	d.must("init", "--argon2-memory", "8")
	big := filepath.Join(dir, "pass")
	if err := os.WriteFile(big, []byte(e2ePass+strings.Repeat("\n", 70<<10)), 0o600); err != nil {
		t.Fatal(err)
	}
	r := newCLI(t, d.store, "").with("DVPC_PASSPHRASE_FILE", big).expect(exitPassphrase, "log")
	if !strings.Contains(r.stderr, big) || !strings.Contains(r.stderr, "over 65536 bytes") {
		t.Fatalf("a passphrase file over 64 KiB:\n%s", r)
	}
}
