package delta

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/dvpc/dvpc/image"
	"github.com/dvpc/dvpc/internal/regtest"
)

func digestsOf(bs []image.BlobRef) []image.Digest {
	var out []image.Digest
	for _, b := range bs {
		out = append(out, b.Digest)
	}
	return out
}

// TestLacks: what a place lacks, as a pull sees it (a damaged blob is
// lacking), as a push or `mirror status` sees it (the size the place
// answers), and strictly (a place that cannot be asked is an error, a
// blob a killed registry left torn is lacking).
func TestLacks(t *testing.T) {
	ctx := context.Background()
	lay := newLayout(t)
	put := func(b []byte) image.BlobRef {
		t.Helper()
		w, err := lay.CreateBlob(ctx)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
		d, n, err := w.Commit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return image.BlobRef{Digest: d, Size: n}
	}
	intact := put([]byte("intact blob"))
	damaged := put([]byte("a blob that will be damaged"))
	flipLocal(t, lay, damaged.Digest)
	sized := put([]byte("held at another size"))
	sized.Size++
	absent := image.BlobRef{Digest: image.DigestOf([]byte("never written")), Size: 13}
	anySize := image.BlobRef{Digest: intact.Digest, Size: -1}
	want := []image.BlobRef{intact, damaged, sized, absent, intact, anySize}

	for _, c := range []struct {
		opts LackOptions
		want []image.Digest
	}{
		{LackOptions{Verify: true}, []image.Digest{damaged.Digest, sized.Digest, absent.Digest}},
		{LackOptions{}, []image.Digest{sized.Digest, absent.Digest}},
		{LackOptions{Strict: true}, []image.Digest{sized.Digest, absent.Digest}},
	} {
		got, err := Lacks(ctx, lay, want, c.opts)
		if err != nil {
			t.Fatalf("%+v: %v", c.opts, err)
		}
		if !slices.Equal(digestsOf(got), c.want) {
			t.Errorf("%+v: lacks %v, want %v", c.opts, digestsOf(got), c.want)
		}
	}

	// A registry: a HEAD refused or failing.
	s := newTestStore(t)
	s.snapshot(t)
	reg := regtest.StartN(t, 1)[0]
	checkAllOK(t, PushAll(ctx, s.lay, mirrorsOf(t, []*regtest.Registry{reg}, "dvpc/home"), PushOptions{}))
	pack := largestBlob(t, s.lay)
	packRef := image.BlobRef{Digest: pack, Size: mustStat(t, s.lay, pack)}
	var status atomic.Int32
	status.Store(http.StatusForbidden)
	proxy := hostileProxy(t, reg, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodHead {
			return false
		}
		w.WriteHeader(int(status.Load()))
		return true
	}, nil)
	m := mirrorAt(t, proxy.Listener.Addr().String(), "dvpc/home")
	if _, err := Lacks(ctx, m, []image.BlobRef{packRef}, LackOptions{Strict: true}); !errors.Is(err, ErrAuth) {
		t.Fatalf("strict, HEAD refused: %v, want ErrAuth", err)
	}
	if got, err := Lacks(ctx, m, []image.BlobRef{packRef}, LackOptions{}); err != nil || len(got) != 1 {
		t.Fatalf("HEAD refused: lacks %v, %v; want the blob", got, err)
	}
	status.Store(http.StatusInternalServerError)
	if got, err := Lacks(ctx, m, []image.BlobRef{packRef}, LackOptions{Strict: true}); err != nil || len(got) != 1 {
		t.Fatalf("strict, torn blob: lacks %v, %v; want the blob", got, err)
	}
	honest := mirrorsOf(t, []*regtest.Registry{reg}, "dvpc/home")[0]
	if got, err := Lacks(ctx, honest, []image.BlobRef{packRef, absent}, LackOptions{Strict: true}); err != nil || !slices.Equal(digestsOf(got), []image.Digest{absent.Digest}) {
		t.Fatalf("honest registry: lacks %v, %v", digestsOf(got), err)
	}
}
