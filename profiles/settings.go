package profiles

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNoSettings means an app declares no settings path for an OS, or a
// file is not under the app's settings directory.
var ErrNoSettings = errors.New("no settings path")

// OSEnv is one system's view of where things are: its OS, the person's
// home there and its environment (APPDATA, XDG_CONFIG_HOME...).
type OSEnv struct {
	OS   string
	Home string
	Env  func(string) string
}

func (e OSEnv) sep() string {
	if e.OS == "windows" {
		return `\`
	}
	return "/"
}

// SettingsDir expands where the app keeps its settings on e's OS: a
// leading ~ is the home, %VAR% and $VAR or ${VAR} come from the
// environment. It wraps [ErrNoSettings] when the app declares none.
func (a *App) SettingsDir(e OSEnv) (string, error) {
	p, ok := a.Settings[e.OS]
	if !ok {
		return "", fmt.Errorf("app %s on %s: %w", a.Name, e.OS, ErrNoSettings)
	}
	get := e.Env
	if get == nil {
		get = func(string) string { return "" }
	}
	if p == "~" || strings.HasPrefix(p, "~/") || strings.HasPrefix(p, `~\`) {
		p = e.Home + p[1:]
	}
	var out strings.Builder
	for i := 0; i < len(p); {
		switch {
		case p[i] == '%':
			j := strings.IndexByte(p[i+1:], '%')
			if j <= 0 {
				out.WriteByte(p[i])
				i++
				continue
			}
			v := get(p[i+1 : i+1+j])
			if v == "" {
				return "", fmt.Errorf("app %s on %s: %s names %%%s%%, which is not set: %w", a.Name, e.OS, p, p[i+1:i+1+j], ErrNoSettings)
			}
			out.WriteString(v)
			i += j + 2
		case p[i] == '$' && e.OS != "windows":
			name, n := envName(p[i+1:])
			if name == "" {
				out.WriteByte(p[i])
				i++
				continue
			}
			v := get(name)
			if v == "" {
				return "", fmt.Errorf("app %s on %s: %s names $%s, which is not set: %w", a.Name, e.OS, p, name, ErrNoSettings)
			}
			out.WriteString(v)
			i += 1 + n
		default:
			out.WriteByte(p[i])
			i++
		}
	}
	return cleanSep(out.String(), e.sep()), nil
}

// envName reads NAME or {NAME} at the start of s, returning the name and
// how many bytes it took.
func envName(s string) (string, int) {
	if strings.HasPrefix(s, "{") {
		if j := strings.IndexByte(s, '}'); j > 1 {
			return s[1:j], j + 1
		}
		return "", 0
	}
	n := 0
	for n < len(s) && (s[n] == '_' || s[n] >= 'A' && s[n] <= 'Z' || s[n] >= 'a' && s[n] <= 'z' || n > 0 && s[n] >= '0' && s[n] <= '9') {
		n++
	}
	return s[:n], n
}

// cleanSep writes every separator as sep and drops a trailing one.
func cleanSep(p, sep string) string {
	if sep == `\` {
		p = strings.ReplaceAll(p, "/", `\`)
	}
	for len(p) > 1 && strings.HasSuffix(p, sep) {
		p = p[:len(p)-1]
	}
	return p
}

// MapSettings says where the file at path, under the app's settings
// directory on from, goes on to: the same place under the settings
// directory that the app's build for to reads. A snapshot keeps the
// settings once, where they were; a login on another OS puts them here.
func (a *App) MapSettings(path string, from, to OSEnv) (string, error) {
	src, err := a.SettingsDir(from)
	if err != nil {
		return "", err
	}
	dst, err := a.SettingsDir(to)
	if err != nil {
		return "", err
	}
	p := cleanSep(path, from.sep())
	rel, ok := strings.CutPrefix(p, src)
	if !ok || rel != "" && !strings.HasPrefix(rel, from.sep()) {
		return "", fmt.Errorf("%s is not under app %s's settings directory %s: %w", path, a.Name, src, ErrNoSettings)
	}
	parts := strings.Split(strings.TrimPrefix(rel, from.sep()), from.sep())
	for _, x := range parts {
		if x == ".." {
			return "", fmt.Errorf("%s climbs out of app %s's settings directory: %w", path, a.Name, ErrNoSettings)
		}
	}
	if rel == "" {
		return dst, nil
	}
	return dst + to.sep() + strings.Join(parts, to.sep()), nil
}
