//go:build linux

package regtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var client = &http.Client{Timeout: 10 * time.Second}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func do(t *testing.T, method, u string, body []byte, hdr map[string]string) *http.Response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func wantStatus(t *testing.T, resp *http.Response, want int) {
	t.Helper()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s %s: status %d, want %d: %s", resp.Request.Method, resp.Request.URL, resp.StatusCode, want, b)
	}
}

// pushBlob uploads blob monolithically: POST to open an upload, then PUT
// the bytes with ?digest=.
func pushBlob(t *testing.T, r *Registry, repo string, blob []byte) string {
	t.Helper()
	dg := digestOf(blob)
	base, err := url.Parse(r.URL() + "/v2/" + repo + "/blobs/uploads/")
	if err != nil {
		t.Fatal(err)
	}
	resp := do(t, http.MethodPost, base.String(), nil, nil)
	wantStatus(t, resp, http.StatusAccepted)
	loc, err := base.Parse(resp.Header.Get("Location"))
	if err != nil || resp.Header.Get("Location") == "" {
		t.Fatalf("upload Location %q: %v", resp.Header.Get("Location"), err)
	}
	q := loc.Query()
	q.Set("digest", dg)
	loc.RawQuery = q.Encode()
	resp = do(t, http.MethodPut, loc.String(), blob, map[string]string{
		"Content-Type":   "application/octet-stream",
		"Content-Length": strconv.Itoa(len(blob)),
	})
	wantStatus(t, resp, http.StatusCreated)
	if got := resp.Header.Get("Docker-Content-Digest"); got != dg {
		t.Fatalf("pushed digest %q, want %q", got, dg)
	}
	return dg
}

// headBlob reports whether the registry has the blob, checking its size.
func headBlob(t *testing.T, r *Registry, repo, dg string, size int) bool {
	t.Helper()
	resp := do(t, http.MethodHead, r.URL()+"/v2/"+repo+"/blobs/"+dg, nil, nil)
	switch resp.StatusCode {
	case http.StatusOK:
		if resp.ContentLength != int64(size) {
			t.Fatalf("HEAD blob: Content-Length %d, want %d", resp.ContentLength, size)
		}
		if got := resp.Header.Get("Docker-Content-Digest"); got != dg {
			t.Fatalf("HEAD blob: digest %q, want %q", got, dg)
		}
		return true
	case http.StatusNotFound:
		return false
	default:
		t.Fatalf("HEAD blob: status %d", resp.StatusCode)
		return false
	}
}

func TestStartPushHead(t *testing.T) {
	r := Start(t)
	if !strings.HasPrefix(r.Addr(), "127.0.0.1:") {
		t.Fatalf("Addr() = %q, want 127.0.0.1:port", r.Addr())
	}
	resp := do(t, http.MethodGet, r.URL()+"/v2/", nil, nil)
	wantStatus(t, resp, http.StatusOK)
	if v := resp.Header.Get("Docker-Distribution-Api-Version"); v != "registry/2.0" {
		t.Fatalf("API version header %q", v)
	}

	const repo = "dvpc/store"
	blob := []byte("dvpc regtest blob, opaque bytes \x00\x01\x02")
	if headBlob(t, r, repo, digestOf(blob), len(blob)) {
		t.Fatal("blob present before upload")
	}
	dg := pushBlob(t, r, repo, blob)
	if !headBlob(t, r, repo, dg, len(blob)) {
		t.Fatal("blob missing after upload")
	}
	resp = do(t, http.MethodGet, r.URL()+"/v2/"+repo+"/blobs/"+dg, nil, nil)
	wantStatus(t, resp, http.StatusOK)
	got, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("GET blob = %q, %v; want %q", got, err, blob)
	}
	// The blob lands in the storage directory.
	if _, err := os.Stat(filepath.Join(r.Storage(), "docker", "registry", "v2", "blobs", "sha256", dg[7:9], dg[7:], "data")); err != nil {
		t.Fatalf("blob not in storage: %v", err)
	}
}

func TestStopRestart(t *testing.T) {
	r := Start(t)
	addr := r.Addr()
	const repo = "dvpc/store"
	blob := bytes.Repeat([]byte("restart "), 100)
	dg := pushBlob(t, r, repo, blob)

	r.Stop()
	r.Stop() // a second Stop does nothing
	if resp, err := client.Get(r.URL() + "/v2/"); err == nil {
		resp.Body.Close()
		t.Fatalf("GET /v2/ after Stop answered %d", resp.StatusCode)
	}

	r.Restart(t)
	if r.Addr() != addr {
		t.Fatalf("Addr() after Restart = %q, want %q", r.Addr(), addr)
	}
	if !headBlob(t, r, repo, dg, len(blob)) {
		t.Fatal("blob lost across Stop and Restart")
	}

	// Restart of a running registry kills it and starts it again.
	r.Restart(t)
	if !headBlob(t, r, repo, dg, len(blob)) {
		t.Fatal("blob lost across Restart")
	}
}

func TestStartN(t *testing.T) {
	rs := StartN(t, 3)
	seen := map[string]bool{}
	for _, r := range rs {
		if seen[r.Addr()] {
			t.Fatalf("two registries on %s", r.Addr())
		}
		seen[r.Addr()] = true
		wantStatus(t, do(t, http.MethodGet, r.URL()+"/v2/", nil, nil), http.StatusOK)
	}
	// Registries do not share storage.
	blob := []byte("only in the first")
	dg := pushBlob(t, rs[0], "dvpc/a", blob)
	if headBlob(t, rs[1], "dvpc/a", dg, len(blob)) {
		t.Fatal("blob visible in another registry")
	}
}

func TestBasicAuth(t *testing.T) {
	const user, pass = "dvpc", "regtest pass 9d41"
	r := Start(t, WithBasicAuth(user, pass))
	authz := func(u, p string) map[string]string {
		return map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p))}
	}
	check := func(what string) {
		t.Helper()
		for _, c := range []struct {
			name string
			hdr  map[string]string
		}{
			{"no credentials", nil},
			{"a wrong password", authz(user, pass+"x")},
			{"an unknown user", authz("other", pass)},
		} {
			resp := do(t, http.MethodGet, r.URL()+"/v2/", nil, c.hdr)
			wantStatus(t, resp, http.StatusUnauthorized)
			if got, want := resp.Header.Get("WWW-Authenticate"), `Basic realm="`+AuthRealm+`"`; got != want {
				t.Fatalf("%s, %s: WWW-Authenticate %q, want %q", what, c.name, got, want)
			}
		}
		wantStatus(t, do(t, http.MethodGet, r.URL()+"/v2/", nil, authz(user, pass)), http.StatusOK)
	}
	check("first run")

	// A blob pushed with the credentials is served only with them.
	const repo = "dvpc/store"
	blob := []byte("behind basic auth")
	dg := digestOf(blob)
	resp := do(t, http.MethodPost, r.URL()+"/v2/"+repo+"/blobs/uploads/", nil, nil)
	wantStatus(t, resp, http.StatusUnauthorized)
	resp = do(t, http.MethodPost, r.URL()+"/v2/"+repo+"/blobs/uploads/", nil, authz(user, pass))
	wantStatus(t, resp, http.StatusAccepted)
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	q := loc.Query()
	q.Set("digest", dg)
	loc.RawQuery = q.Encode()
	hdr := authz(user, pass)
	hdr["Content-Type"] = "application/octet-stream"
	wantStatus(t, do(t, http.MethodPut, loc.String(), blob, hdr), http.StatusCreated)
	wantStatus(t, do(t, http.MethodHead, r.URL()+"/v2/"+repo+"/blobs/"+dg, nil, nil), http.StatusUnauthorized)
	resp = do(t, http.MethodGet, r.URL()+"/v2/"+repo+"/blobs/"+dg, nil, authz(user, pass))
	wantStatus(t, resp, http.StatusOK)
	if got, err := io.ReadAll(resp.Body); err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("GET blob = %q, %v; want %q", got, err, blob)
	}

	// The password is kept only as a hash.
	for _, p := range []string{r.LogPath(), filepath.Join(filepath.Dir(r.Storage()), "config.yml"), filepath.Join(filepath.Dir(r.Storage()), "htpasswd")} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(pass)) {
			t.Fatalf("%s holds the password", p)
		}
	}

	// Authentication is still required after a restart.
	r.Restart(t)
	check("after restart")
}

func TestWithBasicAuthRefuses(t *testing.T) {
	for _, c := range []struct{ user, pass string }{
		{"", "p"},
		{"a:b", "p"},
		{"a\nb", "p"},
		{"a", ""},
		{"a", "p\n"},
		{"a", strings.Repeat("p", 73)},
	} {
		if err := WithBasicAuth(c.user, c.pass)(&options{}); err == nil {
			t.Errorf("WithBasicAuth(%q, %q) accepted", c.user, c.pass)
		}
	}
	var o options
	if err := WithBasicAuth("a", strings.Repeat("p", 72))(&o); err != nil || o.user != "a" {
		t.Errorf("WithBasicAuth with a 72-byte password: %v", err)
	}
}

// TestWithoutDelete: by default a blob can be deleted; WithoutDelete makes
// the registry answer a DELETE with 405 UNSUPPORTED and keep the blob.
func TestWithoutDelete(t *testing.T) {
	rs := []*Registry{Start(t), Start(t, WithoutDelete())}
	const repo = "dvpc/store"
	blob := []byte("a blob to delete")
	for i, r := range rs {
		dg := pushBlob(t, r, repo, blob)
		resp := do(t, http.MethodDelete, r.URL()+"/v2/"+repo+"/blobs/"+dg, nil, nil)
		if i == 0 {
			wantStatus(t, resp, http.StatusAccepted)
			if headBlob(t, r, repo, dg, len(blob)) {
				t.Fatal("blob still served after DELETE on a registry with deletion enabled")
			}
			continue
		}
		wantStatus(t, resp, http.StatusMethodNotAllowed)
		if b, _ := io.ReadAll(resp.Body); !strings.Contains(string(b), "UNSUPPORTED") {
			t.Errorf("DELETE without deletion enabled answered %s, want the UNSUPPORTED error code", b)
		}
		if !headBlob(t, r, repo, dg, len(blob)) {
			t.Fatal("blob gone after a refused DELETE")
		}
	}
}
