package overlay

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/dvpc/dvpc/image"
)

// mergeRepo makes and unlocks a fresh store in a temporary directory.
func mergeRepo(t testing.TB) *image.Repo {
	t.Helper()
	ctx := context.Background()
	lay, err := image.InitLayout(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := image.Init(ctx, lay, []byte("pass"), image.Argon2Params{Time: 1, MemoryKiB: 8 << 10, Threads: 1}); err != nil {
		t.Fatal(err)
	}
	r, _, err := image.Open(ctx, lay, []byte("pass"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// snapOn snapshots dir with the given parents (the first is Parent).
func snapOn(t testing.TB, r *image.Repo, dir string, parents ...*image.Snapshot) *image.Snapshot {
	t.Helper()
	return snapAs(t, r, dir, "pc", parents...)
}

// snapAs snapshots dir as taken on host, with the given parents (the first
// is Parent).
func snapAs(t testing.TB, r *image.Repo, dir, host string, parents ...*image.Snapshot) *image.Snapshot {
	t.Helper()
	opts := image.SnapshotOptions{Host: host, OnError: func(p string, err error) { t.Errorf("snapshot: %s: %v", p, err) }}
	if len(parents) > 0 {
		opts.Parent, opts.Parents = parents[0], parents[1:]
	}
	s, _, err := r.Snapshot(context.Background(), dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func history(t testing.TB, r *image.Repo) *image.History {
	t.Helper()
	h, probs, err := r.History(context.Background())
	if err != nil || len(probs) > 0 {
		t.Fatal(err, probs)
	}
	return h
}

// TestCommonAncestor on a ← b ← c, a ← d, a merge m(c, d), e on m and f on
// d; then with b forgotten.
func TestCommonAncestor(t *testing.T) {
	r := mergeRepo(t)
	dir := filepath.Join(t.TempDir(), "docs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	a := snapOn(t, r, dir)
	b := snapOn(t, r, dir, a)
	c := snapOn(t, r, dir, b)
	d := snapOn(t, r, dir, a)
	m := snapOn(t, r, dir, c, d)
	e := snapOn(t, r, dir, m)
	f := snapOn(t, r, dir, d)
	x := snapOn(t, r, other)
	h := history(t, r)
	for _, tc := range []struct {
		name       string
		a, b, want *image.Snapshot
	}{
		{"fork", c, d, a},
		{"fork, other order", d, c, a},
		{"ancestor", b, c, b},
		{"descendant", c, b, b},
		{"itself", c, c, c},
		{"through a merge", e, f, d},
		{"merge and a parent", m, c, c},
		{"another home", c, x, nil},
	} {
		got := CommonAncestor(h, tc.a, tc.b)
		if got != tc.want && (got == nil || tc.want == nil || got.Manifest != tc.want.Manifest) {
			t.Errorf("%s: got %v, want %v", tc.name, snapID(got), snapID(tc.want))
		}
	}
	// A forgotten common ancestor has no tree: the next older one is used.
	if err := r.Forget(context.Background(), []*image.Snapshot{b}); err != nil {
		t.Fatal(err)
	}
	h = history(t, r)
	if got := CommonAncestor(h, c, b); got == nil || got.Manifest != a.Manifest {
		t.Errorf("with b forgotten, c and b: got %s, want a", snapID(got))
	}
	g := snapOn(t, r, dir, c)
	h = history(t, r)
	if got := CommonAncestor(h, g, e); got == nil || got.Manifest != c.Manifest {
		t.Errorf("g and e: got %v, want c", snapID(got))
	}
	y := snapOn(t, r, dir, b) // b is forgotten but y names it
	h = history(t, r)
	if got := CommonAncestor(h, y, c); got == nil || got.Manifest != a.Manifest {
		t.Errorf("through the forgotten b: got %v, want a", snapID(got))
	}
}

func snapID(s *image.Snapshot) string {
	if s == nil {
		return "none"
	}
	return s.ID
}
