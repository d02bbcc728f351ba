package media

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/dvpc/dvpc/image"
)

// TestUnionNamesMissingDiscAndFallsThroughDamage: a blob on no attached
// disc names its disc, and a copy that fails its digest on one disc is
// read from another that holds it.
func TestUnionNamesMissingDiscAndFallsThroughDamage(t *testing.T) {
	ctx := context.Background()
	var parts []image.Source
	var lays []*image.Layout
	for _, n := range []string{"d1", "d3"} {
		l, err := image.InitLayout(filepath.Join(t.TempDir(), n))
		if err != nil {
			t.Fatal(err)
		}
		lays, parts = append(lays, l), append(parts, l)
	}
	both := []byte("a blob on two discs")
	var d image.Digest
	for _, l := range lays {
		desc, err := image.PutBlob(ctx, l, image.PackType, both)
		if err != nil {
			t.Fatal(err)
		}
		d, _ = image.DigestFromHash(desc.Digest)
	}
	p := filepath.Join(lays[0].Root(), "blobs", "sha256", d.Hex())
	if err := os.WriteFile(p, []byte("a blob on two discz"), 0o600); err != nil {
		t.Fatal(err)
	}
	onDisc2 := image.DigestOf([]byte("on disc 2"))
	listing := &SetListing{Label: "DVPC_X", Discs: 3, Disc: 1, Packs: map[string]int{onDisc2.Hex(): 2}}
	u := NewUnion(parts, listing, []int{1, 3})

	got, err := image.ReadBlob(ctx, u, d, int64(len(both)))
	if err != nil || string(got) != string(both) {
		t.Fatalf("read through a damaged copy on disc 1: %q, %v", got, err)
	}
	if f := u.Faults(); len(f) != 1 || f[0].Place != "disc 1" || !f[0].Damaged {
		t.Errorf("faults = %v, want disc 1 named for damaged data", f)
	}

	var me *MissingDiscError
	if _, err := u.OpenBlob(ctx, onDisc2); !errors.As(err, &me) || me.Disc != 2 || !errors.Is(err, image.ErrNotFound) {
		t.Errorf("open a blob of the missing disc: %v, want a MissingDiscError for disc 2", err)
	}
	if _, err := u.StatBlob(ctx, onDisc2); !errors.As(err, &me) {
		t.Errorf("stat a blob of the missing disc: %v, want a MissingDiscError", err)
	}
	if m := u.Missing(); len(m) != 1 || m[0] != 2 {
		t.Errorf("Missing() = %v, want [2]", m)
	}
}
