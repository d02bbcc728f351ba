package profiles

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
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

// Install fetches the image that ref's repository holds under manifest
// digest d and unpacks it into appsDir/<hex>. Every blob is read through
// f (see [Fetcher]: its places first, then the registry) and checked
// against its digest before any byte of it is used; f may be nil. The
// directory appears only when the whole image is in it. An image already
// installed is not fetched again.
func Install(ctx context.Context, ref string, d v1.Hash, appsDir string, f *Fetcher) (*Installed, error) {
	if in, err := LoadInstalled(appsDir, d); err == nil {
		return in, nil
	}
	m, cfg, err := f.Manifest(ctx, ref, d)
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
		if err := fetchAndUnpack(ctx, f, ref, desc, filepath.Join(tmp, fmt.Sprintf("layer-%d", i)), root, &in.Report); err != nil {
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
func fetchAndUnpack(ctx context.Context, f *Fetcher, ref string, desc v1.Descriptor, tmpFile string, root *os.Root, rep *UnpackReport) error {
	lerr := func(err error) error { return &LayerError{Digest: desc.Digest, Err: err} }
	if desc.Digest.Algorithm != "sha256" {
		return lerr(errors.New("only sha256 digests are taken"))
	}
	file, err := os.OpenFile(tmpFile, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return lerr(err)
	}
	defer func() {
		file.Close()
		os.Remove(tmpFile)
	}()
	if err := f.ToFile(ctx, ref, desc, "layer", file); err != nil {
		return lerr(err)
	}
	if err := Unpack(ctx, root, file, rep); err != nil {
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
