package delta

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/dvpc/dvpc/image"
	"github.com/dvpc/dvpc/internal/regtest"
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

// alteredKeyMirror copies s to a local mirror whose key blob is s's with
// the passphrase wrapper damaged: the same store and signing key, but a
// blob the passphrase does not open.
func alteredKeyMirror(t *testing.T, s *testStore) *LocalMirror {
	t.Helper()
	ctx := context.Background()
	m, err := OpenLocal(filepath.Join(t.TempDir(), "altered"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CopyTo(ctx, s.lay, m, PushOptions{}); err != nil {
		t.Fatal(err)
	}
	kf, err := image.ReadKeyFile(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	damaged := false
	if kf.Passphrase != nil { // a version 1 key blob
		kf.Passphrase.Sealed[len(kf.Passphrase.Sealed)/2] ^= 1
		damaged = true
	}
	for i, r := range kf.Recipients {
		if r.Kind == image.RecipientPassphrase {
			kf.Recipients[i].Sealed[len(r.Sealed)/2] ^= 1
			damaged = true
		}
	}
	if !damaged {
		t.Fatal("the key blob has no passphrase wrapper to damage")
	}
	blob, err := kf.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	bd, err := image.PutBlob(ctx, m, image.KeyFileMediaType, blob)
	if err != nil {
		t.Fatal(err)
	}
	refs, err := m.Refs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kr, _ := findRef(refs, image.KeysRef)
	raw, err := image.ReadBlob(ctx, m, mustDigest(t, kr.Desc.Digest), kr.Desc.Size)
	if err != nil {
		t.Fatal(err)
	}
	var man v1.Manifest
	if err := json.Unmarshal(raw, &man); err != nil {
		t.Fatal(err)
	}
	man.Layers[0] = bd
	raw, err = json.Marshal(man)
	if err != nil {
		t.Fatal(err)
	}
	md, err := image.PutBlob(ctx, m, image.ManifestType, raw)
	if err != nil {
		t.Fatal(err)
	}
	md.ArtifactType = kr.Desc.ArtifactType
	if err := m.UpdateRefs(ctx, func(refs []image.Ref) ([]image.Ref, error) {
		return setRef(refs, image.Ref{Name: image.KeysRef, Desc: md}), nil
	}); err != nil {
		t.Fatal(err)
	}
	return m
}

func mustDigest(t *testing.T, h v1.Hash) image.Digest {
	t.Helper()
	d, err := image.DigestFromHash(h)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestPullKeepsTheBlobThatOpens: a mirror listed first serves the owner's
// key blob with its passphrase wrapper damaged. It is another candidate,
// not the same one; the store keeps the blob the passphrase opens.
func TestPullKeepsTheBlobThatOpens(t *testing.T) {
	ctx := context.Background()
	owner := newTestStore(t)
	s1 := owner.snapshot(t)
	altered := alteredKeyMirror(t, owner)
	honest, err := OpenLocal(filepath.Join(t.TempDir(), "honest"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CopyTo(ctx, owner.lay, honest, PushOptions{}); err != nil {
		t.Fatal(err)
	}
	cands, fails := KeyCandidates(ctx, []Endpoint{altered, honest})
	if len(fails) != 0 || len(cands) != 2 {
		t.Fatalf("candidates %+v, failures %v; want the altered and the honest blob apart", cands, fails)
	}
	if _, err := cands[0].KeyFile.Unlock([]byte(testPass)); err == nil {
		t.Fatal("the altered key blob opens")
	}
	trusted := cands[1].KeyFile
	if _, err := trusted.Unlock([]byte(testPass)); err != nil {
		t.Fatal(err)
	}
	dst := newLayout(t)
	rep, err := PullFrom(ctx, []Endpoint{altered, honest}, dst, PullOptions{Key: trusted})
	if err != nil || len(rep.Snapshots) != 1 || rep.Snapshots[0] != s1.Ref {
		t.Fatalf("pull: %+v, %v", rep, err)
	}
	if _, _, err := image.Open(ctx, dst, []byte(testPass)); err != nil {
		t.Fatalf("the pulled store does not open with the passphrase: %v", err)
	}
}
