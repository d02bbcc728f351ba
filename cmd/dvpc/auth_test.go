package main

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dvpc/dvpc/internal/regtest"
)

// dockerConfig writes a Docker client config.json whose "auths" entry for
// host holds user and pass, and returns its directory, for DOCKER_CONFIG.
func dockerConfig(t *testing.T, host, user, pass string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{"auths": map[string]any{
		host: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))},
	}}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestAuthMirror: a mirror that requires Basic authentication, with the
// credentials in the Docker client configuration. Push, status, and a new
// PC's pull and restore work; without credentials, or with a wrong
// password, a push fails and names the mirror, and no output, status or
// file of the store shows the password.
func TestAuthMirror(t *testing.T) {
	const (
		user      = "dvpc-cli-user"
		pass      = "cli-right-pass-Jm5Rw2Xq8z"
		wrongPass = "cli-wrong-pass-Pk7Dv4Ns1b"
	)
	reg := regtest.Start(t, regtest.WithBasicAuth(user, pass))
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	mkhome(t, home)
	randomFile(t, filepath.Join(home, "docs", "scan.bin"), 11, 1<<20)
	url := reg.Addr() + "/dvpc/home"

	secrets := []string{pass, wrongPass,
		base64.StdEncoding.EncodeToString([]byte(user + ":" + pass)),
		base64.StdEncoding.EncodeToString([]byte(user + ":" + wrongPass))}
	noSecret := func(what, text string) {
		t.Helper()
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Fatalf("%s reveals the secret %q:\n%s", what, s, text)
			}
		}
	}

	cli := newCLI(t, filepath.Join(dir, "store"), "auth test passphrase").with("DOCKER_CONFIG", dockerConfig(t, reg.Addr(), user, pass))
	cli.must("init", "--argon2-memory", "8")
	cli.must("mirror", "add", url, "--name", "locked")
	cli.snapshot(home)

	// With no credentials the registry refuses, and the push says why.
	anon := cli.with("DOCKER_CONFIG", t.TempDir())
	r := anon.expect(exitPartial, "push")
	if !strings.Contains(r.stderr, "push to locked") || !strings.Contains(r.stderr, "asks for credentials and none are configured") {
		t.Fatalf("push without credentials:\n%s", r)
	}

	r = cli.must("push")
	if !strings.Contains(r.stdout, "locked:") || !strings.Contains(r.stdout, "sent") {
		t.Fatalf("push:\n%s", r)
	}
	noSecret("push", r.String())
	var st []statusRow
	r = cli.must("--json", "mirror", "status")
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || len(st) != 1 || st[0].Reachable == nil || !*st[0].Reachable ||
		st[0].Newest == "" || st[0].Missing != 0 || st[0].BlobsMiss != 0 || st[0].LastError != "" {
		t.Fatalf("mirror status: %v %+v\n%s", err, st, r)
	}

	// A new PC with the same Docker configuration pulls and restores.
	fresh := cli.onStore(filepath.Join(dir, "new-pc"))
	r = fresh.must("pull", url)
	if !strings.Contains(r.stdout, "pulled 1 snapshot:") {
		t.Fatalf("pull:\n%s", r)
	}
	noSecret("pull", r.String())
	fresh.requireRestores("latest", home)

	// A wrong password: the push fails for that mirror, and the password
	// shows nowhere.
	randomFile(t, filepath.Join(home, "docs", "new.bin"), 12, 64<<10)
	cli.snapshot(home)
	wrong := cli.with("DOCKER_CONFIG", dockerConfig(t, reg.Addr(), user, wrongPass))
	r = wrong.expect(exitPartial, "push")
	if !strings.Contains(r.stderr, "push to locked") || !strings.Contains(r.stderr, "401 Unauthorized") {
		t.Fatalf("push with a wrong password:\n%s", r)
	}
	noSecret("push with a wrong password", r.String())
	r = wrong.expect(exitPartial, "--json", "push")
	noSecret("push --json with a wrong password", r.String())

	r = wrong.must("--json", "mirror", "status")
	st = nil // Unmarshal keeps the fields a row omits
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || len(st) != 1 || st[0].Reachable == nil || *st[0].Reachable ||
		!strings.Contains(st[0].LastError, "401 Unauthorized") {
		t.Fatalf("mirror status with a wrong password: %v %+v\n%s", err, st, r)
	}
	noSecret("mirror status --json with a wrong password", r.String())
	r = wrong.must("mirror", "status")
	noSecret("mirror status with a wrong password", r.String())
	var list []struct {
		LastError string `json:"last_error"`
	}
	r = wrong.must("--json", "mirror", "list")
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 || !strings.Contains(list[0].LastError, "401 Unauthorized") {
		t.Fatalf("mirror list after a push with a wrong password: %v %+v\n%s", err, list, r)
	}
	noSecret("mirror list --json with a wrong password", r.String())
	filepath.WalkDir(filepath.Join(dir, "store"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if d.Type().IsRegular() && !strings.Contains(p, filepath.Join("blobs", "sha256")) {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			noSecret(p, string(b))
		}
		return nil
	})

	// The right password again: the push catches the mirror up, and the
	// new PC pulls the second snapshot.
	cli.must("push")
	r = cli.must("--json", "mirror", "status")
	st = nil // Unmarshal keeps the fields a row omits
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || len(st) != 1 || st[0].Missing != 0 || st[0].LastError != "" {
		t.Fatalf("mirror status after the push: %v %+v\n%s", err, st, r)
	}
	r = fresh.must("pull")
	if !strings.Contains(r.stdout, "pulled 1 snapshot:") {
		t.Fatalf("second pull:\n%s", r)
	}
	fresh.requireRestores("latest", home)
}
