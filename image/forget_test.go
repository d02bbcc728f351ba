package image

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestKeepPolicy(t *testing.T) {
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	// Oldest first: two a day on 1–3 March, then one on 10 March, one on
	// 2 April and one in 2025.
	times := []string{
		"2025-12-31T10:00:00Z",
		"2026-03-01T09:00:00Z", "2026-03-01T18:00:00Z",
		"2026-03-02T09:00:00Z", "2026-03-02T18:00:00Z",
		"2026-03-03T09:00:00Z", "2026-03-03T18:00:00Z",
		"2026-03-10T12:00:00Z",
		"2026-04-02T12:00:00Z",
	}
	var snaps []*Snapshot
	for i, s := range times {
		snaps = append(snaps, &Snapshot{ID: s, Config: &SnapshotConfig{Seq: uint64(i + 1), Time: at(s)}})
	}
	// Shuffled in: Apply must not depend on the order given.
	given := slices.Clone(snaps)
	given[0], given[5] = given[5], given[0]
	kept := func(p KeepPolicy) []int {
		keep, remove := p.Apply(given, time.UTC)
		var out []int
		for i, s := range snaps {
			if _, ok := keep[s]; ok {
				out = append(out, i)
			}
		}
		if len(out)+len(remove) != len(snaps) {
			t.Fatalf("%+v: %d kept and %d removed of %d", p, len(out), len(remove), len(snaps))
		}
		for i := 1; i < len(remove); i++ {
			if remove[i].Config.Seq < remove[i-1].Config.Seq {
				t.Fatalf("%+v: removals not oldest first", p)
			}
		}
		return out
	}
	for _, tc := range []struct {
		p    KeepPolicy
		want []int
	}{
		{KeepPolicy{}, []int{8}}, // the newest always
		{KeepPolicy{Last: 3}, []int{6, 7, 8}},
		{KeepPolicy{Daily: 3}, []int{6, 7, 8}},
		{KeepPolicy{Daily: 5}, []int{2, 4, 6, 7, 8}},
		{KeepPolicy{Weekly: 2}, []int{7, 8}},                                 // ISO weeks 14 and 11
		{KeepPolicy{Weekly: 3}, []int{6, 7, 8}},                              // and week 10, its newest
		{KeepPolicy{Monthly: 2, Yearly: 2}, []int{0, 7, 8}},                  // April, March; 2026, 2025
		{KeepPolicy{Within: 24 * 24 * time.Hour}, []int{7, 8}},               // 24 days before 2 April
		{KeepPolicy{Hourly: 2}, []int{7, 8}},                                 // the two newest hours
		{KeepPolicy{Last: 1, Daily: 2, Monthly: 1}, []int{7, 8}},             // overlaps count once
		{KeepPolicy{Last: 100}, []int{0, 1, 2, 3, 4, 5, 6, 7, 8}},            // more than there are
		{KeepPolicy{Daily: 1, Within: time.Nanosecond, Yearly: 1}, []int{8}}, // all on the newest
		{KeepPolicy{Monthly: 3}, []int{0, 7, 8}},                             // December 2025 too
		{KeepPolicy{Daily: 2, Weekly: 1}, []int{7, 8}},                       // the newest of week 14
		{KeepPolicy{Hourly: 4}, []int{5, 6, 7, 8}},                           // four distinct hours
		{KeepPolicy{Daily: 4}, []int{4, 6, 7, 8}},                            // 2 March's evening
		{KeepPolicy{Yearly: 1, Last: 2}, []int{7, 8}},                        // 2026's newest is the newest
		{KeepPolicy{Within: 3 * 24 * time.Hour, Last: 1}, []int{8}},          // nothing else within 3 days
		{KeepPolicy{Within: 31 * 24 * time.Hour}, []int{4, 5, 6, 7, 8}},      // from 2 March 12:00
		{KeepPolicy{Weekly: 10}, []int{0, 2, 6, 7, 8}},                       // 1 March is a Sunday: week 9; 31 December 2025 is in 2026-W01
		{KeepPolicy{Monthly: 1, Daily: 1, Hourly: 1, Weekly: 1}, []int{8}},   // one snapshot answers all
		{KeepPolicy{Last: 2, Within: 8 * 24 * time.Hour}, []int{7, 8}},       // nothing else within 8 days
	} {
		if got := kept(tc.p); !slices.Equal(got, tc.want) {
			t.Errorf("%+v kept %v, want %v", tc.p, got, tc.want)
		}
	}
}

// TestForgetPrune: forgetting snapshots and pruning frees the blobs only
// they needed, keeps every blob the others need (they restore identically
// and verify, reading all data), and a dry run deletes nothing. A stray blob left by an interrupted run goes too.
func TestForgetPrune(t *testing.T) {
	ctx := context.Background()
	r, lay := newTestRepo(t)
	home := mkhome(t)
	var snaps []*Snapshot
	var wants []string
	for range 3 {
		b := make([]byte, 3<<20)
		rand.Read(b)
		writeFile(t, filepath.Join(home, "docs", "week.bin"), b) // replaced each time
		s, _ := mustSnapshot(t, r, home, SnapshotOptions{})
		snaps = append(snaps, s)
		// The restore, equal to the home now, is what it must give later.
		wants = append(wants, mustRestoreEqual(t, r, s, home))
	}

	before := blobSet(t, lay)
	// A stray blob, as a killed run leaves it.
	stray := DigestOf([]byte("stray"))
	if err := os.WriteFile(lay.blobPath(stray), []byte("stray"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := Prune(ctx, lay, false)
	if err != nil || st.Removed != 1 || st.RemovedBytes != 5 {
		t.Fatalf("prune of the stray blob: %+v, %v", st, err)
	}
	if got := blobSet(t, lay); !mapsEqual(got, before) {
		t.Fatalf("prune changed more than the stray blob")
	}

	// Forget the middle snapshot: its 3 MiB pack goes, the others' stay.
	if err := r.Forget(ctx, snaps[1:2]); err != nil {
		t.Fatal(err)
	}
	dry, err := Prune(ctx, lay, true)
	if err != nil || dry.Removed == 0 || dry.RemovedBytes < 3<<20 {
		t.Fatalf("dry run: %+v, %v", dry, err)
	}
	if got := blobSet(t, lay); !mapsEqual(got, before) {
		t.Fatal("a dry run deleted blobs")
	}
	st, err = Prune(ctx, lay, false)
	if err != nil || st != dry {
		t.Fatalf("prune: %+v, %v; the dry run said %+v", st, err, dry)
	}
	after := blobSet(t, lay)
	if len(after) != len(before)-st.Removed {
		t.Fatalf("%d blobs before, %d removed, %d left", len(before), st.Removed, len(after))
	}
	r2 := reopen(t, lay)
	left, probs, err := r2.Snapshots(ctx)
	if err != nil || len(probs) > 0 || len(left) != 2 || left[0].ID != snaps[0].ID || left[1].ID != snaps[2].ID {
		t.Fatalf("snapshots after forget: %v %v %v", left, probs, err)
	}
	mustRestoreEqual(t, r2, left[0], wants[0])
	mustRestoreEqual(t, r2, left[1], wants[2])
	rep, err := r2.Verify(ctx, VerifyOptions{ReadData: true})
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("verify after prune: %v %v", rep.Problems, err)
	}
	// Pruning again finds nothing.
	if st, err := Prune(ctx, lay, false); err != nil || st.Removed != 0 {
		t.Fatalf("second prune: %+v, %v", st, err)
	}

	// A manifest that cannot be read stops the prune before it deletes.
	if err := r2.Forget(ctx, left[:1]); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(lay.blobPath(left[1].Manifest)); err != nil {
		t.Fatal(err)
	}
	n := len(blobSet(t, lay))
	if _, err := Prune(ctx, lay, false); err == nil {
		t.Fatal("prune with a missing manifest should fail")
	}
	if len(blobSet(t, lay)) != n {
		t.Fatal("a failed prune deleted blobs")
	}
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
