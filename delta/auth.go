package delta

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ErrAuth means a registry refused access: no credentials for it, or the
// ones found were refused.
var ErrAuth = errors.New("the registry refused access")

// authHint tells the person where credentials come from.
func authHint(host string) string {
	return fmt.Sprintf("log in with `docker login %s`, or check the credential helper in the Docker config", host)
}

// Credentials are a user name and secret for one registry host. An empty
// User with a Secret is an identity token.
type Credentials struct {
	User   string
	Secret string
}

// Keychain finds the credentials of a registry host; it returns zero
// Credentials and no error when there are none.
type Keychain func(ctx context.Context, host string) (Credentials, error)

// DockerKeychain reads the Docker client configuration ($DOCKER_CONFIG or
// ~/.docker/config.json): its "auths" entries, and the credential helpers
// named by "credHelpers" and "credsStore".
func DockerKeychain(ctx context.Context, host string) (Credentials, error) {
	dir := os.Getenv("DOCKER_CONFIG")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return Credentials{}, nil
		}
		dir = filepath.Join(home, ".docker")
	}
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if errors.Is(err, os.ErrNotExist) {
		return Credentials{}, nil
	}
	if err != nil {
		return Credentials{}, fmt.Errorf("docker config: %w", err)
	}
	var cfg struct {
		Auths map[string]struct {
			Auth          string `json:"auth"`
			Username      string `json:"username"`
			Password      string `json:"password"`
			IdentityToken string `json:"identitytoken"`
		} `json:"auths"`
		CredHelpers map[string]string `json:"credHelpers"`
		CredsStore  string            `json:"credsStore"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return Credentials{}, fmt.Errorf("docker config %s: %w", filepath.Join(dir, "config.json"), err)
	}
	server := host // what the credential helpers are asked for
	if host == hubHost {
		server, host = hubCredentialsKey, "index.docker.io"
	}
	helper := cfg.CredHelpers[host]
	if helper == "" {
		helper = cfg.CredsStore
	}
	if helper != "" {
		c, err := credentialHelper(ctx, helper, server)
		if err != nil || c != (Credentials{}) {
			return c, err
		}
	}
	// As the Docker client does: the entry for the host itself, else one
	// whose key is a URL of the host ("https://host/v1/" in old files).
	keys := slices.Sorted(maps.Keys(cfg.Auths))
	if _, ok := cfg.Auths[host]; ok {
		keys = []string{host}
	}
	for _, k := range keys {
		h, ok := strings.CutPrefix(k, "https://")
		if !ok {
			h = strings.TrimPrefix(k, "http://")
		}
		if h, _, _ = strings.Cut(h, "/"); h != host {
			continue
		}
		a := cfg.Auths[k]
		if a.IdentityToken != "" {
			return Credentials{Secret: a.IdentityToken}, nil
		}
		if a.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(a.Auth)
			if err != nil {
				return Credentials{}, fmt.Errorf("docker config: auth of %s: %w", host, err)
			}
			u, p, _ := strings.Cut(string(raw), ":")
			return Credentials{User: u, Secret: p}, nil
		}
		return Credentials{User: a.Username, Secret: a.Password}, nil
	}
	return Credentials{}, nil
}

// credentialHelper runs docker-credential-<helper> get.
func credentialHelper(ctx context.Context, helper, host string) (Credentials, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker-credential-"+helper, "get")
	cmd.Stdin = strings.NewReader(host)
	cmd.Env = helperEnv(os.Environ())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if strings.Contains(string(out)+stderr.String(), "credentials not found") {
			return Credentials{}, nil
		}
		return Credentials{}, fmt.Errorf("credential helper %s: %w: %s", helper, err, strings.TrimSpace(stderr.String()))
	}
	var c struct{ Username, Secret string }
	if err := json.Unmarshal(out, &c); err != nil {
		return Credentials{}, fmt.Errorf("credential helper %s: %w", helper, err)
	}
	if c.Username == "<token>" {
		return Credentials{Secret: c.Secret}, nil
	}
	return Credentials{User: c.Username, Secret: c.Secret}, nil
}

// helperEnv is the environment a credential helper runs with: dvpc's own,
// without the variables that belong to dvpc (DVPC_PASSPHRASE,
// DVPC_PASSPHRASE_FILE, and every other DVPC_ one). A helper is another
// program; it needs the registry's secrets, not the store's.
func helperEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(strings.ToUpper(kv), "DVPC_") {
			out = append(out, kv)
		}
	}
	return out
}

// challenge is a parsed WWW-Authenticate header.
type challenge struct {
	scheme string // "basic" or "bearer"
	params map[string]string
}

func parseChallenge(h string) challenge {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	c := challenge{scheme: strings.ToLower(scheme), params: map[string]string{}}
	for rest != "" {
		rest = strings.TrimLeft(rest, " ,")
		k, v, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		k = strings.ToLower(strings.TrimSpace(k))
		if strings.HasPrefix(v, `"`) {
			end := strings.Index(v[1:], `"`)
			if end < 0 {
				c.params[k] = v[1:]
				break
			}
			c.params[k] = v[1 : end+1]
			rest = v[end+2:]
		} else {
			val, after, _ := strings.Cut(v, ",")
			c.params[k] = strings.TrimSpace(val)
			rest = after
		}
	}
	return c
}

// authorize answers a challenge for the given scopes and returns the
// Authorization header to send.
func (r *Registry) authorize(ctx context.Context, ch challenge, scopes []string) (string, error) {
	creds, err := r.credentials(ctx)
	if err != nil {
		return "", err
	}
	switch ch.scheme {
	case "basic":
		if creds.Secret == "" {
			return "", fmt.Errorf("%s asks for credentials and none are configured; %s: %w", r.host, authHint(r.host), ErrAuth)
		}
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(creds.User+":"+creds.Secret)), nil
	case "bearer":
	default:
		return "", fmt.Errorf("%s: unsupported authentication scheme %q", r.host, ch.scheme)
	}
	realm := ch.params["realm"]
	u, err := url.Parse(realm)
	if err != nil || realm == "" || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", fmt.Errorf("%s: bad token realm %q", r.host, realm)
	}
	// The credentials cross the network in the clear only where the
	// registry itself is reached so: a loopback realm, or --insecure.
	if u.Scheme == "http" && (r.scheme != "http" || !(isLoopback(u.Host) || r.insecure)) {
		return "", fmt.Errorf("%s: token realm %q over plain HTTP: %w", r.host, realm, ErrInsecureRedirect)
	}
	q := u.Query()
	if s := ch.params["service"]; s != "" {
		q.Set("service", s)
	}
	for _, s := range scopes {
		q.Add("scope", s)
	}
	u.RawQuery = q.Encode()
	// The realm is watched like the registry: it may not hang a pull.
	rctx, wd := watch(ctx, r.timeout)
	defer wd.stop()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	if creds.Secret != "" {
		req.SetBasicAuth(creds.User, creds.Secret)
		if creds.User == "" {
			req.SetBasicAuth("<token>", creds.Secret)
		}
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("%s: token: %w", r.host, wd.cause(rctx, err))
	}
	defer resp.Body.Close()
	wd.kick()
	body, err := io.ReadAll(io.LimitReader(wd.reader(rctx, resp.Body), 1<<20))
	if err != nil {
		return "", fmt.Errorf("%s: token: %w", r.host, err)
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return "", fmt.Errorf("%s: token: %s: %s; %s: %w", r.host, resp.Status, strings.TrimSpace(string(body)), authHint(r.host), ErrAuth)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: token: %s: %s", r.host, resp.Status, strings.TrimSpace(string(body)))
	}
	var tok struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil {
		return "", fmt.Errorf("%s: token: %w", r.host, err)
	}
	t := tok.Token
	if t == "" {
		t = tok.AccessToken
	}
	if t == "" {
		return "", fmt.Errorf("%s: token: empty answer", r.host)
	}
	return "Bearer " + t, nil
}

func (r *Registry) credentials(ctx context.Context) (Credentials, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.creds != nil {
		return *r.creds, nil
	}
	c, err := r.kc(ctx, r.host)
	if err != nil {
		return Credentials{}, fmt.Errorf("%s: credentials: %w", r.host, err)
	}
	r.creds = &c
	return c, nil
}
