//go:build linux

package image

// A restore with overwrite into a tree that someone else can write: they
// swap directories for links while the restore runs. Nothing may ever be
// written, removed or changed outside the target.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// rcState describes everything at and below dir, links not followed: type
// and mode, mtime, and a file's content or a link's target.
func rcState(t *testing.T, dir string) map[string]string {
	t.Helper()
	st := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		desc := fmt.Sprintf("%v mtime=%d", fi.Mode(), fi.ModTime().UnixNano())
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" %q", b)
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		}
		rel, _ := filepath.Rel(dir, p)
		st[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func rcRequireSame(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	var diffs []string
	for k, v := range before {
		if after[k] != v {
			diffs = append(diffs, fmt.Sprintf("%s: %s, was %s", k, after[k], v))
		}
	}
	for k, v := range after {
		if _, ok := before[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: new, %s", k, v))
		}
	}
	if len(diffs) > 0 {
		t.Fatalf("%s changed:\n  %s", what, strings.Join(diffs, "\n  "))
	}
}

// TestRestoreRaceLinkSwap restores over a target in which another process
// keeps exchanging a directory of the snapshot with a link to a directory
// outside (renameat2 RENAME_EXCHANGE, atomic), many times over. Entries
// may fail; the outside directory must stay exactly as it was.
func TestRestoreRaceLinkSwap(t *testing.T) {
	ctx := context.Background()
	r := sfRepo(t)
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	sfWrite(t, outside, map[string]string{"victim": "precious", "sub/deep": "also precious"})
	if err := os.Chmod(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	before := rcState(t, outside)

	src := filepath.Join(base, "src")
	files := map[string]string{"top.txt": "top"}
	for i := range 100 {
		files[fmt.Sprintf("docs/f%03d", i)] = fmt.Sprintf("file %d", i)
		files[fmt.Sprintf("docs/sub/g%03d", i)] = fmt.Sprintf("deep %d", i)
	}
	files["docs/victim"] = "from the snapshot"
	sfWrite(t, src, files)
	for _, d := range []string{"docs", "docs/sub"} {
		if err := os.Chmod(filepath.Join(src, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	snap := sfSnapshot(t, r, src)

	target := filepath.Join(base, "target")
	if err := r.Restore(ctx, snap, RestoreOptions{Target: target}); err != nil {
		t.Fatal(err)
	}
	docs, swap := filepath.Join(target, "docs"), filepath.Join(target, ".swap")

	var stop atomic.Bool
	var swaps atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; !stop.Load(); n++ {
			// Keep a link to the outside at .swap, or at docs.
			dfi, derr := os.Lstat(docs)
			sfi, serr := os.Lstat(swap)
			docsLink := derr == nil && dfi.Mode()&fs.ModeSymlink != 0
			swapLink := serr == nil && sfi.Mode()&fs.ModeSymlink != 0
			if !docsLink && !swapLink {
				if serr == nil {
					os.Rename(swap, filepath.Join(target, fmt.Sprintf(".old%d", n)))
				}
				os.Symlink(outside, swap)
			}
			if unix.Renameat2(unix.AT_FDCWD, docs, unix.AT_FDCWD, swap, unix.RENAME_EXCHANGE) == nil {
				swaps.Add(1)
			}
		}
	}()
	var partial int
	for range 25 {
		err := r.Restore(ctx, snap, RestoreOptions{Target: target, Overwrite: true})
		var pe *PartialError
		switch {
		case err == nil:
		case errors.As(err, &pe):
			partial++
		default:
			stop.Store(true)
			wg.Wait()
			t.Fatalf("restore: %v", err)
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d link swaps during 25 restores; %d restores reported entries they could not restore", swaps.Load(), partial)
	if swaps.Load() == 0 {
		t.Fatal("the directory was never swapped for a link: the test proves nothing")
	}
	rcRequireSame(t, "the directory outside the target", before, rcState(t, outside))

	// Left alone, the target restores whole.
	if err := r.Restore(ctx, snap, RestoreOptions{Target: target, Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		if b, err := os.ReadFile(filepath.Join(target, filepath.FromSlash(name))); err != nil || string(b) != want {
			t.Fatalf("%s after a quiet restore: %q, %v; want %q", name, b, err, want)
		}
	}
}

// TestRestoreHandlesRefuseLinks checks the directory handles below the
// restore: a link where a directory is expected is refused when it is
// opened, alone, with openat2 and with the walk it falls back to.
func TestRestoreHandlesRefuseLinks(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	sfWrite(t, outside, map[string]string{"sub/victim": "precious"})
	before := rcState(t, outside)
	target := filepath.Join(base, "target")
	sfWrite(t, target, map[string]string{"real/sub/x": "x"})
	if err := os.Symlink(outside, filepath.Join(target, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(target, "inside")); err != nil {
		t.Fatal(err)
	}
	root, err := openTarget(target)
	if err != nil {
		t.Fatal(err)
	}
	defer root.release()

	for _, name := range []string{"link", "inside"} {
		if d, err := root.openDir(name); err == nil {
			d.release()
			t.Errorf("openDir(%s) followed a link", name)
		}
		if d, err := root.openBeneath(name + "/sub"); err == nil {
			d.release()
			t.Errorf("openBeneath(%s/sub) followed a link", name)
		}
		if fd, err := walkBeneath(root.fd, name+"/sub"); err == nil {
			unix.Close(fd)
			t.Errorf("walkBeneath(%s/sub) followed a link", name)
		}
		if fd, err := openat2Beneath(root.fd, name+"/sub"); err == nil {
			unix.Close(fd)
			t.Errorf("openat2Beneath(%s/sub) followed a link", name)
		} else if errors.Is(err, errNoOpenat2) {
			t.Logf("this kernel has no openat2; the walk was checked")
		}
	}
	for _, rel := range []string{"../outside", "real/../../outside"} {
		if fd, err := walkBeneath(root.fd, rel); err == nil {
			unix.Close(fd)
			t.Errorf("walkBeneath(%s) left the target", rel)
		}
		if fd, err := openat2Beneath(root.fd, rel); err == nil {
			unix.Close(fd)
			t.Errorf("openat2Beneath(%s) left the target", rel)
		}
	}
	// What is inside is reached both ways.
	for _, open := range []func(int, string) (int, error){walkBeneath, openat2Beneath} {
		fd, err := open(root.fd, "real/sub")
		if errors.Is(err, errNoOpenat2) {
			continue
		}
		if err != nil {
			t.Fatalf("open real/sub: %v", err)
		}
		var st unix.Stat_t
		if err := unix.Fstatat(fd, "x", &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Errorf("real/sub opened, but x is not in it: %v", err)
		}
		unix.Close(fd)
	}
	// Files are made beside a link, never through it; a link in the way of
	// a removal is removed itself.
	if f, err := root.create("link"); err == nil {
		f.Close()
		t.Error("create followed or replaced a link")
	}
	if err := root.removeAll("link"); err != nil {
		t.Fatal(err)
	}
	rcRequireSame(t, "the directory outside the target", before, rcState(t, outside))
}
