package delta

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/dvpc/dvpc/image"
	"github.com/dvpc/dvpc/internal/regtest"
)

// TestMirrorSource: the failover read as a Source. A medium ranked before
// the mirror is asked first for every blob; a blob it lacks comes from the
// mirror, and lacking one costs the medium no strike, so it is still asked
// first for the next. Report and Failures say who served what.
func TestMirrorSource(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	s.snapshot(t)
	reg := regtest.StartN(t, 1)[0]
	checkAllOK(t, PushAll(ctx, s.lay, mirrorsOf(t, []*regtest.Registry{reg}, "dvpc/home"), PushOptions{}))
	medium, err := OpenLocal(filepath.Join(t.TempDir(), "medium"))
	if err != nil {
		t.Fatal(err)
	}
	pack := largestBlob(t, s.lay)
	mirror := mirrorsOf(t, []*regtest.Registry{reg}, "dvpc/home")[0]
	// The medium answers its listing slowly: were its missing blob a
	// strike, the mirror, as good a rank then and quicker, would be asked
	// first.
	ms, err := NewMirrorSource(ctx, []Endpoint{slowListing{medium}, mirror}, MirrorOptions{Health: []int{0, 1}})
	if err != nil {
		t.Fatal(err)
	}
	refs, err := ms.Refs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	own, _ := s.lay.Refs(ctx)
	if len(refs) != len(own) {
		t.Fatalf("refs %d, want the mirror's %d", len(refs), len(own))
	}
	read := func(d image.Digest) []byte {
		t.Helper()
		b, err := ms.OpenBlob(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		out, err := io.ReadAll(io.NewSectionReader(b, 0, b.Size()))
		if err != nil {
			t.Fatal(err)
		}
		if image.DigestOf(out) != d {
			t.Fatalf("blob %s: other bytes", d.Short())
		}
		return out
	}
	read(pack)
	if n, err := ms.StatBlob(ctx, pack); err != nil || n <= 0 {
		t.Fatalf("stat: %d, %v", n, err)
	}
	// The medium now gets the pack: asked first again, it serves it.
	if _, err := fetchInto(ctx, s.lay, medium, pack, mustStat(t, s.lay, pack)); err != nil {
		t.Fatal(err)
	}
	read(pack)
	use := ms.Report()
	if len(use) != 2 || use[0].Blobs != 1 || use[1].Blobs != 1 || !use[0].Reachable || !use[1].Reachable {
		t.Fatalf("report: %+v", use)
	}
	fails := ms.Failures()
	if len(fails) != 1 || fails[0].Mirror != medium.String() || fails[0].Digest != pack || !errors.Is(fails[0].Err, image.ErrNotFound) {
		t.Fatalf("failures: %v", fails)
	}

	// No place answers: no source, and the error says why.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := mirrorAt(t, l.Addr().String(), "dvpc/home")
	l.Close()
	if _, err := NewMirrorSource(ctx, []Endpoint{dead}, MirrorOptions{}); err == nil {
		t.Fatal("a mirror source with no place answering")
	}
}

func mustStat(t *testing.T, src image.Source, d image.Digest) int64 {
	t.Helper()
	n, err := src.StatBlob(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// slowListing is a place whose tag listing takes long.
type slowListing struct{ *LocalMirror }

func (s slowListing) Refs(ctx context.Context) ([]image.Ref, error) {
	time.Sleep(2 * time.Second)
	return s.LocalMirror.Refs(ctx)
}
