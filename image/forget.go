package image

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// KeepPolicy says which snapshots forget keeps, as restic's forget does:
// the Last newest; the newest of each of the last Hourly hours, Daily
// days, Weekly ISO weeks, Monthly months and Yearly years that have a
// snapshot; and every one taken within Within of the newest. The newest
// snapshot is always kept.
type KeepPolicy struct {
	Last, Hourly, Daily, Weekly, Monthly, Yearly int
	Within                                       time.Duration
}

// IsZero reports whether the policy keeps nothing on its own.
func (p KeepPolicy) IsZero() bool { return p == KeepPolicy{} }

// Apply splits snaps (any order) into those to keep, each with the rules
// that keep it, and those to remove, both oldest first. Buckets (hours,
// days...) are taken in loc. Apply it to the snapshots of one home.
func (p KeepPolicy) Apply(snaps []*Snapshot, loc *time.Location) (keep map[*Snapshot][]string, remove []*Snapshot) {
	byNew := slices.Clone(snaps)
	slices.SortStableFunc(byNew, func(a, b *Snapshot) int {
		if c := b.Time().Compare(a.Time()); c != 0 {
			return c
		}
		return cmpU64(b.Config.Seq, a.Config.Seq)
	})
	keep = map[*Snapshot][]string{}
	if len(byNew) == 0 {
		return keep, nil
	}
	keep[byNew[0]] = append(keep[byNew[0]], "newest")
	// The highest sequence number too, should a clock have gone back.
	top := slices.MaxFunc(byNew, func(a, b *Snapshot) int { return cmpU64(a.Config.Seq, b.Config.Seq) })
	if top != byNew[0] {
		keep[top] = append(keep[top], "newest")
	}
	for i, s := range byNew {
		if i < p.Last {
			keep[s] = append(keep[s], "last")
		}
		if p.Within > 0 && byNew[0].Time().Sub(s.Time()) <= p.Within {
			keep[s] = append(keep[s], "within "+p.Within.String())
		}
	}
	buckets := []struct {
		name string
		n    int
		key  func(t time.Time) string
	}{
		{"hourly", p.Hourly, func(t time.Time) string { return t.Format("2006-01-02 15") }},
		{"daily", p.Daily, func(t time.Time) string { return t.Format("2006-01-02") }},
		{"weekly", p.Weekly, func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%d-W%02d", y, w) }},
		{"monthly", p.Monthly, func(t time.Time) string { return t.Format("2006-01") }},
		{"yearly", p.Yearly, func(t time.Time) string { return t.Format("2006") }},
	}
	for _, b := range buckets {
		seen := map[string]bool{}
		for _, s := range byNew {
			if len(seen) >= b.n {
				break
			}
			k := b.key(s.Time().In(loc))
			if seen[k] {
				continue
			}
			seen[k] = true // the newest of its bucket
			keep[s] = append(keep[s], b.name)
		}
	}
	for i := len(byNew) - 1; i >= 0; i-- {
		if _, ok := keep[byNew[i]]; !ok {
			remove = append(remove, byNew[i])
		}
	}
	return keep, remove
}

// Forget removes the snapshots' tags and their signatures' tags from the
// store, and records them in its trust state as forgotten. Any snapshot may
// be forgotten, the newest included: the state keeps the highest seq, so
// the next snapshot's is higher, and pull does not bring a forgotten one
// back. Their blobs stay until [Prune].
func (r *Repo) Forget(ctx context.Context, forget []*Snapshot) error {
	if r.st == nil {
		return ErrReadOnly
	}
	if len(forget) == 0 {
		return nil
	}
	drop := map[string]bool{}
	for _, s := range forget {
		drop[s.Ref] = true
		drop[SignatureRef(s.Manifest)] = true
	}
	unlock, err := r.st.Lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	// The state first: should the index not be written, a snapshot still
	// named and recorded as forgotten is only kept from coming back.
	if sf, ok := r.st.(Stateful); ok {
		err := sf.UpdateState(r.kf.StoreID, func(st *State) error {
			for _, s := range forget {
				st.Forget(s.Signed())
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("forget: %w", err)
		}
	}
	return r.st.UpdateRefs(ctx, func(refs []Ref) ([]Ref, error) {
		return slices.DeleteFunc(refs, func(r Ref) bool { return drop[r.Name] }), nil
	})
}

// PruneStats counts what a prune removed and kept.
type PruneStats struct {
	Removed      int
	RemovedBytes int64
	Kept         int
	KeptBytes    int64
}

// Prune deletes the blobs of the layout that no tag needs: the packs and
// indexes of forgotten snapshots, and what an interrupted run left. It
// holds the store's lock, so no snapshot is being written meanwhile, and
// deletes nothing unless every manifest the tags name could be read, nor
// when a head the trust state records is neither named nor forgotten
// (index.json went backwards: a [*MissingHeadsError]). With dryRun it only
// counts.
func Prune(ctx context.Context, l *Layout, dryRun bool) (PruneStats, error) {
	var st PruneStats
	unlock, err := l.Lock(ctx)
	if err != nil {
		return st, err
	}
	defer unlock()
	refs, err := l.Refs(ctx)
	if err != nil {
		return st, err
	}
	if err := checkIndexNotBehind(ctx, l, refs); err != nil {
		return st, err
	}
	need, err := BlobsOf(ctx, l, refs)
	if err != nil {
		return st, fmt.Errorf("prune: a tagged manifest cannot be read, so nothing is deleted (run `dvpc verify`): %w", err)
	}
	needed := map[string]bool{}
	for _, b := range need {
		needed[b.Digest.Hex()] = true
	}
	dir := filepath.Join(l.root, "blobs", "sha256")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return st, err
	}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		d, perr := ParseDigest("sha256:" + e.Name())
		if perr != nil || d.Hex() != e.Name() || !e.Type().IsRegular() {
			continue // not a blob of ours: left alone
		}
		fi, err := e.Info()
		if err != nil {
			return st, err
		}
		if needed[d.Hex()] {
			st.Kept++
			st.KeptBytes += fi.Size()
			continue
		}
		if !dryRun {
			if err := os.Remove(l.blobPath(d)); err != nil {
				return st, fmt.Errorf("prune: %w", err)
			}
		}
		st.Removed++
		st.RemovedBytes += fi.Size()
	}
	if !dryRun && st.Removed > 0 {
		if err := syncDir(dir); err != nil {
			return st, err
		}
	}
	return st, nil
}

// checkIndexNotBehind refuses when the trust state records a head that
// refs neither name nor the owner forgot.
func checkIndexNotBehind(ctx context.Context, l *Layout, refs []Ref) error {
	st, err := l.LoadState()
	if err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	if len(st.Heads) == 0 {
		return nil
	}
	kf, err := ReadKeyFile(ctx, l)
	if err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	if st.StoreID != kf.StoreID {
		return nil // another store's evidence
	}
	present := map[Digest]bool{}
	for _, r := range refs {
		if d, err := DigestFromHash(r.Desc.Digest); err == nil {
			present[d] = true
		}
	}
	if missing := st.Missing(present); len(missing) > 0 {
		return &MissingHeadsError{Op: "prune", Heads: missing}
	}
	return nil
}
