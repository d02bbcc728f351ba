package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/dvpc/dvpc/profiles"
)

// A symbolic home for mapping settings paths between systems: every path
// is taken relative to it and put under the login's directory.
const symbolicHome = "/dvpc-home"

// osEnv is a system's view of a home at symbolicHome: its usual settings
// variables point into that home.
func osEnv(goos string) profiles.OSEnv {
	home := symbolicHome
	if goos == "windows" {
		home = `C:\dvpc-home`
	}
	vars := map[string]string{
		"APPDATA": home + `\AppData\Roaming`, "LOCALAPPDATA": home + `\AppData\Local`, "USERPROFILE": home,
		"XDG_CONFIG_HOME": home + "/.config", "XDG_DATA_HOME": home + "/.local/share", "HOME": home,
	}
	return profiles.OSEnv{OS: goos, Home: home, Env: func(k string) string { return vars[k] }}
}

// inHome turns a settings path of env's system into a path below dir,
// the home as it lies on this PC; false when the path is outside the home.
func inHome(env profiles.OSEnv, p, dir string) (string, bool) {
	sep := "/"
	if env.OS == "windows" {
		sep = `\`
	}
	rel, ok := strings.CutPrefix(p, env.Home)
	if !ok || rel != "" && !strings.HasPrefix(rel, sep) {
		return "", false
	}
	parts := strings.Split(strings.TrimPrefix(rel, sep), sep)
	for _, x := range parts {
		if x == ".." {
			return "", false
		}
	}
	return filepath.Join(append([]string{dir}, parts...)...), true
}

// placeSettings puts each app's settings, kept in the snapshot where the
// system it was taken on keeps them, where the app's build for this
// login's system looks for them: copied, never over a file already there.
// It returns one line per app whose settings it placed.
func placeSettings(p *profiles.Profile, from, to, dir string) ([]string, error) {
	if from == "" || from == to {
		return nil, nil
	}
	var done []string
	var errs []error
	for i := range p.Apps {
		a := &p.Apps[i]
		src, err1 := a.SettingsDir(osEnv(from))
		dst, err2 := a.SettingsDir(osEnv(to))
		if err1 != nil || err2 != nil {
			continue // the app declares no settings for one of the systems
		}
		s, ok1 := inHome(osEnv(from), src, dir)
		d, ok2 := inHome(osEnv(to), dst, dir)
		if !ok1 || !ok2 {
			continue
		}
		if _, err := os.Lstat(s); err != nil {
			continue
		}
		n, err := copyNew(s, d)
		if err != nil {
			errs = append(errs, fmt.Errorf("settings of %s: %w", a.Name, err))
			continue
		}
		if n > 0 {
			done = append(done, fmt.Sprintf("%s: %s → %s (%s)", a.Name, a.Settings[from], a.Settings[to], plural(n, "file")))
		}
	}
	return done, errors.Join(errs...)
}

// copyNew copies the tree at src to dst, leaving every file dst already
// has; links are not followed. It returns how many files it wrote.
func copyNew(src, dst string) (int, error) {
	n := 0
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o700)
		case !d.Type().IsRegular():
			return nil
		}
		if _, err := os.Lstat(to); err == nil {
			return nil
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		fi, err := in.Stat()
		if err != nil {
			return err
		}
		out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		n++
		return out.Close()
	})
	return n, err
}
