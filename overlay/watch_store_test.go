package overlay

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/dvpc/dvpc/image"
)

// TestWatchSnapshotsWhatChangedAndSkipsTheRest watches a home that holds
// its own store, a tagged cache, the user's cache directory and ignored
// files, with real snapshots: changes to what snapshots leave out never
// call Snapshot (not even the snapshots' own writes to the store), and an
// edit lands in a new snapshot.
func TestWatchSnapshotsWhatChangedAndSkipsTheRest(t *testing.T) {
	ctx := context.Background()
	home := filepath.Join(t.TempDir(), "home")
	write(t, filepath.Join(home, "docs", "a.txt"), "first")
	write(t, filepath.Join(home, "tagged", image.CacheDirTag), "Signature: 8a477f597d28d172789f06886806bc55\n")
	write(t, filepath.Join(home, ".cache", "thumbs", "1.png"), "png")
	write(t, filepath.Join(home, "proj", image.IgnoreFile), "*.o\n")
	write(t, filepath.Join(home, "proj", "main.c"), "int main;")
	mkdirs(t, home, "sentinel")
	lay, err := image.InitLayout(filepath.Join(home, ".local", "share", "dvpc", "store"))
	if err != nil {
		t.Fatal(err)
	}
	argon := image.Argon2Params{Time: 1, MemoryKiB: 8 << 10, Threads: 1}
	if _, _, err := image.Init(ctx, lay, []byte("pass"), argon); err != nil {
		t.Fatal(err)
	}
	repo, _, err := image.Open(ctx, lay, []byte("pass"))
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	opts := image.SnapshotOptions{CacheDirs: []string{filepath.Join(home, ".cache")}, OnError: func(p string, err error) { t.Errorf("snapshot: %s: %v", p, err) }}
	if _, _, err := repo.Snapshot(ctx, home, opts); err != nil {
		t.Fatal(err)
	}
	ex, err := repo.Excluder(home, opts)
	if err != nil {
		t.Fatal(err)
	}

	rec := newRecorder()
	var last *image.Snapshot // written by the snapshots, read after they are recorded
	rec.do = func(ctx context.Context, changed []string) error {
		o := opts
		o.Changed = changed
		s, _, err := repo.Snapshot(ctx, home, o)
		if err == nil {
			last = s
		}
		return err
	}
	startWatch(t, home, WatchOptions{Debounce: 100 * time.Millisecond, MaxDelay: 10 * time.Second, Snapshot: rec.snapshot, Skip: ex.Excluded})

	write(t, filepath.Join(home, "tagged", "blob"), "cached")
	write(t, filepath.Join(home, "tagged", "sub", "more"), "cached")
	write(t, filepath.Join(home, ".cache", "thumbs", "2.png"), "png")
	write(t, filepath.Join(home, "proj", "main.o"), "object")
	calls := rec.settle(t, home)
	if !slices.EqualFunc(calls, [][]string{{"sentinel"}}, slices.Equal) {
		t.Fatalf("changes to what snapshots leave out gave calls %q", calls)
	}
	// That snapshot wrote to the store inside the home: no call comes of it.
	calls = rec.settle(t, home)
	if !slices.EqualFunc(calls, [][]string{{"sentinel"}, {"sentinel"}}, slices.Equal) {
		t.Fatalf("the snapshot's own writes gave calls %q", calls)
	}

	write(t, filepath.Join(home, "docs", "a.txt"), "second, longer")
	rec.waitFor(t, 2, "of docs", func(c []string) bool { return slices.Contains(c, "docs") })
	n, err := repo.FindNode(ctx, last, "docs/a.txt")
	if err != nil {
		t.Fatal(err)
	}
	if n.Size != int64(len("second, longer")) {
		t.Errorf("docs/a.txt has size %d in the snapshot after the edit", n.Size)
	}
	for _, p := range []string{"proj/main.o", "tagged", ".cache", ".local/share/dvpc/store"} {
		if _, err := repo.FindNode(ctx, last, p); err == nil {
			t.Errorf("%s was snapshotted", p)
		}
	}
	if _, err := repo.FindNode(ctx, last, "proj/main.c"); err != nil {
		t.Errorf("proj/main.c: %v", err)
	}

	// A directory that becomes a cache leaves the next snapshot, and its
	// changes call nothing after that.
	n0 := len(rec.snapshotCalls())
	tag := filepath.Join(t.TempDir(), image.CacheDirTag) // moved in whole, as tools do
	write(t, tag, "Signature: 8a477f597d28d172789f06886806bc55\n")
	if err := os.Rename(tag, filepath.Join(home, "docs", image.CacheDirTag)); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, n0, "of the new cache", func(c []string) bool { return slices.Contains(c, "docs") })
	if _, err := repo.FindNode(ctx, last, "docs"); err == nil {
		t.Errorf("docs, now a cache, is still snapshotted")
	}
	n0 = len(rec.snapshotCalls())
	write(t, filepath.Join(home, "docs", "b.txt"), "in a cache")
	calls = rec.settle(t, home)
	if !slices.EqualFunc(calls[n0:], [][]string{{"sentinel"}}, slices.Equal) {
		t.Errorf("changes in a new cache gave calls %q", calls[n0:])
	}
}
