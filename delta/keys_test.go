package delta

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/dvpc/dvpc/image"
	"github.com/dvpc/dvpc/image/regtest"
)

// key is the store's key file, as a PC that unlocked it trusts it.
func (s *testStore) key() *image.KeyFile { return s.repo.KeyFile() }

// TestPullSettlesKey: two real registries, one serving another store's key
// blob and snapshots. Both key blobs are candidates, none trusted; a pull
// into a store without a key needs the caller to settle one and writes
// nothing until it does; with the owner's key, the honest snapshots
// arrive, the key tag comes from the honest mirror, and only the mirror
// serving the foreign key is named.
func TestPullSettlesKey(t *testing.T) {
	ctx := context.Background()
	owner, evil := newTestStore(t), newTestStore(t)
	s1 := owner.snapshot(t)
	evil.snapshot(t)
	regs := regtest.StartN(t, 2)
	honest, hostile := mirrorsOf(t, regs[:1], "dvpc/home")[0], mirrorsOf(t, regs[1:], "dvpc/home")[0]
	checkAllOK(t, PushAll(ctx, owner.lay, []*Registry{honest}, PushOptions{}))
	checkAllOK(t, PushAll(ctx, evil.lay, []*Registry{hostile}, PushOptions{}))
	mirrors := []*Registry{hostile, honest}

	cands, fails := KeyCandidates(ctx, []Endpoint{hostile, honest})
	if len(fails) != 0 || len(cands) != 2 || cands[0].KeyFile.StoreID != evil.key().StoreID || cands[1].KeyFile.StoreID != owner.key().StoreID ||
		!slices.Equal(cands[0].Sources, []string{hostile.String()}) || !slices.Equal(cands[1].Sources, []string{honest.String()}) {
		t.Fatalf("key candidates %+v, failures %v", cands, fails)
	}

	dst := newLayout(t)
	before := readIndex(t, dst)
	if rep, err := Pull(ctx, mirrors, dst, PullOptions{}); !errors.Is(err, ErrKeyNotSettled) || len(rep.Snapshots) != 0 {
		t.Fatalf("pull without a settled key: %+v, %v", rep, err)
	}
	if !bytes.Equal(readIndex(t, dst), before) {
		t.Fatal("a pull without a settled key changed index.json")
	}

	rep, err := Pull(ctx, mirrors, dst, PullOptions{Key: owner.key()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Snapshots) != 1 || rep.Snapshots[0] != s1.Ref || !rep.KeysAdded {
		t.Fatalf("pull with the owner's key: %+v", rep)
	}
	if bad := rep.BadMirrors(); !slices.Equal(bad, []string{hostile.String()}) {
		t.Fatalf("bad mirrors %v, want only %s; failures %v", bad, hostile, rep.Failures)
	}
	if !slices.ContainsFunc(rep.Failures, func(f MirrorFailure) bool { return f.Mirror == hostile.String() && errors.Is(f.Err, ErrForeignKey) }) {
		t.Fatalf("the hostile mirror's key blob is not named: %v", rep.Failures)
	}
	got, err := image.ReadKeyFile(ctx, dst)
	if err != nil || got.SigningPublic != owner.key().SigningPublic || got.StoreID != owner.key().StoreID {
		t.Fatalf("the store's key is %+v, %v; want the owner's", got, err)
	}
}
