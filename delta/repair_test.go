package delta

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/dvpc/dvpc/image"
	"github.com/dvpc/dvpc/internal/regtest"
)

// flipLocal flips a byte in the middle of a blob of a layout.
func flipLocal(t *testing.T, lay *image.Layout, d image.Digest) string {
	t.Helper()
	p := filepath.Join(lay.Root(), "blobs", "sha256", d.Hex())
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPullAndRepairDamagedBlob: a pack of the pulled store is damaged. A
// pull of a newer snapshot that shares it fetches it again instead of
// taking it as present; Repair fetches it again from the mirror that holds
// it, names the mirror, and reports a blob no source holds.
func TestPullAndRepairDamagedBlob(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	s.snapshot(t)
	regs := regtest.StartN(t, 2)
	checkAllOK(t, PushAll(ctx, s.lay, mirrorsOf(t, regs[:1], "dvpc/home"), PushOptions{}))
	dst := newLayout(t)
	if _, err := Pull(ctx, mirrorsOf(t, regs[:1], "dvpc/home"), dst, PullOptions{Key: s.key()}); err != nil {
		t.Fatal(err)
	}
	pack := largestBlob(t, dst)
	size, err := dst.StatBlob(ctx, pack)
	if err != nil {
		t.Fatal(err)
	}

	flipLocal(t, dst, pack)
	writeFile(t, filepath.Join(s.home, "docs", "later.txt"), []byte("written later\n"))
	s2 := s.snapshot(t)
	want2 := copyHome(t, s)
	checkAllOK(t, PushAll(ctx, s.lay, mirrorsOf(t, regs[:1], "dvpc/home"), PushOptions{}))
	rep, err := Pull(ctx, mirrorsOf(t, regs[:1], "dvpc/home"), dst, PullOptions{Want: WantLatest})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Snapshots) != 1 {
		t.Fatalf("pull: %+v", rep)
	}
	if err := image.VerifyBlob(ctx, dst, pack, size); err != nil {
		t.Fatalf("the pull kept the damaged pack: %v", err)
	}
	restoreEqual(t, dst, s2.ID, want2)

	// Repair: damaged, then deleted.
	mirror := mirrorsOf(t, regs[:1], "dvpc/home")[0]
	for _, damage := range []func(){
		func() { flipLocal(t, dst, pack) },
		func() {
			if err := os.Remove(filepath.Join(dst.Root(), "blobs", "sha256", pack.Hex())); err != nil {
				t.Fatal(err)
			}
		},
	} {
		damage()
		rep, err := Repair(ctx, []Endpoint{mirrorsOf(t, regs[1:], "dvpc/home")[0], mirror}, dst, []image.Digest{pack}, RepairOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Repaired) != 1 || rep.Repaired[0].Digest != pack || rep.Repaired[0].Source != mirror.String() || len(rep.Unrepaired) != 0 {
			t.Fatalf("repair: %+v", rep)
		}
		if err := image.VerifyBlob(ctx, dst, pack, size); err != nil {
			t.Fatalf("repair left the pack damaged: %v", err)
		}
	}
	restoreEqual(t, dst, s2.ID, want2)

	// No source holds it: reported, and the damaged copy stays.
	p := flipLocal(t, dst, pack)
	rep2, err := Repair(ctx, []Endpoint{mirrorsOf(t, regs[1:], "dvpc/home")[0]}, dst, []image.Digest{pack}, RepairOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep2.Repaired) != 0 || len(rep2.Unrepaired) != 1 || !errors.Is(rep2.Unrepaired[0].Err, image.ErrNotFound) {
		t.Fatalf("repair from a mirror that lacks the pack: %+v", rep2)
	}
	if fi, err := os.Stat(p); err != nil || fi.Size() != size {
		t.Fatalf("the damaged copy was removed though nothing replaced it: %v", err)
	}
	// A copy that matches its digest cannot be mended by fetching.
	rep2, err = Repair(ctx, []Endpoint{mirror}, dst, []image.Digest{pack}, RepairOptions{})
	if err != nil || len(rep2.Repaired) != 1 {
		t.Fatalf("repair: %+v, %v", rep2, err)
	}
	rep2, err = Repair(ctx, []Endpoint{mirror}, dst, []image.Digest{pack}, RepairOptions{})
	if err != nil || len(rep2.Unrepaired) != 1 || !errors.Is(rep2.Unrepaired[0].Err, ErrIntactCopy) {
		t.Fatalf("repair of an intact blob: %+v, %v", rep2, err)
	}
}
