package image

import (
	"context"
	"path/filepath"
	"testing"
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
