//go:build unix

package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// interruptedAt runs a snapshot of home and cancels it once it has stored
// at least half bytes. It fails the test unless the snapshot stopped.
func interruptedAt(t *testing.T, r *Repo, home string, half int64) *StoppedError {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var prog Progress
	done := make(chan struct{})
	go func() {
		for prog.BytesNew.Load() < half {
			select {
			case <-done:
				return
			case <-time.After(100 * time.Microsecond):
			}
		}
		cancel()
	}()
	_, _, err := r.Snapshot(ctx, home, SnapshotOptions{Progress: &prog})
	close(done)
	if err == nil {
		t.Fatalf("the snapshot finished before it could be interrupted at %d bytes", half)
	}
	var se *StoppedError
	if !errors.Is(err, context.Canceled) || !errors.As(err, &se) {
		t.Fatalf("interrupted snapshot: %v (%T), want a StoppedError for context.Canceled", err, err)
	}
	return se
}

// TestInterruptedSnapshotIsResumed interrupts a snapshot halfway and runs it
// again: the rerun stores only what the first run had not, and the result
// restores exactly.
func TestInterruptedSnapshotIsResumed(t *testing.T) {
	home := t.TempDir()
	for i := range 12 {
		writeFile(t, filepath.Join(home, fmt.Sprintf("d%d", i%3), fmt.Sprintf("f%02d.bin", i)), seededBytes(uint64(100+i), 4<<20))
	}
	writeFile(t, filepath.Join(home, "notes.txt"), []byte("hello\n"))

	// What one uninterrupted run stores.
	clean, cleanLay := newTestRepo(t)
	before := storeBytes(t, cleanLay)
	mustSnapshot(t, clean, home, SnapshotOptions{})
	full := storeBytes(t, cleanLay) - before

	r, lay := newTestRepo(t)
	before = storeBytes(t, lay)
	se := interruptedAt(t, r, home, full/2)
	first := storeBytes(t, lay) - before
	if se.Packs == 0 || first < full/3 {
		t.Fatalf("the run interrupted after storing half of %d bytes kept %d packs, %d bytes", full, se.Packs, first)
	}
	if snaps, _, _ := r.Snapshots(context.Background()); len(snaps) != 0 {
		t.Fatalf("the interrupted run left %d snapshots", len(snaps))
	}

	// Blobs that are not packs of this store are passed over: a pack of
	// another store, and a pack cut short.
	packs := blobSet(t, cleanLay)
	var foreign string
	for d, sz := range packs {
		if sz > 1<<20 {
			foreign = d
			break
		}
	}
	b, err := os.ReadFile(filepath.Join(cleanLay.Root(), "blobs", "sha256", foreign))
	if err != nil {
		t.Fatal(err)
	}
	blobs := filepath.Join(lay.Root(), "blobs", "sha256")
	if err := os.WriteFile(filepath.Join(blobs, foreign), b, 0o600); err != nil {
		t.Fatal(err)
	}
	torn := b[:len(b)-100]
	sum := sha256.Sum256(torn)
	if err := os.WriteFile(filepath.Join(blobs, hex.EncodeToString(sum[:])), torn, 0o600); err != nil {
		t.Fatal(err)
	}
	extra := int64(len(b) + len(torn))

	// The rerun, in a new process.
	r2 := reopen(t, lay)
	before = storeBytes(t, lay)
	var rep SnapshotReport
	s, _ := mustSnapshot(t, r2, home, SnapshotOptions{Report: &rep})
	second := storeBytes(t, lay) - before
	if rep.Adopted.Packs != se.Packs || rep.Adopted.Bytes != se.Bytes {
		t.Errorf("the rerun reused %d packs (%d bytes), the interrupted run kept %d (%d bytes)", rep.Adopted.Packs, rep.Adopted.Bytes, se.Packs, se.Bytes)
	}
	// Stored twice: what the two runs added beyond one clean run.
	again := first + second - full
	t.Logf("clean run %d bytes; interrupted run %d, rerun %d: %d stored twice", full, first, second, again)
	if again > first/20 {
		t.Errorf("the rerun stored %d bytes that the interrupted run had stored (it stored %d; at most 5%% may be stored again)", again, first)
	}
	mustRestoreEqual(t, r2, s, home)
	rep2, err := r2.Verify(context.Background(), VerifyOptions{ReadData: true})
	if err != nil || len(rep2.Problems) > 0 {
		t.Fatalf("verify: %v %v", err, rep2.Problems)
	}

	// A prune removes only the blobs no snapshot needs: the foreign and
	// torn blobs, no adopted pack.
	ps, err := Prune(context.Background(), lay, false)
	if err != nil {
		t.Fatal(err)
	}
	if ps.RemovedBytes != extra {
		t.Errorf("prune removed %d blobs (%d bytes), want the foreign and the torn one (%d bytes)", ps.Removed, ps.RemovedBytes, extra)
	}
	mustRestoreEqual(t, reopen(t, lay), s, home)
}
