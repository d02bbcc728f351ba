package delta

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dvpc/dvpc/image"
	"github.com/dvpc/dvpc/internal/regtest"
)

// flood answers a blob request with endless bytes: a first part (1 MiB
// unless set), then, once the test calls release (or the client hangs up),
// up to 64 MiB in all. With
// declared ≥ 0 it announces that Content-Length; otherwise it sends no
// length (chunked).
type flood struct {
	declared int64
	first    int64
	started  chan struct{} // closed when the first part is sent
	release  chan struct{}
	once     sync.Once
	relOnce  sync.Once
}

func newFlood(declared int64) *flood {
	return &flood{declared: declared, first: 1 << 20, started: make(chan struct{}), release: make(chan struct{})}
}

func (f *flood) Release() { f.relOnce.Do(func() { close(f.release) }) }

func (f *flood) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.declared >= 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(f.declared, 10))
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	buf := make([]byte, 64<<10)
	for i := range buf {
		buf[i] = 'x'
	}
	sent := int64(0)
	write := func(upTo int64) bool {
		for sent < upTo {
			n := min(int64(len(buf)), upTo-sent)
			if f.declared >= 0 {
				n = min(n, f.declared-sent) // the server sends no more than it announces
			}
			if n <= 0 {
				return false
			}
			if _, err := w.Write(buf[:n]); err != nil {
				return false
			}
			sent += n
		}
		return true
	}
	write(f.first)
	w.(http.Flusher).Flush()
	f.once.Do(func() { close(f.started) })
	select {
	case <-f.release:
	case <-r.Context().Done():
		return
	}
	write(64 << 20)
}

// largestFile returns the largest regular file under dirs, counting the
// files this process holds open there even after their name is gone (an
// unnamed temporary file), as /proc/self/fd shows them.
func largestFile(t *testing.T, dirs ...string) (string, int64) {
	t.Helper()
	var name string
	var most int64 = -1
	see := func(p string, n int64) {
		if n > most {
			name, most = p, n
		}
	}
	for _, d := range dirs {
		filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.Type().IsRegular() {
				if fi, err := e.Info(); err == nil {
					see(p, fi.Size())
				}
			}
			return nil
		})
	}
	fds, _ := os.ReadDir("/proc/self/fd")
	for _, fd := range fds {
		p := filepath.Join("/proc/self/fd", fd.Name())
		target, err := os.Readlink(p)
		if err != nil {
			continue
		}
		target = strings.TrimSuffix(target, " (deleted)")
		for _, d := range dirs {
			if strings.HasPrefix(target, d+string(filepath.Separator)) {
				if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
					see(target, fi.Size())
				}
			}
		}
	}
	return name, most
}

// watchSizes calls largestFile on dirs until done is closed, and returns
// the largest file it saw. It stops early once a file holds more than
// limit bytes: the flood has landed.
func watchSizes(t *testing.T, done <-chan struct{}, limit int64, dirs ...string) (string, int64) {
	t.Helper()
	var name string
	var most int64 = -1
	for {
		if p, n := largestFile(t, dirs...); n > most {
			name, most = p, n
		}
		if most > limit {
			return name, most
		}
		select {
		case <-done:
			p, n := largestFile(t, dirs...)
			if n > most {
				name, most = p, n
			}
			return name, most
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// storeAreas are where a fetched blob may land: the store's temporary area
// and its blobs, and the temporary directory.
func storeAreas(lay *image.Layout, tmp string) []string {
	return []string{filepath.Join(lay.Root(), ".dvpc-tmp"), filepath.Join(lay.Root(), "blobs"), tmp}
}

// TestBlobLargerThanDeclared: a mirror declares a 13-byte blob and streams
// 64 MiB, with and without a Content-Length. Neither a pull's copy into the
// store nor OpenBlob ever writes more than 13 bytes anywhere; the error
// names the mirror and the digest.
func TestBlobLargerThanDeclared(t *testing.T) {
	ctx := context.Background()
	content := []byte("hello, world\n")
	d := image.DigestOf(content)
	base := t.TempDir()
	tmp := filepath.Join(base, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", tmp)

	// A manifest this registry served declares the blob 13 bytes.
	declaring := manifest{mediaType: image.ManifestType, raw: []byte(fmt.Sprintf(
		`{"schemaVersion":2,"config":{"mediaType":"application/octet-stream","digest":%q,"size":13},"layers":[]}`, d))}

	for _, c := range []struct {
		name     string
		declared int64 // Content-Length, or -1
		open     bool  // OpenBlob rather than the pull's copy
		manifest bool  // a manifest declared the size (for OpenBlob)
		tooLarge bool  // refused as larger than declared, not as other bytes
	}{
		{name: "copy, no length", declared: -1, tooLarge: true},
		{name: "copy, 64 MiB announced", declared: 64 << 20, tooLarge: true},
		{name: "copy, 13 bytes announced", declared: 13},
		{name: "open, no length", declared: -1, open: true, manifest: true, tooLarge: true},
		{name: "open, 64 MiB announced", declared: 64 << 20, open: true, manifest: true, tooLarge: true},
		{name: "open, nothing declared", declared: -1, open: true, tooLarge: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			fl := newFlood(c.declared)
			defer fl.Release()
			srv := httptest.NewServer(fl)
			defer srv.Close()
			reg := mirrorAt(t, srv.Listener.Addr().String(), "dvpc/home")
			if c.manifest {
				reg.keep(image.DigestOf(declaring.raw), declaring)
			}
			store, err := image.InitLayout(filepath.Join(base, strings.ReplaceAll(c.name, " ", "-")))
			if err != nil {
				t.Fatal(err)
			}
			areas := storeAreas(store, tmp)

			done := make(chan struct{})
			go func() {
				defer close(done)
				if c.open {
					var b image.Blob
					if b, err = reg.OpenBlob(ctx, d); err == nil {
						b.Close()
					}
					return
				}
				_, err = fetchInto(ctx, reg, store, d, int64(len(content)))
			}()
			select {
			case <-fl.started:
			case <-done:
			}
			name, most := watchSizes(t, done, int64(len(content)), areas...)
			fl.Release()
			<-done
			if most > int64(len(content)) {
				t.Errorf("%s held %d bytes of a blob declared %d", name, most, len(content))
			}
			if err == nil {
				t.Fatal("a blob larger than declared was taken")
			}
			var se *storeError
			if errors.As(err, &se) {
				t.Fatalf("the mirror's fault is blamed on the store: %v", err)
			}
			var de *image.DigestError
			if c.tooLarge && !errors.Is(err, ErrTooLarge) || !c.tooLarge && !errors.As(err, &de) {
				t.Errorf("error %v: want too large %v", err, c.tooLarge)
			}
			if msg := err.Error(); !strings.Contains(msg, reg.String()) || !strings.Contains(msg, d.String()) {
				t.Errorf("error %q names neither the mirror %s nor the blob", msg, reg)
			}
			if name, n := largestFile(t, areas...); n > int64(len(content)) {
				t.Errorf("%s holds %d bytes after the refusal", name, n)
			}
			if _, err := store.StatBlob(ctx, d); !errors.Is(err, image.ErrNotFound) {
				t.Errorf("the store holds the refused blob: %v", err)
			}
		})
	}
}

// TestPullFailsOverFromFloodingMirror pulls through a mirror that answers
// the store's largest blob with 64 MiB more than declared, listed before an
// honest one: the pull completes from the honest mirror, the flooding one is
// reported for that blob, and no file in the store or the temporary
// directory ever exceeds the blob's declared size.
func TestPullFailsOverFromFloodingMirror(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	s := newTestStore(t)
	s1 := s.snapshot(t)
	want := copyHome(t, s)
	regs := regtest.StartN(t, 1)
	checkAllOK(t, PushAll(ctx, s.lay, mirrorsOf(t, regs, "dvpc/home"), PushOptions{}))
	pack := largestBlob(t, s.lay)
	packSize, err := s.lay.StatBlob(ctx, pack)
	if err != nil {
		t.Fatal(err)
	}

	fl := newFlood(-1)
	fl.first = packSize + 1<<20
	defer fl.Release()
	var asked atomic.Int32
	bad := hostileProxy(t, regs[0], func(w http.ResponseWriter, r *http.Request) bool {
		if m := blobPathRE.FindStringSubmatch(r.URL.Path); m != nil && m[1] == pack.String() && r.Method == http.MethodGet {
			asked.Add(1)
			fl.ServeHTTP(w, r)
			return true
		}
		return false
	}, nil).Listener.Addr().String()

	dst := newLayout(t)
	t.Setenv("TMPDIR", tmp) // a temporary directory of its own, to measure
	mirrors := []*Registry{mirrorAt(t, bad, "dvpc/home"), mirrorAt(t, regs[0].Addr(), "dvpc/home")}
	done := make(chan struct{})
	var rep PullReport
	go func() {
		defer close(done)
		// The flooding mirror is asked first for every blob.
		rep, err = Pull(ctx, mirrors, dst, PullOptions{Health: []int{0, 1}, Key: s.key()})
	}()
	name, most := watchSizes(t, done, packSize, storeAreas(dst, tmp)...)
	fl.Release()
	<-done
	if most > packSize {
		t.Errorf("%s held %d bytes of a blob declared %d", name, most, packSize)
	}
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	if asked.Load() == 0 {
		t.Fatal("the flooding mirror was never asked for the pack")
	}
	var blamed bool
	for _, f := range rep.Failures {
		if f.Mirror == mirrors[0].String() && f.Digest == pack && errors.Is(f.Err, ErrTooLarge) {
			blamed = true
		}
	}
	if !blamed {
		t.Errorf("the flooding mirror is not reported for %s: %v", pack, rep.Failures)
	}
	restoreEqual(t, dst, s1.ID, want)
}

// tagServer answers tag list pages of one tag each, every page linking to
// the next with link(page); after stopAt pages it links no further.
func tagServer(t *testing.T, stopAt int, link func(page int) string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var pages atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(pages.Add(1))
		if n < stopAt {
			w.Header().Set("Link", link(n))
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"name":"dvpc/home","tags":["t%d"]}`, n)
	}))
	t.Cleanup(srv.Close)
	return srv, &pages
}

// TestTagPagingBounded: a registry whose tag list never ends, or holds too
// many tags, is refused after a bounded number of pages.
func TestTagPagingBounded(t *testing.T) {
	ctx := context.Background()
	srv, pages := tagServer(t, 3*maxTagPages, func(n int) string {
		return fmt.Sprintf(`</v2/dvpc/home/tags/list?n=1000&last=t%d>; rel="next"`, n)
	})
	tags, err := mirrorAt(t, srv.Listener.Addr().String(), "dvpc/home").Tags(ctx)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("endless paging: %d tags, %v", len(tags), err)
	}
	if n := pages.Load(); n > maxTagPages {
		t.Errorf("%d pages read, at most %d allowed", n, maxTagPages)
	}

	many := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"name":"dvpc/home","tags":[`)
		for i := range maxTags + 1 {
			if i > 0 {
				io.WriteString(w, ",")
			}
			fmt.Fprintf(w, `"t%d"`, i)
		}
		io.WriteString(w, `]}`)
	}))
	defer many.Close()
	tags, err = mirrorAt(t, many.Listener.Addr().String(), "dvpc/home").Tags(ctx)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("%d tags: %v", len(tags), err)
	}
}

// authWitness is a loopback server that records the Authorization headers
// it receives.
type authWitness struct {
	srv   *httptest.Server
	mu    sync.Mutex
	asked int
	authz []string
}

func newAuthWitness(t *testing.T) *authWitness {
	t.Helper()
	a := &authWitness{}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.asked++
		if h := r.Header.Get("Authorization"); h != "" {
			a.authz = append(a.authz, h)
		}
		a.mu.Unlock()
		io.WriteString(w, `{"name":"dvpc/home","tags":["stolen"]}`)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *authWitness) seen() (int, []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.asked, a.authz
}

// basicRegistry answers the tag list only with the right Basic
// credentials; then it sends the client on to next(r), with a Link header
// or a redirect.
func basicRegistry(t *testing.T, onward func(w http.ResponseWriter, r *http.Request)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != authUser || p != authPass {
			w.Header().Set("WWW-Authenticate", `Basic realm="dvpc"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		onward(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func staticKeychain(ctx context.Context, host string) (Credentials, error) {
	return Credentials{User: authUser, Secret: authPass}, nil
}

// TestCredentialsStayWithTheRegistry: Basic credentials configured for one
// loopback port are never sent to another port that a Link header or a
// redirect names.
func TestCredentialsStayWithTheRegistry(t *testing.T) {
	ctx := context.Background()
	other := newAuthWitness(t)
	otherURL := other.srv.URL + "/v2/dvpc/home/tags/list?last=a"

	t.Run("link", func(t *testing.T) {
		reg := basicRegistry(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "<"+otherURL+`>; rel="next"`)
			io.WriteString(w, `{"name":"dvpc/home","tags":["a"]}`)
		})
		m, err := NewRegistry(reg.Listener.Addr().String()+"/dvpc/home", RegistryOptions{Keychain: staticKeychain})
		if err != nil {
			t.Fatal(err)
		}
		tags, err := m.Tags(ctx)
		if !errors.Is(err, ErrInsecureRedirect) {
			t.Errorf("a link to another port was followed: %v, %v", tags, err)
		}
		if n, authz := other.seen(); n != 0 || len(authz) != 0 {
			t.Fatalf("the other port was asked %d times, with Authorization %q", n, authz)
		}
	})

	t.Run("redirect", func(t *testing.T) {
		reg := basicRegistry(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, otherURL, http.StatusTemporaryRedirect)
		})
		m, err := NewRegistry(reg.Listener.Addr().String()+"/dvpc/home", RegistryOptions{Keychain: staticKeychain})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Tags(ctx); err != nil {
			t.Fatalf("tags through a redirect: %v", err)
		}
		n, authz := other.seen()
		if n == 0 {
			t.Fatal("the redirect was not followed")
		}
		if len(authz) != 0 {
			t.Fatalf("the other port received Authorization %q", authz)
		}
	})

	t.Run("challenge after a redirect", func(t *testing.T) {
		// The host redirected to asks for Basic credentials itself.
		var got atomic.Value
		thief := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if h := r.Header.Get("Authorization"); h != "" {
				got.Store(h)
			}
			w.Header().Set("WWW-Authenticate", `Basic realm="thief"`)
			w.WriteHeader(http.StatusUnauthorized)
		}))
		defer thief.Close()
		reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, thief.URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
		}))
		defer reg.Close()
		m, err := NewRegistry(reg.Listener.Addr().String()+"/dvpc/home", RegistryOptions{Keychain: staticKeychain})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Tags(ctx); err == nil {
			t.Error("tags from a host that refuses access")
		}
		if h := got.Load(); h != nil {
			t.Fatalf("the host redirected to received Authorization %q", h)
		}
	})
}

// tlsPair is an HTTPS registry and a plain HTTP server, both reached as
// registry.example through a dialer, so that NewRegistry uses HTTPS.
func tlsPair(t *testing.T, h http.Handler, plain http.Handler) (*Registry, *httptest.Server) {
	t.Helper()
	secure := httptest.NewTLSServer(h)
	t.Cleanup(secure.Close)
	clear := httptest.NewServer(plain)
	t.Cleanup(clear.Close)
	tr := secure.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: tr.TLSClientConfig.RootCAs, ServerName: "example.com"}
	var d net.Dialer
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		switch addr {
		case "registry.example:443":
			addr = secure.Listener.Addr().String()
		case "registry.example:80":
			addr = clear.Listener.Addr().String()
		}
		return d.DialContext(ctx, network, addr)
	}
	m, err := NewRegistry("registry.example/dvpc/home", RegistryOptions{Transport: tr, Keychain: staticKeychain})
	if err != nil {
		t.Fatal(err)
	}
	return m, clear
}

// TestNoDowngradeToHTTP: an HTTPS registry that redirects, or links, to
// plain HTTP on the same host is refused; the plain server is never asked.
func TestNoDowngradeToHTTP(t *testing.T) {
	ctx := context.Background()
	var plainAsked atomic.Int32
	plain := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		plainAsked.Add(1)
		io.WriteString(w, `{"name":"dvpc/home","tags":["downgraded"]}`)
	})
	for _, c := range []struct {
		name   string
		answer func(w http.ResponseWriter, r *http.Request)
	}{
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://registry.example"+r.URL.RequestURI(), http.StatusFound)
		}},
		{"link", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", `<http://registry.example/v2/dvpc/home/tags/list?last=a>; rel="next"`)
			io.WriteString(w, `{"name":"dvpc/home","tags":["a"]}`)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			plainAsked.Store(0)
			var secureAsked atomic.Int32
			m, _ := tlsPair(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				secureAsked.Add(1)
				if u, p, ok := r.BasicAuth(); !ok || u != authUser || p != authPass {
					w.Header().Set("WWW-Authenticate", `Basic realm="dvpc"`)
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				c.answer(w, r)
			}), plain)
			tags, err := m.Tags(ctx)
			if secureAsked.Load() == 0 {
				t.Fatalf("the HTTPS registry was never reached: %v", err)
			}
			if !errors.Is(err, ErrInsecureRedirect) {
				t.Errorf("a downgrade to plain HTTP was followed: %v, %v", tags, err)
			}
			if n := plainAsked.Load(); n != 0 {
				t.Fatalf("the plain HTTP server was asked %d times", n)
			}
		})
	}
}

// TestCredentialHelperEnvironment: a credential helper runs without any
// DVPC_ variable, the passphrase above all.
func TestCredentialHelperEnvironment(t *testing.T) {
	dir := t.TempDir()
	envFile := filepath.Join(dir, "env")
	script := fmt.Sprintf("#!/bin/sh\nenv > '%s'\necho '{\"Username\":\"%s\",\"Secret\":\"%s\"}'\n", envFile, authUser, authPass)
	if err := os.WriteFile(filepath.Join(dir, "docker-credential-dvpcenv"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("DVPC_PASSPHRASE", "correct horse battery staple")
	t.Setenv("DVPC_PASSPHRASE_FILE", filepath.Join(dir, "pass"))
	t.Setenv("DVPC_RECOVERY_CODE", "ABCD-EFGH")
	t.Setenv("DVPC_HELPER_SEES_THIS", "yes") // proves the file is written
	t.Setenv("HELPER_SEES_THIS", "yes")
	useDockerConfig(t, map[string]any{"credsStore": "dvpcenv"})

	c, err := DockerKeychain(context.Background(), "registry.example")
	if err != nil {
		t.Fatal(err)
	}
	if c.User != authUser || c.Secret != authPass {
		t.Fatalf("credentials %+v", c)
	}
	b, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	env := string(b)
	if !strings.Contains("\n"+env, "\nHELPER_SEES_THIS=yes") {
		t.Fatalf("the helper's environment was not recorded:\n%s", env)
	}
	for _, line := range strings.Split(env, "\n") {
		if strings.HasPrefix(strings.ToUpper(line), "DVPC_") {
			t.Errorf("the credential helper got %s", line)
		}
	}
	if strings.Contains(env, "correct horse battery staple") {
		t.Error("the credential helper got the passphrase")
	}
}

// FuzzNextPage: whatever a registry puts in a Link header, the next page is
// on the registry's own origin or there is none.
func FuzzNextPage(f *testing.F) {
	for _, s := range []string{
		`</v2/dvpc/home/tags/list?last=a>; rel="next"`,
		`<http://127.0.0.1:5001/v2/dvpc/home/tags/list>; rel="next"`,
		`<//127.0.0.1:5001/x>; rel="next"`,
		`<https://127.0.0.1:5000/x>; rel="next"`,
		`<http://127.0.0.1:5000@evil.example/x>; rel="next"`,
		`<http://[::1]:5000/x>; rel="next"`,
		`<>; rel="next"`, `rel="next"`, `<a>b>; rel="next"`,
	} {
		f.Add(s)
	}
	m, err := NewRegistry("127.0.0.1:5000/dvpc/home", RegistryOptions{})
	if err != nil {
		f.Fatal(err)
	}
	page, err := url.Parse(m.url("/tags/list?n=1000"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, link string) {
		next, err := m.nextPage(page, link)
		if err != nil || next == "" {
			return
		}
		u, err := url.Parse(next)
		if err != nil {
			t.Fatalf("next page %q does not parse: %v", next, err)
		}
		if originOf(u) != m.origin || u.Host != "127.0.0.1:5000" || u.Scheme != "http" {
			t.Fatalf("link %q leads to %s", link, next)
		}
	})
}

// TestTokenRealmOverPlainHTTP: a loopback registry whose challenge names a
// token realm on another host over plain HTTP gets no request sent there:
// the credentials would cross the network in the clear.
func TestTokenRealmOverPlainHTTP(t *testing.T) {
	var dialed atomic.Int32
	tr := http.DefaultTransport.(*http.Transport).Clone()
	var d net.Dialer
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == "auth.example:80" {
			dialed.Add(1)
			return nil, errors.New("auth.example is not reachable from a test")
		}
		return d.DialContext(ctx, network, addr)
	}
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="http://auth.example/token",service="dvpc"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer reg.Close()
	m, err := NewRegistry(reg.Listener.Addr().String()+"/dvpc/home", RegistryOptions{Transport: tr, Keychain: staticKeychain})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Tags(context.Background())
	if !errors.Is(err, ErrInsecureRedirect) {
		t.Errorf("tags: %v, want ErrInsecureRedirect", err)
	}
	if n := dialed.Load(); n != 0 {
		t.Fatalf("the plain HTTP realm on another host was dialled %d times", n)
	}
}

// TestManifestCacheBounded: a registry keeps no more manifest bytes than
// its limit, and a manifest it did not keep is read again when needed.
func TestManifestCacheBounded(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	s1 := s.snapshot(t)
	want := copyHome(t, s)
	regs := regtest.StartN(t, 1)
	checkAllOK(t, PushAll(ctx, s.lay, mirrorsOf(t, regs, "dvpc/home"), PushOptions{}))

	m := mirrorAt(t, regs[0].Addr(), "dvpc/home")
	m.cacheLimit = 600 // room for a manifest or two, not all three
	refs, err := m.Refs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) < 3 {
		t.Fatalf("refs %v", refs)
	}
	if m.cacheBytes > m.cacheLimit || len(m.manifests) >= len(refs) {
		t.Fatalf("%d manifests, %d bytes kept, limit %d", len(m.manifests), m.cacheBytes, m.cacheLimit)
	}
	dst := newLayout(t)
	if _, err := Pull(ctx, []*Registry{m}, dst, PullOptions{Key: s.key()}); err != nil {
		t.Fatalf("pull: %v", err)
	}
	restoreEqual(t, dst, s1.ID, want)
}

// TestStalledTokenRealm: a token realm that accepts the connection and
// never answers fails with ErrStalled after the mirror's timeout, like the
// registry itself would.
func TestStalledTokenRealm(t *testing.T) {
	realm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer realm.Close()
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service="dvpc"`, realm.URL+"/token"))
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer reg.Close()
	m, err := NewRegistry(reg.Listener.Addr().String()+"/dvpc/home", RegistryOptions{Keychain: staticKeychain, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// The deadline only keeps a hang from stopping the test run.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := m.Tags(ctx); !errors.Is(err, ErrStalled) {
		t.Fatalf("tags: %v, want ErrStalled", err)
	}
}
