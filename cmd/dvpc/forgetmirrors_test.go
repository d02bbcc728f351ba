package main

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dvpc/dvpc/delta"
	"github.com/dvpc/dvpc/internal/regtest"
)

// TestForgetMirrors: forget --mirrors removes a snapshot's tag and its
// signature's from a registry that allows deletion and from a local
// mirror, says that the registry without deletion refused, and a new PC
// that pulls everything from the first gets the other snapshots only.
func TestForgetMirrors(t *testing.T) {
	ctx := context.Background()
	del := regtest.Start(t)
	keep := regtest.Start(t, regtest.WithoutDelete())
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	mkhome(t, home)
	cli := newCLI(t, filepath.Join(dir, "store"), "forget mirrors passphrase")
	cli.must("init", "--argon2-memory", "8")
	urls := []string{del.Addr() + "/dvpc/home", keep.Addr() + "/dvpc/home", "oci:" + filepath.Join(dir, "usb")}
	for i, u := range urls {
		cli.must("mirror", "add", u, "--name", []string{"del", "keep", "usb"}[i])
	}
	var ids []string
	for i := range 3 {
		randomFile(t, filepath.Join(home, "docs", "f.bin"), uint64(40+i), 1<<20)
		ids = append(ids, cli.snapshot(home))
	}
	refs := cli.snapshotRefs()
	cli.must("push")
	tags := func(u string) []string {
		t.Helper()
		ep, err := delta.OpenEndpoint(u, delta.RegistryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ts, err := ep.Tags(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	sigTag := func(ref string) string {
		t.Helper()
		r, _ := snapshotManifest(t, cli.store, ref)
		return "sha256-" + r.Desc.Digest.Hex + ".sig"
	}
	forgotten, sig := refs[0], sigTag(refs[0])
	for _, u := range urls {
		if ts := tags(u); !slices.Contains(ts, forgotten) || !slices.Contains(ts, sig) {
			t.Fatalf("%s lacks %s or %s before the forget: %v", u, forgotten, sig, ts)
		}
	}

	r := cli.expect(exitPartial, "forget", "--mirrors", ids[0])
	if !strings.Contains(r.stdout, "mirror del ("+urls[0]+"): removed 2 tags") ||
		!strings.Contains(r.stdout, "mirror usb ("+urls[2]+"): removed 2 tags") {
		t.Errorf("forget --mirrors should say each mirror removed the snapshot's two tags:\n%s", r)
	}
	if !strings.Contains(r.stdout, "mirror keep") || !strings.Contains(r.stdout, "405 UNSUPPORTED") || !strings.Contains(r.stderr, "keep") {
		t.Errorf("forget --mirrors should name the mirror that refused, and its answer:\n%s", r)
	}
	for i, u := range urls {
		ts := tags(u)
		has := slices.Contains(ts, forgotten) || slices.Contains(ts, sig)
		if want := i == 1; has != want {
			t.Errorf("%s after forget --mirrors: holds the forgotten snapshot's tags: %v, want %v (%v)", u, has, want, ts)
		}
		if !slices.Contains(ts, refs[1]) || !slices.Contains(ts, refs[2]) || !slices.Contains(ts, "keys") {
			t.Errorf("%s lost tags it should keep: %v", u, ts)
		}
	}

	// A new PC pulls everything the first mirror holds: the forgotten
	// snapshot does not come back.
	pc := cli.onStore(filepath.Join(dir, "pc"))
	pc.must("pull", "--all", urls[0])
	if got := pc.snapshotRefs(); !slices.Equal(got, refs[1:]) {
		t.Errorf("a new PC pulled %v from %s, want %v", got, urls[0], refs[1:])
	}
	pc.requireRestores(ids[2], home)
}
