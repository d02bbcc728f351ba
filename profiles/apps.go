package profiles

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// AppInstall is what [InstallApp] did for one app.
type AppInstall struct {
	App       string
	Platform  Platform
	Digest    v1.Hash
	Installed *Installed
	Links     []string // the binaries linked, as paths in the bin directory
}

// InstallApp installs app a for platform p into appsDir (see [Install])
// and, when binDir is not "", links its binaries there. A name in binDir
// that is not a link dvpc made into appsDir is left alone and refused.
// Login calls it for each app of the profile, with this PC's platform.
// Blobs are read through f (nil: from the registry alone).
func InstallApp(ctx context.Context, a App, p Platform, appsDir, binDir string, f *Fetcher) (*AppInstall, error) {
	res := &AppInstall{App: a.Name, Platform: p}
	pi, h, err := a.For(p)
	if err != nil {
		return res, err
	}
	res.Digest = h
	in, err := Install(ctx, a.Ref, h, appsDir, f)
	if err != nil {
		return res, fmt.Errorf("install %s: %w", a.Name, err)
	}
	res.Installed = in
	if binDir == "" {
		return res, nil
	}
	for bin, path := range a.BinsFor(pi) {
		target, err := in.Path(path)
		if err != nil {
			return res, fmt.Errorf("install %s: binary %s: %w", a.Name, bin, err)
		}
		at, err := link(binDir, appsDir, bin, target)
		if err != nil {
			return res, fmt.Errorf("install %s: %w", a.Name, err)
		}
		res.Links = append(res.Links, at)
	}
	return res, nil
}

// BinDir is where apps' binaries are linked: ~/.local/bin, or on Windows
// a directory of shims, %LOCALAPPDATA%\dvpc\bin.
func BinDir() string {
	if runtime.GOOS == "windows" {
		if d := os.Getenv("LOCALAPPDATA"); d != "" {
			return filepath.Join(d, "dvpc", "bin")
		}
	}
	h, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(".local", "bin")
	}
	return filepath.Join(h, ".local", "bin")
}

// shimMark is the first line of a Windows shim dvpc wrote.
const shimMark = "@rem dvpc app shim"

// link links bin in dir to target. Only a link (or shim) into apps is
// replaced; anything else there is the person's and is refused.
func link(dir, apps, bin, target string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	at := filepath.Join(dir, bin)
	if runtime.GOOS == "windows" {
		at += ".cmd"
	}
	if fi, err := os.Lstat(at); err == nil {
		if !ownedLink(at, fi, apps) {
			return "", fmt.Errorf("%s exists and is not a link dvpc made; move it away, or name the binary otherwise with --bin", at)
		}
		if err := os.Remove(at); err != nil {
			return "", err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	if runtime.GOOS == "windows" {
		shim := shimMark + "\r\n@\"" + target + "\" %*\r\n"
		return at, os.WriteFile(at, []byte(shim), 0o755)
	}
	return at, os.Symlink(target, at)
}

// ownedLink tells whether the file at p is a link or shim into dir.
func ownedLink(p string, fi fs.FileInfo, dir string) bool {
	if fi.Mode()&fs.ModeSymlink != 0 {
		t, err := os.Readlink(p)
		return err == nil && filepath.IsAbs(t) && isWithin(t, dir)
	}
	if runtime.GOOS == "windows" && fi.Mode().IsRegular() && fi.Size() < 4096 {
		b, err := os.ReadFile(p)
		return err == nil && strings.HasPrefix(string(b), shimMark) && strings.Contains(string(b), dir)
	}
	return false
}

func isWithin(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// Unlink removes the links and shims in binDir that point into dir (an
// app's directory, or the whole apps directory at logout).
func Unlink(binDir, dir string) error {
	ents, err := os.ReadDir(binDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		p := filepath.Join(binDir, e.Name())
		fi, err := os.Lstat(p)
		if err == nil && ownedLink(p, fi, dir) {
			if err := os.Remove(p); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
