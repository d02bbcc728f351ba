//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tinyBench is a bench of dvpc and restic on a 16 MiB home in a temporary
// work directory, with a freshly built dvpc; its registries and agent end
// with the test.
func tinyBench(t *testing.T) *bench {
	t.Helper()
	for _, bin := range []string{"restic", "docker-registry"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is not installed (make deps installs it)", bin)
		}
	}
	bin := filepath.Join(t.TempDir(), "dvpc")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/dvpc/dvpc/cmd/dvpc").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	b, err := newBench(config{dvpc: bin, work: filepath.Join(t.TempDir(), "work"), tools: "dvpc,restic",
		sizeMiB: 16, seed: 1, verify: true, timeout: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.stopRegistries()
		b.lockAgent()
	})
	if b.rssFloor, err = b.exec("rss-floor", exec.Command("true"), nil); err != nil {
		t.Fatal(err)
	}
	return b
}

// runStages runs the named stages in order, as run does.
func runStages(t *testing.T, b *bench, names ...string) {
	t.Helper()
	for _, n := range names {
		found := false
		for i := range stages {
			if stages[i].name == n {
				found = true
				if err := b.runStage(&stages[i]); err != nil {
					t.Fatalf("stage %s: %v", n, err)
				}
			}
		}
		if !found {
			t.Fatalf("no stage %s", n)
		}
	}
}

// TestLoginBench runs the login and sync rows on a tiny home: the strange
// PC's login from the ISO of the initial snapshot and a mirror
// materialises the incremental snapshot, fetches from the net less than
// restic's whole repository, and is compared with a restore of the same
// snapshot; then sync --watch makes a snapshot of every change it is
// timed on, and a sync of one more change holds it, as restic's backup
// of the same change does.
func TestLoginBench(t *testing.T) {
	b := tinyBench(t)
	runStages(t, b, "generate", "init", "unlock", "initial", "login-iso", "mutate", "incremental", "login-restore", "login",
		"sync-watch", "sync-one")
	dv := b.toolRun("dvpc")
	for _, s := range []string{"login-iso", "login-restore", "login"} {
		if r := dv.Steps[s]; !r.ok() {
			log, _ := os.ReadFile(r.Log)
			t.Fatalf("%s: %s\n%s", s, r.Error, log)
		}
	}
	if ch := dv.Steps["login"].Check; ch != "ok" {
		t.Errorf("login check: %s", ch)
	}
	if got := rowByKey("login_check").text(b, dv); got != "ok" {
		t.Errorf("login check row: %q", got)
	}
	for _, k := range []string{"login_s", "login_restore_s", "login_vs_restore", "login_net_mib", "login_net_vs_new", "rss_login_mib"} {
		if c := b.value(k, "dvpc"); !c.ok() || c.v <= 0 {
			t.Errorf("row %s for dvpc: %+v", k, c)
		}
	}
	net, whole := b.value("login_net_mib", "dvpc"), b.value("login_net_mib", "restic")
	t.Logf("login %.2f s, restore %.2f s, net %.2f MiB (%.2f× the new blobs), restic's repository %.2f MiB",
		b.value("login_s", "dvpc").v, b.value("login_restore_s", "dvpc").v, net.v, b.value("login_net_vs_new", "dvpc").v, whole.v)
	if !whole.ok() || net.v >= whole.v/2 {
		t.Errorf("login fetched %.2f MiB from the net; restic's whole repository is %+v MiB", net.v, whole)
	}
	if c := b.value("login_s", "restic"); c.why != "-" {
		t.Errorf("restic has a login figure: %+v", c)
	}
	// The login's aims are evaluated; its peak RSS is the wrapper's
	// figure of the login's process, at least the floor of a process.
	aims := map[string]aimResult{}
	for _, a := range b.evalAims() {
		aims[a.Label] = a
	}
	for _, l := range []string{"login ≤ 1.2× restore of the same snapshot", "peak RSS of login ≤ 100 MiB"} {
		if a := aims[l]; a.Status != "met" && a.Status != "missed" {
			t.Errorf("aim %q: %+v", l, a)
		}
	}
	if rss := aims["peak RSS of login ≤ 100 MiB"]; rss.Dvpc != float64(dv.Steps["login"].MaxRSSKiB)/kib || rss.Dvpc < float64(b.rssFloor.MaxRSSKiB)/kib {
		t.Errorf("login RSS aim %+v; the login's peak RSS is %d KiB", rss, dv.Steps["login"].MaxRSSKiB)
	}
	checkSyncRows(t, b)
}

func checkSyncRows(t *testing.T, b *bench) {
	t.Helper()
	dv := b.toolRun("dvpc")
	for _, s := range []string{"sync-watch", "sync-one"} {
		if r := dv.Steps[s]; !r.ok() {
			log, _ := os.ReadFile(r.Log)
			t.Fatalf("%s: %s\n%s", s, r.Error, log)
		}
	}
	var rep watchReport
	if err := json.Unmarshal(dv.Steps["sync-watch"].Report, &rep); err != nil || len(rep.LatenciesS) != watchRuns {
		t.Fatalf("sync-watch report %s: %v", dv.Steps["sync-watch"].Report, err)
	}
	for _, l := range rep.LatenciesS {
		if l <= 0 {
			t.Errorf("latency %v", l)
		}
	}
	for _, k := range []string{"sync_watch_s", "sync_one_s", "rss_sync_watch_mib"} {
		if c := b.value(k, "dvpc"); !c.ok() || c.v <= 0 {
			t.Errorf("row %s for dvpc: %+v", k, c)
		}
	}
	if c := b.value("sync_one_s", "restic"); !c.ok() || c.v <= 0 {
		t.Errorf("row sync_one_s for restic: %+v", c)
	}
	t.Logf("sync --watch %s; sync dvpc %.2f s, restic %.2f s", b.watchText(), b.value("sync_one_s", "dvpc").v, b.value("sync_one_s", "restic").v)
	if got := b.watchText(); !strings.Contains(got, rep.File) || strings.Count(got, ",") < watchRuns-1 {
		t.Errorf("latencies line: %q", got)
	}

	// Every timed change is a snapshot of the session, and so is the
	// change sync-one synced; the newest holds the file as it is now.
	var sess struct {
		Snapshot string   `json:"snapshot"`
		Made     []string `json:"made"`
	}
	out := strangeDvpc(t, b, "--json", "session", b.loginDir())
	if err := json.Unmarshal(out, &sess); err != nil {
		t.Fatalf("session --json: %v\n%s", err, out)
	}
	// (The sync before the watch may make one more, right after the
	// login, though nothing changed in the directory.)
	if n := len(sess.Made); n < watchRuns+1 || n > watchRuns+2 || sess.Made[n-1] != sess.Snapshot {
		t.Errorf("the session made %d snapshots (%v), at %s; want %d, the newest last", n, sess.Made, sess.Snapshot, watchRuns+1)
	}
	name := filepath.Join(b.loginDir(), filepath.FromSlash(rep.File))
	want, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if got := strangeDvpc(t, b, "restore", sess.Snapshot, "--stdout", name); !bytes.Equal(got, want) {
		t.Errorf("the newest snapshot does not hold the synced change of %s", rep.File)
	}
	for _, a := range b.evalAims() {
		if strings.HasPrefix(a.Label, "sync") && a.Status != "met" && a.Status != "missed" {
			t.Errorf("aim %+v", a)
		}
	}
	if _, err := os.Stat(b.loginISO()); !os.IsNotExist(err) {
		t.Errorf("the login's ISO %s was kept without -keep: %v", b.loginISO(), err)
	}
	// restic's sync-one backed up the same change of the home.
	home, err := os.ReadFile(filepath.Join(b.home, filepath.FromSlash(rep.File)))
	if err != nil || !bytes.Equal(home, want) {
		t.Errorf("the home's %s differs from the session's: %v", rep.File, err)
	}
}

// strangeDvpc runs dvpc on the bench's strange PC and returns its output.
func strangeDvpc(t *testing.T, b *bench, args ...string) []byte {
	t.Helper()
	c := b.strangeCmd(b.tools[0], args...)
	c.Env = append(append(os.Environ(), b.tools[0].env...), c.Env...)
	out, err := c.Output()
	if err != nil {
		t.Fatalf("dvpc %v: %v", args, err)
	}
	return out
}
