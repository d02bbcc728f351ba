package delta

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/dvpc/dvpc/internal/regtest"
)

// The credentials of the authentication tests. The passwords are distinctive
// so that a leak into an error or a report cannot go unnoticed.
const (
	authUser  = "dvpc-auth-user"
	authPass  = "right-pass-Hq4Lw9Zr2x"
	wrongPass = "wrong-pass-Vn8Kc3Tj6y"
)

func basicAuth(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

// useDockerConfig writes cfg as config.json into a new directory and points
// DOCKER_CONFIG at it for the rest of the test.
func useDockerConfig(t *testing.T, cfg any) {
	t.Helper()
	dir := t.TempDir()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dir)
}

// installCredHelper puts an executable docker-credential-dvpctest first on
// PATH for the rest of the test. Asked "get" with host on stdin, it answers
// user and pass, and for any other host that it has no credentials, as
// Docker's helpers do. It returns a file that lists the hosts it was asked
// for, one a line.
func installCredHelper(t *testing.T, host, user, pass string) string {
	t.Helper()
	dir := t.TempDir()
	asked := filepath.Join(dir, "asked")
	answer, err := json.Marshal(map[string]string{"ServerURL": host, "Username": user, "Secret": pass})
	if err != nil {
		t.Fatal(err)
	}
	creds := filepath.Join(dir, "creds.json")
	if err := os.WriteFile(creds, answer, 0o600); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`#!/bin/sh
if [ "$1" != get ]; then
	echo "dvpctest: unsupported action $1" >&2
	exit 1
fi
IFS= read -r host
printf '%%s\n' "$host" >> '%s'
if [ "$host" = '%s' ]; then
	cat '%s'
	exit 0
fi
echo "credentials not found in native keychain"
exit 1
`, asked, host, creds)
	if err := os.WriteFile(filepath.Join(dir, "docker-credential-dvpctest"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return asked
}

// helperAsked returns the hosts the credential helper was asked for.
func helperAsked(t *testing.T, asked string) []string {
	t.Helper()
	b, err := os.ReadFile(asked)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

// requireNoSecret fails the test if text holds a password or an encoded
// credential.
func requireNoSecret(t *testing.T, what, text string) {
	t.Helper()
	for _, s := range []string{authPass, wrongPass, basicAuth(authUser, authPass), basicAuth(authUser, wrongPass)} {
		if strings.Contains(text, s) {
			t.Fatalf("%s reveals the secret %q:\n%s", what, s, text)
		}
	}
}

// TestAuthBasic pushes to and pulls from registries that require Basic
// authentication, with the credentials found in each place the Docker
// client configuration can keep them.
func TestAuthBasic(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	s1 := s.snapshot(t)
	want := copyHome(t, s)

	cases := []struct {
		name string
		// cfg returns the config.json for the registry at host;
		// helperFor, when set, installs the credential helper with the
		// credentials of the host it returns; helperUsed says that the
		// helper must have been asked for the registry.
		cfg        func(host string) any
		helperFor  func(host string) string
		helperUsed bool
	}{
		{name: "auths auth", cfg: func(host string) any {
			return map[string]any{"auths": map[string]any{host: map[string]string{"auth": basicAuth(authUser, authPass)}}}
		}},
		{name: "auths username and password with a scheme", cfg: func(host string) any {
			return map[string]any{"auths": map[string]any{
				"registry.example": map[string]string{"auth": basicAuth("someone", "else")},
				"http://" + host:   map[string]string{"username": authUser, "password": authPass},
			}}
		}},
		{name: "auths URL key with a path", cfg: func(host string) any {
			return map[string]any{"auths": map[string]any{"https://" + host + "/v1/": map[string]string{"auth": basicAuth(authUser, authPass)}}}
		}},
		{name: "auths exact key before a URL key", cfg: func(host string) any {
			return map[string]any{"auths": map[string]any{
				host:                       map[string]string{"auth": basicAuth(authUser, authPass)},
				"http://" + host:           map[string]string{"auth": basicAuth(authUser, wrongPass)},
				"https://" + host + "/v2/": map[string]string{"auth": basicAuth(authUser, wrongPass)},
			}}
		}},
		{name: "credHelpers before auths", cfg: func(host string) any {
			return map[string]any{
				"credHelpers": map[string]string{host: "dvpctest"},
				"auths":       map[string]any{host: map[string]string{"auth": basicAuth(authUser, wrongPass)}},
			}
		}, helperFor: func(host string) string { return host }, helperUsed: true},
		{name: "credsStore", cfg: func(host string) any {
			return map[string]any{"credsStore": "dvpctest"}
		}, helperFor: func(host string) string { return host }, helperUsed: true},
		{name: "credsStore without the host, then auths", cfg: func(host string) any {
			return map[string]any{
				"credsStore": "dvpctest",
				"auths":      map[string]any{host: map[string]string{"auth": basicAuth(authUser, authPass)}},
			}
		}, helperFor: func(string) string { return "registry.example" }, helperUsed: true},
	}
	regs := regtest.StartN(t, len(cases), regtest.WithBasicAuth(authUser, authPass))

	t.Run("no credentials", func(t *testing.T) {
		useDockerConfig(t, map[string]any{"auths": map[string]any{"registry.example": map[string]string{"auth": basicAuth(authUser, authPass)}}})
		m := mirrorsOf(t, regs[:1], "dvpc/home")[0]
		rep, err := Push(ctx, s.lay, m, PushOptions{})
		if err == nil || !strings.Contains(err.Error(), "asks for credentials and none are configured") || !errors.Is(err, ErrAuth) {
			t.Fatalf("push without credentials: %+v, %v", rep, err)
		}
		if rep.BlobsUploaded != 0 || rep.Manifests != 0 {
			t.Fatalf("push without credentials sent %+v", rep)
		}
	})

	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reg := regs[i]
			useDockerConfig(t, c.cfg(reg.Addr()))
			var asked string
			if c.helperFor != nil {
				asked = installCredHelper(t, c.helperFor(reg.Addr()), authUser, authPass)
			}
			rep, err := Push(ctx, s.lay, mirrorsOf(t, []*regtest.Registry{reg}, "dvpc/home")[0], PushOptions{})
			if err != nil {
				t.Fatalf("push: %v", err)
			}
			if rep.BlobsUploaded == 0 || rep.Manifests != 3 {
				t.Fatalf("push: %+v", rep)
			}
			if c.helperUsed {
				if got := helperAsked(t, asked); len(got) == 0 || slices.ContainsFunc(got, func(h string) bool { return h != reg.Addr() }) {
					t.Fatalf("the credential helper was asked for %q, want %s", got, reg.Addr())
				}
			}
			dst := newLayout(t)
			prep, err := Pull(ctx, mirrorsOf(t, []*regtest.Registry{reg}, "dvpc/home"), dst, PullOptions{Key: s.key()})
			if err != nil {
				t.Fatalf("pull: %v", err)
			}
			if len(prep.Snapshots) != 1 || prep.BlobsFetched == 0 || len(prep.Failures) != 0 {
				t.Fatalf("pull: %+v", prep)
			}
			restoreEqual(t, dst, s1.ID, want)
		})
	}
}

// TestDockerKeychainKeys checks which "auths" entry of the Docker
// configuration names a host, as the Docker client reads them: the entry
// whose key is the host itself, else one whose key is a URL of the host
// (legacy configurations have "https://host/v1/").
func TestDockerKeychainKeys(t *testing.T) {
	const host = "127.0.0.1:5000"
	right := map[string]string{"auth": basicAuth(authUser, authPass)}
	wrong := map[string]string{"auth": basicAuth(authUser, wrongPass)}
	for _, c := range []struct {
		name  string
		auths map[string]any
		want  Credentials
	}{
		{"host", map[string]any{host: right}, Credentials{authUser, authPass}},
		{"URL", map[string]any{"http://" + host: right}, Credentials{authUser, authPass}},
		{"URL with a path", map[string]any{"https://" + host + "/v1/": right}, Credentials{authUser, authPass}},
		{"host before URLs", map[string]any{"http://" + host: wrong, host: right, "https://" + host + "/v2/": wrong, "https://" + host: wrong},
			Credentials{authUser, authPass}},
		{"another port", map[string]any{"127.0.0.1:5001": right, "https://127.0.0.1/": right}, Credentials{}},
		{"a host with this prefix", map[string]any{host + "0": right, "https://" + host + "0/v1/": right}, Credentials{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			useDockerConfig(t, map[string]any{"auths": c.auths})
			// Map order varies from run to run: ask often enough to see
			// a choice that depends on it.
			for range 50 {
				got, err := DockerKeychain(context.Background(), host)
				if err != nil || got != c.want {
					t.Fatalf("DockerKeychain(%s): user %q, the right secret %v, %v; want user %q, the right secret %v", host, got.User, got.Secret == c.want.Secret, err, c.want.User, c.want.Secret != "")
				}
			}
		})
	}
}

// tokenServer is a loopback Bearer token service: for the right Basic
// credentials it issues a fresh token granting the scopes asked for, and it
// records every request.
type tokenServer struct {
	*httptest.Server
	user, pass string

	mu       sync.Mutex
	granted  map[string][]string // token -> scopes
	asked    [][]string          // the scopes of each token request
	services []string
	refused  int
}

func newTokenServer(t *testing.T, user, pass string) *tokenServer {
	ts := &tokenServer{user: user, pass: pass, granted: map[string][]string{}}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/token" || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		q := r.URL.Query()
		ts.mu.Lock()
		defer ts.mu.Unlock()
		ts.asked = append(ts.asked, q["scope"])
		ts.services = append(ts.services, q.Get("service"))
		u, p, ok := r.BasicAuth()
		if !ok || u != ts.user || p != ts.pass {
			ts.refused++
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication failed"}]}`)
			return
		}
		var b [16]byte
		rand.Read(b[:])
		tok := hex.EncodeToString(b[:])
		ts.granted[tok] = q["scope"]
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"token": tok})
	}))
	t.Cleanup(ts.Close)
	return ts
}

// allows reports whether token grants action on repository repo.
func (ts *tokenServer) allows(token, repo, action string) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, s := range ts.granted[token] {
		parts := strings.Split(s, ":")
		if len(parts) == 3 && parts[0] == "repository" && parts[1] == repo && slices.Contains(strings.Split(parts[2], ","), action) {
			return true
		}
	}
	return false
}

// issued reports whether ts issued token.
func (ts *tokenServer) issued(token string) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	_, ok := ts.granted[token]
	return ok
}

// refusals counts the token requests refused for bad credentials.
func (ts *tokenServer) refusals() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.refused
}

// tokenAsks returns the scope sets asked for so far, and the services.
func (ts *tokenServer) tokenAsks() ([][]string, []string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return slices.Clone(ts.asked), slices.Clone(ts.services)
}

var repoPathRE = regexp.MustCompile(`^/v2/(.+)/(?:blobs|manifests|tags)/`)

// bearerProxy puts token authentication in front of a plain registry, as a
// registry with a token service does: a request must carry a token from ts
// granting pull (GET, HEAD) or push (anything else) on its repository, or
// it is answered 401 with a Bearer challenge naming ts. A blob mount whose
// token does not grant pull on the source repository becomes a plain
// upload. It returns the proxy's address and a counter of the requests it
// let through.
func bearerProxy(t *testing.T, reg *regtest.Registry, ts *tokenServer) (string, func() int) {
	t.Helper()
	var mu sync.Mutex
	passed := 0
	srv := hostileProxy(t, reg, func(w http.ResponseWriter, r *http.Request) bool {
		repo, action := "", "pull"
		if m := repoPathRE.FindStringSubmatch(r.URL.Path); m != nil {
			repo = m[1]
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			action = "pull,push"
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if ok && repo == "" {
			ok = ts.issued(tok)
		} else if ok {
			ok = ts.allows(tok, repo, "pull") && (action == "pull" || ts.allows(tok, repo, "push"))
		}
		if !ok {
			ch := fmt.Sprintf(`Bearer realm="%s/token",service="test"`, ts.URL)
			if repo != "" {
				ch += fmt.Sprintf(`,scope="repository:%s:%s"`, repo, action)
			}
			w.Header().Set("WWW-Authenticate", ch)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return true
		}
		q := r.URL.Query()
		if from := q.Get("from"); r.Method == http.MethodPost && from != "" && !ts.allows(tok, from, "pull") {
			q.Del("mount")
			q.Del("from")
			r.URL.RawQuery = q.Encode()
		}
		r.Header.Del("Authorization")
		mu.Lock()
		passed++
		mu.Unlock()
		return false
	}, nil)
	return srv.Listener.Addr().String(), func() int {
		mu.Lock()
		defer mu.Unlock()
		return passed
	}
}

// TestAuthBearer pushes and pulls through a registry that wants tokens from
// a token service, which gets the credentials of the Docker configuration.
func TestAuthBearer(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	s1 := s.snapshot(t)
	want := copyHome(t, s)
	reg := regtest.Start(t)
	ts := newTokenServer(t, authUser, authPass)
	addr, passed := bearerProxy(t, reg, ts)
	useDockerConfig(t, map[string]any{"auths": map[string]any{addr: map[string]string{"auth": basicAuth(authUser, authPass)}}})

	// Without a token nothing gets through.
	resp, err := http.Get("http://" + addr + "/v2/dvpc/home/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer ") {
		t.Fatalf("GET without a token: %s, %q", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}

	rep, err := Push(ctx, s.lay, mirrorAt(t, addr, "dvpc/home"), PushOptions{})
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	if rep.BlobsUploaded == 0 || rep.Manifests != 3 {
		t.Fatalf("push: %+v", rep)
	}
	asks, services := ts.tokenAsks()
	for _, want := range [][]string{{"repository:dvpc/home:pull"}, {"repository:dvpc/home:pull,push"}} {
		if !slices.ContainsFunc(asks, func(a []string) bool { return slices.Equal(a, want) }) {
			t.Fatalf("push asked for tokens with scopes %q, none with %q", asks, want)
		}
	}
	for _, sv := range services {
		if sv != "test" {
			t.Fatalf("token asked for service %q, want the challenge's \"test\"", sv)
		}
	}
	// Tokens are kept for their scopes, not asked for on every request.
	if len(asks) >= passed() {
		t.Fatalf("%d token requests for %d registry requests", len(asks), passed())
	}

	dst := newLayout(t)
	prep, err := Pull(ctx, []*Registry{mirrorAt(t, addr, "dvpc/home")}, dst, PullOptions{Key: s.key()})
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	if len(prep.Snapshots) != 1 || prep.BlobsFetched == 0 || len(prep.Failures) != 0 {
		t.Fatalf("pull: %+v", prep)
	}
	restoreEqual(t, dst, s1.ID, want)

	// A push that mounts from another repository asks for a token that
	// may also read that one, and so mounts every blob.
	n := len(asks)
	rep, err = Push(ctx, s.lay, mirrorAt(t, addr, "dvpc/other"), PushOptions{MountFrom: "dvpc/home"})
	if err != nil {
		t.Fatalf("push with mounts: %v", err)
	}
	if rep.BlobsUploaded != 0 || rep.BlobsMounted == 0 || rep.Manifests != 3 {
		t.Fatalf("push with mounts: %+v", rep)
	}
	asks, _ = ts.tokenAsks()
	mountScope := []string{"repository:dvpc/other:pull,push", "repository:dvpc/home:pull"}
	if !slices.ContainsFunc(asks[n:], func(a []string) bool { return slices.Equal(a, mountScope) }) {
		t.Fatalf("push with mounts asked for tokens with scopes %q, none with %q", asks[n:], mountScope)
	}
	restoreEqual(t, mirrorAt(t, addr, "dvpc/other"), s1.ID, want)
	if n := ts.refusals(); n != 0 {
		t.Fatalf("the token service refused %d requests", n)
	}
}

// TestAuthWrongPassword: with a wrong password a push fails as refused by
// the registry, sends nothing, and neither its error nor its report, nor a
// pull's, holds the password.
func TestAuthWrongPassword(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	s.snapshot(t)
	basicReg := regtest.Start(t, regtest.WithBasicAuth(authUser, authPass))
	plain := regtest.Start(t)
	ts := newTokenServer(t, authUser, authPass)
	bearerAddr, _ := bearerProxy(t, plain, ts)

	for _, c := range []struct {
		name string
		addr string
		reg  *regtest.Registry
		// refused says whether err is the refusal expected.
		refused func(err error) bool
	}{
		{"basic", basicReg.Addr(), basicReg, func(err error) bool {
			var he *HTTPError
			return errors.As(err, &he) && he.Status == http.StatusUnauthorized
		}},
		{"bearer", bearerAddr, plain, func(err error) bool {
			return strings.Contains(err.Error(), "token: 401 Unauthorized")
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			useDockerConfig(t, map[string]any{"auths": map[string]any{c.addr: map[string]string{"auth": basicAuth(authUser, wrongPass)}}})
			res := PushAll(ctx, s.lay, []*Registry{mirrorAt(t, c.addr, "dvpc/home")}, PushOptions{})
			err := res[0].Err
			if err == nil || !c.refused(err) || !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "docker login") {
				t.Fatalf("push with a wrong password: %+v", res)
			}
			t.Logf("push with a wrong password: %v", err)
			requireNoSecret(t, "the push error", err.Error())
			requireNoSecret(t, "the push result", fmt.Sprintf("%+v %#v", res, res))
			if res[0].Report != (PushReport{}) {
				t.Fatalf("push with a wrong password sent %+v", res[0].Report)
			}

			prep, err := Pull(ctx, []*Registry{mirrorAt(t, c.addr, "dvpc/home")}, newLayout(t), PullOptions{Key: s.key()})
			if err == nil {
				t.Fatalf("pull with a wrong password: %+v", prep)
			}
			requireNoSecret(t, "the pull error and report", fmt.Sprintf("%v %+v", err, prep))

			// Nothing arrived: with the right password the repository
			// has no tags.
			useDockerConfig(t, map[string]any{"auths": map[string]any{c.addr: map[string]string{"auth": basicAuth(authUser, authPass)}}})
			tags, err := mirrorAt(t, c.addr, "dvpc/home").Tags(ctx)
			if err != nil || len(tags) != 0 {
				t.Fatalf("tags after the refused push: %q, %v", tags, err)
			}
			requireNoSecret(t, "the registry log", readLog(t, c.reg))
		})
	}
	if ts.refusals() == 0 {
		t.Fatal("the token service refused no request")
	}
}

func readLog(t *testing.T, reg *regtest.Registry) string {
	t.Helper()
	b, err := os.ReadFile(reg.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDockerHub: a mirror on Docker Hub, named docker.io (or its other
// names), talks to registry-1.docker.io, and its credentials are those the
// Docker client keeps for Hub: the auths key https://index.docker.io/v1/,
// or what a credential helper answers for that server.
func TestDockerHub(t *testing.T) {
	for _, name := range []string{"docker.io", "index.docker.io", "registry-1.docker.io"} {
		r, err := NewRegistry(name+"/alice/home", RegistryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := r.url("/tags/list"), "https://registry-1.docker.io/v2/alice/home/tags/list"; got != want {
			t.Errorf("%s: API at %s, want %s", name, got, want)
		}
		if r.String() != "docker.io/alice/home" || r.Host() != "docker.io" {
			t.Errorf("%s: named %s on %s", name, r, r.Host())
		}
	}

	right := map[string]string{"auth": basicAuth(authUser, authPass)}
	useDockerConfig(t, map[string]any{"auths": map[string]any{hubCredentialsKey: right}})
	got, err := DockerKeychain(context.Background(), hubHost)
	if err != nil || got != (Credentials{authUser, authPass}) {
		t.Fatalf("Hub credentials from auths: user %q, %v", got.User, err)
	}

	asked := installCredHelper(t, hubCredentialsKey, authUser, authPass)
	useDockerConfig(t, map[string]any{"credsStore": "dvpctest"})
	got, err = DockerKeychain(context.Background(), hubHost)
	if err != nil || got != (Credentials{authUser, authPass}) {
		t.Fatalf("Hub credentials from the helper: user %q, %v", got.User, err)
	}
	if a := helperAsked(t, asked); !slices.Equal(a, []string{hubCredentialsKey}) {
		t.Fatalf("the helper was asked for %v, want %s", a, hubCredentialsKey)
	}
}
