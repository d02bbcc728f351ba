package delta

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/dvpc/dvpc/image"
	"github.com/dvpc/dvpc/internal/regtest"
	"github.com/dvpc/dvpc/internal/sourcetest"
)

// TestRegistryConformance serves the suite's store from a real
// docker-registry. Intact blobs and the manifests are pushed; the damaged
// and torn blobs, which a registry refuses on upload, are written into its
// storage as a disk under it would hold them.
func TestRegistryConformance(t *testing.T) {
	sourcetest.Run(t, func(t *testing.T, blobs map[image.Digest][]byte, refs []image.Ref) image.Source {
		ctx := context.Background()
		reg := regtest.Start(t)
		const repo = "dvpc/conformance"
		lay := sourcetest.Layout(t, filepath.Join(t.TempDir(), "src"), blobs, refs)
		manifests := map[image.Digest]bool{}
		for _, r := range refs {
			d, _ := image.DigestFromHash(r.Desc.Digest)
			manifests[d] = true
		}
		push := mirrorsOf(t, []*regtest.Registry{reg}, repo)[0]
		v2 := filepath.Join(reg.Storage(), "docker", "registry", "v2")
		for d, b := range blobs {
			switch {
			case manifests[d]:
			case image.DigestOf(b) != d:
				data := filepath.Join(v2, "blobs", "sha256", d.Hex()[:2], d.Hex(), "data")
				link := filepath.Join(v2, "repositories", repo, "_layers", "sha256", d.Hex(), "link")
				for p, c := range map[string][]byte{data: b, link: []byte(d.String())} {
					if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(p, c, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			default:
				if _, err := push.putBlob(ctx, lay, image.BlobRef{Digest: d, Size: int64(len(b))}, ""); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, r := range refs {
			if err := push.putManifest(ctx, lay, r); err != nil {
				t.Fatal(err)
			}
		}
		// A new client, which has read no manifest yet.
		return mirrorsOf(t, []*regtest.Registry{reg}, repo)[0]
	})
}

func TestLocalMirrorConformance(t *testing.T) {
	sourcetest.Run(t, func(t *testing.T, blobs map[image.Digest][]byte, refs []image.Ref) image.Source {
		dir := filepath.Join(t.TempDir(), "mirror")
		sourcetest.Layout(t, dir, blobs, refs)
		m, err := OpenLocal(dir)
		if err != nil {
			t.Fatal(err)
		}
		return m
	})
	sourcetest.RunStore(t, func(t *testing.T) image.Store {
		m, err := OpenLocal(filepath.Join(t.TempDir(), "mirror"))
		if err != nil {
			t.Fatal(err)
		}
		return m
	})
}

// TestMirrorSourceConformance runs the suite on the failover itself: an
// empty place first, then the one holding the blobs, so every read falls
// through.
func TestMirrorSourceConformance(t *testing.T) {
	sourcetest.Run(t, func(t *testing.T, blobs map[image.Digest][]byte, refs []image.Ref) image.Source {
		empty, err := OpenLocal(filepath.Join(t.TempDir(), "empty"))
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), "mirror")
		sourcetest.Layout(t, dir, blobs, refs)
		full, err := OpenLocal(dir)
		if err != nil {
			t.Fatal(err)
		}
		ms, err := NewMirrorSource(context.Background(), []Endpoint{empty, full}, MirrorOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return ms
	})
}
