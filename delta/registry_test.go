package delta

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dvpc/dvpc/image"
	"github.com/dvpc/dvpc/internal/regtest"
	"github.com/dvpc/dvpc/internal/treecmp"
)

var testArgon = image.Argon2Params{Time: 1, MemoryKiB: 8 << 10, Threads: 1}

const testPass = "mirror pass"

// testStore is a local store with a home directory snapshotted into it.
type testStore struct {
	lay  *image.Layout
	repo *image.Repo
	home string
}

func newTestStore(t *testing.T) *testStore {
	t.Helper()
	ctx := context.Background()
	lay, err := image.InitLayout(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := image.Init(ctx, lay, []byte(testPass), testArgon); err != nil {
		t.Fatal(err)
	}
	r, _, err := image.Open(ctx, lay, []byte(testPass))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	home := filepath.Join(t.TempDir(), "home")
	big := make([]byte, 3<<20)
	rand.Read(big)
	writeFile(t, filepath.Join(home, "big.bin"), big)
	writeFile(t, filepath.Join(home, "notes.txt"), []byte("a few words\n"))
	writeFile(t, filepath.Join(home, "docs", "letter.txt"), []byte("dear mirror\n"))
	return &testStore{lay: lay, repo: r, home: home}
}

func writeFile(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
}

func (s *testStore) snapshot(t *testing.T) *image.Snapshot {
	t.Helper()
	snap, _, err := s.repo.Snapshot(context.Background(), s.home, image.SnapshotOptions{
		OnError: func(p string, err error) { t.Errorf("snapshot: %s: %v", p, err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// copyHome keeps the home as it is now, to compare a restore with later.
func copyHome(t *testing.T, s *testStore) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "want")
	if err := os.CopyFS(out, os.DirFS(s.home)); err != nil {
		t.Fatal(err)
	}
	// CopyFS does not keep times; put them back.
	err := filepath.Walk(s.home, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.home, p)
		return os.Chtimes(filepath.Join(out, rel), fi.ModTime(), fi.ModTime())
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mirrorsOf(t *testing.T, regs []*regtest.Registry, path string) []*Registry {
	t.Helper()
	var out []*Registry
	for _, rg := range regs {
		m, err := NewRegistry(rg.Addr()+"/"+path, RegistryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// restoreEqual opens a store, restores the snapshot with the given tag and
// compares it with want.
func restoreEqual(t *testing.T, src image.Source, ref string, want string) {
	t.Helper()
	ctx := context.Background()
	r, _, err := image.Open(ctx, src, []byte(testPass))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	snaps, probs, err := r.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(probs) > 0 {
		t.Fatalf("snapshot problems: %v", probs)
	}
	s, err := image.FindSnapshot(snaps, ref)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := r.Restore(ctx, s, image.RestoreOptions{Target: out}); err != nil {
		t.Fatal(err)
	}
	diffs, err := treecmp.Compare(want, out)
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) > 0 {
		t.Fatalf("restore of %s differs:\n%s", ref, treecmp.Format(diffs))
	}
}

func TestNewRegistry(t *testing.T) {
	for ref, scheme := range map[string]string{
		"127.0.0.1:5000/dvpc/home": "http",
		"localhost:5000/home":      "http",
		"[::1]:5000/home":          "http",
		"registry.example/home":    "https",
		"10.0.0.1:5000/home":       "https",
	} {
		r, err := NewRegistry(ref, RegistryOptions{})
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if r.scheme != scheme {
			t.Errorf("%s: scheme %s, want %s", ref, r.scheme, scheme)
		}
	}
	r, err := NewRegistry("10.0.0.1:5000/home", RegistryOptions{Insecure: true})
	if err != nil || r.scheme != "http" {
		t.Errorf("insecure: %v %v", r, err)
	}
	for _, bad := range []string{"", "host", "host/", "host/UPPER", "host/a//b", "ho st/a"} {
		if _, err := NewRegistry(bad, RegistryOptions{}); err == nil {
			t.Errorf("NewRegistry(%q) succeeded", bad)
		}
	}
}

func TestParseChallenge(t *testing.T) {
	c := parseChallenge(`Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"`)
	if c.scheme != "bearer" || c.params["realm"] != "https://auth.example/token" ||
		c.params["service"] != "registry.example" || c.params["scope"] != "repository:a/b:pull,push" {
		t.Fatalf("%+v", c)
	}
}

// TestRegistrySource reads a pushed store back through the registry as an
// image.Source: refs, manifests and blobs by digest, a missing blob, and a
// blob corrupted on the registry's disk.
func TestRegistrySource(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	snap := s.snapshot(t)
	want := copyHome(t, s)
	reg := regtest.Start(t)
	m := mirrorsOf(t, []*regtest.Registry{reg}, "dvpc/home")[0]

	refs, err := m.Refs(ctx)
	if err != nil || len(refs) != 0 {
		t.Fatalf("empty repository: refs %v, %v", refs, err)
	}
	if _, err := Push(ctx, s.lay, m, PushOptions{}); err != nil {
		t.Fatal(err)
	}
	// A fresh handle has no cached manifests.
	m = mirrorsOf(t, []*regtest.Registry{reg}, "dvpc/home")[0]
	refs, err = m.Refs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	local, _ := s.lay.Refs(ctx)
	if len(refs) != len(local) {
		t.Fatalf("mirror refs %v, want %v", refs, local)
	}
	for _, l := range local {
		r, ok := findRef(refs, l.Name)
		if !ok || r.Desc.Digest != l.Desc.Digest || r.Desc.Size != l.Desc.Size {
			t.Fatalf("ref %s: mirror has %+v, want %+v", l.Name, r.Desc, l.Desc)
		}
	}
	restoreEqual(t, m, snap.ID, want)

	// A manifest by digest through a handle that never listed it.
	m2 := mirrorsOf(t, []*regtest.Registry{reg}, "dvpc/home")[0]
	if _, err := image.ReadBlob(ctx, m2, snap.Manifest, snap.Desc.Size); err != nil {
		t.Fatalf("manifest by digest: %v", err)
	}
	missing := image.DigestOf([]byte("nowhere"))
	if _, err := m2.OpenBlob(ctx, missing); !errors.Is(err, image.ErrNotFound) {
		t.Fatalf("missing blob: %v", err)
	}
	if _, err := m2.StatBlob(ctx, missing); !errors.Is(err, image.ErrNotFound) {
		t.Fatalf("stat missing blob: %v", err)
	}
	big := largestBlob(t, s.lay)
	n, err := m2.StatBlob(ctx, big)
	if ln, _ := s.lay.StatBlob(ctx, big); err != nil || n != ln {
		t.Fatalf("stat %s: %d, %v", big, n, err)
	}
	corruptBlob(t, reg, big)
	_, err = m2.OpenBlob(ctx, big)
	var de *image.DigestError
	if !errors.As(err, &de) {
		t.Fatalf("corrupt blob: %v, want a DigestError", err)
	}
}

// largestBlob returns the digest of the biggest blob of a layout.
func largestBlob(t *testing.T, lay *image.Layout) image.Digest {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(lay.Root(), "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	var best string
	var size int64 = -1
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > size {
			best, size = e.Name(), fi.Size()
		}
	}
	d, err := image.ParseDigest("sha256:" + best)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// corruptBlob flips a byte of a blob in a registry's storage.
func corruptBlob(t *testing.T, reg *regtest.Registry, d image.Digest) {
	t.Helper()
	p := filepath.Join(reg.Storage(), "docker", "registry", "v2", "blobs", "sha256", d.Hex()[:2], d.Hex(), "data")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
