package profiles

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// InstalledFile is the record an installed app directory holds next to
// its root filesystem.
const InstalledFile = "dvpc-app.json"

// LayerError names a layer that could not be fetched, failed its digest,
// or could not be unpacked; nothing of its image is installed.
type LayerError struct {
	Digest v1.Hash
	Err    error
}

func (e *LayerError) Error() string { return fmt.Sprintf("layer %s: %v", e.Digest, e.Err) }

func (e *LayerError) Unwrap() error { return e.Err }

// Installed is one image unpacked on this PC.
type Installed struct {
	Digest     v1.Hash      `json:"digest"`
	Platform   Platform     `json:"platform"`
	Entrypoint []string     `json:"entrypoint,omitempty"`
	Env        []string     `json:"env,omitempty"`
	WorkingDir string       `json:"working_dir,omitempty"`
	Report     UnpackReport `json:"report"`
	// Dir is the app's directory, Root its root filesystem in it.
	Dir  string `json:"-"`
	Root string `json:"-"`
}

// InstalledDir is where the image with manifest digest d lives under
// appsDir.
func InstalledDir(appsDir string, d v1.Hash) string { return filepath.Join(appsDir, d.Hex) }

// LoadInstalled reads the record of an installed image; it wraps
// fs.ErrNotExist when the image is not installed.
func LoadInstalled(appsDir string, d v1.Hash) (*Installed, error) {
	dir := InstalledDir(appsDir, d)
	b, err := os.ReadFile(filepath.Join(dir, InstalledFile))
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", d, err)
	}
	var in Installed
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, fmt.Errorf("app %s: %s: %w", d, InstalledFile, err)
	}
	if in.Digest != d {
		return nil, fmt.Errorf("app %s: its record names %s", d, in.Digest)
	}
	in.Dir, in.Root = dir, filepath.Join(dir, "rootfs")
	return &in, nil
}

// pinnedImage opens the image ref's repository holds under digest d.
func pinnedImage(ctx context.Context, ref string, d v1.Hash) (v1.Image, error) {
	loc, err := parseLocation(ref)
	if err != nil {
		return nil, err
	}
	if loc.remote != nil {
		return remote.Image(loc.remote.Context().Digest(d.String()), remoteOptions(ctx)...)
	}
	p, err := layout.FromPath(loc.dir)
	if err != nil {
		return nil, err
	}
	top, err := p.ImageIndex()
	if err != nil {
		return nil, err
	}
	return findInIndex(top, d, 0)
}

// findInIndex finds the image with manifest digest d in idx or the
// indexes it names.
func findInIndex(idx v1.ImageIndex, d v1.Hash, depth int) (v1.Image, error) {
	if depth > 4 {
		return nil, fmt.Errorf("image %s: indexes nest too deep", d)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, desc := range im.Manifests {
		if desc.Digest == d && desc.MediaType.IsImage() {
			return idx.Image(d)
		}
	}
	for _, desc := range im.Manifests {
		if desc.MediaType.IsIndex() {
			child, err := idx.ImageIndex(desc.Digest)
			if err != nil {
				return nil, err
			}
			if img, err := findInIndex(child, d, depth+1); err == nil {
				return img, nil
			}
		}
	}
	return nil, fmt.Errorf("image %s: %w", d, fs.ErrNotExist)
}

// Install fetches the image that ref's repository holds under manifest
// digest d and unpacks it into appsDir/<hex>. Every layer is checked
// against its digest before it is unpacked; the directory appears only
// when the whole image is in it. An image already installed is not
// fetched again.
func Install(ctx context.Context, ref string, d v1.Hash, appsDir string) (*Installed, error) {
	if in, err := LoadInstalled(appsDir, d); err == nil {
		return in, nil
	}
	img, err := pinnedImage(ctx, ref, d)
	if err != nil {
		return nil, fmt.Errorf("install %s@%s: %w", ref, d, err)
	}
	m, cfg, err := readImage(img, d)
	if err != nil {
		return nil, fmt.Errorf("install %s@%s: %w", ref, d, err)
	}
	if err := os.MkdirAll(appsDir, 0o700); err != nil {
		return nil, fmt.Errorf("install %s: %w", ref, err)
	}
	tmp, err := os.MkdirTemp(appsDir, ".install-"+d.Hex[:12]+"-")
	if err != nil {
		return nil, fmt.Errorf("install %s: %w", ref, err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	rootDir := filepath.Join(tmp, "rootfs")
	if err := os.Mkdir(rootDir, 0o755); err != nil {
		return nil, fmt.Errorf("install %s: %w", ref, err)
	}
	root, err := os.OpenRoot(rootDir)
	if err != nil {
		return nil, fmt.Errorf("install %s: %w", ref, err)
	}
	defer root.Close()
	in := &Installed{
		Digest: d, Platform: Platform{OS: cfg.OS, Arch: cfg.Architecture, Variant: cfg.Variant},
		Entrypoint: append(append([]string(nil), cfg.Config.Entrypoint...), cfg.Config.Cmd...),
		Env:        cfg.Config.Env, WorkingDir: cfg.Config.WorkingDir,
	}
	for i, desc := range m.Layers {
		if err := fetchAndUnpack(ctx, img, desc, filepath.Join(tmp, fmt.Sprintf("layer-%d", i)), root, &in.Report); err != nil {
			return nil, fmt.Errorf("install %s@%s: %w", ref, d, err)
		}
	}
	b, err := json.MarshalIndent(in, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeSynced(filepath.Join(tmp, InstalledFile), b); err != nil {
		return nil, fmt.Errorf("install %s: %w", ref, err)
	}
	final := InstalledDir(appsDir, d)
	if err := os.Rename(tmp, final); err != nil {
		if _, serr := os.Stat(filepath.Join(final, InstalledFile)); serr != nil {
			return nil, fmt.Errorf("install %s: %w", ref, err)
		}
		// Installed meanwhile by another run: keep that one.
	} else {
		done = true
	}
	return LoadInstalled(appsDir, d)
}

// fetchAndUnpack copies one layer to a temporary file, checks it against
// its digest and size, and only then unpacks it.
func fetchAndUnpack(ctx context.Context, img v1.Image, desc v1.Descriptor, tmpFile string, root *os.Root, rep *UnpackReport) error {
	lerr := func(err error) error { return &LayerError{Digest: desc.Digest, Err: err} }
	if desc.Digest.Algorithm != "sha256" {
		return lerr(errors.New("only sha256 digests are taken"))
	}
	l, err := img.LayerByDigest(desc.Digest)
	if err != nil {
		return lerr(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return lerr(err)
	}
	f, err := os.OpenFile(tmpFile, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		rc.Close()
		return lerr(err)
	}
	defer func() {
		f.Close()
		os.Remove(tmpFile)
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(rc, desc.Size+1))
	rc.Close()
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); err == nil && got != desc.Digest.String() {
		err = &DigestError{What: "layer", Want: desc.Digest, Got: got}
	}
	if err == nil && n != desc.Size {
		err = fmt.Errorf("%d bytes, want %d", n, desc.Size)
	}
	if err != nil {
		return lerr(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return lerr(err)
	}
	if err := Unpack(ctx, root, f, rep); err != nil {
		return lerr(err)
	}
	return nil
}

func writeSynced(name string, b []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Path returns where the file at p inside the app's image (absolute, as
// an entrypoint names it, or relative to its root) is on this PC. Symlinks
// inside the image are followed within it; p may not leave it.
func (in *Installed) Path(p string) (string, error) {
	root, err := os.OpenRoot(in.Root)
	if err != nil {
		return "", err
	}
	defer root.Close()
	rel := path.Clean(strings.TrimLeft(filepath.ToSlash(p), "/"))
	if rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("%s climbs out of the app's directory: %w", p, ErrHostile)
	}
	for range 40 {
		fi, err := root.Lstat(rel)
		if err != nil {
			return "", fmt.Errorf("app %s: %w", in.Digest, err)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return filepath.Join(in.Root, filepath.FromSlash(rel)), nil
		}
		t, err := root.Readlink(rel)
		if err != nil {
			return "", err
		}
		rel = strings.Join(resolveIn(path.Dir(rel), t), "/")
		if rel == "" {
			rel = "."
		}
	}
	return "", fmt.Errorf("%s: too many levels of symbolic links", p)
}
