package delta

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/dvpc/dvpc/image"
	"github.com/dvpc/dvpc/internal/regtest"
)

// fallThrough reads from the first place that holds a blob, as a login's
// stack does: refs are the first place's.
type fallThrough []image.Source

func (f fallThrough) Refs(ctx context.Context) ([]image.Ref, error) { return f[0].Refs(ctx) }

func (f fallThrough) OpenBlob(ctx context.Context, d image.Digest) (image.Blob, error) {
	var errs []error
	for _, s := range f {
		b, err := s.OpenBlob(ctx, d)
		if err == nil {
			return b, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func (f fallThrough) StatBlob(ctx context.Context, d image.Digest) (int64, error) {
	var errs []error
	for _, s := range f {
		n, err := s.StatBlob(ctx, d)
		if err == nil {
			return n, nil
		}
		errs = append(errs, err)
	}
	return 0, errors.Join(errs...)
}

var manifestDigestPathRE = regexp.MustCompile(`^/v2/.+/manifests/(sha256:[0-9a-f]{64})$`)

// countingMirror is a real registry behind a proxy that records every blob
// asked of it by digest, and the bytes of the blobs it sent.
type countingMirror struct {
	mu    sync.Mutex
	asked map[image.Digest]int
	bytes int64
	addr  string
}

func newCountingMirror(t *testing.T, reg *regtest.Registry) *countingMirror {
	c := &countingMirror{asked: map[image.Digest]int{}}
	srv := hostileProxy(t, reg, func(w http.ResponseWriter, r *http.Request) bool {
		m := blobPathRE.FindStringSubmatch(r.URL.Path)
		if m == nil {
			m = manifestDigestPathRE.FindStringSubmatch(r.URL.Path)
		}
		if m != nil {
			d, err := image.ParseDigest(m[1])
			if err != nil {
				t.Error(err)
			}
			c.mu.Lock()
			c.asked[d]++
			c.mu.Unlock()
		}
		return false
	}, func(r *http.Request, body []byte, h http.Header) []byte {
		if blobPathRE.MatchString(r.URL.Path) {
			c.mu.Lock()
			c.bytes += int64(len(body))
			c.mu.Unlock()
		}
		return body
	})
	c.addr = srv.Listener.Addr().String()
	return c
}

func (c *countingMirror) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.asked)
	c.bytes = 0
}

// TestPullMediaFirstLower: a disc holds snapshot 1, a registry 1 to 3 and
// a snapshot of another home. A login's pull of the newest head of the home
// into an empty cache, the disc ranked 0 and the registry 1, with the disc
// as a Lower place: no blob the disc holds is asked of the registry, the
// packs the disc holds are not copied, the registry sends no more than the
// blobs of snapshot 3 the disc lacks (and the signatures read to verify),
// and the cache over the disc restores snapshot 3.
func TestPullMediaFirstLower(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	s.snapshot(t)
	discDir := filepath.Join(t.TempDir(), "disc")
	lm, err := OpenLocal(discDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CopyTo(ctx, s.lay, lm, PushOptions{}); err != nil {
		t.Fatal(err)
	}
	var last *image.Snapshot
	for _, name := range []string{"part2.bin", "part3.bin"} {
		b := make([]byte, 2<<20)
		rand.Read(b)
		writeFile(t, filepath.Join(s.home, name), b)
		writeFile(t, filepath.Join(s.home, "notes.txt"), []byte("more words for "+name+"\n"))
		last = s.snapshot(t)
	}
	want3 := copyHome(t, s)
	refs, err := s.lay.Refs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r3, _ := findRef(refs, last.Ref)
	sig3, _ := image.SignatureRefFor(refs, r3)
	snap3, err := image.VerifySnapshot(ctx, s.lay, s.key(), r3, sig3)
	if err != nil {
		t.Fatal(err)
	}
	// Another home, newer: not this login's.
	other := filepath.Join(t.TempDir(), "other")
	writeFile(t, filepath.Join(other, "x.txt"), []byte("another home\n"))
	if _, _, err := s.repo.Snapshot(ctx, other, image.SnapshotOptions{Home: "other"}); err != nil {
		t.Fatal(err)
	}
	reg := regtest.StartN(t, 1)[0]
	checkAllOK(t, PushAll(ctx, s.lay, mirrorsOf(t, []*regtest.Registry{reg}, "dvpc/home"), PushOptions{}))
	count := newCountingMirror(t, reg)

	fsrc, err := image.OpenFSSource(os.DirFS(discDir), ".")
	if err != nil {
		t.Fatal(err)
	}
	disc := NewSourceEndpoint("disc", fsrc)
	// The order the places are given in does not matter: the ranks do.
	for _, discFirst := range []bool{true, false} {
		count.reset()
		places := []Endpoint{disc, mirrorAt(t, count.addr, "dvpc/home")}
		health := []int{0, 1}
		if !discFirst {
			slices.Reverse(places)
			slices.Reverse(health)
		}
		t.Run(fmt.Sprintf("disc first %v", discFirst), func(t *testing.T) {
			checkLowerPull(t, count, fsrc, places, health, s.key(), snap3, want3)
		})
	}
}

// checkLowerPull pulls snap3 from places into an empty cache with the disc
// fsrc as a Lower place, and checks what the registry behind count sent.
func checkLowerPull(t *testing.T, count *countingMirror, fsrc *image.FSSource, places []Endpoint, health []int, key *image.KeyFile, snap3 *image.VerifiedSnapshot, want3 string) {
	t.Helper()
	ctx := context.Background()
	dst := newLayout(t)
	rep, err := PullFrom(ctx, places, dst, PullOptions{
		Want: WantLatest, Home: snap3.Signed.Home, Health: health, Lower: []image.Source{fsrc}, Key: key})
	if err != nil {
		t.Fatalf("pull: %v; %+v", err, rep)
	}
	if !slices.Equal(rep.Snapshots, []string{snap3.Signed.Ref()}) {
		t.Fatalf("pulled %v, want only %s", rep.Snapshots, snap3.Signed.Ref())
	}

	onDisc := func(d image.Digest) bool {
		_, err := fsrc.StatBlob(ctx, d)
		return err == nil
	}
	for d, n := range count.asked {
		if onDisc(d) {
			t.Errorf("blob %s, which the disc holds, was asked of the registry %d times", d.Short(), n)
		}
	}
	// Snapshot 3's blobs: its packs on the disc stay there, everything
	// else is in the cache.
	blobs := append(blobsOf(snap3.Signed.Manifest, snap3.Raw, snap3.Manifest), blobsOf(mustDigestOf(t, snap3.SigDesc), snap3.SigRaw, snap3.SigManifest)...)
	var onLower, lack int
	var onLowerBytes, lackBytes int64
	for _, b := range blobs {
		_, err := dst.StatBlob(ctx, b.digest)
		inCache := err == nil
		switch {
		case b.pack && onDisc(b.digest):
			onLower++
			onLowerBytes += b.size
			if inCache {
				t.Errorf("pack %s, on the disc, was copied into the cache", b.digest.Short())
			}
		case !inCache:
			t.Errorf("blob %s (pack %v) is not in the cache", b.digest.Short(), b.pack)
		}
		if !onDisc(b.digest) && b.raw == nil { // manifests come with the tag list
			lack++
			lackBytes += b.size
			if count.asked[b.digest] == 0 {
				t.Errorf("blob %s, which the disc lacks, was never asked of the registry", b.digest.Short())
			}
		}
	}
	if onLower == 0 || rep.BlobsOnLower != onLower || rep.BytesOnLower != onLowerBytes {
		t.Errorf("on lower: %d blobs (%d bytes), want %d (%d bytes)", rep.BlobsOnLower, rep.BytesOnLower, onLower, onLowerBytes)
	}
	if count.bytes < lackBytes || float64(count.bytes) > 1.05*float64(lackBytes) {
		t.Errorf("the registry sent %d bytes of blobs; snapshot 3's blobs the disc lacks are %d bytes (%d blobs)", count.bytes, lackBytes, lack)
	}
	restoreEqual(t, fallThrough{dst, fsrc}, snap3.Signed.Ref(), want3)
}

func mustDigestOf(t *testing.T, d v1.Descriptor) image.Digest {
	t.Helper()
	md, err := image.DigestFromHash(d.Digest)
	if err != nil {
		t.Fatal(err)
	}
	return md
}
