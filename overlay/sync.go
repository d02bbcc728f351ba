package overlay

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/dvpc/dvpc/delta"
	"github.com/dvpc/dvpc/image"
)

// SyncOptions say what a sync snapshots and where newer snapshots come
// from.
type SyncOptions struct {
	Cache    *image.Layout
	CacheDir string
	Session  *Session
	// Repo is the store opened through the stack of the cache and the
	// attached media.
	Repo *image.Repo
	// Places are where other PCs' snapshots may be: the USB key, the
	// mirrors.
	Places []Place
	// Snapshot is the template of the snapshots sync takes.
	Snapshot image.SnapshotOptions
	// Protect names live store directories no merge writes into.
	Protect []string
}

// SyncReport says what a sync did.
type SyncReport struct {
	// Snapshot is what the directory holds now; Made lists the snapshots
	// this sync wrote (the edits, a merge).
	Snapshot *image.Snapshot
	Made     []*image.Snapshot
	Merges   []MergeReport
	Pull     delta.PullReport
	PullErr  error // no place could be read: nothing was merged
}

// Sync snapshots the session's directory with the session's snapshot as
// parent, brings in the snapshots other PCs made since, and merges them
// into the directory, keeping both versions of a file both sides changed.
// Delivering the snapshots is the caller's (push).
func Sync(ctx context.Context, o SyncOptions) (*SyncReport, error) {
	sess := o.Session
	if !sess.Complete {
		return nil, fmt.Errorf("sync %s: the login that began writing it did not finish; run `dvpc login` again first", sess.Dir)
	}
	rep := &SyncReport{}
	hist, _, err := o.Repo.History(ctx)
	if err != nil {
		return nil, err
	}
	base, err := hist.Find("", sess.Manifest.String())
	if err != nil {
		return nil, fmt.Errorf("the session's snapshot %s: %w", sess.Snapshot, err)
	}
	ours, changed, err := snapshotEdits(ctx, o.Repo, sess, base, o.Snapshot)
	if err != nil {
		return nil, err
	}
	if changed {
		rep.Made = append(rep.Made, ours)
		if err := sess.Save(o.CacheDir); err != nil {
			return rep, err
		}
	}
	rep.Snapshot = ours
	if len(o.Places) > 0 {
		src, _ := openPlaces(ctx, o.Places)
		rep.Pull, rep.PullErr = pullPlaces(ctx, LoginOptions{Cache: o.Cache, Places: o.Places}, src, delta.WantLatest)
	}
	if hist, _, err = o.Repo.History(ctx); err != nil {
		return rep, err
	}
	merged, merges, err := mergeHeads(ctx, o.Repo, hist, sess, o.CacheDir, ours, hist.Heads(ours.Home), o.Snapshot, o.Protect)
	rep.Merges = merges
	if merged.Manifest != ours.Manifest && slices.Contains(sess.Made, merged.Ref) {
		rep.Made = append(rep.Made, merged)
	}
	rep.Snapshot = merged
	if serr := sess.Save(o.CacheDir); serr != nil {
		err = errors.Join(err, serr)
	}
	return rep, err
}

// Delivery says which places hold a snapshot the session made.
type Delivery struct {
	Snapshot string   `json:"snapshot"`
	Places   []string `json:"places"`
}

// Delivered checks, for every snapshot the session made, which of the
// places (mirrors, the USB key; never the cache) name it.
func Delivered(ctx context.Context, sess *Session, places []delta.Endpoint) ([]Delivery, []error) {
	out := make([]Delivery, len(sess.Made))
	for i, m := range sess.Made {
		out[i].Snapshot = m
	}
	var errs []error
	for _, p := range places {
		tags, err := p.Tags(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		}
		for i := range out {
			if slices.Contains(tags, out[i].Snapshot) {
				out[i].Places = append(out[i].Places, p.String())
			}
		}
	}
	return out, errs
}

// Clear removes what the session's directory holds, leaving any store
// directory inside it (and protect) alone; it returns the stores it left.
// Nothing is followed through a symbolic link.
func Clear(dir string, protect []string) ([]string, error) {
	var kept []string
	var clearDir func(d string) (bool, error)
	clearDir = func(d string) (bool, error) {
		if slices.Contains(protect, d) || image.IsStoreDir(d) {
			kept = append(kept, d)
			return false, nil
		}
		ents, err := os.ReadDir(d)
		if err != nil {
			return false, err
		}
		empty := true
		for _, e := range ents {
			p := filepath.Join(d, e.Name())
			if e.IsDir() {
				gone, err := clearDir(p)
				if err != nil {
					return false, err
				}
				if !gone {
					empty = false
					continue
				}
				if err := os.Remove(p); err != nil {
					return false, err
				}
				continue
			}
			if err := os.Remove(p); err != nil {
				return false, err
			}
		}
		return empty, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if _, err := clearDir(abs); err != nil {
		return kept, fmt.Errorf("clear %s: %w", abs, err)
	}
	return kept, nil
}
