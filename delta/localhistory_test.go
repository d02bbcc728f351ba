package delta

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/dvpc/dvpc/image"
)

// TestLocalHistoryChecksSignatures: a snapshot in the store whose signature
// does not verify (its signature tag swapped for another snapshot's) is
// present, but is no head and no member of the lineage heads are decided on.
func TestLocalHistoryChecksSignatures(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	s1 := s.snapshot(t)
	writeFile(t, filepath.Join(s.home, "second.txt"), []byte("second\n"))
	s2 := s.snapshot(t)
	refs, err := s.lay.Refs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h, err := readLocalHistory(ctx, s.lay, refs, s.key())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(h.members, s1.Manifest) || !slices.Contains(h.members, s2.Manifest) {
		t.Fatalf("members %v, want both snapshots", h.members)
	}
	sig1, _ := findRef(refs, image.SignatureRef(s1.Manifest))
	err = s.lay.UpdateRefs(ctx, func(refs []image.Ref) ([]image.Ref, error) {
		for i := range refs {
			if refs[i].Name == image.SignatureRef(s2.Manifest) {
				refs[i].Desc = sig1.Desc
			}
		}
		return refs, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	refs, err = s.lay.Refs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h, err = readLocalHistory(ctx, s.lay, refs, s.key())
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(h.members, s2.Manifest) || !h.present[s2.Manifest] {
		t.Fatalf("a snapshot whose signature does not verify: member %v, present %v", slices.Contains(h.members, s2.Manifest), h.present[s2.Manifest])
	}
	if !slices.Contains(h.members, s1.Manifest) {
		t.Fatalf("the intact snapshot is no longer a member")
	}
}
