package profiles

import (
	"archive/tar"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// layoutApp writes a two-platform index with one tool each into an OCI
// layout, tagged "1", and returns the layout's directory and the index.
func layoutApp(t *testing.T) (string, v1.ImageIndex) {
	t.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "windows", Architecture: "amd64"}} {
		l := static.NewLayer(tarOf(t,
			&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755},
			&tar.Header{Name: "bin/tool-" + p.OS, Typeflag: tar.TypeReg, Mode: 0o755},
			&tar.Header{Name: "usr/bin", Typeflag: tar.TypeSymlink, Linkname: "/bin"},
		), types.OCIUncompressedLayer)
		img, err := mutate.Append(mutate.MediaType(empty.Image, types.OCIManifestSchema1), mutate.Addendum{Layer: l})
		if err != nil {
			t.Fatal(err)
		}
		cf, _ := img.ConfigFile()
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = p.OS, p.Architecture
		cf.Config.Entrypoint = []string{"/usr/bin/tool-" + p.OS}
		cf.Config.Labels = map[string]string{AnnotationSettings + p.OS: "~/.tool"}
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			t.Fatal(err)
		}
		pp := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &pp}})
	}
	dir := filepath.Join(t.TempDir(), "oci")
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{refNameAnnotation: "1"})); err != nil {
		t.Fatal(err)
	}
	return dir, idx
}

func TestResolveAndInstallFromLayout(t *testing.T) {
	ctx := context.Background()
	dir, idx := layoutApp(t)
	want, _ := idx.Digest()
	res, err := Resolve(ctx, LayoutPrefix+dir+":1")
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != want || len(res.Images) != 2 {
		t.Fatalf("resolved %s with %d images, want %s with 2", res.Digest, len(res.Images), want)
	}
	a, err := NewApp("tool", res, nil, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if a.Settings["linux"] != "~/.tool" || a.Settings["windows"] != "~/.tool" {
		t.Errorf("settings from the config labels: %v", a.Settings)
	}
	apps, bins := filepath.Join(t.TempDir(), "apps"), filepath.Join(t.TempDir(), "bin")
	// Something of the person's where a binary would go is left alone.
	os.MkdirAll(bins, 0o755)
	os.WriteFile(filepath.Join(bins, "tool"), []byte("mine"), 0o755)
	if _, err := InstallApp(ctx, a, Platform{OS: "linux", Arch: "amd64"}, apps, bins, nil); err == nil {
		t.Fatal("install replaced a file of the person's in the bin directory")
	}
	if b, _ := os.ReadFile(filepath.Join(bins, "tool")); string(b) != "mine" {
		t.Fatalf("the person's file changed: %q", b)
	}
	os.Remove(filepath.Join(bins, "tool"))
	got, err := InstallApp(ctx, a, Platform{OS: "linux", Arch: "amd64"}, apps, bins, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(bins, "tool"))
	if err != nil || string(b) != "content of bin/tool-linux" {
		t.Errorf("the linked binary reads %q, %v", b, err)
	}
	if got.Installed.Platform.OS != "linux" || len(got.Installed.Report.Rewritten) != 1 {
		t.Errorf("installed %+v", got.Installed)
	}
	if err := Unlink(bins, apps); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(bins, "tool")); !os.IsNotExist(err) {
		t.Errorf("unlink left the link: %v", err)
	}
	if _, _, err := a.For(Platform{OS: "darwin", Arch: "arm64"}); !errors.Is(err, ErrNoPlatform) {
		t.Errorf("darwin: %v, want ErrNoPlatform", err)
	}
}

func TestInstallRefusesCorruptLayoutBlobs(t *testing.T) {
	ctx := context.Background()
	dir, idx := layoutApp(t)
	im, _ := idx.IndexManifest()
	img, _ := idx.Image(im.Manifests[0].Digest)
	m, _ := img.Manifest()
	ld := m.Layers[0].Digest
	p := filepath.Join(dir, "blobs", "sha256", ld.Hex)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[600] ^= 1
	os.WriteFile(p, b, 0o644)
	apps := filepath.Join(t.TempDir(), "apps")
	_, err = Install(ctx, LayoutPrefix+dir, im.Manifests[0].Digest, apps, nil)
	var le *LayerError
	var de *DigestError
	if !errors.As(err, &le) || le.Digest != ld || !errors.As(err, &de) {
		t.Fatalf("install from a corrupt layer: %v, want a LayerError naming %s", err, ld)
	}
	if ents, _ := os.ReadDir(apps); len(ents) != 0 {
		t.Errorf("install left %v", ents)
	}
	// A manifest that does not hash to its name is refused too.
	md := im.Manifests[1].Digest
	mp := filepath.Join(dir, "blobs", "sha256", md.Hex)
	mb, _ := os.ReadFile(mp)
	os.WriteFile(mp, append(mb, ' '), 0o644)
	if _, err := Install(ctx, LayoutPrefix+dir, md, apps, nil); !errors.As(err, &de) {
		t.Errorf("install of a changed manifest: %v, want a DigestError", err)
	}
}

func TestParseLocation(t *testing.T) {
	for ref, want := range map[string]location{
		"oci:/a/b":                       {dir: "/a/b"},
		"oci:/a/b:v1":                    {dir: "/a/b", tag: "v1"},
		"oci:rel:v1":                     {dir: "rel", tag: "v1"},
		"oci:/a:b/c":                     {dir: "/a:b/c"},
		"oci:/a/b@sha256:" + repeat('a'): {dir: "/a/b", digest: "sha256:" + repeat('a')},
	} {
		got, err := parseLocation(ref)
		if err != nil || got.dir != want.dir || got.tag != want.tag || got.digest != want.digest {
			t.Errorf("%s: %+v %v, want %+v", ref, got, err, want)
		}
	}
	for _, bad := range []string{"oci:", "oci:/a@sha256:zz", "UPPER/case:tag"} {
		if _, err := parseLocation(bad); !errors.Is(err, ErrBadRef) {
			t.Errorf("%s: %v, want ErrBadRef", bad, err)
		}
	}
}

func TestInstallPrefersPlacesAndFallsThrough(t *testing.T) {
	ctx := context.Background()
	dir, idx := layoutApp(t)
	im, _ := idx.IndexManifest()
	md := im.Manifests[0].Digest
	img, _ := idx.Image(md)
	m, _ := img.Manifest()
	ld := m.Layers[0].Digest

	// A copy of the layout is the nearest place; the reference's own
	// layout then goes away: everything comes from the copy.
	near := filepath.Join(t.TempDir(), "near")
	if err := os.CopyFS(near, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	ref := filepath.Join(t.TempDir(), "gone")
	if err := os.Rename(dir, ref); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	var refused []Refusal
	f := &Fetcher{Places: []BlobPlace{DirPlace(empty), DirPlace(near)}, OnRefused: func(r Refusal) { refused = append(refused, r) }}
	apps := filepath.Join(t.TempDir(), "apps")
	if _, err := Install(ctx, LayoutPrefix+dir, md, apps, f); err != nil {
		t.Fatalf("install from the nearest place with the registry gone: %v", err)
	}
	if len(refused) != 0 {
		t.Errorf("refused %v", refused)
	}

	// A flipped byte in the near copy: refused, named, and the layer is
	// taken from the reference's layout.
	p := filepath.Join(near, "blobs", "sha256", ld.Hex)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	apps2 := filepath.Join(t.TempDir(), "apps")
	if _, err := Install(ctx, LayoutPrefix+dir, md, apps2, f); err == nil {
		t.Fatal("install with the only good copy gone succeeded")
	}
	if len(refused) != 1 || refused[0].Digest != ld || refused[0].Place != near {
		t.Fatalf("refused %v, want %s from %s", refused, ld, near)
	}
	var de *DigestError
	if !errors.As(refused[0].Err, &de) {
		t.Errorf("refusal %v, want a DigestError", refused[0].Err)
	}
	refused = nil
	if err := os.Rename(ref, dir); err != nil {
		t.Fatal(err)
	}
	if _, err := Install(ctx, LayoutPrefix+dir, md, apps2, f); err != nil {
		t.Fatalf("install with a good copy in the reference's layout: %v", err)
	}
	if len(refused) != 1 || refused[0].Digest != ld {
		t.Errorf("refused %v, want %s", refused, ld)
	}
}
