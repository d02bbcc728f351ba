//go:build unix

package image

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// TestRestoreSetid restores files with setuid and setgid bits: cleared by
// default, each such file reported; kept with KeepSetid. A directory's
// setgid bit (new entries take its group; nothing runs with it) is kept.
func TestRestoreSetid(t *testing.T) {
	ctx := context.Background()
	r := sfRepo(t)
	src := filepath.Join(t.TempDir(), "src")
	sfWrite(t, src, map[string]string{"bin/suid": "#!/bin/sh\n", "bin/sgid": "#!/bin/sh\n", "bin/plain": "#!/bin/sh\n", "shared/x": "x"})
	modes := map[string]fs.FileMode{
		"bin/suid":  0o755 | fs.ModeSetuid,
		"bin/sgid":  0o750 | fs.ModeSetgid,
		"bin/plain": 0o755,
		"shared":    0o775 | fs.ModeDir | fs.ModeSetgid,
	}
	for name, m := range modes {
		if err := os.Chmod(filepath.Join(src, name), m&^fs.ModeDir); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Lstat(filepath.Join(src, name)); err != nil || fi.Mode() != m {
			t.Fatalf("%s has mode %v (%v) before the snapshot, want %v", name, fi.Mode(), err, m)
		}
	}
	s := sfSnapshot(t, r, src)

	for _, keep := range []bool{false, true} {
		target := filepath.Join(t.TempDir(), "out")
		var mu sync.Mutex
		var cleared []string
		err := r.Restore(ctx, s, RestoreOptions{Target: target, KeepSetid: keep, OnSetidCleared: func(p string) {
			mu.Lock()
			cleared = append(cleared, p)
			mu.Unlock()
		}})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]fs.FileMode{}
		for name, m := range modes {
			want[name] = m
		}
		var wantCleared []string
		if !keep {
			want["bin/suid"], want["bin/sgid"] = 0o755, 0o750
			wantCleared = []string{filepath.Join(target, "bin", "sgid"), filepath.Join(target, "bin", "suid")}
			for i := range wantCleared {
				wantCleared[i], _ = filepath.EvalSymlinks(wantCleared[i])
			}
		}
		for name, m := range want {
			fi, err := os.Lstat(filepath.Join(target, name))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != m {
				t.Errorf("KeepSetid=%v: %s restored with mode %v, want %v", keep, name, fi.Mode(), m)
			}
		}
		slices.Sort(cleared)
		if !slices.Equal(cleared, wantCleared) {
			t.Errorf("KeepSetid=%v: reported cleared %v, want %v", keep, cleared, wantCleared)
		}
	}
}
