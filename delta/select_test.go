package delta

import (
	"errors"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/dvpc/dvpc/image"
)

func TestSelectSnapshots(t *testing.T) {
	ref := func(name, hex string) image.Ref {
		hex += strings.Repeat("0", 64-len(hex))
		return image.Ref{Name: name, Desc: v1.Descriptor{Digest: v1.Hash{Algorithm: "sha256", Hex: hex}}}
	}
	refs := []image.Ref{
		ref("snap-00000002-bbbb11112222", "bbbb11112222cccc"),
		ref(image.KeysRef, "0000"),
		ref("snap-00000001-aaaa11112222", "aaaa11112222dddd"),
		ref("snap-00000003-aaaa33334444", "aaaa33334444eeee"),
		ref("sha256-aaaa11112222dddd.sig", "1111"),
		// A hostile mirror's second name for snapshot 2's manifest.
		ref("snap-99999999-bbbb11112222", "bbbb11112222cccc"),
	}
	for _, tc := range []struct {
		want     string
		names    []string
		notFound bool
	}{
		{want: "", names: []string{"snap-00000001-aaaa11112222", "snap-00000002-bbbb11112222", "snap-00000003-aaaa33334444", "snap-99999999-bbbb11112222"}},
		{want: WantAll, names: []string{"snap-00000001-aaaa11112222", "snap-00000002-bbbb11112222", "snap-00000003-aaaa33334444", "snap-99999999-bbbb11112222"}},
		{want: WantLatest, names: []string{"snap-99999999-bbbb11112222", "snap-00000003-aaaa33334444", "snap-00000002-bbbb11112222", "snap-00000001-aaaa11112222"}},
		// Not ambiguous: both names are of one manifest, and verifying
		// them keeps the one it makes.
		{want: "bbbb", names: []string{"snap-00000002-bbbb11112222", "snap-99999999-bbbb11112222"}},
		{want: "snap-00000001-aaaa11112222", names: []string{"snap-00000001-aaaa11112222"}},
		{want: "sha256:aaaa33334444ee", names: []string{"snap-00000003-aaaa33334444"}},
		{want: "aaaa", notFound: true}, // ambiguous
		{want: "abc", notFound: true},  // too short
		{want: "cccc", notFound: true}, // no such snapshot
	} {
		names, err := selectSnapshots(refs, tc.want)
		if tc.notFound {
			if !errors.Is(err, image.ErrNoSnapshot) {
				t.Errorf("want %q: %v, %v; want ErrNoSnapshot", tc.want, names, err)
			}
			continue
		}
		if err != nil || !slices.Equal(names, tc.names) {
			t.Errorf("want %q: %v, %v; want %v", tc.want, names, err, tc.names)
		}
	}
}
