package main

// Faults during a login: killed at random moments, the medium gone
// mid-login, the local disk full. Each must leave a directory that
// `dvpc session` never calls complete unless it is, lose nothing, and let
// the same login, run again, finish.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dvpc/dvpc/internal/regtest"
	"github.com/dvpc/dvpc/internal/treecmp"
)

// faultHome is a person's home of about 140 MB (big enough that a login
// takes a second or more), its store, a DVD of its first snapshot, and a
// mirror holding the newer one, which adds 80 MB.
type faultHome struct {
	home   *crashHome
	cli    *dvpcCLI
	iso    string
	reg    *regtest.Registry
	mirror string // the mirror's URL
	snap   string // the newest snapshot's ID
}

func newFaultHome(t *testing.T) *faultHome {
	t.Helper()
	work := t.TempDir()
	h := &faultHome{home: newCrashHome(t, work)}
	h.cli = newCLI(t, filepath.Join(work, "store"), "login passphrase")
	h.cli.must("init", "--argon2-memory", "8")
	h.reg = regtest.Start(t)
	h.mirror = h.reg.Addr() + "/dvpc/home"
	h.cli.must("mirror", "add", h.mirror)
	h.cli.snapshot(h.home.root)
	h.iso = filepath.Join(work, "weekly.iso")
	h.cli.must("media", "iso", "--out", h.iso, "--no-clients")
	h.home.mutate(t)
	for i := range 2 {
		randomFile(t, filepath.Join(h.home.root, "photos", fmt.Sprintf("film-%d.bin", i)), uint64(90+i), 40<<20)
	}
	h.snap = h.cli.snapshot(h.home.root)
	h.cli.must("push")
	return h
}

// pc is a strange PC: no store of the person's yet.
func (h *faultHome) pc(t *testing.T) *dvpcCLI {
	t.Helper()
	return newCLI(t, filepath.Join(t.TempDir(), "pc", ".local", "share", "dvpc", "store"), "login passphrase")
}

// loginSession is what `dvpc --json session DIR` says.
type loginSession struct {
	Complete bool   `json:"complete"`
	Snapshot string `json:"snapshot"`
}

// sessionOf runs `dvpc session dir`; ok is false when dir has no session.
func sessionOf(t *testing.T, pc *dvpcCLI, dir string) (s loginSession, ok bool) {
	t.Helper()
	r := pc.run("--json", "session", dir)
	switch r.code {
	case exitNotFound:
		return s, false
	case 0:
	default:
		t.Fatalf("session %s:\n%s", dir, r)
	}
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("session --json: %v\n%s", err, r)
	}
	return s, true
}

// requireComplete checks that dir holds want and that its session says so,
// at snapshot snap ("": any).
func requireComplete(t *testing.T, pc *dvpcCLI, dir, want, snap string) {
	t.Helper()
	requireSameTree(t, want, dir)
	s, ok := sessionOf(t, pc, dir)
	if !ok || !s.Complete || !strings.Contains(s.Snapshot, snap) {
		t.Fatalf("the session of %s after a finished login: %+v (found %v), want complete at %s", dir, s, ok, snap)
	}
}

// TestLoginJSON: login --json names the snapshot and, for every place,
// the bytes and seconds it served; the DVD and the mirror both served.
func TestLoginJSON(t *testing.T) {
	h := newFaultHome(t)
	pc := h.pc(t)
	dir := filepath.Join(t.TempDir(), "work")
	r := pc.must("--json", "login", "--from", h.iso, "--to", dir)
	var rep struct {
		Snapshot string  `json:"snapshot"`
		Dir      string  `json:"dir"`
		Seconds  float64 `json:"seconds"`
		Places   []struct {
			Place   string   `json:"place"`
			Kind    string   `json:"kind"`
			Blobs   *int     `json:"blobs"`
			Bytes   *int64   `json:"bytes"`
			Seconds *float64 `json:"seconds"`
		} `json:"places"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("login --json is not one JSON object: %v\n%s", err, r)
	}
	if rep.Snapshot != h.snap || rep.Dir != dir || rep.Seconds <= 0 {
		t.Errorf("login --json: snapshot %q, dir %q, seconds %v; want %s, %s, > 0\n%s", rep.Snapshot, rep.Dir, rep.Seconds, h.snap, dir, r.stdout)
	}
	served := map[string]int64{}
	for _, p := range rep.Places {
		if p.Bytes == nil || p.Seconds == nil || p.Blobs == nil || p.Place == "" || p.Kind == "" {
			t.Errorf("login --json: a place lacks its name, kind, blobs, bytes or seconds: %+v\n%s", p, r.stdout)
			continue
		}
		if *p.Bytes > 0 && *p.Seconds <= 0 {
			t.Errorf("place %s served %d bytes in %v seconds", p.Place, *p.Bytes, *p.Seconds)
		}
		served[p.Kind] += *p.Bytes
		if p.Kind == "mirror" && p.Place != h.mirror {
			t.Errorf("the mirror is named %q, want %q", p.Place, h.mirror)
		}
		if p.Kind == "dvd" && p.Place != h.iso {
			t.Errorf("the DVD is named %q, want %q", p.Place, h.iso)
		}
	}
	// The DVD holds most of the home, the mirror the newer part.
	if served["dvd"] < 10<<20 || served["mirror"] < 1<<20 {
		t.Errorf("bytes by kind of place: %v; want the DVD to serve the first snapshot's data and the mirror the rest\n%s", served, r.stdout)
	}
	requireComplete(t, pc, dir, h.home.root, h.snap)
}

// TestLoginKilled kills `dvpc login` (from the DVD plus the mirror) at ten
// moments spread over a clean login's duration. After each kill, `dvpc
// session` calls the directory complete only when it holds the snapshot;
// the same login run again completes it.
func TestLoginKilled(t *testing.T) {
	h := newFaultHome(t)
	args := func(dir string) []string { return []string{"login", "--from", h.iso, "--to", dir} }

	// Clean logins, measured: the shorter of two stands for the span, as
	// the first reads the data cold.
	var span time.Duration
	for range 2 {
		syscall.Sync()
		pc := h.pc(t)
		dir := filepath.Join(t.TempDir(), "work")
		start := time.Now()
		pc.must(args(dir)...)
		if d := time.Since(start); span == 0 || d < span {
			span = d
		}
		requireComplete(t, pc, dir, h.home.root, h.snap)
	}
	t.Logf("a clean login takes %v", span)

	// Delays from a seeded generator, one in each tenth of the span, so
	// that a failure names its delay.
	delays := rand.New(rand.NewPCG(0x6c6f6769, 0x6e6b696c))
	const kills = 10
	var nkilled, nhalf int
	for i := range kills {
		delay := span*time.Duration(i)/kills + time.Duration(delays.Int64N(int64(span/kills)+1))
		when := fmt.Sprintf("kill %d (SIGKILL after %v of %v)", i+1, delay, span)
		pc := h.pc(t)
		dir := filepath.Join(t.TempDir(), "work")
		syscall.Sync()
		r, killed := pc.runKilled(delay, args(dir)...)
		if !killed {
			if r.code != 0 {
				t.Fatalf("%s: the login failed by itself:\n%s", when, r)
			}
			t.Logf("%s: the login finished first", when)
			requireComplete(t, pc, dir, h.home.root, h.snap)
			continue
		}
		nkilled++
		s, ok := sessionOf(t, pc, dir)
		diffs, err := treecmp.Compare(h.home.root, dir)
		same := err == nil && len(diffs) == 0
		t.Logf("%s: session %+v (found %v); directory whole: %v", when, s, ok, same)
		if ok && s.Complete && !same {
			t.Fatalf("%s: `dvpc session` says %s is complete, but it is not the snapshot: %v %s", when, dir, err, treecmp.Format(diffs))
		}
		if !same {
			nhalf++
		}
		// Killed after it finished, the rerun is a login over an earlier
		// session: what it then says the session is at is its own business.
		snap := h.snap
		if ok && s.Complete {
			snap = ""
		}
		pc.must(args(dir)...)
		requireComplete(t, pc, dir, h.home.root, snap)
	}
	t.Logf("%d of %d logins killed, %d of them with the directory half-written", nkilled, kills, nhalf)
	if nkilled < kills/2 {
		t.Fatalf("only %d of %d logins were killed before they finished", nkilled, kills)
	}
}

// smallDisk mounts a tmpfs of size bytes at a new directory, unmounted at
// the end of the test, and returns the directory and a function that
// resizes it. Mounting needs root: CI runs the tests as root.
func smallDisk(t *testing.T, size int64) (string, func(int64)) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("this test mounts a small tmpfs to fill it, which needs root: run the tests as root (CI does), e.g. sudo go test ./cmd/dvpc -run %s", t.Name())
	}
	mnt := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	mount := requireTool(t, "mount", "mount")
	if out, err := exec.Command(mount, "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs of %d bytes at %s: %v\n%s", size, mnt, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(requireTool(t, "umount", "mount"), mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", mnt, err, out)
		}
	})
	resize := func(size int64) {
		t.Helper()
		if out, err := exec.Command(mount, "-o", fmt.Sprintf("remount,size=%d", size), mnt).CombinedOutput(); err != nil {
			t.Fatalf("resize the tmpfs at %s to %d bytes: %v\n%s", mnt, size, err, out)
		}
	}
	return mnt, resize
}

// TestLoginDiskFull: the cache and the directory share a small disk that
// fills up mid-login, once while the mirror's blobs are copied into the
// cache, once while the home is written out. The login says so, naming the
// directory, with exit code 1, marks nothing complete, and once there is
// room the same login completes.
func TestLoginDiskFull(t *testing.T) {
	h := newFaultHome(t)
	for _, tc := range []struct {
		name string
		size int64
		full string // the directory that fills up: "cache" or "dir"
	}{
		// The mirror adds about 85 MB to what the DVD holds.
		{"cache", 40 << 20, "cache"},
		// The cache fits; the home (140 MB) does not.
		{"dir", 160 << 20, "dir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mnt, resize := smallDisk(t, tc.size)
			pc := newCLI(t, filepath.Join(mnt, "pc", ".local", "share", "dvpc", "store"), "login passphrase")
			dir := filepath.Join(mnt, "work")
			args := []string{"login", "--from", h.iso, "--to", dir}
			r := pc.expect(exitError, args...)
			t.Logf("a full disk:\n%s", r.stderr)
			named := map[string]string{"cache": pc.store, "dir": dir}[tc.full]
			if !strings.Contains(r.stderr, "no space left") || !strings.Contains(r.stderr, named) {
				t.Errorf("a full disk: the message does not say no space is left in %s:\n%s", named, r)
			}
			if !strings.Contains(r.stderr, "hint: ") || !strings.Contains(r.stderr, "free") {
				t.Errorf("a full disk: no hint to free space:\n%s", r)
			}
			if s, ok := sessionOf(t, pc, dir); ok && s.Complete {
				t.Errorf("after a full disk, the session of %s says complete", dir)
			}
			resize(600 << 20)
			pc.must(args...)
			requireComplete(t, pc, dir, h.home.root, h.snap)
		})
	}

	// A login over an earlier session with an edit not yet synced, on a
	// disk that a large file fills: the edit stays, and once the file is
	// gone the login brings the newer snapshot in beside it.
	t.Run("update", func(t *testing.T) {
		mnt, _ := smallDisk(t, 600<<20)
		pc := newCLI(t, filepath.Join(mnt, "pc", ".local", "share", "dvpc", "store"), "login passphrase")
		dir := filepath.Join(mnt, "work")
		pc.must("login", "--mirror", h.mirror, "--to", dir)
		writeFileString(t, filepath.Join(dir, "edit.txt"), "made on the PC\n")
		film := filepath.Join("photos", "film-0.bin")
		randomFile(t, filepath.Join(h.home.root, film), 290, 40<<20)
		randomFile(t, filepath.Join(h.home.root, "photos", "film-2.bin"), 291, 40<<20)
		h.cli.snapshot(h.home.root)
		h.cli.must("push")
		filler := fillDisk(t, mnt, 20<<20)
		r := pc.expect(exitError, "login", "--to", dir)
		t.Logf("a full disk:\n%s", r.stderr)
		if !strings.Contains(r.stderr, "no space left") || !strings.Contains(r.stderr, pc.store) {
			t.Errorf("a full disk: the message does not say no space is left in %s:\n%s", pc.store, r)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "edit.txt")); err != nil || string(b) != "made on the PC\n" {
			t.Fatalf("after a full disk, the edit is %q, %v", b, err)
		}
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		pc.must("login", "--to", dir)
		if b, err := os.ReadFile(filepath.Join(dir, "edit.txt")); err != nil || string(b) != "made on the PC\n" {
			t.Errorf("after the update, the edit is %q, %v", b, err)
		}
		for _, f := range []string{film, filepath.Join("photos", "film-2.bin")} {
			want, _ := os.ReadFile(filepath.Join(h.home.root, f))
			got, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("after the update, %s is not the newer snapshot's (%v)", f, err)
			}
		}
		if s, ok := sessionOf(t, pc, dir); !ok || !s.Complete {
			t.Errorf("after the update, the session is %+v (found %v), want complete", s, ok)
		}
	})
}

// fillDisk writes a file in dir until the file system is full, then
// shortens it to leave free bytes, and returns its path.
func fillDisk(t *testing.T, dir string, free int64) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	var n int64
	for {
		m, err := f.Write(buf)
		n += int64(m)
		if errors.Is(err, syscall.ENOSPC) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(max(n-free, 0)); err != nil {
		t.Fatal(err)
	}
	return p
}

// runDuring runs dvpc and calls act once, as soon as started reports true
// while it runs (polled every millisecond); acted reports whether it did.
func (d *dvpcCLI) runDuring(started func() bool, act func(), args ...string) (r result, acted bool) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd, full := d.command(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		d.t.Fatalf("start dvpc %s: %v", strings.Join(full, " "), err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var err error
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-tick.C:
			if !acted && started() {
				act()
				acted = true
			}
		}
	}
	r = result{args: full, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		r.code = ee.ExitCode()
	default:
		d.t.Fatalf("dvpc %s: %v\n%s", strings.Join(full, " "), err, r)
	}
	return r, acted
}

// entriesIn returns a function that reports whether dir holds at least n
// entries, counted through its subdirectories.
func entriesIn(dir string, n int) func() bool {
	return func() bool {
		seen := 0
		filepath.WalkDir(dir, func(_ string, _ fs.DirEntry, err error) error {
			if err == nil {
				seen++
			}
			if seen > n {
				return filepath.SkipAll
			}
			return nil
		})
		return seen > n
	}
}

// TestLoginMediumGone: the USB key vanishes while a login reads it, and
// no mirror is reachable to fall back on. A key image cut short and a
// mounted key whose files are gone each end the login with an error that
// names the key, with exit code 6; the directory is not called complete;
// with the key back, the same login completes.
func TestLoginMediumGone(t *testing.T) {
	h := newFaultHome(t)
	work := t.TempDir()
	img := filepath.Join(work, "key.img")
	h.cli.must("media", "usb", "--out", img, "--no-clients")
	whole := filepath.Join(work, "key-whole.img")
	if out, err := exec.Command("cp", "--", img, whole).CombinedOutput(); err != nil {
		t.Fatalf("copy the key image: %v\n%s", err, out)
	}
	mounted := filepath.Join(work, "key")
	if err := os.Mkdir(mounted, 0o755); err != nil {
		t.Fatal(err)
	}
	copyTree(t, h.cli.store, filepath.Join(mounted, "store"))
	// Every blob must come from the key.
	h.reg.Stop()

	for _, tc := range []struct {
		name   string
		medium string
		// when: the entries the login has written when the key vanishes.
		// An image is read ahead of the writes: it is cut as the
		// directory appears.
		when   int
		vanish func(t *testing.T) (back func())
	}{
		{"image cut short", img, 0, func(t *testing.T) func() {
			if err := os.Truncate(img, 1<<20); err != nil {
				t.Fatal(err)
			}
			return func() {
				if out, err := exec.Command("cp", "--", whole, img).CombinedOutput(); err != nil {
					t.Fatalf("put the key image back: %v\n%s", err, out)
				}
			}
		}},
		{"mounted key emptied", mounted, 20, func(t *testing.T) func() {
			store, gone := filepath.Join(mounted, "store"), filepath.Join(work, "unmounted")
			if err := os.Rename(store, gone); err != nil {
				t.Fatal(err)
			}
			return func() {
				if err := os.Rename(gone, store); err != nil {
					t.Fatal(err)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pc := h.pc(t)
			dir := filepath.Join(t.TempDir(), "work")
			args := []string{"login", "--from", tc.medium, "--to", dir}
			var back func()
			r, acted := pc.runDuring(entriesIn(dir, tc.when), func() { back = tc.vanish(t) }, args...)
			if !acted {
				t.Fatalf("the login finished before it had written %d entries:\n%s", tc.when, r)
			}
			back()
			t.Logf("the key gone mid-login:\n%s", r.stderr)
			if r.code != exitIntegrity {
				t.Errorf("the key gone mid-login: exit %d, want %d\n%s", r.code, exitIntegrity, r)
			}
			if !strings.Contains(r.stderr, tc.medium) {
				t.Errorf("the key gone mid-login: the message does not name %s:\n%s", tc.medium, r)
			}
			if s, ok := sessionOf(t, pc, dir); ok && s.Complete {
				t.Errorf("the key gone mid-login: the session of %s says complete", dir)
			}
			pc.must(args...)
			requireComplete(t, pc, dir, h.home.root, h.snap)
		})
	}
}

// requireHolds checks that dir holds the snapshot snap: one of the trees
// known, else the snapshot restored from pc's store.
func requireHolds(t *testing.T, pc *dvpcCLI, dir, snap string, known map[string]string, when string) {
	t.Helper()
	want := ""
	for id, tree := range known {
		if strings.Contains(snap, id) {
			want = tree
		}
	}
	if want == "" {
		want = filepath.Join(t.TempDir(), "want")
		pc.must("restore", snap, "--to", want)
	}
	if diffs, err := treecmp.Compare(want, dir); err != nil || len(diffs) > 0 {
		t.Fatalf("%s: `dvpc session` says %s is complete at %s, but it does not hold it: %v %s", when, dir, snap, err, treecmp.Format(diffs))
	}
}

// TestLoginUpdateKilled kills a login over an earlier session, which
// brings the directory from one snapshot to a newer one that changed 80
// MB. Two kills in three come at a random moment of the writes into the
// directory (after the first change of it, within the time they took in a
// clean update), the third at a random moment of the whole run. After
// each kill `dvpc session` calls the directory complete only when it holds
// the snapshot it names, and the same login run again brings it to the
// newer snapshot.
func TestLoginUpdateKilled(t *testing.T) {
	h := newFaultHome(t)
	older := filepath.Join(t.TempDir(), "older")
	copyTree(t, h.home.root, older)
	// The newer snapshot replaces the two big files and changes others.
	h.home.mutate(t)
	for i := range 2 {
		randomFile(t, filepath.Join(h.home.root, "photos", fmt.Sprintf("film-%d.bin", i)), uint64(190+i), 40<<20)
	}
	newer := h.cli.snapshot(h.home.root)
	h.cli.must("push")
	known := map[string]string{h.snap: older, newer: h.home.root}
	// Every PC logs in from the mirror to the snapshot before, so that its
	// cache holds every blob of what its session names; the update then
	// reads the mirror.
	first := func() (*dvpcCLI, string) {
		t.Helper()
		pc := h.pc(t)
		dir := filepath.Join(t.TempDir(), "work")
		pc.must("login", "--mirror", h.mirror, "--to", dir, h.snap)
		requireComplete(t, pc, dir, older, h.snap)
		return pc, dir
	}
	args := func(dir string) []string { return []string{"login", "--to", dir} }

	// The shorter of two clean updates stands for the run and its writes.
	var span, writeSpan time.Duration
	for range 2 {
		pc, dir := first()
		syscall.Sync()
		sp, writeAt := watchRun(dirsChanged(dir, filepath.Join(dir, "photos")), func() { pc.must(args(dir)...) })
		if writeAt < 0 {
			t.Fatalf("the update did not change %s", dir)
		}
		if ws := max(sp-writeAt, time.Millisecond); writeSpan == 0 || ws < writeSpan {
			span, writeSpan = sp, ws
		}
		requireComplete(t, pc, dir, h.home.root, "")
	}
	t.Logf("a clean update takes %v, writing the directory in the last %v", span, writeSpan)

	delays := rand.New(rand.NewPCG(0x75706461, 0x74656b69))
	const kills = 10
	var nkilled, nupdating int
	for i := range kills {
		pc, dir := first()
		var started func() bool
		delay := time.Duration(delays.Int64N(int64(span) + 1))
		from := "the start"
		if i%3 != 2 {
			delay = time.Duration(delays.Int64N(int64(writeSpan) + 1))
			started, from = dirsChanged(dir, filepath.Join(dir, "photos")), "the first change of the directory"
		}
		when := fmt.Sprintf("kill %d (SIGKILL %v after %s)", i+1, delay, from)
		syscall.Sync()
		r, killed := pc.runKilledAfter(started, delay, args(dir)...)
		if !killed && r.code != 0 {
			t.Fatalf("%s: the update failed by itself:\n%s", when, r)
		}
		if killed {
			nkilled++
		}
		s, ok := sessionOf(t, pc, dir)
		t.Logf("%s: killed %v; session %+v", when, killed, s)
		if !ok {
			t.Fatalf("%s: the session of %s is gone", when, dir)
		}
		if s.Complete {
			requireHolds(t, pc, dir, s.Snapshot, known, when)
		} else {
			nupdating++
		}
		pc.must(args(dir)...)
		requireComplete(t, pc, dir, h.home.root, "")
	}
	t.Logf("%d of %d updates killed, %d of them while writing the directory", nkilled, kills, nupdating)
	if nkilled < kills/2 {
		t.Fatalf("only %d of %d updates were killed before they finished", nkilled, kills)
	}
}
