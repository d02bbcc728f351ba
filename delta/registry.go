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

// maxManifest bounds the manifests read from a registry.
const maxManifest = 4 << 20

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
}

// Registry is one repository of an OCI registry used as a mirror. It is a
// read-only [image.Source]; [Push] writes to it.
type Registry struct {
	host    string // host[:port], as named
	apiHost string // where the registry API answers: host, but for Docker Hub
	path    string // repository path
	scheme  string
	kc      Keychain
	hc      *http.Client
	timeout time.Duration

	mu        sync.Mutex
	creds     *Credentials
	authz     map[string]string         // Authorization header by scope set
	manifests map[image.Digest]manifest // read or written, verified
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
		authz: map[string]string{}, manifests: map[image.Digest]manifest{}}
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
	r.hc = &http.Client{Transport: rt}
	return r, nil
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
		if authz != "" {
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
		if resp.StatusCode == http.StatusUnauthorized && attempt == 0 {
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
// has none.
func (r *Registry) Tags(ctx context.Context) ([]string, error) {
	var tags []string
	next := r.url("/tags/list?n=1000")
	for next != "" {
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
		err = json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&page)
		link := resp.Header.Get("Link")
		reqURL := resp.Request.URL
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: list tags: %w", r, err)
		}
		tags = append(tags, page.Tags...)
		next = ""
		if strings.Contains(link, `rel="next"`) {
			if i, j := strings.Index(link, "<"), strings.Index(link, ">"); i >= 0 && j > i {
				if nu, err := reqURL.Parse(link[i+1 : j]); err == nil {
					next = nu.String()
				}
			}
		}
	}
	return tags, nil
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
	r.mu.Lock()
	r.manifests[got] = m
	r.mu.Unlock()
	return got, m, nil
}

func (r *Registry) cached(d image.Digest) (manifest, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.manifests[d]
	return m, ok
}

// OpenBlob implements [image.Source]. The whole blob is downloaded to an
// unnamed temporary file and checked against d before it is served; a blob
// whose bytes do not match returns an [*image.DigestError]. Manifests are
// served too.
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
	f, err := os.CreateTemp("", "dvpc-blob-*")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name()) // unnamed: it goes when closed
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), resp.Body)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: blob %s: %w", r, d, err)
	}
	var got image.Digest
	h.Sum(got[:0])
	if got != d {
		f.Close()
		return nil, fmt.Errorf("%s: %w", r, &image.DigestError{Want: d, Got: got, WantSize: -1, GotSize: n})
	}
	return &fileBlob{File: f, size: n}, nil
}

type memBlob struct{ *bytes.Reader }

func (memBlob) Close() error { return nil }

type fileBlob struct {
	*os.File
	size int64
}

func (b *fileBlob) Size() int64 { return b.size }

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
