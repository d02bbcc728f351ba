package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dvpc/dvpc/internal/regtest"
)

// countingProxy stands in front of a registry and counts the blob bytes it
// sends, by digest, as the registry's own clients would see them.
type countingProxy struct {
	addr string
	mu   sync.Mutex
	got  map[string]int64 // blob digest → bytes sent
}

var blobPathRE = regexp.MustCompile(`/blobs/(sha256:[0-9a-f]{64})$`)

func startCountingProxy(t *testing.T, reg *regtest.Registry) *countingProxy {
	t.Helper()
	target, err := url.Parse(reg.URL())
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{got: map[string]int64{}}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		m := blobPathRE.FindStringSubmatch(resp.Request.URL.Path)
		if m == nil || resp.Request.Method != http.MethodGet {
			return nil
		}
		resp.Body = &countingBody{ReadCloser: resp.Body, add: func(n int) {
			p.mu.Lock()
			p.got[m[1]] += int64(n)
			p.mu.Unlock()
		}}
		return nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rp}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	p.addr = ln.Addr().String()
	return p
}

func (p *countingProxy) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got = map[string]int64{}
}

func (p *countingProxy) blobs() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps_clone(p.got)
}

func maps_clone(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

type countingBody struct {
	io.ReadCloser
	add func(int)
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.add(n)
	return n, err
}

// storeBlobs lists the blobs of a store directory by digest, with sizes.
func storeBlobs(t *testing.T, store string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	dir := filepath.Join(store, "blobs", "sha256")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		out["sha256:"+e.Name()] = fi.Size()
	}
	return out
}

// snapshotBlobs lists the blobs a snapshot needs: its manifest, config,
// layers, and its signature's manifest and blob.
func snapshotBlobs(t *testing.T, store, id string) map[string]int64 {
	t.Helper()
	ref, m := snapshotManifest(t, store, id)
	out := map[string]int64{ref.Desc.Digest.String(): ref.Desc.Size, m.Config.Digest.String(): m.Config.Size}
	for _, l := range m.Layers {
		out[l.Digest.String()] = l.Size
	}
	_, refs := readStoreIndex(t, store)
	sig := findRef(t, refs, "sha256-"+ref.Desc.Digest.Hex+".sig")
	out[sig.Desc.Digest.String()] = sig.Desc.Size
	var sm struct {
		Layers []struct {
			Digest string `json:"digest"`
			Size   int64  `json:"size"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(readBlob(t, store, sig.Desc.Digest), &sm); err != nil {
		t.Fatal(err)
	}
	for _, l := range sm.Layers {
		out[l.Digest] = l.Size
	}
	return out
}

// homePC is a person's own PC with a store whose mirrors are n registries,
// each behind a counting proxy.
type homePC struct {
	dir     string
	home    string
	cli     *dvpcCLI
	regs    []*regtest.Registry
	proxies []*countingProxy
}

func newHomePC(t *testing.T, n int) *homePC {
	t.Helper()
	dir := t.TempDir()
	h := &homePC{dir: dir, home: filepath.Join(dir, "home")}
	mkhome(t, h.home)
	h.cli = newCLI(t, filepath.Join(dir, "store"), "login passphrase")
	h.cli.must("init", "--argon2-memory", "8")
	if n > 0 {
		h.regs = regtest.StartN(t, n)
	}
	for i, r := range h.regs {
		p := startCountingProxy(t, r)
		h.proxies = append(h.proxies, p)
		h.cli.must("mirror", "add", p.addr+"/dvpc/home", "--name", "m"+string(rune('a'+i)))
	}
	return h
}

// strangePC is a PC with no store of the person's: its own HOME, and a
// store path that does not exist yet.
func (h *homePC) strangePC(t *testing.T, name string) *dvpcCLI {
	pc := newCLI(t, filepath.Join(t.TempDir(), name, ".local", "share", "dvpc", "store"), "login passphrase")
	return pc
}

// TestLoginDVDPlusNet: a strange PC logs in from last week's DVD plus the
// mirrors recorded on it. DIR equals the newest snapshot; the registries
// send only the blobs the DVD lacks, each once, and none the DVD holds.
func TestLoginDVDPlusNet(t *testing.T) {
	h := newHomePC(t, 4)
	h.cli.snapshot(h.home)
	iso := filepath.Join(h.dir, "weekly.iso")
	h.cli.must("media", "iso", "--out", iso)
	onISO := storeBlobs(t, h.cli.store)
	randomFile(t, filepath.Join(h.home, "big.bin"), 7, 3<<20)
	if err := os.WriteFile(filepath.Join(h.home, "notes.txt"), []byte("second\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.cli.snapshot(h.home)
	randomFile(t, filepath.Join(h.home, "big2.bin"), 8, 2<<20)
	os.Remove(filepath.Join(h.home, "notes.txt"))
	third := h.cli.snapshot(h.home)
	h.cli.must("push")
	want := filepath.Join(h.dir, "want")
	copyTree(t, h.home, want)
	lacks := int64(0)
	for d, n := range snapshotBlobs(t, h.cli.store, third) {
		if _, ok := onISO[d]; !ok {
			lacks += n
		}
	}
	for _, p := range h.proxies {
		p.reset()
	}

	pc := h.strangePC(t, "pc")
	dir := filepath.Join(t.TempDir(), "work")
	r := pc.must("login", "--from", iso, "--to", dir)
	if !strings.Contains(r.stdout, third) {
		t.Errorf("login does not name snapshot %s:\n%s", third, r)
	}
	requireSameTree(t, want, dir)
	var net int64
	for _, p := range h.proxies {
		for d, n := range p.blobs() {
			net += n
			if _, ok := onISO[d]; ok && n > 0 {
				t.Errorf("blob %s is on the DVD, yet %d bytes of it came from a mirror", d, n)
			}
		}
	}
	if net > lacks*105/100 {
		t.Errorf("the mirrors sent %d bytes; the blobs of snapshot %s the DVD lacks are %d bytes (limit 1.05×)", net, third, lacks)
	}
	if net < lacks/2 {
		t.Errorf("the mirrors sent %d bytes, but the DVD lacks %d bytes of snapshot %s: the count is wrong", net, lacks, third)
	}
	// The session is recorded, complete, and the cache is ephemeral.
	s := pc.must("--json", "session", dir)
	var sess struct {
		Complete  bool   `json:"complete"`
		Ephemeral bool   `json:"ephemeral"`
		Snapshot  string `json:"snapshot"`
	}
	if err := json.Unmarshal([]byte(s.stdout), &sess); err != nil {
		t.Fatalf("session --json: %v\n%s", err, s)
	}
	if !sess.Complete || !sess.Ephemeral || !strings.Contains(sess.Snapshot, third) {
		t.Errorf("session: %+v, want complete, ephemeral, at %s", sess, third)
	}
	// The DVD taken out: a sync reads what the cache lacks from the
	// mirrors, and delivers the edit.
	pc.must("ls", third)
	if err := os.Rename(iso, iso+".away"); err != nil {
		t.Fatal(err)
	}
	// The cache leaves the disc's packs on the disc: a restore from it
	// reads them from the mirrors once the disc is gone.
	again := filepath.Join(t.TempDir(), "again")
	pc.must("restore", third, "--to", again)
	requireSameTree(t, want, again)
	writeFileString(t, filepath.Join(dir, "after-login.txt"), "edited on the strange PC\n")
	pc.must("sync", dir)
	pc2 := h.strangePC(t, "pc2")
	dir2 := filepath.Join(t.TempDir(), "work")
	pc2.must("login", "--mirror", h.proxies[3].addr+"/dvpc/home", "--to", dir2)
	requireSameTree(t, dir, dir2)
}

// TestLoginFaults: two mirrors down and one serving flipped bytes; the
// login completes from the others and names the bad one.
func TestLoginFaults(t *testing.T) {
	h := newHomePC(t, 4)
	h.cli.snapshot(h.home)
	randomFile(t, filepath.Join(h.home, "big.bin"), 9, 2<<20)
	snap := h.cli.snapshot(h.home)
	h.cli.must("push")
	want := filepath.Join(h.dir, "want")
	copyTree(t, h.home, want)
	h.regs[0].Stop()
	h.regs[1].Stop()
	// The third serves every blob of the snapshot with one byte flipped.
	_, m := snapshotManifest(t, h.cli.store, snap)
	for _, l := range m.Layers {
		hex := l.Digest.Hex
		flipByte(t, filepath.Join(h.regs[2].Storage(), "docker", "registry", "v2", "blobs", "sha256", hex[:2], hex, "data"), l.Size/2)
	}
	pc := h.strangePC(t, "pc")
	dir := filepath.Join(t.TempDir(), "work")
	r := pc.must("login", "--mirror", h.proxies[2].addr+"/dvpc/home", "--mirror", h.proxies[0].addr+"/dvpc/home",
		"--mirror", h.proxies[1].addr+"/dvpc/home", "--mirror", h.proxies[3].addr+"/dvpc/home", "--to", dir)
	requireSameTree(t, want, dir)
	if !strings.Contains(r.stdout+r.stderr, h.proxies[2].addr) || !strings.Contains(r.stdout, "bad data") {
		t.Errorf("login does not name the mirror that served flipped bytes (%s):\n%s", h.proxies[2].addr, r)
	}
}

// TestLoginUpdateInPlace: a second login over a session with edits not
// yet synced keeps them and brings in the newer snapshot.
func TestLoginUpdateInPlace(t *testing.T) {
	h := newHomePC(t, 1)
	h.cli.snapshot(h.home)
	h.cli.must("push")
	url := h.proxies[0].addr + "/dvpc/home"
	pc := h.strangePC(t, "pc")
	dir := filepath.Join(t.TempDir(), "work")
	pc.must("login", "--mirror", url, "--to", dir)
	// Offline edits on the PC; a newer snapshot from home.
	writeFileString(t, filepath.Join(dir, "pc-edit.txt"), "made on the PC\n")
	writeFileString(t, filepath.Join(h.home, "home-edit.txt"), "made at home\n")
	h.cli.snapshot(h.home)
	h.cli.must("push")
	r := pc.must("login", "--mirror", url, "--to", dir)
	if !strings.Contains(r.stdout, "brought up to date") {
		t.Errorf("second login:\n%s", r)
	}
	for name, want := range map[string]string{"pc-edit.txt": "made on the PC\n", "home-edit.txt": "made at home\n"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(b) != want {
			t.Errorf("%s after the update: %q, %v; want %q", name, b, err, want)
		}
	}
}

func writeFileString(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestLoginBadInput: each mistake gets its message and exit code, and
// writes nothing.
func TestLoginBadInput(t *testing.T) {
	h := newHomePC(t, 1)
	h.cli.snapshot(h.home)
	h.cli.must("push")
	url := h.proxies[0].addr + "/dvpc/home"
	pc := h.strangePC(t, "pc")

	// DIR not empty and not an earlier session.
	busy := t.TempDir()
	writeFileString(t, filepath.Join(busy, "mine.txt"), "someone's\n")
	r := pc.expect(exitUsage, "login", "--mirror", url, "--to", busy)
	if !strings.Contains(r.stderr, "not empty") {
		t.Errorf("login into a busy directory:\n%s", r)
	}
	if b, _ := os.ReadFile(filepath.Join(busy, "mine.txt")); string(b) != "someone's\n" {
		t.Errorf("the busy directory was changed")
	}
	// A wrong passphrase.
	r = pc.with("DVPC_PASSPHRASE", "wrong").expect(exitPassphrase, "login", "--mirror", url, "--to", filepath.Join(t.TempDir(), "w"))
	if _, err := os.Stat(pc.store); err == nil {
		t.Errorf("a login with a wrong passphrase created the cache %s", pc.store)
	}
	// A mirror URL typo.
	r = pc.expect(exitNotFound, "login", "--mirror", "127.0.0.1:1/dvpc/home", "--to", filepath.Join(t.TempDir(), "w"))
	if !strings.Contains(r.stderr, "127.0.0.1:1/dvpc/home") || !strings.Contains(r.stderr, "check the mirror URL") {
		t.Errorf("a mirror URL typo:\n%s", r)
	}
	// A medium of another store.
	other := newCLI(t, filepath.Join(t.TempDir(), "other"), "another passphrase")
	other.must("init", "--argon2-memory", "8")
	other.snapshot(h.home)
	iso := filepath.Join(t.TempDir(), "other.iso")
	other.must("media", "iso", "--out", iso)
	dir := filepath.Join(t.TempDir(), "work")
	pc.must("login", "--mirror", url, "--to", dir)
	r = pc.must("login", "--from", iso, "--mirror", url, "--to", dir)
	if !strings.Contains(r.stderr, iso+" holds another store") {
		t.Errorf("a disc of another store was not named:\n%s", r)
	}
	// A session record from a newer dvpc.
	recs, _ := filepath.Glob(filepath.Join(pc.store, "sessions", "*.json"))
	if len(recs) != 1 {
		t.Fatalf("want one session record, got %v", recs)
	}
	b, _ := os.ReadFile(recs[0])
	os.WriteFile(recs[0], []byte(strings.Replace(string(b), `"version": 1`, `"version": 9`, 1)), 0o600)
	r = pc.expect(exitUsage, "login", "--mirror", url, "--to", dir)
	if !strings.Contains(r.stderr, "newer dvpc") {
		t.Errorf("a newer session record:\n%s", r)
	}
}

// TestLogout: logout refuses while a snapshot of the session reached no
// place; once delivered, the directory and the ephemeral cache are gone,
// and a login elsewhere brings everything back. On the person's own PC
// the store stays.
func TestLogout(t *testing.T) {
	h := newHomePC(t, 1)
	h.cli.snapshot(h.home)
	h.cli.must("push")
	url := h.proxies[0].addr + "/dvpc/home"
	pcHome := t.TempDir()
	pc := newCLI(t, filepath.Join(pcHome, ".local", "share", "dvpc", "store"), "login passphrase")
	pc.dir = pcHome
	dir := filepath.Join(pcHome, "work")
	pc.must("login", "--mirror", url, "--to", dir)
	writeFileString(t, filepath.Join(dir, "written-on-pc.txt"), "do not lose me\n")
	h.regs[0].Stop()
	r := pc.expect(exitPartial, "logout", dir)
	if !strings.Contains(r.stderr, "nothing was removed") {
		t.Errorf("logout with the mirror down:\n%s", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "written-on-pc.txt")); err != nil {
		t.Fatalf("logout removed an edit it had not delivered: %v", err)
	}
	h.regs[0].Restart(t)
	pc.must("logout", dir)
	var left []string
	filepath.WalkDir(pcHome, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			left = append(left, p)
		}
		return nil
	})
	if len(left) > 0 {
		t.Errorf("after logout, the PC's HOME still holds: %v", left)
	}
	// Everything comes back elsewhere.
	pc2 := h.strangePC(t, "pc2")
	dir2 := filepath.Join(t.TempDir(), "work")
	pc2.must("login", "--mirror", url, "--to", dir2)
	if b, err := os.ReadFile(filepath.Join(dir2, "written-on-pc.txt")); err != nil || string(b) != "do not lose me\n" {
		t.Errorf("a login elsewhere lacks the edit: %q, %v", b, err)
	}
	// On the person's own PC the store stays.
	own := filepath.Join(t.TempDir(), "own")
	h.cli.must("login", "--mirror", url, "--to", own)
	h.cli.must("logout", own)
	if _, err := os.Stat(filepath.Join(h.cli.store, "oci-layout")); err != nil {
		t.Errorf("logout on the person's own PC removed the store: %v", err)
	}
	if got := h.cli.snapshotRefs(); len(got) == 0 {
		t.Errorf("the own store lost its snapshots")
	}
}

// conflictCopies lists the conflict copies of name in dir.
func conflictCopies(t *testing.T, dir, name string) []string {
	t.Helper()
	ext := filepath.Ext(name)
	stem := strings.TrimSuffix(name, ext)
	m, err := filepath.Glob(filepath.Join(dir, stem+".conflict-*"+ext))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

// TestTwoPCs: two PCs log in from the same snapshot, edit the same files
// and different ones, delete some and add some, and sync, in both orders.
// Every edit of both sides is there afterwards, a conflict copy where both
// changed a file, and one more sync each makes them converge.
func TestTwoPCs(t *testing.T) {
	for _, order := range []string{"pc1-first", "pc2-first"} {
		t.Run(order, func(t *testing.T) {
			h := newHomePC(t, 1)
			for _, f := range []string{"shared.txt", "only1.txt", "only2.txt", "gone1.txt", "gone2.txt", "keep.txt"} {
				writeFileString(t, filepath.Join(h.home, "docs", f), "original "+f+"\n")
			}
			h.cli.snapshot(h.home)
			h.cli.must("push")
			url := h.proxies[0].addr + "/dvpc/home"
			pc1, pc2 := h.strangePC(t, "pc1").with("DVPC_HOST", "pc1"), h.strangePC(t, "pc2").with("DVPC_HOST", "pc2")
			d1, d2 := filepath.Join(t.TempDir(), "w1"), filepath.Join(t.TempDir(), "w2")
			pc1.must("login", "--mirror", url, "--to", d1)
			pc2.must("login", "--mirror", url, "--to", d2)

			writeFileString(t, filepath.Join(d1, "docs", "shared.txt"), "pc1's shared\n")
			writeFileString(t, filepath.Join(d2, "docs", "shared.txt"), "pc2's shared\n")
			writeFileString(t, filepath.Join(d1, "docs", "only1.txt"), "pc1's only\n")
			writeFileString(t, filepath.Join(d2, "docs", "only2.txt"), "pc2's only\n")
			os.Remove(filepath.Join(d1, "docs", "gone1.txt"))
			os.Remove(filepath.Join(d2, "docs", "gone2.txt"))
			// Deleted on one side, changed on the other: kept.
			os.Remove(filepath.Join(d1, "docs", "keep.txt"))
			writeFileString(t, filepath.Join(d2, "docs", "keep.txt"), "pc2 changed it\n")
			writeFileString(t, filepath.Join(d1, "new1.txt"), "new on pc1\n")
			writeFileString(t, filepath.Join(d2, "new2.txt"), "new on pc2\n")

			first, second := pc1, pc2
			fd, sd := d1, d2
			if order == "pc2-first" {
				first, second, fd, sd = pc2, pc1, d2, d1
			}
			first.must("sync", fd)
			r := second.must("sync", sd)
			if !strings.Contains(r.stdout, "conflict: docs/shared.txt") {
				t.Errorf("the second sync does not report the conflict:\n%s", r)
			}
			first.must("sync", fd)
			second.must("sync", sd)
			first.must("sync", fd)

			for _, d := range []string{d1, d2} {
				want := map[string]string{
					"docs/only1.txt": "pc1's only\n", "docs/only2.txt": "pc2's only\n", "docs/keep.txt": "pc2 changed it\n",
					"new1.txt": "new on pc1\n", "new2.txt": "new on pc2\n",
				}
				for name, w := range want {
					if b, err := os.ReadFile(filepath.Join(d, name)); err != nil || string(b) != w {
						t.Errorf("%s in %s: %q, %v; want %q", name, d, b, err, w)
					}
				}
				for _, gone := range []string{"docs/gone1.txt", "docs/gone2.txt"} {
					if _, err := os.Stat(filepath.Join(d, gone)); err == nil {
						t.Errorf("%s in %s: deleted on one side and unchanged on the other, yet it is back", gone, d)
					}
				}
				// Both versions of the file both changed.
				var both []string
				b, _ := os.ReadFile(filepath.Join(d, "docs", "shared.txt"))
				both = append(both, string(b))
				copies := conflictCopies(t, filepath.Join(d, "docs"), "shared.txt")
				if len(copies) != 1 {
					t.Fatalf("conflict copies of shared.txt in %s: %v, want one", d, copies)
				}
				if !regexp.MustCompile(`shared\.conflict-pc[12]-\d{8}-\d{6}\.txt$`).MatchString(copies[0]) {
					t.Errorf("conflict copy name %s", copies[0])
				}
				c, _ := os.ReadFile(copies[0])
				both = append(both, string(c))
				slices.Sort(both)
				if !slices.Equal(both, []string{"pc1's shared\n", "pc2's shared\n"}) {
					t.Errorf("in %s the two versions of shared.txt are %q", d, both)
				}
			}
			requireSameTree(t, d1, d2)
		})
	}
}

// TestPullWithoutSyncStillMerges: PC2 pulls PC1's snapshot into its cache
// without syncing, then syncs: the parent is the session's snapshot, so
// PC1's edits are merged, not lost to a wrong parent.
func TestPullWithoutSyncStillMerges(t *testing.T) {
	h := newHomePC(t, 1)
	writeFileString(t, filepath.Join(h.home, "a.txt"), "a\n")
	h.cli.snapshot(h.home)
	h.cli.must("push")
	url := h.proxies[0].addr + "/dvpc/home"
	pc1, pc2 := h.strangePC(t, "pc1"), h.strangePC(t, "pc2")
	d1, d2 := filepath.Join(t.TempDir(), "w1"), filepath.Join(t.TempDir(), "w2")
	pc1.must("login", "--mirror", url, "--to", d1)
	pc2.must("login", "--mirror", url, "--to", d2)
	writeFileString(t, filepath.Join(d1, "from-pc1.txt"), "pc1\n")
	pc1.must("sync", d1)
	pc2.must("pull", url)
	writeFileString(t, filepath.Join(d2, "from-pc2.txt"), "pc2\n")
	pc2.must("sync", d2)
	for _, f := range []string{"from-pc1.txt", "from-pc2.txt", "a.txt"} {
		if _, err := os.Stat(filepath.Join(d2, f)); err != nil {
			t.Errorf("after PC2's sync: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(d2, "from-pc1.txt")); err == nil {
		pc1.must("sync", d1)
		requireSameTree(t, d1, d2)
	}
}

// TestOfflineThenOnline: a sync with every mirror down keeps the snapshot
// in the cache and queues it (mirror list shows it); the next sync with
// the mirrors up delivers it.
func TestOfflineThenOnline(t *testing.T) {
	h := newHomePC(t, 2)
	h.cli.snapshot(h.home)
	h.cli.must("push")
	pc := h.strangePC(t, "pc")
	dir := filepath.Join(t.TempDir(), "work")
	pc.must("login", "--mirror", h.proxies[0].addr+"/dvpc/home", "--mirror", h.proxies[1].addr+"/dvpc/home", "--to", dir)
	writeFileString(t, filepath.Join(dir, "offline.txt"), "written offline\n")
	for _, r := range h.regs {
		r.Stop()
	}
	r := pc.must("sync", dir)
	if !strings.Contains(r.stderr, "queued") {
		t.Errorf("an offline sync does not say it queued:\n%s", r)
	}
	ml := pc.must("--json", "mirror", "list")
	if !strings.Contains(ml.stdout, `"snapshots_pending":1`) {
		t.Errorf("mirror list does not show the queued snapshot:\n%s", ml)
	}
	for _, r := range h.regs {
		r.Restart(t)
	}
	pc.must("sync", dir)
	pc2 := h.strangePC(t, "pc2")
	d2 := filepath.Join(t.TempDir(), "w2")
	pc2.must("login", "--mirror", h.proxies[1].addr+"/dvpc/home", "--to", d2)
	if b, err := os.ReadFile(filepath.Join(d2, "offline.txt")); err != nil || string(b) != "written offline\n" {
		t.Errorf("the queued snapshot did not reach the mirrors: %q, %v", b, err)
	}
}

// TestSyncWatch: with sync --watch running, an edit becomes a snapshot,
// and 100 saves of one file in 10 s give a bounded number of snapshots,
// each of which restores one of the saved versions.
func TestSyncWatch(t *testing.T) {
	h := newHomePC(t, 1)
	h.cli.snapshot(h.home)
	h.cli.must("push")
	pc := h.strangePC(t, "pc")
	dir := filepath.Join(t.TempDir(), "work")
	pc.must("login", "--mirror", h.proxies[0].addr+"/dvpc/home", "--to", dir)
	before := len(pc.log())

	const debounce = time.Second
	ctx, cancel := context.WithCancel(context.Background())
	cmd, _ := pc.command(ctx, "sync", "--watch", "--debounce", debounce.String(), "--max-delay", "3s", dir)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(time.Minute):
			cancel()
			<-done
		}
	}
	defer cancel()
	defer stop()
	// waitSnapshots waits (generously) until the store holds more than n
	// snapshots, and returns them.
	waitSnapshots := func(n int) []logEntry {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			es := pc.log()
			if len(es) > n {
				return es
			}
			if time.Now().After(deadline) {
				t.Fatalf("no new snapshot within 60 s (have %d); sync --watch said:\n%s", len(es), out.String())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// The first sync of the watch changes nothing; wait for it to watch.
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(out.String(), "watching"); {
		if time.Now().After(deadline) {
			t.Fatalf("sync --watch did not start watching:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	writeFileString(t, filepath.Join(dir, "edit.txt"), "one edit\n")
	es := waitSnapshots(before)
	afterEdit := len(es)

	// 100 saves in 10 s.
	saves := map[string]bool{}
	start := time.Now()
	for i := range 100 {
		s := fmt.Sprintf("save %d\n", i)
		saves[s] = true
		// Saved as editors save: a new file renamed over the old one.
		writeFileString(t, filepath.Join(dir, ".doc.txt.swp"), s)
		if err := os.Rename(filepath.Join(dir, ".doc.txt.swp"), filepath.Join(dir, "doc.txt")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	elapsed := time.Since(start)
	es = waitSnapshots(afterEdit)
	// Let the last burst settle: the final save's snapshot.
	var final []logEntry
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		final = pc.log()
		r := pc.run("restore", final[len(final)-1].ID, "--stdout", filepath.Join(dir, "doc.txt"))
		if r.code == 0 && r.stdout == "save 99\n" {
			break
		}
	}
	stop()
	made := len(final) - afterEdit
	bound := int(elapsed/debounce) + 3
	if made < 1 || made > bound {
		t.Errorf("100 saves in %v gave %d snapshots; want between 1 and %d (one per %v of quiet at most)", elapsed, made, bound, debounce)
	}
	for _, e := range final[afterEdit:] {
		r := pc.run("restore", e.ID, "--stdout", filepath.Join(dir, "doc.txt"))
		if r.code != 0 || !saves[r.stdout] {
			t.Errorf("snapshot %s does not restore a saved version of doc.txt: %q\n%s", e.ID, r.stdout, r)
		}
	}
	if r := pc.must("log", filepath.Join(dir, "doc.txt")); !strings.Contains(r.stdout, "doc.txt") && len(strings.Split(strings.TrimSpace(r.stdout), "\n")) < 2 {
		t.Errorf("log PATH lists no versions:\n%s", r)
	}
}

// lockedBuffer collects a running process's output for reading meanwhile.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLoginDiscSet: a login from every disc of a set materialises the
// home; with a disc missing and no mirror, it names the disc.
func TestLoginDiscSet(t *testing.T) {
	h := newHomePC(t, 0)
	os.Mkdir(filepath.Join(h.home, "big"), 0o755)
	for i := range 5 {
		randomFile(t, filepath.Join(h.home, "big", fmt.Sprintf("f%d.bin", i)), uint64(20+i), 3<<19)
		h.cli.snapshot(h.home)
	}
	r := h.cli.must("media", "iso", "--out", filepath.Join(h.dir, "set.iso"), "--capacity", "4M", "--span", "--no-clients")
	discs := strings.Fields(r.stdout)
	if len(discs) < 3 {
		t.Fatalf("want at least three discs, got %v\n%s", discs, r)
	}
	partial := strings.Join(append([]string{discs[0]}, discs[2:]...), ",")
	pc := h.strangePC(t, "pc")
	r = pc.run("login", "--from", partial, "--to", filepath.Join(t.TempDir(), "w"))
	if r.code == 0 || !strings.Contains(r.stderr, "disc 2") {
		t.Errorf("a login without disc 2 should name it:\n%s", r)
	}
	dir := filepath.Join(t.TempDir(), "work")
	pc.must("login", "--from", strings.Join(discs, ","), "--to", dir)
	requireSameTree(t, h.home, dir)
}

// TestLoginEphemeralInRAM: on a PC with no store of the person's and no
// --to, the home goes into a RAM-backed directory, the login says where,
// and logout leaves nothing of it.
func TestLoginEphemeralInRAM(t *testing.T) {
	h := newHomePC(t, 1)
	h.cli.snapshot(h.home)
	h.cli.must("push")
	ram := t.TempDir()
	if !inRAM(ram) {
		// The test's temporary directory is on disk: use /dev/shm, as a
		// PC without XDG_RUNTIME_DIR does.
		if !inRAM("/dev/shm") {
			t.Fatal("this test needs a tmpfs: /dev/shm is not one (mount -t tmpfs tmpfs /dev/shm)")
		}
		ram = ""
	}
	pc := h.strangePC(t, "pc").with("XDG_RUNTIME_DIR", ram)
	r := pc.must("--json", "login", "--mirror", h.proxies[0].addr+"/dvpc/home")
	var out struct {
		Dir       string `json:"dir"`
		Ephemeral bool   `json:"ephemeral"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("login --json: %v\n%s", err, r)
	}
	t.Cleanup(func() { os.RemoveAll(out.Dir) })
	if !out.Ephemeral || !inRAM(out.Dir) || filepath.Base(out.Dir) != "home" {
		t.Fatalf("login put the home in %s (ephemeral %v), want a RAM-backed directory named after the home", out.Dir, out.Ephemeral)
	}
	requireSameTree(t, h.home, out.Dir)
	pc.must("logout", out.Dir)
	if ents, err := os.ReadDir(out.Dir); err == nil && len(ents) > 0 {
		t.Errorf("after logout %s still holds %d entries", out.Dir, len(ents))
	}
}
