package image

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/dvpc/dvpc/internal/treecmp"
)

var testArgon = Argon2Params{Time: 1, MemoryKiB: 8 << 10, Threads: 1}

// newTestRepo makes and unlocks a fresh store in a temporary directory.
func newTestRepo(t testing.TB) (*Repo, *Layout) {
	t.Helper()
	lay, err := InitLayout(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Init(context.Background(), lay, []byte("pass"), testArgon); err != nil {
		t.Fatal(err)
	}
	r, _, err := Open(context.Background(), lay, []byte("pass"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, lay
}

// reopen unlocks the store again, as a new process would.
func reopen(t testing.TB, lay *Layout) *Repo {
	t.Helper()
	r, _, err := Open(context.Background(), lay, []byte("pass"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// mkhome builds the sample home with every awkward entry.
func mkhome(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "home")
	out, err := exec.Command("bash", "../testdata/mkhome.sh", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("mkhome.sh: %v\n%s", err, out)
	}
	return dir
}

func mustSnapshot(t testing.TB, r *Repo, dir string, opts SnapshotOptions) (*Snapshot, Stats) {
	t.Helper()
	if opts.OnError == nil {
		opts.OnError = func(p string, err error) { t.Errorf("snapshot: %s: %v", p, err) }
	}
	s, st, err := r.Snapshot(context.Background(), dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, st
}

func mustRestoreEqual(t testing.TB, r *Repo, s *Snapshot, want string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out")
	if err := r.Restore(context.Background(), s, RestoreOptions{Target: out}); err != nil {
		t.Fatalf("restore %s: %v", s.ID, err)
	}
	diffs, err := treecmp.Compare(want, out)
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) > 0 {
		t.Fatalf("restore of %s differs from %s:\n%s", s.ID, want, treecmp.Format(diffs))
	}
	return out
}

func writeFile(t testing.TB, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// blobSet lists the blobs in a layout.
func blobSet(t testing.TB, lay *Layout) map[string]int64 {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(lay.Root(), "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]int64{}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = fi.Size()
	}
	return m
}
