package media

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dvpc/dvpc/image"
)

// TestProgramChangedAfterSigning changes a program between the plan, which
// signs it, and the write: the write fails and leaves no image, rather
// than carrying a program its signature does not match. Unchanged, the
// medium's programs pass CheckClients.
func TestProgramChangedAfterSigning(t *testing.T) {
	ctx := context.Background()
	storeDir, _ := usbStore(t)
	lay, err := image.OpenLayout(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	repo, _, err := image.Open(ctx, lay, []byte("pass"))
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	snaps, _, err := repo.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	prog := filepath.Join(t.TempDir(), "dvpc")
	if err := os.WriteFile(prog, []byte("the program as signed"), 0o755); err != nil {
		t.Fatal(err)
	}
	plan, err := NewPlan(ctx, repo, snaps, PlanOptions{Self: prog, Medium: MediumDVD})
	if err != nil {
		t.Fatal(err)
	}
	c, err := plan.ISOContent()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.iso")
	if err := WriteISO(ctx, good, c); err != nil {
		t.Fatal(err)
	}
	m, err := Open(good)
	if err != nil {
		t.Fatal(err)
	}
	ok, bad, err := m.CheckPrograms(repo.ClientSigner())
	m.Close()
	if err != nil || len(bad) > 0 || len(ok) != 1 {
		t.Fatalf("programs on the medium: good %v, bad %v, %v", ok, bad, err)
	}

	if err := os.WriteFile(prog, []byte("the program, altered!"), 0o755); err != nil {
		t.Fatal(err)
	}
	bad2 := filepath.Join(dir, "bad.iso")
	if err := WriteISO(ctx, bad2, c); err == nil || !strings.Contains(err.Error(), "changed after it was signed") {
		t.Fatalf("writing a program changed after it was signed: %v", err)
	}
	if _, err := os.Stat(bad2); !os.IsNotExist(err) {
		t.Errorf("a failed write left %s: %v", bad2, err)
	}
}
