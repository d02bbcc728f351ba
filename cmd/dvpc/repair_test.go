package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/dvpc/dvpc/internal/regtest"
)

// TestRepair: a pack of the store is damaged (a flipped byte), then
// deleted; each time verify --read-data finds it, repair fetches it again
// from the mirror, a real registry, and names it and the mirror, and the
// store verifies and restores. Without the mirror, a medium given with
// --from serves it; with neither, repair says what it could not repair.
// pull --all and mirror heal fetch a damaged blob again too.
func TestRepair(t *testing.T) {
	requireTool(t, "xorriso", "xorriso")
	reg := regtest.Start(t)
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	mkhome(t, home)
	randomFile(t, filepath.Join(home, "docs", "scan.bin"), 31, 3<<20)
	store := filepath.Join(dir, "store")
	cli := newCLI(t, store, "repair passphrase")
	cli.must("init", "--argon2-memory", "8")
	url := reg.Addr() + "/dvpc/home"
	cli.must("mirror", "add", url, "--name", "reg")
	id := cli.snapshot(home)
	cli.must("push")
	iso := filepath.Join(dir, "weekly.iso")
	cli.must("media", "iso", "--out", iso)

	f := &mediaFixture{cli: cli, store: store, latest: id}
	pack, good := f.largestPack(t)
	digest := "sha256:" + filepath.Base(pack)
	damage := map[string]func(){
		"flipped": func() { flipByte(t, pack, int64(len(good)/2)) },
		"deleted": func() {
			if err := os.Remove(pack); err != nil {
				t.Fatal(err)
			}
		},
	}
	requireRepaired := func(how, from string, args ...string) {
		t.Helper()
		damage[how]()
		cli.expect(exitIntegrity, "verify", "--read-data")
		r := cli.must(append([]string{"repair"}, args...)...)
		if !strings.Contains(r.stdout, "repaired blob "+digest) || !strings.Contains(r.stdout, "from "+from) {
			t.Errorf("%s pack: repair should name blob %s and its source %s:\n%s", how, digest, from, r)
		}
		cli.must("verify", "--read-data")
		if b, err := os.ReadFile(pack); err != nil || string(b) != string(good) {
			t.Fatalf("%s pack: not restored to its bytes (%v)", how, err)
		}
		cli.requireRestores(id, home)
	}
	requireRepaired("flipped", url)
	requireRepaired("deleted", url)

	// A damaged signature: verify blames the snapshot, and repair finds
	// and mends the signature blob.
	snapRef, _ := snapshotManifest(t, store, id)
	_, refs := readStoreIndex(t, store)
	sigRef := findRef(t, refs, "sha256-"+snapRef.Desc.Digest.Hex+".sig")
	var sigManifest v1.Manifest
	if err := json.Unmarshal(readBlob(t, store, sigRef.Desc.Digest), &sigManifest); err != nil || len(sigManifest.Layers) != 1 {
		t.Fatalf("signature manifest: %v %+v", err, sigManifest)
	}
	sigBlob := sigManifest.Layers[0].Digest
	flipByte(t, blobPath(store, sigBlob), sigManifest.Layers[0].Size/2)
	cli.expect(exitIntegrity, "verify", "--read-data")
	r := cli.must("repair")
	if !strings.Contains(r.stdout, "repaired blob "+sigBlob.String()+" ") || strings.Contains(r.stdout, "NOT REPAIRED") {
		t.Errorf("repair of a damaged signature blob %s:\n%s", sigBlob, r)
	}
	cli.must("verify", "--read-data")

	// The mirror gone, the disc serves it; the mirror list is unchanged.
	cli.must("mirror", "remove", "reg")
	requireRepaired("flipped", iso, "--from", iso)
	if r := cli.must("mirror", "list"); strings.Contains(r.stdout, iso) {
		t.Errorf("repair --from added the medium to the mirrors:\n%s", r)
	}

	// Nowhere to fetch from: the problem is reported, exit 6.
	damage["deleted"]()
	r = cli.expect(exitUsage, "repair")
	if !strings.Contains(r.stderr, "nowhere to fetch from") {
		t.Errorf("repair without sources:\n%s", r)
	}
	empty := regtest.Start(t)
	r = cli.expect(exitIntegrity, "repair", empty.Addr()+"/dvpc/home")
	if !strings.Contains(r.stdout, "NOT REPAIRED blob "+digest) {
		t.Errorf("repair from a mirror that lacks the blob should say it was not repaired:\n%s", r)
	}
	if n := strings.Count(r.stderr, empty.Addr()); n != 1 {
		t.Errorf("the mirror that lacks blobs should be named on one line, not %d:\n%s", n, r)
	}

	// pull --all says what no mirror could heal, and exits 6.
	cli.must("mirror", "add", empty.Addr()+"/dvpc/home", "--name", "empty")
	r = cli.expect(exitIntegrity, "pull", "--all")
	if !strings.Contains(r.stderr, "no mirror holds them intact") || !strings.Contains(r.stderr, digest) {
		t.Errorf("pull --all from a mirror that lacks the missing blob:\n%s", r)
	}
	cli.must("mirror", "remove", "empty")

	// pull --all and mirror heal treat a damaged blob as missing.
	cli.must("mirror", "add", url, "--name", "reg")
	cli.must("pull", "--all")
	cli.must("verify", "--read-data")
	damage["flipped"]()
	r = cli.must("pull", "--all")
	if !strings.Contains(r.stdout, "fetched again") {
		t.Errorf("pull --all should say it fetched the damaged blob again:\n%s", r)
	}
	cli.must("verify", "--read-data")
	damage["flipped"]()
	cli.must("mirror", "heal")
	cli.must("verify", "--read-data")
	cli.requireRestores(id, home)
}
