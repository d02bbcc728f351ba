package overlay

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// deadline bounds every wait for an outcome; it is generous on purpose; no
// test asserts how fast anything happens.
const deadline = 60 * time.Second

// recorder is a Snapshot function that records its calls.
type recorder struct {
	mu        sync.Mutex
	calls     [][]string
	notify    chan struct{}
	active    atomic.Int32
	maxActive atomic.Int32
	hold      chan struct{} // when set, each call waits on it
	do        func(ctx context.Context, changed []string) error
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) snapshot(ctx context.Context, changed []string) error {
	n := r.active.Add(1)
	defer r.active.Add(-1)
	for {
		m := r.maxActive.Load()
		if n <= m || r.maxActive.CompareAndSwap(m, n) {
			break
		}
	}
	if r.hold != nil {
		<-r.hold
	}
	var err error
	if r.do != nil {
		err = r.do(ctx, changed)
	}
	r.mu.Lock()
	r.calls = append(r.calls, slices.Clone(changed))
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
	return err
}

func (r *recorder) snapshotCalls() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// waitFor waits until a call after the first from satisfies ok and
// returns the calls so far.
func (r *recorder) waitFor(t *testing.T, from int, what string, ok func(changed []string) bool) [][]string {
	t.Helper()
	timeout := time.After(deadline)
	for {
		calls := r.snapshotCalls()
		if len(calls) > from && slices.ContainsFunc(calls[from:], ok) {
			return calls
		}
		select {
		case <-r.notify:
		case <-timeout:
			t.Fatalf("no snapshot %s within %v; calls: %q", what, deadline, calls)
		}
	}
}

// settle makes a change in the directory "sentinel" and waits for the
// snapshot that holds it. Events are handled in order, so every change
// made before has been snapshotted by then. It returns the calls so far.
func (r *recorder) settle(t *testing.T, root string) [][]string {
	t.Helper()
	n := len(r.snapshotCalls())
	name := fmt.Sprintf("s-%d", time.Now().UnixNano())
	if err := os.WriteFile(filepath.Join(root, "sentinel", name), []byte(name), 0o644); err != nil {
		t.Fatal(err)
	}
	return r.waitFor(t, n, "of the sentinel", func(c []string) bool { return slices.Contains(c, "sentinel") })
}

// startWatch runs Watch on root until the test ends, and waits until
// every directory is watched.
func startWatch(t *testing.T, root string, opts WatchOptions) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan int, 1)
	opts.Started = func(n int) { started <- n }
	if opts.OnError == nil {
		opts.OnError = func(err error) { t.Errorf("watch: %v", err) }
	}
	done := make(chan error, 1)
	go func() { done <- Watch(ctx, root, opts) }()
	select {
	case <-started:
	case err := <-done:
		cancel()
		t.Fatalf("watch ended before it started: %v", err)
	case <-time.After(deadline):
		t.Fatal("watch did not start")
	}
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(deadline):
				err = errors.New("watch did not return after its context was cancelled")
			}
		})
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	return stop
}

func mkdirs(t *testing.T, root string, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestWatchOneEdit(t *testing.T) {
	root := t.TempDir()
	mkdirs(t, root, "sub/deeper", "other", "sentinel")
	rec := newRecorder()
	startWatch(t, root, WatchOptions{Debounce: 500 * time.Millisecond, MaxDelay: 10 * time.Second, Snapshot: rec.snapshot})

	write(t, filepath.Join(root, "sub", "deeper", "f.txt"), "one edit")
	calls := rec.waitFor(t, 0, "of the edit", func([]string) bool { return true })
	if want := [][]string{{"sub/deeper"}}; !slices.EqualFunc(calls, want, slices.Equal) {
		t.Fatalf("one edit gave calls %q, want %q", calls, want)
	}
	// Nothing more comes of that edit: the next call holds the next
	// change alone.
	calls = rec.settle(t, root)
	if want := [][]string{{"sub/deeper"}, {"sentinel"}}; !slices.EqualFunc(calls, want, slices.Equal) {
		t.Fatalf("calls %q, want %q", calls, want)
	}
}

func TestWatchNewDirectories(t *testing.T) {
	root := t.TempDir()
	mkdirs(t, root, "sub", "sentinel")
	rec := newRecorder()
	startWatch(t, root, WatchOptions{Debounce: 100 * time.Millisecond, MaxDelay: 10 * time.Second, Snapshot: rec.snapshot})

	write(t, filepath.Join(root, "sub", "new", "deep", "x.txt"), "made with its directories")
	rec.waitFor(t, 0, "of the new directory", func(c []string) bool { return slices.Contains(c, "sub/new") })
	calls := rec.settle(t, root)
	for _, c := range calls {
		for _, d := range c {
			if d != "sentinel" && !inside(d, "sub/new") {
				t.Errorf("a new directory gave call %q: %q lies outside it", c, d)
			}
		}
	}
	// The directory made below the new one is watched too.
	n := len(calls)
	write(t, filepath.Join(root, "sub", "new", "deep", "y.txt"), "later")
	calls = rec.waitFor(t, n, "of the edit in the new directory", func(c []string) bool { return slices.Contains(c, "sub/new/deep") })
	if got := calls[n:]; !slices.EqualFunc(got, [][]string{{"sub/new/deep"}}, slices.Equal) {
		t.Errorf("an edit in a new directory gave calls %q", got)
	}
	// A directory moved away and back under another name is followed.
	if err := os.Rename(filepath.Join(root, "sub", "new"), filepath.Join(root, "moved")); err != nil {
		t.Fatal(err)
	}
	n = len(rec.settle(t, root))
	write(t, filepath.Join(root, "moved", "deep", "z.txt"), "after the move")
	calls = rec.waitFor(t, n, "of the edit in the moved directory", func(c []string) bool { return slices.Contains(c, "moved/deep") })
	if got := calls[n:]; !slices.EqualFunc(got, [][]string{{"moved/deep"}}, slices.Equal) {
		t.Errorf("an edit in a moved directory gave calls %q", got)
	}
}

// TestWatchBoundedCalls saves one file 100 times over 10 s and checks that
// the debounce and the maximum delay bound the number of snapshots.
func TestWatchBoundedCalls(t *testing.T) {
	root := t.TempDir()
	mkdirs(t, root, "hot", "sentinel")
	rec := newRecorder()
	rec.do = func(ctx context.Context, changed []string) error {
		time.Sleep(50 * time.Millisecond) // a snapshot takes a while
		return nil
	}
	opts := WatchOptions{Debounce: 200 * time.Millisecond, MaxDelay: time.Second, Snapshot: rec.snapshot}
	startWatch(t, root, opts)

	p := filepath.Join(root, "hot", "doc.txt")
	start := time.Now()
	for i := range 100 {
		write(t, p, fmt.Sprintf("save %d", i))
		time.Sleep(100 * time.Millisecond)
	}
	elapsed := time.Since(start)
	calls := rec.settle(t, root)

	// Each call but the last waits for a pause of Debounce or for
	// MaxDelay; the sentinel may add one.
	bound := int(elapsed/min(opts.Debounce, opts.MaxDelay)) + 2
	if len(calls) > bound {
		t.Errorf("100 saves in %v gave %d snapshots, more than %d", elapsed.Round(time.Millisecond), len(calls), bound)
	}
	// Saves went on for longer than MaxDelay, so one came before the end.
	if len(calls) < 2 {
		t.Errorf("100 saves in %v gave %d snapshots: none while they went on", elapsed.Round(time.Millisecond), len(calls))
	}
	for _, c := range calls {
		if !slices.Equal(c, []string{"hot"}) && !slices.Equal(c, []string{"sentinel"}) && !slices.Equal(c, []string{"hot", "sentinel"}) {
			t.Errorf("call %q", c)
		}
	}
	if m := rec.maxActive.Load(); m != 1 {
		t.Errorf("%d snapshots ran at once", m)
	}
	t.Logf("100 saves in %v: %d snapshots (bound %d)", elapsed.Round(time.Millisecond), len(calls), bound)
}

// TestWatchQueuesDuringSnapshot checks that changes made while a snapshot
// runs go to the next one, which waits for it.
func TestWatchQueuesDuringSnapshot(t *testing.T) {
	root := t.TempDir()
	mkdirs(t, root, "a", "b", "sentinel")
	rec := newRecorder()
	rec.hold = make(chan struct{})
	seen := make(chan string, 10000)
	startWatch(t, root, WatchOptions{
		Debounce: 50 * time.Millisecond, MaxDelay: 10 * time.Second, Snapshot: rec.snapshot,
		Skip: func(rel string, isDir bool) bool { seen <- rel; return false },
	})
	write(t, filepath.Join(root, "a", "1.txt"), "first")
	waitActive(t, rec)
	write(t, filepath.Join(root, "b", "2.txt"), "during the snapshot")
	waitSeen(t, seen, "b/2.txt")
	close(rec.hold)
	calls := rec.settle(t, root)
	if len(calls) < 2 || !slices.Equal(calls[0], []string{"a"}) || !slices.Contains(calls[1], "b") {
		t.Errorf("calls %q, want [a] then one with b", calls)
	}
	if m := rec.maxActive.Load(); m != 1 {
		t.Errorf("%d snapshots ran at once", m)
	}
}

func waitActive(t *testing.T, rec *recorder) {
	t.Helper()
	for end := time.Now().Add(deadline); rec.active.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("no snapshot started")
		}
	}
}

func waitSeen(t *testing.T, seen chan string, rel string) {
	t.Helper()
	timeout := time.After(deadline)
	for {
		select {
		case r := <-seen:
			if r == rel {
				return
			}
		case <-timeout:
			t.Fatalf("the watcher never met %s", rel)
		}
	}
}

// TestWatchFinishesPendingSnapshot checks that Watch, cancelled with a
// change pending, snapshots it before it returns.
func TestWatchFinishesPendingSnapshot(t *testing.T) {
	root := t.TempDir()
	mkdirs(t, root, "sub")
	rec := newRecorder()
	seen := make(chan string, 10000)
	stop := startWatch(t, root, WatchOptions{
		Debounce: time.Hour, MaxDelay: time.Hour, Snapshot: rec.snapshot,
		Skip: func(rel string, isDir bool) bool { seen <- rel; return false },
	})
	write(t, filepath.Join(root, "sub", "f.txt"), "pending")
	waitSeen(t, seen, "sub/f.txt")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if calls := rec.snapshotCalls(); !slices.EqualFunc(calls, [][]string{{"sub"}}, slices.Equal) {
		t.Errorf("calls %q, want the pending [sub]", calls)
	}
}

// TestWatchRetriesFailedSnapshot checks that the directories of a failed
// snapshot are kept for the next one.
func TestWatchRetriesFailedSnapshot(t *testing.T) {
	root := t.TempDir()
	mkdirs(t, root, "a", "b", "sentinel")
	rec := newRecorder()
	var failed atomic.Bool
	rec.do = func(ctx context.Context, changed []string) error {
		if failed.CompareAndSwap(false, true) {
			return errors.New("the disk is full")
		}
		return nil
	}
	errs := make(chan error, 10)
	startWatch(t, root, WatchOptions{
		Debounce: 50 * time.Millisecond, MaxDelay: 200 * time.Millisecond, Snapshot: rec.snapshot,
		OnError: func(err error) { errs <- err },
	})
	write(t, filepath.Join(root, "a", "1.txt"), "lost?")
	rec.waitFor(t, 0, "of a", func(c []string) bool { return slices.Contains(c, "a") })
	write(t, filepath.Join(root, "b", "2.txt"), "next")
	calls := rec.waitFor(t, 1, "of b", func(c []string) bool { return slices.Contains(c, "b") })
	if !slices.ContainsFunc(calls[1:], func(c []string) bool { return slices.Contains(c, "a") }) {
		t.Errorf("calls %q: no snapshot after the failed one holds its directory", calls)
	}
	select {
	case err := <-errs:
		t.Logf("reported: %v", err)
	default:
		t.Errorf("the failed snapshot was not reported")
	}
}

func TestWatchLimitError(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EMFILE} {
		if err := watchErr(errno); !errors.Is(err, ErrWatchLimit) || !errors.Is(err, errno) {
			t.Errorf("watchErr(%v) = %v", errno, err)
		}
	}
	if err := watchErr(syscall.EACCES); errors.Is(err, ErrWatchLimit) {
		t.Errorf("permission denied reported as the watch limit")
	}
}

func TestWatchBadOptions(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	if err := Watch(ctx, root, WatchOptions{}); err == nil {
		t.Error("no snapshot function accepted")
	}
	snap := func(context.Context, []string) error { return nil }
	if err := Watch(ctx, root, WatchOptions{Snapshot: snap, Debounce: -1}); err == nil {
		t.Error("negative debounce accepted")
	}
	if err := Watch(ctx, filepath.Join(root, "missing"), WatchOptions{Snapshot: snap}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing root: %v", err)
	}
}

func TestWatchInitialSnapshot(t *testing.T) {
	root := t.TempDir()
	mkdirs(t, root, "sub", "sentinel")
	rec := newRecorder()
	startWatch(t, root, WatchOptions{Debounce: 50 * time.Millisecond, MaxDelay: 10 * time.Second, Snapshot: rec.snapshot, Initial: true})
	calls := rec.waitFor(t, 0, "at the start", func([]string) bool { return true })
	if !slices.Equal(calls[0], []string{"."}) {
		t.Errorf("first call %q, want the whole root", calls[0])
	}
}

// TestWatchEndsAtFirstErrorWithoutOnError checks that, without OnError, a
// failed snapshot ends the watch with its error.
func TestWatchEndsAtFirstErrorWithoutOnError(t *testing.T) {
	root := t.TempDir()
	mkdirs(t, root, "sub")
	full := errors.New("the disk is full")
	done := make(chan error, 1)
	started := make(chan int, 1)
	go func() {
		done <- Watch(context.Background(), root, WatchOptions{
			Debounce: 50 * time.Millisecond, Initial: true,
			Snapshot: func(context.Context, []string) error { return full },
			Started:  func(n int) { started <- n },
		})
	}()
	select {
	case err := <-done:
		if !errors.Is(err, full) {
			t.Errorf("watch ended with %v, want the snapshot's error", err)
		}
	case <-time.After(deadline):
		t.Fatal("watch went on after a failed snapshot")
	}
	if n := <-started; n != 2 {
		t.Errorf("watched %d directories, want 2", n)
	}
}
