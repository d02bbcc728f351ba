package image

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// An unchanged tree gives no new snapshot with SkipUnchanged; a change
// gives one whose parent is the one named.
func TestSnapshotSkipUnchanged(t *testing.T) {
	ctx := context.Background()
	r, _ := newTestRepo(t)
	home := mkhome(t)
	first, _ := mustSnapshot(t, r, home, SnapshotOptions{})
	again, _ := mustSnapshot(t, r, home, SnapshotOptions{Parent: first, SkipUnchanged: true})
	if again.Manifest != first.Manifest {
		t.Fatalf("an unchanged tree made snapshot %s beside %s", again.ID, first.ID)
	}
	snaps, _, err := r.Snapshots(ctx)
	if err != nil || len(snaps) != 1 {
		t.Fatalf("the store holds %d snapshots (%v), want 1", len(snaps), err)
	}
	writeFile(t, filepath.Join(home, "new.txt"), []byte("an edit"))
	next, _ := mustSnapshot(t, r, home, SnapshotOptions{Parent: first, SkipUnchanged: true})
	if next.Manifest == first.Manifest || len(next.Parents) != 1 || next.Parents[0] != first.Manifest {
		t.Fatalf("after an edit: snapshot %s with parents %v, want a new one with parent %s", next.ID, next.Parents, first.ID)
	}
}

// A home restored elsewhere holds what its snapshot holds, though every
// inode and change time differs: SkipUnchanged writes no snapshot, and
// the tree it computed, given back as ParentTree, spares the next run
// reading the files again.
func TestSnapshotSkipUnchangedAfterRestore(t *testing.T) {
	r, _ := newTestRepo(t)
	home := mkhome(t)
	first, _ := mustSnapshot(t, r, home, SnapshotOptions{})
	elsewhere := mustRestoreEqual(t, r, first, home)
	var rep SnapshotReport
	// A file changed within two seconds of a run is read again by the
	// next one, whatever its parent says: this run is taken as later.
	later := time.Now().Add(3 * time.Second)
	again, st := mustSnapshot(t, r, elsewhere, SnapshotOptions{Parent: first, SkipUnchanged: true, Report: &rep, Time: later})
	if again.Manifest != first.Manifest {
		t.Fatalf("the restored home made snapshot %s beside %s", again.ID, first.ID)
	}
	if rep.Tree.IsZero() || rep.Tree == first.Config.Root {
		t.Fatalf("the run's tree is %v: want the restored home's own, not the snapshot's", rep.Tree)
	}
	if st.BytesRead == 0 {
		t.Fatalf("the first run over a restored home read nothing: it cannot have compared the files")
	}
	_, st = mustSnapshot(t, r, elsewhere, SnapshotOptions{Parent: first, SkipUnchanged: true, ParentTree: rep.Tree, Time: later})
	if st.BytesRead != 0 {
		t.Errorf("with ParentTree the run read %d bytes again", st.BytesRead)
	}
	writeFile(t, filepath.Join(elsewhere, "edit.txt"), []byte("changed"))
	next, _ := mustSnapshot(t, r, elsewhere, SnapshotOptions{Parent: first, SkipUnchanged: true, ParentTree: rep.Tree})
	if next.Manifest == first.Manifest {
		t.Fatalf("an edit after a restore made no snapshot")
	}
}
