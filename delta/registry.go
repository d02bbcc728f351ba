package delta

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/dvpc/dvpc/image"
)

// manifestAccept is the Accept header of manifest requests. Registries
// answer an OCI manifest only when the OCI type is acceptable.
var manifestAccept = strings.Join([]string{
	string(types.OCIManifestSchema1),
	string(types.OCIImageIndex),
	string(types.DockerManifestSchema2),
	string(types.DockerManifestList),
}, ", ")

// What a registry may make dvpc read or keep is bounded, so that a hostile
// mirror cannot fill the disk or the memory.
const (
	// maxManifest bounds one manifest read from a registry.
	maxManifest = 4 << 20
	// maxManifestCache bounds the bytes of manifests a [Registry] keeps
	// for later reads; past it, manifests are read again when asked for.
	maxManifestCache = 64 << 20
	// maxTagPage bounds one page of the tag list.
	maxTagPage = 16 << 20
	// maxTagPages and maxTags bound the tag list: a registry that keeps
	// answering with a next page is refused.
	maxTagPages = 1000
	maxTags     = 100_000
	// maxRedirects bounds the redirects followed for one request.
	maxRedirects = 10
)

// ErrInsecureRedirect means a registry redirected, or linked, a request
// from HTTPS to plain HTTP, or a link named another origin; it is refused.
var ErrInsecureRedirect = errors.New("refused to leave the registry's origin or its encryption")

// ErrTooLarge means a registry declared or sent more than dvpc accepts: a
// blob larger than its declared size, a tag list without end.
var ErrTooLarge = errors.New("more than declared or allowed")

// RegistryOptions tune [NewRegistry].
type RegistryOptions struct {
	// Insecure allows plain HTTP to a registry that is not on a loopback
	// address. Loopback registries always use plain HTTP.
	Insecure bool
	// Keychain finds credentials; nil means [DockerKeychain].
	Keychain Keychain
	// Transport carries the requests; nil means http.DefaultTransport.
	Transport http.RoundTripper
	// Timeout is how long a request may go without progress before it
	// fails with [ErrStalled]; 0 means [DefaultTimeout].
	Timeout time.Duration
	// TempDir is where [Registry.OpenBlob] keeps a blob while it is
	// checked; "" means os.TempDir(). A pull writes blobs straight into
	// the store instead (see [Registry.FetchBlob]).
	TempDir string
}

// Registry is one repository of an OCI registry used as a mirror. It is a
// read-only [image.Source]; [Push] writes to it.
type Registry struct {
	host     string // host[:port], as named
	apiHost  string // where the registry API answers: host, but for Docker Hub
	path     string // repository path
	scheme   string
	origin   string // scheme://host:port of the registry API: what credentials go to
	kc       Keychain
	hc       *http.Client
	timeout  time.Duration
	tempDir  string
	insecure bool // plain HTTP allowed beyond loopback

	mu         sync.Mutex
	creds      *Credentials
	authz      map[string]string         // Authorization header by scope set
	manifests  map[image.Digest]manifest // read or written, verified
	cacheBytes int64                     // of manifests, at most cacheLimit
	cacheLimit int64                     // maxManifestCache
	sizes      map[image.Digest]int64    // blob sizes the cached manifests declare
}

type manifest struct {
	raw       []byte
	mediaType string
}

var _ image.Source = (*Registry)(nil)

var (
	pathComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	tagPattern    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
)

// NewRegistry names a mirror: a registry repository "host[:port]/path".
// Plain HTTP is used for loopback hosts, or any host with opts.Insecure;
// HTTPS otherwise.
func NewRegistry(ref string, opts RegistryOptions) (*Registry, error) {
	host, path, ok := strings.Cut(ref, "/")
	if !ok || host == "" || path == "" {
		return nil, fmt.Errorf("mirror %q: want host[:port]/path", ref)
	}
	if u, err := url.Parse("//" + host); err != nil || u.Host != host {
		return nil, fmt.Errorf("mirror %q: bad host %q", ref, host)
	}
	for _, c := range strings.Split(path, "/") {
		if !pathComponent.MatchString(c) {
			return nil, fmt.Errorf("mirror %q: bad repository path component %q", ref, c)
		}
	}
	r := &Registry{host: host, apiHost: host, path: path, scheme: "https", kc: opts.Keychain,
		tempDir: opts.TempDir, insecure: opts.Insecure, authz: map[string]string{}, manifests: map[image.Digest]manifest{},
		sizes: map[image.Digest]int64{}, cacheLimit: maxManifestCache}
	if slices.Contains(hubNames, host) {
		r.host, r.apiHost = hubHost, hubAPIHost
	}
	if opts.Insecure || isLoopback(host) {
		r.scheme = "http"
	}
	if r.kc == nil {
		r.kc = DockerKeychain
	}
	r.timeout = opts.Timeout
	if r.timeout <= 0 {
		r.timeout = DefaultTimeout
	}
	rt := opts.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	r.hc = &http.Client{Transport: rt, CheckRedirect: checkRedirect}
	r.origin = originOf(&url.URL{Scheme: r.scheme, Host: r.apiHost})
	return r, nil
}

// originOf returns a URL's origin, "scheme://host:port", with the port
// spelled out: credentials are sent only to the registry's own origin.
func originOf(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return strings.ToLower(u.Scheme) + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// checkRedirect refuses a redirect from HTTPS to plain HTTP, and drops the
// Authorization header when the redirect leaves the origin of the first
// request (the registry, or its token realm): a blob served from a CDN gets
// no credentials. The Go client itself keeps the header for another port of
// the same host.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	for _, v := range via {
		if v.URL.Scheme == "https" && req.URL.Scheme != "https" {
			return fmt.Errorf("redirect from %s to %s: %w", originOf(v.URL), originOf(req.URL), ErrInsecureRedirect)
		}
	}
	if originOf(req.URL) != originOf(via[0].URL) {
		req.Header.Del("Authorization")
	}
	return nil
}

// Docker Hub is named docker.io (or index.docker.io); its API answers at
// registry-1.docker.io, and the Docker client keeps its credentials under
// hubCredentialsKey.
const (
	hubHost           = "docker.io"
	hubAPIHost        = "registry-1.docker.io"
	hubCredentialsKey = "https://index.docker.io/v1/"
)

var hubNames = []string{hubHost, "index.docker.io", hubAPIHost}

// isLoopback reports whether host[:port] names the local machine.
func isLoopback(host string) bool {
	h := host
	if sh, _, err := net.SplitHostPort(host); err == nil {
		h = sh
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// String returns the mirror's "host/path".
func (r *Registry) String() string { return r.host + "/" + r.path }

// Repository returns the repository path without the host.
func (r *Registry) Repository() string { return r.path }

// Host returns the registry's host[:port].
func (r *Registry) Host() string { return r.host }

func scopesFor(path string, push bool, mountFrom string) []string {
	s := []string{"repository:" + path + ":pull"}
	if push {
		s[0] += ",push"
	}
	if mountFrom != "" {
		s = append(s, "repository:"+mountFrom+":pull")
	}
	return s
}

func (r *Registry) url(path string) string {
	return r.scheme + "://" + r.apiHost + "/v2/" + r.path + path
}

// HTTPError is a registry's answer with an unexpected status.
type HTTPError struct {
	Method, URL string
	Status      int
	Body        string
}

func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.Status, http.StatusText(e.Status))
	if b := strings.TrimSpace(e.Body); b != "" {
		msg += ": " + b
	}
	return msg
}

// do sends a request with the access scopes need, answering an
// authentication challenge once, and checks the status against codes. body
// makes a fresh request body for each attempt. A request that makes no
// progress for the mirror's timeout, sending or receiving, fails with
// [ErrStalled]; the response body must be closed.
func (r *Registry) do(ctx context.Context, scopes []string, method, u string, body func() io.Reader, size int64, hdr map[string]string, codes ...int) (*http.Response, error) {
	key := strings.Join(scopes, " ")
	pu, err := url.Parse(u)
	if err != nil {
		return nil, fmt.Errorf("%s: %s %s: %w", r, method, u, err)
	}
	if r.scheme == "https" && pu.Scheme != "https" {
		return nil, fmt.Errorf("%s: %s %s: %w", r, method, u, ErrInsecureRedirect)
	}
	// Credentials go to the registry's own origin only: an upload location
	// on another host gets none (it carries its own token, if any).
	own := originOf(pu) == r.origin
	for attempt := 0; ; attempt++ {
		rctx, wd := watch(ctx, r.timeout)
		var rd io.Reader
		if body != nil {
			rd = wd.reader(rctx, body())
		}
		req, err := http.NewRequestWithContext(rctx, method, u, rd)
		if err != nil {
			wd.stop()
			return nil, err
		}
		if body != nil {
			req.ContentLength = size
			if size == 0 {
				req.Body = http.NoBody
			}
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		r.mu.Lock()
		authz := r.authz[key]
		r.mu.Unlock()
		if authz != "" && own {
			req.Header.Set("Authorization", authz)
		}
		resp, err := r.hc.Do(req)
		if err != nil {
			err = wd.cause(rctx, err)
			wd.stop()
			return nil, fmt.Errorf("%s: %w", r, err)
		}
		wd.kick()
		resp.Body = &watchedBody{Reader: wd.reader(rctx, resp.Body), body: resp.Body, w: wd}
		if resp.StatusCode == http.StatusUnauthorized && attempt == 0 && originOf(resp.Request.URL) == r.origin {
			// Only the registry's own challenge is answered: a host it
			// redirected to gets no credentials.
			ch := parseChallenge(resp.Header.Get("WWW-Authenticate"))
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			a, err := r.authorize(ctx, ch, scopes)
			if err != nil {
				return nil, err
			}
			r.mu.Lock()
			r.authz[key] = a
			r.mu.Unlock()
			continue
		}
		if slices.Contains(codes, resp.StatusCode) {
			return resp, nil
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		herr := &HTTPError{Method: method, URL: u, Status: resp.StatusCode, Body: string(b)}
		if method == http.MethodHead {
			herr.Body = ""
		}
		switch resp.StatusCode {
		case http.StatusNotFound:
			return nil, fmt.Errorf("%s: %w: %w", r, image.ErrNotFound, herr)
		case http.StatusUnauthorized, http.StatusForbidden:
			return nil, fmt.Errorf("%s: %w: the credentials were refused; %s: %w", r, ErrAuth, authHint(r.host), herr)
		}
		return nil, fmt.Errorf("%s: %w", r, herr)
	}
}

// get is a pull-scoped request without a body.
func (r *Registry) get(ctx context.Context, method, u string, hdr map[string]string) (*http.Response, error) {
	return r.do(ctx, scopesFor(r.path, false, ""), method, u, nil, 0, hdr, http.StatusOK)
}

// Tags lists the repository's tags; a repository that does not exist yet
// has none. The list is bounded ([maxTagPages] pages, [maxTags] tags), and
// a next page is followed only on the registry's own origin.
func (r *Registry) Tags(ctx context.Context) ([]string, error) {
	var tags []string
	next := r.url("/tags/list?n=1000")
	for pages := 0; next != ""; pages++ {
		if pages == maxTagPages {
			return nil, fmt.Errorf("%s: list tags: more than %d pages: %w", r, maxTagPages, ErrTooLarge)
		}
		resp, err := r.get(ctx, http.MethodGet, next, nil)
		if errors.Is(err, image.ErrNotFound) && len(tags) == 0 {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list tags: %w", err)
		}
		var page struct {
			Tags []string `json:"tags"`
		}
		err = json.NewDecoder(io.LimitReader(resp.Body, maxTagPage)).Decode(&page)
		link := resp.Header.Get("Link")
		reqURL := resp.Request.URL
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: list tags: %w", r, err)
		}
		tags = append(tags, page.Tags...)
		if len(tags) > maxTags {
			return nil, fmt.Errorf("%s: list tags: more than %d tags: %w", r, maxTags, ErrTooLarge)
		}
		if next, err = r.nextPage(reqURL, link); err != nil {
			return nil, fmt.Errorf("%s: list tags: %w", r, err)
		}
	}
	return tags, nil
}

// nextPage returns the rel="next" target of a Link header, resolved
// against the page's URL; "" when there is none. A target on another
// origin (host, port or scheme) is refused.
func (r *Registry) nextPage(page *url.URL, link string) (string, error) {
	if !strings.Contains(link, `rel="next"`) {
		return "", nil
	}
	i, j := strings.Index(link, "<"), strings.Index(link, ">")
	if i < 0 || j < i {
		return "", fmt.Errorf("bad Link header %q", link)
	}
	nu, err := page.Parse(link[i+1 : j])
	if err != nil {
		return "", fmt.Errorf("bad Link header %q: %w", link, err)
	}
	if originOf(nu) != r.origin {
		return "", fmt.Errorf("next page on %s, not the registry's %s: %w", originOf(nu), r.origin, ErrInsecureRedirect)
	}
	return nu.String(), nil
}

// Refs implements [image.Source]: every tag with its manifest. Manifests are
// read and kept, checked against the digest the registry names.
func (r *Registry) Refs(ctx context.Context) ([]image.Ref, error) {
	tags, err := r.Tags(ctx)
	if err != nil {
		return nil, err
	}
	refs := make([]image.Ref, len(tags))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i, tag := range tags {
		if !tagPattern.MatchString(tag) {
			return nil, fmt.Errorf("%s: bad tag %q", r, tag)
		}
		g.Go(func() error {
			d, m, err := r.getManifest(gctx, tag, nil)
			var he *HTTPError
			if errors.As(err, &he) && (he.Status >= 500 || he.Status == http.StatusNotFound) {
				// A tag torn by an interrupted write (the registry answers
				// 500) or deleted meanwhile is as good as absent: a push
				// writes it again, a pull takes it from another mirror.
				return nil
			}
			if err != nil {
				return err
			}
			desc := v1.Descriptor{MediaType: types.MediaType(m.mediaType), Digest: d.Hash(), Size: int64(len(m.raw))}
			var head struct {
				ArtifactType string `json:"artifactType"`
			}
			if json.Unmarshal(m.raw, &head) == nil {
				desc.ArtifactType = head.ArtifactType
			}
			refs[i] = image.Ref{Name: tag, Desc: desc}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := refs[:0]
	for _, ref := range refs {
		if ref.Name != "" {
			out = append(out, ref)
		}
	}
	return out, nil
}

// getManifest reads a manifest by tag or digest. With want set, its bytes
// must hash to it; otherwise to the digest the registry names, if any.
func (r *Registry) getManifest(ctx context.Context, ref string, want *image.Digest) (image.Digest, manifest, error) {
	resp, err := r.get(ctx, http.MethodGet, r.url("/manifests/"+ref), map[string]string{"Accept": manifestAccept})
	if err != nil {
		return image.Digest{}, manifest{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxManifest+1))
	if err != nil {
		return image.Digest{}, manifest{}, fmt.Errorf("%s: manifest %s: %w", r, ref, err)
	}
	if len(raw) > maxManifest {
		return image.Digest{}, manifest{}, fmt.Errorf("%s: manifest %s exceeds %d bytes", r, ref, maxManifest)
	}
	got := image.DigestOf(raw)
	if want == nil {
		if h := resp.Header.Get("Docker-Content-Digest"); h != "" {
			d, err := image.ParseDigest(h)
			if err != nil {
				return image.Digest{}, manifest{}, fmt.Errorf("%s: manifest %s: %w", r, ref, err)
			}
			want = &d
		}
	}
	if want != nil && got != *want {
		return image.Digest{}, manifest{}, fmt.Errorf("%s: manifest %s: %w", r, ref,
			&image.DigestError{Want: *want, Got: got, WantSize: -1, GotSize: int64(len(raw))})
	}
	mt := resp.Header.Get("Content-Type")
	if mt == "" {
		mt = image.ManifestType
	}
	m := manifest{raw: raw, mediaType: mt}
	r.keep(got, m)
	return got, m, nil
}

// keep caches a verified manifest, and the sizes it declares for its blobs,
// while the cache holds less than [maxManifestCache] bytes.
func (r *Registry) keep(d image.Digest, m manifest) {
	var parsed v1.Manifest
	json.Unmarshal(m.raw, &parsed) // a key blob or an index declares nothing
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.manifests[d]; ok || r.cacheBytes+int64(len(m.raw)) > r.cacheLimit {
		return
	}
	r.manifests[d] = m
	r.cacheBytes += int64(len(m.raw))
	for _, desc := range append([]v1.Descriptor{parsed.Config}, parsed.Layers...) {
		if bd, err := image.DigestFromHash(desc.Digest); err == nil && desc.Size >= 0 {
			r.sizes[bd] = desc.Size
		}
	}
}

// declaredSize is the size a cached manifest gives blob d.
func (r *Registry) declaredSize(d image.Digest) (int64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, ok := r.sizes[d]
	return n, ok
}

func (r *Registry) cached(d image.Digest) (manifest, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.manifests[d]
	return m, ok
}

// OpenBlob implements [image.Source]. The whole blob is downloaded to a
// temporary file (in [RegistryOptions.TempDir]) and checked against d before
// it is served; a blob whose bytes do not match returns an
// [*image.DigestError]. No more is read than the blob's declared size: the
// size a manifest read from this registry gives it, else the response's
// Content-Length; a blob with neither is refused. Manifests are served too.
func (r *Registry) OpenBlob(ctx context.Context, d image.Digest) (image.Blob, error) {
	if m, ok := r.cached(d); ok {
		return memBlob{bytes.NewReader(m.raw)}, nil
	}
	resp, err := r.get(ctx, http.MethodGet, r.url("/blobs/"+d.String()), nil)
	if errors.Is(err, image.ErrNotFound) {
		if _, m, merr := r.getManifest(ctx, d.String(), &d); merr == nil {
			return memBlob{bytes.NewReader(m.raw)}, nil
		}
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	size, ok := r.declaredSize(d)
	if !ok {
		if size = resp.ContentLength; size < 0 {
			return nil, fmt.Errorf("%s: blob %s: no declared size: %w", r, d, ErrTooLarge)
		}
	}
	f, err := os.CreateTemp(r.tempDir, "dvpc-blob-*")
	if err != nil {
		return nil, fmt.Errorf("%s: blob %s: %w", r, d, err)
	}
	b := &fileBlob{File: f}
	if b.size, err = r.readBlob(resp, d, size, f); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// FetchBlob streams blob d, of the declared size, into w and checks it
// against d. It never writes more than size bytes to w: a registry that
// announces or sends more is refused with an error naming it and the blob,
// which wraps [ErrTooLarge] and an [*image.DigestError]. On an error, w may
// hold part of the blob.
func (r *Registry) FetchBlob(ctx context.Context, d image.Digest, size int64, w io.Writer) (int64, error) {
	if m, ok := r.cached(d); ok && int64(len(m.raw)) == size {
		n, err := w.Write(m.raw)
		return int64(n), err
	}
	resp, err := r.get(ctx, http.MethodGet, r.url("/blobs/"+d.String()), nil)
	if errors.Is(err, image.ErrNotFound) && size <= maxManifest {
		if _, m, merr := r.getManifest(ctx, d.String(), &d); merr == nil {
			if int64(len(m.raw)) != size {
				return 0, fmt.Errorf("%s: %w", r, &image.DigestError{Want: d, Got: d, WantSize: size, GotSize: int64(len(m.raw))})
			}
			n, err := w.Write(m.raw)
			return int64(n), err
		}
	}
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return r.readBlob(resp, d, size, w)
}

// readBlob copies a blob's response body of the declared size into w,
// reading no more than size bytes, and checks it against d.
func (r *Registry) readBlob(resp *http.Response, d image.Digest, size int64, w io.Writer) (int64, error) {
	if cl := resp.ContentLength; cl >= 0 && cl != size {
		return 0, fmt.Errorf("%s: blob %s: announces %d bytes, %d declared: %w: %w", r, d, cl, size,
			ErrTooLarge, &image.DigestError{Want: d, WantSize: size, GotSize: cl})
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(resp.Body, size))
	if err != nil {
		return n, fmt.Errorf("%s: blob %s: %w", r, d, err)
	}
	var got image.Digest
	h.Sum(got[:0])
	if n < size {
		return n, fmt.Errorf("%s: %w", r, &image.DigestError{Want: d, Got: got, WantSize: size, GotSize: n})
	}
	// One byte more, and the registry sends more than it declared.
	var more [1]byte
	if k, _ := io.ReadFull(resp.Body, more[:]); k > 0 {
		return n, fmt.Errorf("%s: blob %s: sends more than the %d bytes declared: %w: %w", r, d, size,
			ErrTooLarge, &image.DigestError{Want: d, WantSize: size, GotSize: size + 1})
	}
	if got != d {
		return n, fmt.Errorf("%s: %w", r, &image.DigestError{Want: d, Got: got, WantSize: -1, GotSize: n})
	}
	return n, nil
}

type memBlob struct{ *bytes.Reader }

func (memBlob) Close() error { return nil }

type fileBlob struct {
	*os.File
	size int64
}

func (b *fileBlob) Size() int64 { return b.size }

// Close closes and removes the temporary file. It is removed only now, as
// an open file cannot be removed on Windows.
func (b *fileBlob) Close() error {
	err := b.File.Close()
	if rerr := os.Remove(b.Name()); err == nil {
		err = rerr
	}
	return err
}

// StatBlob implements [image.Source] with a HEAD request.
func (r *Registry) StatBlob(ctx context.Context, d image.Digest) (int64, error) {
	if m, ok := r.cached(d); ok {
		return int64(len(m.raw)), nil
	}
	return r.statBlob(ctx, scopesFor(r.path, false, ""), d)
}

func (r *Registry) statBlob(ctx context.Context, scopes []string, d image.Digest) (int64, error) {
	resp, err := r.do(ctx, scopes, http.MethodHead, r.url("/blobs/"+d.String()), nil, 0, nil, http.StatusOK)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	n, err := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
	if err != nil {
		return resp.ContentLength, nil
	}
	return n, nil
}
