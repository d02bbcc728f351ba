package delta

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/dvpc/dvpc/image"
	"github.com/dvpc/dvpc/internal/regtest"
)

// slowSet is a store of several snapshots, each adding a 2 MiB pack,
// pushed to one real registry.
type slowSet struct {
	s    *testStore
	last *image.Snapshot
	want string
	reg  *regtest.Registry
	pack image.Digest
}

func newSlowSet(t *testing.T) *slowSet {
	t.Helper()
	h := &slowSet{s: newTestStore(t)}
	for i := range 5 {
		b := make([]byte, 2<<20)
		rand.Read(b)
		writeFile(t, filepath.Join(h.s.home, fmt.Sprintf("part%d.bin", i)), b)
		h.last = h.s.snapshot(t)
	}
	h.want = copyHome(t, h.s)
	h.reg = regtest.StartN(t, 1)[0]
	checkAllOK(t, PushAll(context.Background(), h.s.lay, mirrorsOf(t, []*regtest.Registry{h.reg}, "dvpc/home"), PushOptions{}))
	h.pack = largestBlob(t, h.s.lay)
	return h
}

func timedMirror(t *testing.T, addr string, timeout time.Duration) *Registry {
	t.Helper()
	m, err := NewRegistry(addr+"/dvpc/home", RegistryOptions{Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestPullStalledMirrors: a mirror that never answers, and one that stops
// sending in the middle of a blob, each fail with ErrStalled after the
// timeout, and the pull takes everything from the honest mirror.
func TestPullStalledMirrors(t *testing.T) {
	ctx := context.Background()
	h := newSlowSet(t)
	// Long enough that the honest registry, on a loaded machine, never looks
	// stalled; the mute and stalling proxies stall however long it is.
	const timeout = 2 * time.Second

	// Accepts the connection, never answers.
	mute := hostileProxy(t, h.reg, func(w http.ResponseWriter, r *http.Request) bool {
		<-r.Context().Done()
		return true
	}, nil).Listener.Addr().String()
	packSize, err := h.s.lay.StatBlob(ctx, h.pack)
	if err != nil {
		t.Fatal(err)
	}
	// Answers everything but the largest pack, of which it sends the
	// headers (its true length) and 1000 bytes, then nothing.
	stall := hostileProxy(t, h.reg, func(w http.ResponseWriter, r *http.Request) bool {
		m := blobPathRE.FindStringSubmatch(r.URL.Path)
		if m == nil || m[1] != h.pack.String() || r.Method != http.MethodGet {
			return false
		}
		w.Header().Set("Content-Length", strconv.FormatInt(packSize, 10))
		w.WriteHeader(http.StatusOK)
		w.Write(make([]byte, 1000))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		return true
	}, nil).Listener.Addr().String()

	// Each alone stalls.
	if _, err := timedMirror(t, mute, timeout).Tags(ctx); !errors.Is(err, ErrStalled) {
		t.Fatalf("tags from the mute mirror: %v, want ErrStalled", err)
	}
	if _, err := timedMirror(t, stall, timeout).OpenBlob(ctx, h.pack); !errors.Is(err, ErrStalled) {
		t.Fatalf("pack from the stalling mirror: %v, want ErrStalled", err)
	}

	mirrors := []*Registry{timedMirror(t, mute, timeout), timedMirror(t, stall, timeout), timedMirror(t, h.reg.Addr(), timeout)}
	dst := newLayout(t)
	rep, err := Pull(ctx, mirrors, dst, PullOptions{Health: []int{0, 0, 1}, Key: h.s.key()})
	if err != nil {
		t.Fatalf("pull: %v; %+v", err, rep)
	}
	if len(rep.Snapshots) != 5 {
		t.Fatalf("pulled %v", rep.Snapshots)
	}
	var muteFailed, packStalled bool
	for _, f := range rep.Failures {
		switch {
		case f.Mirror == mirrors[0].String() && f.Digest.IsZero() && errors.Is(f.Err, ErrStalled):
			muteFailed = true
		case f.Mirror == mirrors[1].String() && f.Digest == h.pack && errors.Is(f.Err, ErrStalled):
			packStalled = true
		}
	}
	if !muteFailed || !packStalled {
		t.Fatalf("failures do not name both stalls (mute %v, pack %v): %v", muteFailed, packStalled, rep.Failures)
	}
	if rep.Mirrors[0].Reachable || !rep.Mirrors[1].Reachable || !rep.Mirrors[2].Reachable {
		t.Fatalf("reachable: %+v", rep.Mirrors)
	}
	restoreEqual(t, dst, h.last.ID, h.want)
}

// TestPullPrefersFastMirror: of two mirrors that answer as quickly, one
// sends blob bodies at about 2 MiB/s. Unknown at first, it may be sent some
// of the large blobs fetched at the start, at most as many as run at once;
// once measured it gets no more. Known from before as slow, it serves a
// small share at most.
func TestPullPrefersFastMirror(t *testing.T) {
	ctx := context.Background()
	h := newSlowSet(t)
	slow := hostileProxy(t, h.reg, func(w http.ResponseWriter, r *http.Request) bool {
		if blobPathRE.FindStringSubmatch(r.URL.Path) == nil || r.Method != http.MethodGet {
			return false
		}
		resp, err := http.Get(h.reg.URL() + r.URL.Path)
		if err != nil {
			t.Error(err)
			return false
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d %v", r.URL.Path, resp.StatusCode, err)
			return false
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.WriteHeader(http.StatusOK)
		for rd := bytes.NewReader(b); rd.Len() > 0; {
			io.CopyN(w, rd, 64<<10)
			w.(http.Flusher).Flush()
			time.Sleep(30 * time.Millisecond)
		}
		return true
	}, nil).Listener.Addr().String()

	pull := func(opts PullOptions) PullReport {
		t.Helper()
		dst := newLayout(t)
		opts.Key = h.s.key()
		// The slow mirror is listed first: order alone would favour it.
		rep, err := Pull(ctx, []*Registry{mirrorAt(t, slow, "dvpc/home"), mirrorAt(t, h.reg.Addr(), "dvpc/home")}, dst, opts)
		if err != nil {
			t.Fatalf("pull: %v", err)
		}
		restoreEqual(t, dst, h.last.ID, h.want)
		t.Logf("mirrors: %+v", rep.Mirrors)
		return rep
	}

	rep := pull(PullOptions{})
	s, f := rep.Mirrors[0], rep.Mirrors[1]
	if s.Sampled > concurrency || s.Sampled+f.Sampled < 5 {
		t.Fatalf("large blobs: %d from the slow mirror, %d from the fast one", s.Sampled, f.Sampled)
	}
	if s.Rate > 0 && f.Rate > 0 && s.Rate >= f.Rate {
		t.Fatalf("measured rates: slow %.0f B/s, fast %.0f B/s", s.Rate, f.Rate)
	}

	// With the speeds of an earlier run, the slow mirror gets at most a
	// small share: a blob of a few hundred KiB while the fast one is busy
	// with packs, never a pack.
	rep = pull(PullOptions{Speed: []float64{2 << 20, 200 << 20}})
	if s, f := rep.Mirrors[0], rep.Mirrors[1]; s.Bytes > f.Bytes/4 {
		t.Fatalf("known to be slow, the slow mirror still served %d bytes, the fast one %d", s.Bytes, f.Bytes)
	}
}
