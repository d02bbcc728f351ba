//go:build linux

package regtest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Binary is the name of the registry program looked up in PATH.
const Binary = "docker-registry"

// fallbackPath is where Debian's docker-registry package installs the
// program, tried when PATH does not contain it.
const fallbackPath = "/usr/bin/docker-registry"

const (
	// startTimeout bounds how long a start waits for GET /v2/ to answer.
	startTimeout = 30 * time.Second
	// termTimeout bounds how long a stop waits after SIGTERM before SIGKILL.
	termTimeout = 10 * time.Second
	// pollInterval is the pause between readiness probes.
	pollInterval = 20 * time.Millisecond
	// quietReady is how long a process that answers GET /v2/ must stay up
	// to count as ready when its log never says it is listening.
	quietReady = 2 * time.Second
	// portAttempts bounds how many fresh ports a start tries.
	portAttempts = 5
	// tailBytes is how much of the log a failure message quotes.
	tailBytes = 4096
)

// Registry is a docker-registry process owned by one test.
type Registry struct {
	bin     string
	dir     string // the test's temporary directory for this registry
	storage string // filesystem storage root
	config  string // config.yml path
	logPath string // stdout and stderr of every run, appended
	secret  string // http.secret, kept across restarts
	addr    string // 127.0.0.1:port, fixed once the first start succeeds
	opts    options

	mu   sync.Mutex
	log  *os.File
	proc *process // the running process, nil when stopped
	runs int
}

// process is one run of the registry program.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has been waited for
	err  error         // cmd.Wait's result, valid after done is closed
}

// Start launches a docker-registry on 127.0.0.1 on a free port with its
// storage, configuration and log under t.TempDir(), waits until GET /v2/
// answers, and stops it (SIGTERM, then SIGKILL) when the test ends. It fails
// the test if the program is not installed, an option is invalid, or the
// registry does not come up.
func Start(t testing.TB, opts ...Option) *Registry {
	t.Helper()
	rs := StartN(t, 1, opts...)
	return rs[0]
}

// StartN starts n independent registries, like [Start], concurrently. Each
// has the given options.
func StartN(t testing.TB, n int, opts ...Option) []*Registry {
	t.Helper()
	var o options
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			t.Fatalf("regtest: %v", err)
		}
	}
	bin := lookBinary(t)
	rs := make([]*Registry, n)
	for i := range rs {
		r, err := newRegistry(bin, t.TempDir(), o)
		if err != nil {
			t.Fatalf("regtest: %v", err)
		}
		rs[i] = r
		t.Cleanup(r.shutdown)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, r := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.startFresh()
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("regtest: %v", err)
	}
	return rs
}

// Option configures the registries [Start] and [StartN] launch.
type Option func(*options) error

type options struct {
	user, pass string // Basic authentication, when user is set
	noDelete   bool   // storage.delete.enabled: false
}

// WithoutDelete starts the registry with deletion disabled
// (storage.delete.enabled: false), as distribution's default is: a DELETE
// of a manifest or blob is answered 405 METHOD NOT ALLOWED with the error
// code UNSUPPORTED. Without it, deletion is enabled.
func WithoutDelete() Option {
	return func(o *options) error {
		o.noDelete = true
		return nil
	}
}

// AuthRealm is the realm of the Basic challenge a registry started
// [WithBasicAuth] answers with.
const AuthRealm = "regtest"

// WithBasicAuth makes the registry require HTTP Basic authentication of user
// with password pass on every request, with distribution's htpasswd access
// controller: a request without them, or with others, is answered
// 401 UNAUTHORIZED with the challenge WWW-Authenticate: Basic
// realm="regtest". The password is stored only as a bcrypt hash (of the
// lowest cost, since the registry checks it on every request) in the
// registry's directory.
func WithBasicAuth(user, pass string) Option {
	return func(o *options) error {
		switch {
		case user == "" || strings.ContainsAny(user, ":\r\n"):
			return fmt.Errorf("basic auth: user %q must be non-empty, without ':' or line breaks", user)
		case pass == "" || strings.ContainsAny(pass, "\r\n"):
			return errors.New("basic auth: the password must be non-empty, without line breaks")
		case len(pass) > 72:
			return errors.New("basic auth: bcrypt takes passwords of at most 72 bytes")
		}
		o.user, o.pass = user, pass
		return nil
	}
}

// lookBinary finds the registry program or fails the test.
func lookBinary(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath(Binary)
	if err == nil {
		return bin
	}
	if fi, serr := os.Stat(fallbackPath); serr == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return fallbackPath
	}
	t.Fatalf("regtest: the %s program is not installed (%v); install Debian's docker-registry package: apt-get install -y docker-registry", Binary, err)
	return ""
}

func newRegistry(bin, dir string, o options) (*Registry, error) {
	var sec [16]byte
	if _, err := rand.Read(sec[:]); err != nil {
		return nil, err
	}
	r := &Registry{
		bin:     bin,
		dir:     dir,
		storage: filepath.Join(dir, "storage"),
		config:  filepath.Join(dir, "config.yml"),
		logPath: filepath.Join(dir, "registry.log"),
		secret:  hex.EncodeToString(sec[:]),
		opts:    o,
	}
	if err := os.MkdirAll(r.storage, 0o755); err != nil {
		return nil, err
	}
	if o.user != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(o.pass), bcrypt.MinCost)
		if err != nil {
			return nil, fmt.Errorf("htpasswd: %w", err)
		}
		if err := os.WriteFile(r.htpasswd(), []byte(o.user+":"+string(hash)+"\n"), 0o600); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(r.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	r.log = f
	return r, nil
}

// htpasswd is the path of the password file of a registry with Basic
// authentication.
func (r *Registry) htpasswd() string { return filepath.Join(r.dir, "htpasswd") }

// Addr returns the registry's host:port, such as "127.0.0.1:40123". It stays
// the same across [Registry.Restart].
func (r *Registry) Addr() string { return r.addr }

// URL returns the base URL of the registry, "http://" + Addr().
func (r *Registry) URL() string { return "http://" + r.addr }

// Storage returns the root of the registry's filesystem storage.
func (r *Registry) Storage() string { return r.storage }

// LogPath returns the file that collects the output of every run.
func (r *Registry) LogPath() string { return r.logPath }

// Stop kills the registry at once with SIGKILL, as a crash would, and waits
// for it to exit. Requests to Addr() then fail until [Registry.Restart].
// Stopping a stopped registry does nothing.
func (r *Registry) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.kill(false)
}

// Restart starts the registry again on the same address and storage, after
// killing it if it is still running, and waits until GET /v2/ answers.
func (r *Registry) Restart(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.kill(false)
	deadline := time.Now().Add(startTimeout)
	for {
		err := r.run(r.addr, deadline)
		if err == nil {
			return
		}
		if !errors.Is(err, errAddrInUse) || time.Now().After(deadline) {
			t.Fatalf("regtest: restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// shutdown stops the registry gracefully at the end of the test.
func (r *Registry) shutdown() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.kill(true)
	if r.log != nil {
		r.log.Close()
		r.log = nil
	}
}

// kill stops the running process, if any; graceful sends SIGTERM first.
// r.mu is held.
func (r *Registry) kill(graceful bool) {
	p := r.proc
	if p == nil {
		return
	}
	r.proc = nil
	if graceful {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			return
		case <-time.After(termTimeout):
		}
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

var errAddrInUse = errors.New("address already in use")

// startFresh runs the registry on a newly chosen free port, choosing again
// when another process takes the port first.
func (r *Registry) startFresh() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	deadline := time.Now().Add(startTimeout)
	var err error
	for range portAttempts {
		var addr string
		addr, err = freeAddr()
		if err != nil {
			return err
		}
		err = r.run(addr, deadline)
		if err == nil {
			r.addr = addr
			return nil
		}
		if !errors.Is(err, errAddrInUse) {
			return err
		}
	}
	return err
}

// freeAddr returns a 127.0.0.1 address whose port was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	l.Close()
	return addr, nil
}

// configFor returns the registry configuration for addr.
func (r *Registry) configFor(addr string) string {
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: %t
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %q
  secret: %q
`, r.storage, !r.opts.noDelete, addr, r.secret)
	if r.opts.user != "" {
		cfg += fmt.Sprintf(`auth:
  htpasswd:
    realm: %q
    path: %q
`, AuthRealm, r.htpasswd())
	}
	return cfg
}

// run starts one process listening on addr and waits until it serves
// GET /v2/ or deadline passes. r.mu is held.
func (r *Registry) run(addr string, deadline time.Time) error {
	if err := os.WriteFile(r.config, []byte(r.configFor(addr)), 0o644); err != nil {
		return err
	}
	r.runs++
	if _, err := fmt.Fprintf(r.log, "--- regtest: run %d of %s serve %s on %s at %s\n",
		r.runs, r.bin, r.config, addr, time.Now().Format(time.RFC3339Nano)); err != nil {
		return err
	}
	fi, err := r.log.Stat()
	if err != nil {
		return err
	}
	from := fi.Size()

	p, err := spawn(r.bin, r.dir, r.log, "serve", r.config)
	if err != nil {
		return fmt.Errorf("starting %s: %w", r.bin, err)
	}
	client := &http.Client{Timeout: time.Second}
	listening := false
	var answered time.Time // first time GET /v2/ answered 200
	for {
		select {
		case <-p.done:
			out := r.logSince(from)
			if strings.Contains(out, "address already in use") {
				return fmt.Errorf("%s on %s: %w", Binary, addr, errAddrInUse)
			}
			return fmt.Errorf("%s on %s exited before serving (%v); log %s ends:\n%s",
				Binary, addr, p.err, r.logPath, tail(out))
		default:
		}
		if !listening {
			listening = strings.Contains(r.logSince(from), "listening on "+addr)
		}
		if r.probe(client, addr) {
			if answered.IsZero() {
				answered = time.Now()
			}
			// The log line proves that this process, and not another
			// one that took the port, holds the listener.
			if listening || time.Since(answered) >= quietReady {
				r.proc = p
				return nil
			}
		}
		if time.Now().After(deadline) {
			_ = p.cmd.Process.Kill()
			<-p.done
			return fmt.Errorf("%s on %s did not answer GET /v2/ within %v; log %s ends:\n%s",
				Binary, addr, startTimeout, r.logPath, tail(r.logSince(from)))
		}
		time.Sleep(pollInterval)
	}
}

// probe reports whether GET /v2/ on addr answers 200, authenticating when
// the registry requires it.
func (r *Registry) probe(c *http.Client, addr string) bool {
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/v2/", nil)
	if err != nil {
		return false
	}
	if r.opts.user != "" {
		req.SetBasicAuth(r.opts.user, r.opts.pass)
	}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// spawn starts bin with args, its output going to log. The process is
// started from a goroutine locked to its OS thread until the process has
// exited: Pdeathsig kills the child when the thread that forked it ends,
// which must happen only when the whole test binary dies (a timeout panic
// skips t.Cleanup and would otherwise leave the registry running).
func spawn(bin, dir string, log *os.File, args ...string) (*process, error) {
	p := &process{done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = childEnv()
		cmd.Stdin = nil
		cmd.Stdout = log
		cmd.Stderr = log
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		p.cmd = cmd
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// childEnv is the test's environment without REGISTRY_* variables, which
// would override the configuration file.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") {
			env = append(env, kv)
		}
	}
	return env
}

// logSince returns the log written from offset on.
func (r *Registry) logSince(offset int64) string {
	f, err := os.Open(r.logPath)
	if err != nil {
		return "(log unreadable: " + err.Error() + ")"
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, offset, 1<<40))
	if err != nil {
		return "(log unreadable: " + err.Error() + ")"
	}
	return string(b)
}

// tail returns the end of a log for a failure message.
func tail(s string) string {
	if strings.TrimSpace(s) == "" {
		return "(empty)"
	}
	if len(s) <= tailBytes {
		return s
	}
	s = s[len(s)-tailBytes:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return "[...]\n" + s
}
