package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/dvpc/dvpc/internal/regtest"
)

const ociManifestType = "application/vnd.oci.image.manifest.v1+json"

// retag names, on a real registry, the manifest that tag from names with
// the tag to as well, as a hostile mirror operator can.
func retag(t *testing.T, reg *regtest.Registry, repo, from, to string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, reg.URL()+"/v2/"+repo+"/manifests/"+from, nil)
	req.Header.Set("Accept", ociManifestType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET manifest %s: %d %v", from, resp.StatusCode, err)
	}
	req, _ = http.NewRequest(http.MethodPut, reg.URL()+"/v2/"+repo+"/manifests/"+to, bytes.NewReader(b))
	req.Header.Set("Content-Type", ociManifestType)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT manifest %s: %d", to, resp.StatusCode)
	}
}

// registryTags lists a repository's tags on a real registry.
func registryTags(t *testing.T, reg *regtest.Registry, repo string) []string {
	t.Helper()
	resp, err := http.Get(reg.URL() + "/v2/" + repo + "/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var l struct {
		Tags []string `json:"tags"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
		t.Fatal(err)
	}
	return l.Tags
}

type pullJSON struct {
	Snapshots []string `json:"snapshots"`
	Bad       []string `json:"bad_mirrors"`
	Behind    []string `json:"behind"`
	Dropped   []string `json:"dropped"`
}

func pullResult(t *testing.T, r result) pullJSON {
	t.Helper()
	var p pullJSON
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
		t.Fatalf("pull --json: %v\n%s", err, r)
	}
	return p
}

type statusJSON struct {
	Name       string   `json:"name"`
	Newest     string   `json:"newest_snapshot"`
	Missing    int      `json:"snapshots_missing"`
	Unverified []string `json:"unverified"`
}

func mirrorStatus(t *testing.T, d *dvpcCLI) map[string]statusJSON {
	t.Helper()
	r := d.must("--json", "mirror", "status")
	var rows []statusJSON
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("mirror status --json: %v\n%s", err, r)
	}
	out := map[string]statusJSON{}
	for _, row := range rows {
		out[row.Name] = row
	}
	return out
}

// TestMirrorTagOrder: on a real registry, a hostile mirror tags snapshot
// 1's signed manifest snap-99999999-<id>. Every decision is made on what
// is signed: mirror status reports the real newest on both mirrors and the
// fake tag as unverified; a new PC pulls the real newest and blames no
// mirror as behind; a PC whose store holds the fake tag (as an older dvpc
// kept it) still accepts the real newer snapshots, does not blame the
// honest mirror, and its push does not spread the tag.
func TestMirrorTagOrder(t *testing.T) {
	regs := regtest.StartN(t, 2)
	const repo = "dvpc/home"
	honest, hostile := regs[0].Addr()+"/"+repo, regs[1].Addr()+"/"+repo
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	writeText(t, filepath.Join(home, "a.txt"), "one\n")
	pc1 := newCLI(t, filepath.Join(dir, "pc1"), homesPass)
	pc1.must("init", "--argon2-memory", "8")
	pc1.must("mirror", "add", honest, "--name", "honest")
	pc1.must("mirror", "add", hostile, "--name", "hostile")
	s1 := pc1.snapshot(home)
	writeText(t, filepath.Join(home, "a.txt"), "two\n")
	s2 := pc1.snapshot(home)
	want2 := filepath.Join(dir, "want2")
	copyTree(t, home, want2)
	pc1.must("push")
	refs := pc1.snapshotRefs()
	tag1, tag2 := refs[0], refs[1]
	if !strings.HasSuffix(tag1, s1) || !strings.HasSuffix(tag2, s2) {
		t.Fatalf("tags %v, want %s then %s", refs, s1, s2)
	}
	fake := "snap-99999999-" + s1
	retag(t, regs[1], repo, tag1, fake)

	st := mirrorStatus(t, pc1)
	for _, name := range []string{"honest", "hostile"} {
		if st[name].Newest != tag2 || st[name].Missing != 0 {
			t.Errorf("mirror status of %s: newest %q, %d missing; want %s, 0", name, st[name].Newest, st[name].Missing, tag2)
		}
	}
	if u := st["hostile"].Unverified; len(u) != 1 || !strings.Contains(u[0], fake) {
		t.Errorf("mirror status should report the hostile tag as unverified: %q", u)
	}

	// A new PC, the hostile mirror named first.
	pc2 := newCLI(t, filepath.Join(dir, "pc2"), homesPass)
	r := pc2.must("--json", "pull", hostile, honest)
	p := pullResult(t, r)
	if !slices.Contains(p.Snapshots, tag2) || slices.Contains(p.Snapshots, fake) {
		t.Errorf("a new PC pulled %v, want %s and never %s", p.Snapshots, tag2, fake)
	}
	if len(p.Behind) != 0 {
		t.Errorf("no mirror is behind, but the pull says %v", p.Behind)
	}
	if !slices.Equal(p.Bad, []string{hostile}) {
		t.Errorf("bad mirrors %v, want only %s", p.Bad, hostile)
	}
	pc2.requireRestores("latest", want2)
	if p := pullResult(t, pc2.must("--json", "pull", "--all")); len(p.Snapshots) != 1 || !strings.HasSuffix(p.Snapshots[0], s1) || len(p.Behind) != 0 {
		t.Errorf("pull --all: %+v, want %s and no mirror behind", p, tag1)
	}

	// Naming snapshot 1 is not ambiguous for its second, false name.
	pc4 := newCLI(t, filepath.Join(dir, "pc4"), homesPass)
	if p := pullResult(t, pc4.must("--json", "pull", s1, hostile, honest)); !slices.Equal(p.Snapshots, []string{tag1}) {
		t.Errorf("pull %s: %v, want %s", s1, p.Snapshots, tag1)
	}

	// A store that holds the fake tag, as an older dvpc kept it.
	pc3 := pc2.onStore(filepath.Join(dir, "pc3"))
	copyStore(t, pc2.store, pc3.store)
	idx, srefs := readStoreIndex(t, pc3.store)
	d := findRef(t, srefs, tag1).Desc
	d.Annotations = map[string]string{"org.opencontainers.image.ref.name": fake}
	idx.Manifests = append(idx.Manifests, d)
	writeStoreIndex(t, pc3.store, idx)

	// Its push does not spread the tag.
	if r := pc3.must("push"); !strings.Contains(r.stderr, "not sent: 1 snapshot") {
		t.Errorf("push should say it did not send the misnamed tag:\n%s", r)
	}
	if tags := registryTags(t, regs[0], repo); slices.Contains(tags, fake) {
		t.Errorf("after a push from the store holding %s, the honest mirror's tags are %v", fake, tags)
	}

	writeText(t, filepath.Join(home, "a.txt"), "three\n")
	if err := os.Chtimes(filepath.Join(home, "a.txt"), time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	s3 := pc1.snapshot(home)
	pc1.must("mirror", "remove", "hostile")
	pc1.must("push")
	for _, pc := range []*dvpcCLI{pc2, pc3} {
		p := pullResult(t, pc.must("--json", "pull"))
		if len(p.Snapshots) != 1 || !strings.HasSuffix(p.Snapshots[0], s3) {
			t.Errorf("%s: the real newer snapshot %s should arrive: %v", pc.store, s3, p.Snapshots)
		}
		if !slices.Equal(p.Behind, []string{hostile}) {
			t.Errorf("%s: behind %v, want only %s, which lacks %s", pc.store, p.Behind, hostile, s3)
		}
		if want := pc == pc3; slices.Equal(p.Dropped, []string{fake}) != want {
			t.Errorf("%s: dropped %v", pc.store, p.Dropped)
		}
		pc.requireRestores("latest", home)
	}
	if _, refs := readStoreIndex(t, pc3.store); slices.ContainsFunc(refs, func(r storeRef) bool { return r.Name == fake }) {
		t.Errorf("%s still holds %s after a pull", pc3.store, fake)
	}
	pc3.must("push")
	// The mirrors hold what the store does: none is behind.
	if p := pullResult(t, pc3.must("--json", "pull")); len(p.Behind) != 0 {
		t.Errorf("after the push, behind %v", p.Behind)
	}
	// The next snapshot waits for a push to each mirror: the push
	// recorded the newest snapshot by what is signed, not the fake tag.
	writeText(t, filepath.Join(home, "a.txt"), "four\n")
	if err := os.Chtimes(filepath.Join(home, "a.txt"), time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	pc3.snapshot(home)
	var rows []struct {
		Name    string `json:"name"`
		Pending int    `json:"snapshots_pending"`
	}
	r = pc3.must("--json", "mirror", "list")
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil || len(rows) != 2 || rows[0].Pending != 1 || rows[1].Pending != 1 {
		t.Errorf("mirror list after a new snapshot: %+v, %v; want 1 pending on each\n%s", rows, err, r)
	}
}

// signerOf returns the fingerprint of a store's signing key, as
// ssh-keygen -l shows it, from `dvpc key signer`.
func signerOf(t *testing.T, d *dvpcCLI) string {
	t.Helper()
	line := strings.TrimSpace(d.must("key", "signer").stdout)
	_, key, ok := strings.Cut(line, " ")
	if !ok {
		t.Fatalf("key signer: %q", line)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(key))
	if err != nil {
		t.Fatalf("key signer: %q: %v", line, err)
	}
	return ssh.FingerprintSHA256(pub)
}

// TestPullForeignKeyBlob: two real registries; one serves, under "keys",
// the key blob of another store, and snapshots that store signed. A new PC
// trusts only the key its passphrase opens (or the signer it names): it
// pulls the honest snapshots, names the hostile mirror, and does not flag
// the honest one. A passphrase that opens no key blob, or a signer no
// mirror offers, writes nothing.
func TestPullForeignKeyBlob(t *testing.T) {
	regs := regtest.StartN(t, 2)
	const repo = "dvpc/home"
	honest, hostile := regs[0].Addr()+"/"+repo, regs[1].Addr()+"/"+repo
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	writeText(t, filepath.Join(home, "a.txt"), "the owner's\n")
	owner := newCLI(t, filepath.Join(dir, "owner"), homesPass)
	owner.must("init", "--argon2-memory", "8")
	owner.must("mirror", "add", honest)
	s1 := owner.snapshot(home)
	owner.must("push")

	evilHome := filepath.Join(dir, "evil-home")
	writeText(t, filepath.Join(evilHome, "a.txt"), "the attacker's\n")
	evil := newCLI(t, filepath.Join(dir, "evil"), "the attacker's passphrase")
	evil.must("init", "--argon2-memory", "8")
	evil.must("mirror", "add", hostile)
	evil.snapshot(evilHome)
	evil.snapshot(evilHome)
	evil.must("push")

	check := func(pc *dvpcCLI, args ...string) {
		t.Helper()
		r := pc.must(append([]string{"--json", "pull"}, args...)...)
		p := pullResult(t, r)
		if len(p.Snapshots) != 1 || !strings.HasSuffix(p.Snapshots[0], s1) {
			t.Errorf("pull %v: snapshots %v, want only %s\n%s", args, p.Snapshots, s1, r)
		}
		if !slices.Equal(p.Bad, []string{hostile}) {
			t.Errorf("pull %v: bad mirrors %v, want only %s\n%s", args, p.Bad, hostile, r)
		}
		if got, want := signerOf(t, pc), signerOf(t, owner); got != want {
			t.Errorf("pull %v: the store's signer is %s, want the owner's %s", args, got, want)
		}
		ms, err := os.ReadFile(filepath.Join(pc.store, "dvpc-mirrors.json"))
		if err != nil {
			t.Fatal(err)
		}
		var list struct {
			Mirrors []struct {
				URL     string `json:"url"`
				BadData string `json:"bad_data"`
			} `json:"mirrors"`
		}
		if err := json.Unmarshal(ms, &list); err != nil {
			t.Fatal(err)
		}
		for _, m := range list.Mirrors {
			if (m.BadData != "") != (m.URL == hostile) {
				t.Errorf("pull %v: mirror %s flagged %q", args, m.URL, m.BadData)
			}
		}
		pc.requireRestores("latest", home)
	}
	// The hostile mirror is named first: its key blob is seen first.
	check(newCLI(t, filepath.Join(dir, "pc1"), homesPass), hostile, honest)
	check(newCLI(t, filepath.Join(dir, "pc2"), homesPass), "--signer", signerOf(t, owner), hostile, honest)

	// Nothing is written when the key cannot be settled.
	for _, c := range []struct {
		pc   *dvpcCLI
		code int
		args []string
	}{
		{newCLI(t, filepath.Join(dir, "pc3"), "not the passphrase"), exitPassphrase, []string{hostile, honest}},
		{newCLI(t, filepath.Join(dir, "pc4"), homesPass), exitNotFound, []string{"--signer", "SHA256:" + strings.Repeat("A", 43), hostile, honest}},
	} {
		r := c.pc.expect(c.code, append([]string{"pull"}, c.args...)...)
		if !strings.Contains(r.stderr, hostile) || !strings.Contains(r.stderr, honest) {
			t.Errorf("pull %v should name what each mirror offers:\n%s", c.args, r)
		}
		if _, err := os.Stat(c.pc.store); !os.IsNotExist(err) {
			t.Errorf("pull %v wrote %s (%v)", c.args, c.pc.store, err)
		}
	}
}
