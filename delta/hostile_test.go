package delta

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/dvpc/dvpc/image"
	"github.com/dvpc/dvpc/internal/regtest"
)

var (
	blobPathRE   = regexp.MustCompile(`^/v2/.+/blobs/(sha256:[0-9a-f]{64})$`)
	sigTagPathRE = regexp.MustCompile(`^/v2/.+/manifests/sha256-[0-9a-f]{64}\.sig$`)
)

// hostileProxy is a loopback reverse proxy in front of a real registry.
// handle, when it returns true, has answered the request itself; modify,
// when set, may rewrite any response body the registry sends.
func hostileProxy(t *testing.T, reg *regtest.Registry,
	handle func(w http.ResponseWriter, r *http.Request) bool,
	modify func(r *http.Request, body []byte, h http.Header) []byte) *httptest.Server {
	t.Helper()
	target, err := url.Parse(reg.URL())
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ErrorLog = log.New(io.Discard, "", 0) // clients hanging up are expected
	if modify != nil {
		rp.ModifyResponse = func(resp *http.Response) error {
			if resp.StatusCode != http.StatusOK || resp.Request.Method != http.MethodGet {
				return nil
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			b = modify(resp.Request, b, resp.Header)
			resp.Body = io.NopCloser(bytes.NewReader(b))
			resp.ContentLength = int64(len(b))
			resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
			return nil
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if handle != nil && handle(w, r) {
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func mirrorAt(t *testing.T, addr, path string) *Registry {
	t.Helper()
	m, err := NewRegistry(addr+"/"+path, RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// hostileSet is a store pushed to honest registries with hostile proxies in
// front of some of them.
type hostileSet struct {
	s              *testStore
	s1, s2         *image.Snapshot
	want1, want2   string
	pack           image.Digest
	honest         string // addresses, for fresh Registry handles
	flip, notFound string
	stale, sigForg string
}

func (h *hostileSet) mirrors(t *testing.T, addrs ...string) []*Registry {
	t.Helper()
	var out []*Registry
	for _, a := range addrs {
		out = append(out, mirrorAt(t, a, "dvpc/home"))
	}
	return out
}

func newHostileSet(t *testing.T) *hostileSet {
	t.Helper()
	ctx := context.Background()
	h := &hostileSet{s: newTestStore(t)}
	h.s1 = h.s.snapshot(t)
	h.want1 = copyHome(t, h.s)

	regs := regtest.StartN(t, 5)
	// regs[4] holds the store as it was after the first snapshot only.
	checkAllOK(t, PushAll(ctx, h.s.lay, mirrorsOf(t, regs[4:], "dvpc/home"), PushOptions{}))

	writeFile(t, filepath.Join(h.s.home, "docs", "second.txt"), []byte("only in the second snapshot\n"))
	h.s2 = h.s.snapshot(t)
	h.want2 = copyHome(t, h.s)
	if h.s2.Config.Seq <= h.s1.Config.Seq {
		t.Fatalf("sequence numbers %d then %d", h.s1.Config.Seq, h.s2.Config.Seq)
	}
	checkAllOK(t, PushAll(ctx, h.s.lay, mirrorsOf(t, regs[:4], "dvpc/home"), PushOptions{}))
	h.pack = largestBlob(t, h.s.lay)

	h.honest = regs[0].Addr()
	// (a) every blob body served with one byte flipped.
	h.flip = hostileProxy(t, regs[1], nil, func(r *http.Request, b []byte, _ http.Header) []byte {
		if blobPathRE.MatchString(r.URL.Path) && len(b) > 0 {
			b[len(b)/2] ^= 0x01
		}
		return b
	}).Listener.Addr().String()
	// (b) the pack blob is unknown.
	h.notFound = hostileProxy(t, regs[2], func(w http.ResponseWriter, r *http.Request) bool {
		m := blobPathRE.FindStringSubmatch(r.URL.Path)
		if m == nil || m[1] != h.pack.String() {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}`)
		return true
	}, nil).Listener.Addr().String()
	// (c) only the first snapshot, honestly signed: an older state.
	h.stale = hostileProxy(t, regs[4], nil, nil).Listener.Addr().String()
	// (d) signature manifests rewritten so that their layer is the
	// signature blob of another store (another key), pushed to the same
	// registry under another repository and served as if it were here:
	// every digest checks out, the signature does not.
	other := newTestStore(t)
	os1 := other.snapshot(t)
	checkAllOK(t, PushAll(ctx, other.lay, mirrorsOf(t, regs[3:4], "dvpc/other"), PushOptions{}))
	foreign := foreignSignature(t, other.lay, os1.Manifest)
	h.sigForg = hostileProxy(t, regs[3], func(w http.ResponseWriter, r *http.Request) bool {
		if m := blobPathRE.FindStringSubmatch(r.URL.Path); m != nil && m[1] == foreign.Digest.String() {
			r.URL.Path = "/v2/dvpc/other/blobs/" + m[1]
		}
		return false
	}, func(r *http.Request, b []byte, hd http.Header) []byte {
		if !sigTagPathRE.MatchString(r.URL.Path) {
			return b
		}
		var m v1.Manifest
		if err := json.Unmarshal(b, &m); err != nil || len(m.Layers) != 1 {
			t.Errorf("signature manifest %s: %v", r.URL.Path, err)
			return b
		}
		m.Layers[0].Digest = foreign.Digest
		m.Layers[0].Size = foreign.Size
		nb, err := json.Marshal(m)
		if err != nil {
			t.Error(err)
			return b
		}
		hd.Set("Docker-Content-Digest", image.DigestOf(nb).String())
		return nb
	}).Listener.Addr().String()
	return h
}

// foreignSignature returns the signature layer of a store's snapshot.
func foreignSignature(t *testing.T, lay *image.Layout, snap image.Digest) v1.Descriptor {
	t.Helper()
	ctx := context.Background()
	refs, err := lay.Refs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r, ok := findRef(refs, image.SignatureRef(snap))
	if !ok {
		t.Fatalf("no %s", image.SignatureRef(snap))
	}
	md, err := image.DigestFromHash(r.Desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := image.ReadBlob(ctx, lay, md, r.Desc.Size)
	if err != nil {
		t.Fatal(err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil || len(m.Layers) != 1 {
		t.Fatalf("signature manifest: %v", err)
	}
	return m.Layers[0]
}

// TestHostileMirrors pulls through mirrors that corrupt blobs, lose a pack,
// serve an older state, or break signatures, listed before an honest one.
func TestHostileMirrors(t *testing.T) {
	ctx := context.Background()
	h := newHostileSet(t)

	// Sanity: each hostile mirror really misbehaves.
	if _, err := mirrorAt(t, h.flip, "dvpc/home").OpenBlob(ctx, h.pack); err == nil {
		t.Fatal("the byte-flipping proxy served the pack intact")
	}
	if _, err := mirrorAt(t, h.notFound, "dvpc/home").OpenBlob(ctx, h.pack); !errors.Is(err, image.ErrNotFound) {
		t.Fatalf("the 404 proxy: %v", err)
	}

	// What mirror status shows: the newest snapshot that verifies.
	kf, err := image.ReadKeyFile(ctx, h.s.lay)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr    string
		newest  string
		badSigs int
	}{{h.honest, h.s2.Ref, 0}, {h.stale, h.s1.Ref, 0}, {h.sigForg, "", 2}} {
		m := mirrorAt(t, tc.addr, "dvpc/home")
		refs, err := m.Refs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		newest, probs, err := NewestVerified(ctx, m, refs, kf)
		if err != nil || newest != tc.newest || len(probs) != tc.badSigs {
			t.Fatalf("newest verified on %s: %q, %v, %v; want %q and %d problems", tc.addr, newest, probs, err, tc.newest, tc.badSigs)
		}
		for _, p := range probs {
			if !errors.Is(p.Err, image.ErrBadSignature) {
				t.Fatalf("newest verified on %s: %v, want a bad signature", tc.addr, p)
			}
		}
	}

	// All mirrors, ranked in the order listed so that the hostile ones
	// are asked first: the pull succeeds from the honest one, and the bad
	// ones are named.
	all := []string{h.flip, h.notFound, h.stale, h.sigForg, h.honest}
	dst := newLayout(t)
	rep, err := Pull(ctx, h.mirrors(t, all...), dst, PullOptions{Health: []int{0, 1, 2, 3, 4}, Key: h.s.key()})
	if err != nil {
		t.Fatalf("pull from all mirrors: %v; %+v", err, rep)
	}
	if len(rep.Snapshots) != 2 || !rep.KeysAdded || len(rep.Refused) != 0 {
		t.Fatalf("pull from all mirrors: %+v", rep)
	}
	flipName := h.flip + "/dvpc/home"
	if bad := rep.BadMirrors(); !slices.Equal(bad, []string{flipName}) {
		t.Fatalf("bad mirrors %v, want [%s]; failures %v", bad, flipName, rep.Failures)
	}
	var nf bool
	for _, f := range rep.Failures {
		if f.Mirror == h.notFound+"/dvpc/home" && f.Digest == h.pack && errors.Is(f.Err, image.ErrNotFound) {
			nf = true
		}
	}
	if !nf {
		t.Fatalf("no failure listed for the pack on the 404 mirror; failures %v", rep.Failures)
	}
	restoreEqual(t, dst, h.s1.ID, h.want1)
	restoreEqual(t, dst, h.s2.ID, h.want2)

	// Rollback: with MinSeq at the second snapshot, the stale mirror's
	// newest (the first snapshot) is not accepted.
	dst = newLayout(t)
	before := readIndex(t, dst)
	rep, err = Pull(ctx, h.mirrors(t, h.stale), dst, PullOptions{MinSeq: h.s2.Config.Seq, Key: h.s.key()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Snapshots) != 0 || len(rep.Refused) != 1 || !errors.Is(rep.Refused[0].Err, ErrRollback) {
		t.Fatalf("stale mirror with MinSeq %d: %+v", h.s2.Config.Seq, rep)
	}
	if !bytes.Equal(readIndex(t, dst), before) {
		t.Fatal("a refused pull changed index.json")
	}
	// With the others too, only the second snapshot is taken.
	rep, err = Pull(ctx, h.mirrors(t, h.stale, h.flip, h.honest), dst, PullOptions{MinSeq: h.s2.Config.Seq, Key: h.s.key()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Snapshots) != 1 || !strings.Contains(rep.Snapshots[0], h.s2.ID) {
		t.Fatalf("pull with MinSeq %d: %+v", h.s2.Config.Seq, rep)
	}
	if len(rep.Refused) != 1 || !errors.Is(rep.Refused[0].Err, ErrRollback) {
		t.Fatalf("pull with MinSeq %d: refused %v", h.s2.Config.Seq, rep.Refused)
	}
	restoreEqual(t, dst, h.s2.ID, h.want2)

	// Only hostile mirrors that cannot between them serve the pack: the
	// pull fails and names nothing.
	dst = newLayout(t)
	before = readIndex(t, dst)
	rep, err = Pull(ctx, h.mirrors(t, h.flip, h.notFound), dst, PullOptions{Key: h.s.key()})
	if err == nil || !strings.Contains(err.Error(), h.pack.String()) {
		t.Fatalf("pull from the corrupting and the 404 mirror: %+v, %v", rep, err)
	}
	var de *image.DigestError
	if !errors.As(err, &de) || !errors.Is(err, image.ErrNotFound) {
		t.Fatalf("error should carry both the digest mismatch and the 404: %v", err)
	}
	if !bytes.Equal(readIndex(t, dst), before) {
		t.Fatal("a failed pull changed index.json")
	}

	// The signature-breaking mirror alone: every snapshot is refused for its
	// signature, and nothing is named. (With other mirrors beside it, their
	// signatures are tried too: see TestHostileMirrorFirstDoesNotHideHonest.)
	rep, err = Pull(ctx, h.mirrors(t, h.sigForg), dst, PullOptions{Key: h.s.key()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Snapshots) != 0 || len(rep.Refused) != 2 {
		t.Fatalf("pull with broken signatures: %+v", rep)
	}
	for _, p := range rep.Refused {
		if !errors.Is(p.Err, image.ErrBadSignature) {
			t.Fatalf("refused for %v, want a bad signature", p.Err)
		}
	}
	if !bytes.Equal(readIndex(t, dst), before) {
		t.Fatal("a refused pull changed index.json")
	}
}

// TestHostileMirrorFirstDoesNotHideHonest: a mirror whose signatures do
// not verify must not keep a pull from taking the same snapshots, correctly
// signed, from an honest mirror listed after it.
func TestHostileMirrorFirstDoesNotHideHonest(t *testing.T) {
	ctx := context.Background()
	h := newHostileSet(t)
	dst := newLayout(t)
	rep, err := Pull(ctx, h.mirrors(t, h.sigForg, h.honest), dst, PullOptions{Key: h.s.key()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Snapshots) != 2 {
		t.Fatalf("the honest mirror's snapshots were not taken: pulled %v, refused %v", rep.Snapshots, rep.Refused)
	}
	restoreEqual(t, dst, h.s2.ID, h.want2)
}
