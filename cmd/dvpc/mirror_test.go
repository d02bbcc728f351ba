package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dvpc/dvpc/internal/regtest"
)

// TestMirrors: two real registries as mirrors; push, push again (nothing
// sent), status, a new PC pulls from the mirrors and restores identically,
// and a mirror that is down is reported while the other is served.
func TestMirrors(t *testing.T) {
	regs := regtest.StartN(t, 2)
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	mkhome(t, home)
	randomFile(t, filepath.Join(home, "docs", "scan.bin"), 7, 2<<20)
	cli := newCLI(t, filepath.Join(dir, "store"), "mirror test passphrase")
	cli.must("init", "--argon2-memory", "8")
	urls := []string{regs[0].Addr() + "/dvpc/home", regs[1].Addr() + "/dvpc/home"}
	cli.must("mirror", "add", urls[0], "--name", "a")
	cli.must("mirror", "add", urls[1], "--name", "b")
	cli.expect(exitUsage, "mirror", "add", urls[1])
	cli.snapshot(home)

	r := cli.must("push")
	if strings.Count(r.stdout, "sent") != 2 {
		t.Fatalf("push:\n%s", r)
	}
	var res []struct {
		Mirror        string `json:"mirror"`
		BlobsUploaded int    `json:"blobs_uploaded"`
		Error         string `json:"error"`
	}
	r = cli.must("--json", "push")
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || len(res) != 2 || res[0].BlobsUploaded != 0 || res[1].BlobsUploaded != 0 {
		t.Fatalf("a second push should send nothing: %v %+v\n%s", err, res, r)
	}
	var st []statusRow
	r = cli.must("--json", "mirror", "status")
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || len(st) != 2 || !*st[0].Reachable || st[0].Missing != 0 || st[1].Missing != 0 {
		t.Fatalf("mirror status: %v %+v\n%s", err, st, r)
	}
	if refs := cli.snapshotRefs(); st[0].Newest != refs[len(refs)-1] || st[1].Newest != refs[len(refs)-1] {
		t.Fatalf("mirror status: newest verified %q and %q, want %q", st[0].Newest, st[1].Newest, refs[len(refs)-1])
	}

	// A new PC: the store comes from the mirrors named. A third address
	// accepts connections and never answers: after --timeout it counts as
	// failed, and the pull goes on from the others.
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	go func() {
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	// Mirror b is not named: the new store takes it from the mirror list
	// recorded in the newest snapshot.
	fresh := cli.onStore(filepath.Join(dir, "new-pc"))
	r = fresh.must("--timeout", "2s", "pull", mute.Addr().String()+"/dvpc/home", urls[0])
	if !strings.Contains(r.stderr, mute.Addr().String()) || !strings.Contains(r.stderr, "mirror stalled") {
		t.Errorf("pull with a mute mirror should name it as stalled:\n%s", r)
	}
	if !strings.Contains(r.stdout, "now this store's too: "+urls[1]) {
		t.Errorf("the new store should adopt mirror b from the snapshot:\n%s", r)
	}
	r = fresh.must("mirror", "adopt")
	if !strings.Contains(r.stdout, "already lists every mirror") {
		t.Errorf("mirror adopt after adoption:\n%s", r)
	}
	fresh.must("mirror", "remove", mute.Addr().String()+"/dvpc/home")
	var rates []struct {
		Name     string  `json:"name"`
		PullRate float64 `json:"pull_rate"`
	}
	r = fresh.must("--json", "mirror", "list")
	if err := json.Unmarshal([]byte(r.stdout), &rates); err != nil || len(rates) != 2 || rates[0].PullRate+rates[1].PullRate <= 0 {
		t.Errorf("the pull measured no mirror's speed: %v %+v\n%s", err, rates, r)
	}
	fresh.requireRestores("latest", home)
	fresh.must("verify", "--read-data")

	// One mirror down: the new snapshot is queued for both (the list says
	// so with no network), the push reports b, and a is current.
	var queue []struct {
		Name    string `json:"name"`
		Pending int    `json:"snapshots_pending"`
	}
	pending := func(want ...int) {
		t.Helper()
		r := cli.must("--json", "mirror", "list")
		if err := json.Unmarshal([]byte(r.stdout), &queue); err != nil || len(queue) != len(want) {
			t.Fatalf("mirror list: %v\n%s", err, r)
		}
		for i, w := range want {
			if queue[i].Pending != w {
				t.Fatalf("mirror %s: %d snapshots pending, want %d\n%s", queue[i].Name, queue[i].Pending, w, r)
			}
		}
	}
	pending(0, 0)
	randomFile(t, filepath.Join(home, "docs", "new.bin"), 8, 1<<20)
	regs[1].Stop()
	r = cli.must("snapshot", home)
	if !strings.Contains(r.stderr, "queued for 2 mirrors (a, b)") {
		t.Errorf("snapshot should say it is queued for both mirrors:\n%s", r)
	}
	pending(1, 1)
	r = cli.expect(exitPartial, "push")
	if !strings.Contains(r.stderr, "push to b") || !strings.Contains(r.stdout, "a:") {
		t.Errorf("push with mirror b down:\n%s", r)
	}
	pending(0, 1)
	r = cli.must("--json", "mirror", "status")
	json.Unmarshal([]byte(r.stdout), &st)
	if *st[1].Reachable || st[0].Missing != 0 {
		t.Errorf("status with b down: %+v\n%s", st, r)
	}
	// What b lacks is unknown while it is down: no count at all, not -1.
	var raw []map[string]any
	json.Unmarshal([]byte(r.stdout), &raw)
	if _, ok := raw[1]["snapshots_missing"]; ok {
		t.Errorf("status of a mirror that is down gives a count of what it lacks:\n%s", r)
	}
	regs[1].Restart(t)
	cli.must("push")
	pending(0, 0)
	r = cli.must("--json", "mirror", "status")
	json.Unmarshal([]byte(r.stdout), &st)
	if st[1].Missing != 0 {
		t.Errorf("b not caught up after restart: %+v", st)
	}
	// The new PC pulls only what it lacks.
	r = fresh.must("pull")
	if !strings.Contains(r.stdout, "pulled 1 snapshot:") {
		t.Errorf("second pull:\n%s", r)
	}

	// A mirror emptied by hand is refilled from the others by the new PC,
	// which holds the mirror list from its pull.
	regs[0].Stop()
	if err := os.RemoveAll(regs[0].Storage()); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(regs[0].Storage(), 0o755)
	regs[0].Restart(t)
	r = fresh.must("--json", "mirror", "status")
	json.Unmarshal([]byte(r.stdout), &st)
	if st[0].Missing != 2 || st[0].BlobsMiss == 0 || st[0].BytesMiss < 2<<20 || st[1].BlobsMiss != 0 {
		t.Fatalf("emptied mirror should miss both snapshots and their blobs: %+v\n%s", st, r)
	}
	r = fresh.must("mirror", "heal")
	if !strings.Contains(r.stdout, "sent") {
		t.Errorf("heal:\n%s", r)
	}
	r = fresh.must("--json", "mirror", "status")
	json.Unmarshal([]byte(r.stdout), &st)
	if st[0].Missing != 0 || st[1].Missing != 0 {
		t.Errorf("after heal: %+v\n%s", st, r)
	}
	// A PC that has only the weekly disc learns from it where the mirrors
	// are.
	iso := filepath.Join(dir, "weekly.iso")
	cli.must("media", "iso", "--out", iso, "--no-clients")
	r = cli.onStore(iso).must("mirror", "list")
	if !strings.Contains(r.stdout, urls[0]) || !strings.Contains(r.stdout, urls[1]) {
		t.Errorf("mirror list of the disc should show both recorded mirrors:\n%s", r)
	}

	again := cli.onStore(filepath.Join(dir, "third-pc"))
	again.must("pull", urls[0])
	again.requireRestores("latest", home)

	// A mirror read as a store, with no local store at all: log, restore
	// and verify straight from the registry; it is read-only.
	remote := cli.onStore("docker://" + urls[1])
	if refs := remote.snapshotRefs(); len(refs) != 2 {
		t.Fatalf("log of the mirror: %v", refs)
	}
	remote.requireRestores("latest", home)
	remote.must("verify", "--read-data")
	remote.expect(exitUsage, "snapshot", home)
	// A byte flipped in the largest blob on the registry's disk: verify of
	// the mirror names that blob.
	var big string
	var bigSize int64
	err = filepath.WalkDir(filepath.Join(regs[1].Storage(), "docker", "registry", "v2", "blobs"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "data" {
			return err
		}
		fi, err := d.Info()
		if err == nil && fi.Size() > bigSize {
			big, bigSize = p, fi.Size()
		}
		return err
	})
	if err != nil || big == "" {
		t.Fatalf("no blob in the registry's storage: %v", err)
	}
	b, err := os.ReadFile(big)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x10
	if err := os.WriteFile(big, b, 0o644); err != nil {
		t.Fatal(err)
	}
	r = remote.expect(exitIntegrity, "verify", "--read-data")
	if digest := filepath.Base(filepath.Dir(big)); !strings.Contains(r.String(), digest) {
		t.Errorf("verify of the mirror should name blob %s:\n%s", digest, r)
	}
}

// statusRow is one mirror in `dvpc --json mirror status`.
type statusRow struct {
	Name      string `json:"name"`
	Reachable *bool  `json:"reachable"`
	Newest    string `json:"newest_snapshot"`
	Missing   int    `json:"snapshots_missing"`
	BlobsMiss int    `json:"blobs_missing"`
	BytesMiss int64  `json:"bytes_missing"`
	LastError string `json:"last_error"`
}
