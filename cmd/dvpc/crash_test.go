package main

// Crash safety: `dvpc snapshot` killed with SIGKILL at any moment must leave
// a store that verifies, whose earlier snapshots restore exactly, and that
// takes the next snapshot normally.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dvpc/dvpc/internal/treecmp"
)

// crashHome is a generated home directory of a few hundred text and random
// files, about 60 MB, changed deterministically between snapshots.
//
// Every change is made twice: to the home, and to a mirror tree that stands
// for the state a snapshot captures. Each change starts a new mirror made of
// hard links to the previous one (cp -al) and replaces files by renaming new
// ones over them, so every earlier mirror keeps its content while the disk
// holds each version of a file once.
type crashHome struct {
	root    string // the home that is snapshotted
	mirror  string // a tree identical to root
	mirrors string // directory of the mirrors
	dirs    []string
	texts   []string // relative paths of text files
	bins    []string // relative paths of random files
	rng     *rand.Rand
	step    int
}

var crashWords = strings.Fields(`the a of to and in is it that for on with as was at by from this be or
	are an have not but had they which one you were all we when there can been has more if will would who
	so no out up into do than about some time only could new other then them these two may first any like
	now my such make over our even most after also made many before must through back years where much your
	way well down should because each just those people how too little state good very make world still own
	see men work long get here between both life being under never day same another know while last might us
	great old year off come since against go came right used take three snapshot store restore backup home
	directory file chunk pack index manifest signature passphrase recovery mirror medium config tree`)

func newCrashHome(t testing.TB, work string) *crashHome {
	t.Helper()
	h := &crashHome{
		root:    filepath.Join(work, "home"),
		mirrors: filepath.Join(work, "mirrors"),
		rng:     rand.New(rand.NewPCG(0x64767063, 0x63726173)),
	}
	h.dirs = []string{"", "docs", "docs/letters", "music", "photos", "photos/2023", "photos/2024", "src",
		"src/project", "src/project/internal", ".config", ".config/app", "mail", "mail/archive"}
	for _, d := range append(h.dirs, "../mirrors") {
		if err := os.MkdirAll(filepath.Join(h.root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 240 {
		p := filepath.Join(h.dirs[h.rng.IntN(len(h.dirs))], fmt.Sprintf("text-%03d.txt", i))
		h.writeFile(t, h.root, p, h.text(10<<10+h.rng.IntN(80<<10)))
		h.texts = append(h.texts, p)
	}
	for i := range 60 {
		p := filepath.Join(h.dirs[h.rng.IntN(len(h.dirs))], fmt.Sprintf("data-%03d.bin", i))
		h.writeFile(t, h.root, p, h.random(400<<10+h.rng.IntN(800<<10)))
		h.bins = append(h.bins, p)
	}
	h.mirror = filepath.Join(h.mirrors, "00")
	copyTree(t, h.root, h.mirror)
	return h
}

func (h *crashHome) text(n int) []byte {
	var b bytes.Buffer
	for b.Len() < n {
		words := 6 + h.rng.IntN(10)
		for w := range words {
			if w > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(crashWords[h.rng.IntN(len(crashWords))])
		}
		b.WriteString(".\n")
	}
	return b.Bytes()[:n]
}

func (h *crashHome) random(n int) []byte {
	var seed [32]byte
	for i := range 4 {
		v := h.rng.Uint64()
		for j := range 8 {
			seed[8*i+j] = byte(v >> (8 * j))
		}
	}
	b := make([]byte, n)
	rand.NewChaCha8(seed).Read(b)
	return b
}

// writeFile creates root/rel as a new file (a new inode), renamed into
// place.
func (h *crashHome) writeFile(t testing.TB, root, rel string, b []byte) {
	t.Helper()
	p := filepath.Join(root, rel)
	tmp := filepath.Join(filepath.Dir(p), ".crash-test-tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

// mutate changes a few files, in the home and in a new mirror, so that the
// next snapshot stores a few MB of new data: random files rewritten, text
// inserted, a file added and, every third time, one removed. Changed files
// and their directories get fixed mtimes, so both trees stay identical.
func (h *crashHome) mutate(t testing.TB) {
	t.Helper()
	h.step++
	next := filepath.Join(h.mirrors, fmt.Sprintf("%02d", h.step))
	if out, err := exec.Command("cp", "-al", "--", h.mirror, next).CombinedOutput(); err != nil {
		t.Fatalf("cp -al %s %s: %v\n%s", h.mirror, next, err, out)
	}
	h.mirror = next
	mtime := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(h.step) * time.Hour)
	touched := map[string]bool{}
	put := func(rel string, b []byte) {
		mtime = mtime.Add(time.Minute + 123456789)
		for _, root := range []string{h.root, h.mirror} {
			h.writeFile(t, root, rel, b)
			if err := os.Chtimes(filepath.Join(root, rel), mtime, mtime); err != nil {
				t.Fatal(err)
			}
		}
		touched[filepath.Dir(rel)] = true
	}
	for range 6 {
		put(h.bins[h.rng.IntN(len(h.bins))], h.random(400<<10+h.rng.IntN(800<<10)))
	}
	for range 2 {
		rel := h.texts[h.rng.IntN(len(h.texts))]
		b, err := os.ReadFile(filepath.Join(h.root, rel))
		if err != nil {
			t.Fatal(err)
		}
		put(rel, slices.Insert(b, h.rng.IntN(len(b)+1), h.text(2<<10+h.rng.IntN(6<<10))...))
	}
	rel := filepath.Join(h.dirs[h.rng.IntN(len(h.dirs))], fmt.Sprintf("added-%03d.bin", h.step))
	put(rel, h.random(200<<10+h.rng.IntN(800<<10)))
	h.bins = append(h.bins, rel)
	if h.step%3 == 0 {
		i := h.rng.IntN(len(h.texts))
		for _, root := range []string{h.root, h.mirror} {
			if err := os.Remove(filepath.Join(root, h.texts[i])); err != nil {
				t.Fatal(err)
			}
		}
		touched[filepath.Dir(h.texts[i])] = true
		h.texts = slices.Delete(h.texts, i, i+1)
	}
	for dir := range touched {
		for _, root := range []string{h.root, h.mirror} {
			if err := os.Chtimes(filepath.Join(root, dir), mtime, mtime); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// runKilled starts dvpc and sends it SIGKILL after delay unless it has
// finished by then. killed reports whether the signal ended it.
func (d *dvpcCLI) runKilled(delay time.Duration, args ...string) (r result, killed bool) {
	d.t.Helper()
	return d.runKilledAfter(nil, delay, args...)
}

// runKilledAfter is runKilled with the delay counted from the moment
// started first reports true, polled every half millisecond while dvpc runs;
// a nil started counts it from the start.
func (d *dvpcCLI) runKilledAfter(started func() bool, delay time.Duration, args ...string) (r result, killed bool) {
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
	var err error
	finished := false
	if started != nil {
		tick := time.NewTicker(500 * time.Microsecond)
	poll:
		for !started() {
			select {
			case err = <-done:
				finished = true
				break poll
			case <-tick.C:
			}
		}
		tick.Stop()
	}
	if !finished {
		timer := time.NewTimer(delay)
		select {
		case err = <-done:
		case <-timer.C:
			_ = cmd.Process.Signal(syscall.SIGKILL)
			err = <-done
		}
		timer.Stop()
	}
	r = result{args: full, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			if ws.Signal() != syscall.SIGKILL || ctx.Err() != nil {
				d.t.Fatalf("dvpc %s died of %v (%v)\n%s", strings.Join(full, " "), ws.Signal(), ctx.Err(), r)
			}
			r.code = -1
			return r, true
		}
		r.code = ee.ExitCode()
	default:
		d.t.Fatalf("dvpc %s: %v\n%s", strings.Join(full, " "), err, r)
	}
	return r, false
}

// crashVersion is a completed snapshot, the tags that name it, and a mirror
// of the tree it captured.
type crashVersion struct {
	id       string
	ref      string
	tags     map[string]string // tag -> manifest digest: the snapshot and its signature
	restored bool              // restored and compared after a crash
}

// TestCrashSafety kills `dvpc snapshot` at random moments. After each kill:
//
//   - verify --read-data passes: every blob of every snapshot hashes to its
//     digest, every chunk opens and matches its ID, every tree loads;
//   - the store lists every completed snapshot, and index.json still names
//     each of them and its signature by the same manifest digest, and the
//     key manifest is unchanged;
//   - every snapshot not yet restored since a crash, and one older snapshot
//     (a different one each time), restore identical to the trees they
//     captured;
//   - the next uninterrupted snapshot succeeds.
//
// A restore reads nothing but the tagged manifest and the blobs it lists.
// Since the tags still name the same manifests and every listed blob still
// hashes to its digest, each earlier snapshot reads the same bytes as when
// it was restored and compared, so it still restores identically; restoring
// all of them again after every crash would take minutes. At the end every
// snapshot is restored and compared once more.
func TestCrashSafety(t *testing.T) {
	iterations := 20
	if testing.Short() {
		iterations = 5
	}
	work := t.TempDir()
	home := newCrashHome(t, work)
	store := filepath.Join(work, "store")
	d := newCLI(t, store, "crash test passphrase")
	d.must("init", "--argon2-memory", "8")
	_, refs := readStoreIndex(t, store)
	keys := findRef(t, refs, "keys").Desc.Digest
	// Delays come from a seeded generator, so a failure names its
	// iteration and delay; where a delay lands still depends on the machine.
	delays := rand.New(rand.NewPCG(0x6b696c6c, 0x64656c61))

	var versions []*crashVersion
	capture := func(id string) {
		t.Helper()
		_, refs := readStoreIndex(t, store)
		snap := findRef(t, refs, id)
		sig := findRef(t, refs, "sha256-"+snap.Desc.Digest.Hex+".sig")
		versions = append(versions, &crashVersion{id: id, ref: home.mirror, tags: map[string]string{
			snap.Name: snap.Desc.Digest.String(), sig.Name: sig.Desc.Digest.String(),
		}})
	}
	restoreDir := filepath.Join(work, "restore")
	checkRestore := func(when string, v *crashVersion) {
		t.Helper()
		if err := os.RemoveAll(restoreDir); err != nil {
			t.Fatal(err)
		}
		d.must("restore", v.id, "--to", restoreDir)
		diffs, err := treecmp.Compare(v.ref, restoreDir)
		if err != nil || len(diffs) > 0 {
			t.Fatalf("%s: snapshot %s does not restore what it captured: %v %s", when, v.id, err, treecmp.Format(diffs))
		}
		v.restored = true
	}
	checkStore := func(when string) {
		t.Helper()
		if r := d.run("verify", "--read-data"); r.code != 0 {
			t.Fatalf("%s: verify --read-data:\n%s", when, r)
		}
		_, refs := readStoreIndex(t, store)
		names := map[string]string{}
		for _, r := range refs {
			names[r.Name] = r.Desc.Digest.String()
		}
		if names["keys"] != keys.String() {
			t.Fatalf("%s: the keys tag names %s, was %s", when, names["keys"], keys)
		}
		for _, v := range versions {
			for tag, digest := range v.tags {
				if names[tag] != digest {
					t.Fatalf("%s: tag %s names %q, was %s", when, tag, names[tag], digest)
				}
			}
		}
	}

	// The first snapshot stores everything; the second reads again what
	// was written just before the first.
	capture(d.snapshot(home.root))
	home.mutate(t)
	requireSameTree(t, home.root, home.mirror)
	capture(d.snapshot(home.root))
	// Measure, once, how long an uninterrupted snapshot of a typical change
	// takes, and when in it the first blob is written: every blob starts
	// as a temporary file in .dvpc-tmp and is renamed into blobs/sha256,
	// so the first change of either directory marks the start of the
	// writes.
	blobDir, tmpDir := filepath.Join(store, "blobs", "sha256"), filepath.Join(store, ".dvpc-tmp")
	// The shortest of three runs stands for the writes: a shared machine
	// makes any one run slower than the next.
	var span, writeSpan time.Duration
	for range 3 {
		home.mutate(t)
		// Written data is flushed before the measured runs and before
		// each killed one, so that they run under the same conditions.
		syscall.Sync()
		var id string
		sp, writeAt := watchRun(dirsChanged(blobDir, tmpDir), func() { id = d.snapshot(home.root) })
		capture(id)
		if writeAt < 0 {
			t.Fatalf("the measured snapshot wrote no blob")
		}
		t.Logf("an uninterrupted snapshot of a typical change takes %v, writing blobs from %v on", sp, writeAt)
		if ws := max(sp-writeAt, time.Millisecond); writeSpan == 0 || ws < writeSpan {
			span, writeSpan = sp, ws
		}
	}

	// Three kills in four come at a random moment of the writes: after
	// the first blob appears, within two thirds of the measured time
	// the writes took. The fourth comes at a random moment of the whole
	// run, so that some land before anything is written.
	var nkilled, nmid, nfinished, ncommitted int
	for i := 1; i <= iterations; i++ {
		home.mutate(t)
		var started func() bool
		var delay time.Duration
		from := "the start"
		if i%4 == 0 {
			delay = time.Duration(delays.Int64N(int64(span) + 1))
		} else {
			delay = time.Duration(delays.Int64N(int64(writeSpan)*2/3 + 1))
			from = "the first blob write"
		}
		when := fmt.Sprintf("iteration %d (SIGKILL %v after %s)", i, delay, from)
		tmpBefore := listNames(t, tmpDir)
		blobsBefore := countFiles(t, blobDir)
		syscall.Sync()
		if i%4 != 0 {
			started = dirsChanged(blobDir, tmpDir)
		}
		r, killed := d.runKilledAfter(started, delay, "snapshot", home.root)
		// The kill landed during the writes when it left a temporary
		// file (a blob cut off before its rename) or new blobs, and the
		// snapshot was not committed (checked below).
		wrote := killed && (newNames(t, tmpDir, tmpBefore) > 0 || countFiles(t, blobDir) > blobsBefore)
		t.Logf("%s: killed %v, wrote %v", when, killed, wrote)
		switch {
		case killed:
			nkilled++
		case r.code == 0:
			// It finished before the signal: a complete snapshot. The
			// writes are faster than measured now: aim earlier.
			nfinished++
			capture(strings.TrimSpace(r.stdout))
			if started != nil {
				writeSpan = max(writeSpan/2, time.Millisecond)
			}
		default:
			t.Fatalf("%s: the snapshot failed by itself:\n%s", when, r)
		}

		// Every completed snapshot is still listed, in order. A killed
		// run may have committed its snapshot just before dying: then it
		// is complete and holds the home as it is now.
		ids := logIDs(d.log())
		want := make([]string, len(versions))
		for j, v := range versions {
			want[j] = v.id
		}
		switch {
		case slices.Equal(ids, want):
			if wrote {
				nmid++
			}
		case killed && len(ids) == len(want)+1 && slices.Equal(ids[:len(want)], want):
			ncommitted++
			capture(ids[len(want)])
		default:
			t.Fatalf("%s: log lists %v, want %v", when, ids, want)
		}
		checkStore(when)
		for _, v := range versions {
			if !v.restored {
				checkRestore(when, v)
			}
		}
		checkRestore(when, versions[i%len(versions)])

		capture(d.snapshot(home.root))
	}
	t.Logf("%d of %d runs killed during the writes; %d killed in all (%d after committing), %d finished before the signal",
		nmid, iterations, nkilled, ncommitted, nfinished)
	if 2*nmid <= iterations {
		t.Fatalf("only %d of %d kills landed while the snapshot was writing", nmid, iterations)
	}
	checkStore("at the end")
	if n := countFiles(t, filepath.Join(store, ".dvpc-tmp")); n > 0 {
		t.Logf("the killed runs left %d temporary files in %s", n, filepath.Join(store, ".dvpc-tmp"))
	}
	for _, v := range versions {
		checkRestore("at the end", v)
	}
}

// watchRun calls fn, polling started every half millisecond meanwhile. It
// returns how long fn took and when started first reported true; -1 if it
// never did.
func watchRun(started func() bool, fn func()) (total, at time.Duration) {
	at = -1
	begin := time.Now()
	stop, polled := make(chan struct{}), make(chan struct{})
	var once sync.Once
	finish := func() { once.Do(func() { close(stop); <-polled }) }
	defer finish() // also when fn ends the test
	go func() {
		defer close(polled)
		tick := time.NewTicker(500 * time.Microsecond)
		defer tick.Stop()
		for {
			if started() {
				at = time.Since(begin)
				return
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	fn()
	total = time.Since(begin)
	finish()
	return total, at
}

// dirsChanged returns a function that reports whether any of dirs has
// been modified (an entry added, removed or renamed) since the call; a
// directory that did not exist then changes by being created.
func dirsChanged(dirs ...string) func() bool {
	stamp := func(dir string) time.Time {
		fi, err := os.Stat(dir)
		if err != nil {
			return time.Time{}
		}
		return fi.ModTime()
	}
	before := make([]time.Time, len(dirs))
	for i, dir := range dirs {
		before[i] = stamp(dir)
	}
	return func() bool {
		for i, dir := range dirs {
			if !stamp(dir).Equal(before[i]) {
				return true
			}
		}
		return false
	}
}

// listNames returns the names a directory holds; none if it does not
// exist.
func listNames(t testing.TB, dir string) map[string]bool {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, e := range ents {
		names[e.Name()] = true
	}
	return names
}

// newNames returns how many names dir holds that were not in before.
func newNames(t testing.TB, dir string, before map[string]bool) int {
	t.Helper()
	n := 0
	for name := range listNames(t, dir) {
		if !before[name] {
			n++
		}
	}
	return n
}

// countFiles returns how many entries a directory holds; none if it does
// not exist.
func countFiles(t testing.TB, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
