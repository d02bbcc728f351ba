package profiles

import (
	"errors"
	"testing"
)

func TestMapSettingsAcrossSystems(t *testing.T) {
	a := &App{Name: "hello", Settings: map[string]string{
		"linux":   "${XDG_CONFIG_HOME}/hello",
		"darwin":  "~/Library/Application Support/hello",
		"windows": `%APPDATA%\hello`,
	}}
	linux := OSEnv{OS: "linux", Home: "/home/alice", Env: func(k string) string {
		return map[string]string{"XDG_CONFIG_HOME": "/home/alice/.config"}[k]
	}}
	windows := OSEnv{OS: "windows", Home: `C:\Users\alice`, Env: func(k string) string {
		return map[string]string{"APPDATA": `C:\Users\alice\AppData\Roaming`}[k]
	}}
	darwin := OSEnv{OS: "darwin", Home: "/Users/alice"}
	for _, c := range []struct {
		path     string
		from, to OSEnv
		want     string
	}{
		{"/home/alice/.config/hello/sub/a.toml", linux, windows, `C:\Users\alice\AppData\Roaming\hello\sub\a.toml`},
		{"/home/alice/.config/hello", linux, windows, `C:\Users\alice\AppData\Roaming\hello`},
		{`C:\Users\alice\AppData\Roaming\hello\a.toml`, windows, darwin, "/Users/alice/Library/Application Support/hello/a.toml"},
		{"/Users/alice/Library/Application Support/hello/x/y", darwin, linux, "/home/alice/.config/hello/x/y"},
	} {
		got, err := a.MapSettings(c.path, c.from, c.to)
		if err != nil || got != c.want {
			t.Errorf("%s from %s to %s: %q, %v; want %q", c.path, c.from.OS, c.to.OS, got, err, c.want)
		}
	}
	for _, bad := range []string{"/home/alice/.config/hellox/a", "/home/alice/.bashrc", "/home/alice/.config/hello/../../x"} {
		if _, err := a.MapSettings(bad, linux, windows); !errors.Is(err, ErrNoSettings) {
			t.Errorf("%s: %v, want ErrNoSettings", bad, err)
		}
	}
	if _, err := a.MapSettings("/x", linux, OSEnv{OS: "windows", Env: func(string) string { return "" }}); !errors.Is(err, ErrNoSettings) {
		t.Errorf("unset %%APPDATA%%: %v, want ErrNoSettings", err)
	}
	b := &App{Name: "b", Settings: map[string]string{"linux": "~/.b"}}
	if _, err := b.MapSettings("/home/alice/.b/x", linux, windows); !errors.Is(err, ErrNoSettings) {
		t.Errorf("no windows path: %v, want ErrNoSettings", err)
	}
}
