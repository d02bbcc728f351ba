package image

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// benchHome writes a home of many small text files and a few large
// incompressible ones (about 160 MiB).
func benchHome(b *testing.B) string {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "home")
	for d := range 40 {
		for f := range 100 {
			text := []byte(fmt.Sprintf("line %d of file %d in dir %d: the quick brown fox\n", f, f, d))
			var buf []byte
			for len(buf) < 4<<10+f*64 {
				buf = append(buf, text...)
			}
			writeFile(b, filepath.Join(dir, fmt.Sprintf("src/d%02d/f%03d.txt", d, f)), buf)
		}
	}
	for i := range 4 {
		writeFile(b, filepath.Join(dir, fmt.Sprintf("video/v%d.mp4", i)), seededBytes(uint64(100+i), 35<<20))
	}
	return dir
}

// BenchmarkSnapshot snapshots a generated home, or the directory named by
// DVPC_BENCH_HOME (for instance one made by cmd/dvpcbench -keep).
func BenchmarkSnapshot(b *testing.B) {
	home := os.Getenv("DVPC_BENCH_HOME")
	if home == "" {
		home = benchHome(b)
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		r, _ := newTestRepo(b)
		b.StartTimer()
		_, st, err := r.Snapshot(context.Background(), home, SnapshotOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(st.Bytes)
	}
}

func BenchmarkRestore(b *testing.B) {
	home := benchHome(b)
	r, _ := newTestRepo(b)
	s, st, err := r.Snapshot(context.Background(), home, SnapshotOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(st.Bytes)
	b.ResetTimer()
	for i := range b.N {
		out := filepath.Join(b.TempDir(), fmt.Sprint(i))
		if err := r.Restore(context.Background(), s, RestoreOptions{Target: out}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(out)
		b.StartTimer()
	}
}
