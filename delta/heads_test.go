package delta

import (
	"slices"
	"testing"

	"github.com/dvpc/dvpc/image"
)

// TestPullDecision: of what mirrors offer, pull takes the descendants of
// the store's heads and the forks, never an ancestor; a head index.json
// lost comes back; of a new home only its heads; and a fork is reported.
func TestPullDecision(t *testing.T) {
	home, other := image.HomeID{1}, image.HomeID{2}
	sg := func(name string, h image.HomeID, seq uint64, parents ...image.Signed) image.Signed {
		s := image.Signed{Manifest: image.DigestOf([]byte(name)), Seq: seq, Home: h}
		for _, p := range parents {
			s.Parents = append(s.Parents, p.Manifest)
		}
		return s
	}
	a := sg("a", home, 1)
	b := sg("b", home, 2, a)
	c := sg("c", home, 3, b) // a child of the head, and the lost head's parent
	d := sg("d", home, 2, a) // a fork from a
	e := sg("e", home, 9, c) // recorded as a head, lost from index.json
	x1 := sg("x1", other, 1)
	x2 := sg("x2", other, 2, x1)

	local := &localHistory{present: map[image.Digest]bool{a.Manifest: true, b.Manifest: true},
		members: []image.Digest{a.Manifest, b.Manifest}, lin: image.Lineage{a.Manifest: a, b.Manifest: b},
		state: &image.State{Version: 1, Heads: map[image.HomeID][]image.StateHead{home: {{Manifest: e.Manifest, Seq: e.Seq}}}}}
	var offers []offer
	for _, s := range []image.Signed{a, c, d, e, x1, x2} {
		offers = append(offers, offer{signed: s, snap: image.Ref{Name: s.Ref()}})
	}
	var got []string
	taken := local.newer(offers)
	for _, o := range taken {
		got = append(got, o.snap.Name)
	}
	want := []string{d.Ref(), e.Ref(), x2.Ref()} // c is history of e
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("pull takes %v, want %v", got, want)
	}
	div := local.diverged(offers, taken)
	if len(div) != 1 || div[0].Home != home || !slices.Equal(div[0].Heads, []string{d.Ref(), e.Ref()}) {
		t.Fatalf("divergence %+v, want the heads %s and %s of one home", div, d.Ref(), e.Ref())
	}
	// Without the fork, nothing diverged.
	if div := local.diverged(offers, []offer{offers[3]}); len(div) != 0 {
		t.Fatalf("a straight line reported as diverged: %+v", div)
	}
	// Without the recorded head, c is the head's child and is taken.
	local.state = nil
	if taken := local.newer(offers[:2]); len(taken) != 1 || taken[0].signed.Manifest != c.Manifest {
		t.Fatalf("without the state, pull takes %v, want c", taken)
	}
}
