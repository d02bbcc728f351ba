package overlay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/dvpc/dvpc/delta"
	"github.com/dvpc/dvpc/image"
)

// Kinds of places, nearest first.
const (
	KindCache  = "cache"
	KindUSB    = "usb"
	KindDVD    = "dvd"
	KindMedium = "medium"
	KindMirror = "mirror"
)

// Place is one place that holds the person's blobs: an attached medium or
// a mirror. Media are read in place; what only mirrors hold is copied
// into the local cache.
type Place struct {
	Kind     string
	Endpoint delta.Endpoint
	// Health and Speed rank mirrors as pull does (see [delta.PullOptions]).
	Health int
	Speed  float64
	// WriteDir is the store directory of a mounted USB key that can be
	// written: sync delivers there too.
	WriteDir string
}

func (p Place) isMedium() bool { return p.Kind != KindMirror }

// ErrDirInUse means the directory a login would write is neither empty nor
// an earlier session of the same store.
var ErrDirInUse = errors.New("the directory is not empty and is not an earlier session of this store")

// LoginOptions say where a login reads from and where it writes.
type LoginOptions struct {
	// Cache is this PC's store for the person's store ID, CacheDir its
	// directory. Ephemeral is set when the login created it.
	Cache     *image.Layout
	CacheDir  string
	Ephemeral bool
	// Places are the media (nearest first) and then the mirrors.
	Places []Place
	// Key is the key to trust when the cache has none yet.
	Key *image.KeyFile
	// Unlock opens the store read through the places.
	Unlock func(ctx context.Context, src image.Source) (*image.Repo, error)
	// Home names the home; "" takes the one pull rules choose.
	Home string
	// Spec names a snapshot (tag, ID, digest prefix); "" takes the newest
	// head. At, when set, takes the snapshot current at that time.
	Spec string
	At   time.Time
	// Dir is where the home is materialised; "" takes the snapshotted
	// path when it is empty or an earlier session, else RAMDir/NAME when
	// RAMDir is set and the home fits in it.
	Dir    string
	RAMDir string
	// Snapshot is the template of the snapshots a login takes (local
	// edits before an update, merges): host, excludes, cache dirs.
	Snapshot image.SnapshotOptions
	// Protect names live store directories no restore writes into.
	Protect  []string
	Progress *image.Progress
	OnError  func(path string, err error)
	// OnPull, when set, receives the pull's report as soon as it is known.
	OnPull func(delta.PullReport)
	// OnTarget, when set, is called with the snapshot the login brings and
	// its profile (nil when it has none) before the home is materialised,
	// so that the apps install meanwhile.
	OnTarget func(snap *image.Snapshot, profile []byte)
}

// LoginReport says what a login did.
type LoginReport struct {
	Session  *Session
	Snapshot *image.Snapshot // what Dir now holds
	Pull     delta.PullReport
	PullErr  error // the places could not be read: the login used the cache alone
	// Updated is set when Dir was an earlier session, brought up to date
	// in place; Local is the snapshot of its edits taken first (nil when
	// there were none).
	Updated bool
	Local   *image.Snapshot
	Merges  []MergeReport
	Places  []PlaceUse
	Elapsed time.Duration
}

// Login brings the newest snapshot of a home from the places into the
// cache (only what no attached medium holds), and materialises it in a
// directory, or brings an earlier session's directory up to date, keeping
// its edits.
func Login(ctx context.Context, o LoginOptions) (*LoginReport, error) {
	start := time.Now()
	rep := &LoginReport{}
	pullStart := time.Now()
	src, lower := openPlaces(ctx, o.Places)
	if len(o.Places) > 0 {
		want := delta.WantLatest
		if o.Spec != "" {
			want = o.Spec
		}
		prep, err := pullPlaces(ctx, o, src, want)
		rep.Pull = prep
		if err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				// Not a place that failed: this PC's disk.
				return rep, fmt.Errorf("fetch into this PC's cache %s: %w", o.CacheDir, err)
			}
			if !hasSnapshots(ctx, o.Cache) {
				return rep, err
			}
			rep.PullErr = err
		}
		if o.OnPull != nil {
			o.OnPull(prep)
		}
	}
	pullTime := time.Since(pullStart)

	stack := image.NewStack(o.Cache, stackPlaces(src, lower)...)
	repo, err := o.Unlock(ctx, stack)
	if err != nil {
		return rep, err
	}
	defer repo.Close()
	hist, _, err := repo.History(ctx)
	if err != nil {
		return rep, err
	}
	home, err := hist.Choose(o.Home, "")
	if err != nil {
		return rep, err
	}
	heads := hist.Heads(home)
	if len(heads) > 1 && o.Spec == "" && o.At.IsZero() {
		// Two PCs: their common ancestors are needed to merge.
		prep, err := pullPlaces(ctx, o, src, delta.WantAll)
		if err == nil {
			rep.Pull.BlobsFetched += prep.BlobsFetched
			rep.Pull.BytesFetched += prep.BytesFetched
			if hist, _, err = repo.History(ctx); err != nil {
				return rep, err
			}
			heads = hist.Heads(home)
		}
	}
	target, err := pickTarget(hist, home, o)
	if err != nil {
		return rep, err
	}

	if o.OnTarget != nil {
		profile, err := repo.SnapshotProfile(ctx, target)
		if err != nil {
			profile = nil // no profile, or one that cannot be read: no apps
		}
		o.OnTarget(target, profile)
	}
	dir, sess, err := chooseDir(o, target)
	if err != nil {
		return rep, err
	}
	if sess == nil {
		sess = &Session{Dir: dir, StoreID: repo.KeyFile().StoreID, Ephemeral: o.Ephemeral, Host: o.Snapshot.Host}
	}
	rep.Session = sess
	if sess.Complete || sess.Updating {
		err = updateInPlace(ctx, repo, hist, sess, target, heads, o, rep)
	} else {
		err = materialise(ctx, repo, hist, sess, target, heads, o, rep)
	}
	rep.Places = placeUses(o, rep.Pull, stack, pullTime)
	sess.Places = rep.Places
	if err != nil {
		if serr := sess.Save(o.CacheDir); serr != nil {
			err = errors.Join(err, serr)
		}
		return rep, err
	}
	if o.Spec == "" && o.At.IsZero() && rep.Snapshot != nil {
		if err := followProfile(ctx, repo, hist, rep.Snapshot, o.Snapshot.MergeProfiles); err != nil {
			return rep, errors.Join(err, sess.Save(o.CacheDir))
		}
	}
	rep.Elapsed = time.Since(start)
	return rep, sess.Save(o.CacheDir)
}

// openPlaces opens the places as one source, media asked first for every
// blob; nil when none answers. It also returns the media, which a stack
// reads in place.
func openPlaces(ctx context.Context, places []Place) (*delta.MirrorSource, []image.Source) {
	var eps []delta.Endpoint
	var lower []image.Source
	var mo delta.MirrorOptions
	for _, p := range places {
		eps = append(eps, p.Endpoint)
		if p.isMedium() {
			mo.Health = append(mo.Health, 0)
			lower = append(lower, p.Endpoint)
		} else {
			mo.Health = append(mo.Health, 1+p.Health)
		}
		mo.Speed = append(mo.Speed, p.Speed)
	}
	if len(eps) == 0 {
		return nil, nil
	}
	ms, err := delta.NewMirrorSource(ctx, eps, mo)
	if err != nil {
		return nil, lower
	}
	return ms, lower
}

// Lower opens the places as the lower layers of a stack over the cache:
// the media, read in place, then every place through the mirrors'
// failover, so that what neither the cache nor a medium holds intact is
// fetched.
func Lower(ctx context.Context, places []Place) []image.Source {
	return stackPlaces(openPlaces(ctx, places))
}

func stackPlaces(src *delta.MirrorSource, media []image.Source) []image.Source {
	if src == nil {
		return media
	}
	return append(media, image.Named("mirrors", src))
}

// pullPlaces pulls want from the places into the cache, leaving on the
// media the packs they hold.
func pullPlaces(ctx context.Context, o LoginOptions, src *delta.MirrorSource, want string) (delta.PullReport, error) {
	if src == nil {
		// Opened again, so that the failure names every place.
		var eps []delta.Endpoint
		for _, p := range o.Places {
			eps = append(eps, p.Endpoint)
		}
		return delta.PullFrom(ctx, eps, o.Cache, delta.PullOptions{Want: want, Key: o.Key})
	}
	var lower []image.Source
	for _, p := range o.Places {
		if p.isMedium() {
			lower = append(lower, p.Endpoint)
		}
	}
	return delta.PullThrough(ctx, src, o.Cache, delta.PullOptions{Want: want, Key: o.Key, Lower: lower})
}

// hasSnapshots reports whether the cache holds any snapshot.
func hasSnapshots(ctx context.Context, st image.Source) bool {
	refs, err := st.Refs(ctx)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(refs, func(r image.Ref) bool { return image.IsSnapshotRef(r.Name) })
}

// pickTarget is the snapshot the login brings: the one named, the one
// current at o.At, else the newest head.
func pickTarget(hist *image.History, home string, o LoginOptions) (*image.Snapshot, error) {
	switch {
	case o.Spec != "":
		return hist.Find(home, o.Spec)
	case !o.At.IsZero():
		return hist.At(home, o.At)
	}
	s, _, err := hist.Latest(home)
	return s, err
}

// chooseDir picks the directory of the login, and its earlier session.
func chooseDir(o LoginOptions, target *image.Snapshot) (string, *Session, error) {
	dir := o.Dir
	if dir == "" {
		dir = target.Config.Path
		if o.RAMDir != "" && o.Ephemeral {
			if fits(o.RAMDir, target.Config.Stats.Bytes) {
				dir = filepath.Join(o.RAMDir, target.Home)
			}
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", nil, err
	}
	sess, err := LoadSession(o.CacheDir, abs)
	switch {
	case err == nil:
		return abs, sess, nil
	case !errors.Is(err, ErrNoSession):
		return "", nil, err
	}
	ents, err := os.ReadDir(abs)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", nil, fmt.Errorf("login into %s: %w", abs, err)
	}
	// A store of this PC inside the directory is left alone: it does not
	// make the directory someone else's.
	for _, e := range ents {
		p := filepath.Join(abs, e.Name())
		if slices.Contains(o.Protect, p) || image.IsStoreDir(p) {
			continue
		}
		return "", nil, fmt.Errorf("login into %s: %w", abs, ErrDirInUse)
	}
	return abs, nil, nil
}

// materialise writes target into an empty directory, or into one an
// interrupted login began, then merges the other heads in.
func materialise(ctx context.Context, repo *image.Repo, hist *image.History, sess *Session, target *image.Snapshot, heads []*image.Snapshot, o LoginOptions, rep *LoginReport) error {
	sess.At(target)
	sess.Complete = false
	if err := sess.Save(o.CacheDir); err != nil {
		return err
	}
	if err := os.MkdirAll(sess.Dir, 0o700); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	// A full disk or a place that stops answering stops the restore: every
	// later file would fail too, and the directory is not a home with some
	// files skipped.
	rctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	onError := func(p string, err error) {
		if stopsLogin(err) {
			stop(err)
			return
		}
		if o.OnError != nil {
			o.OnError(p, err)
		}
	}
	err := repo.Restore(rctx, target, image.RestoreOptions{
		Target: sess.Dir, Overwrite: true, Protect: o.Protect, OnError: onError, Progress: o.Progress,
	})
	if cause := context.Cause(rctx); err != nil && ctx.Err() == nil && stopsLogin(cause) {
		err = cause
	}
	if err != nil {
		return fmt.Errorf("materialise snapshot %s in %s: %w", target.ID, sess.Dir, err)
	}
	sess.Complete = true
	rep.Snapshot = target
	if o.Spec != "" || !o.At.IsZero() {
		return nil
	}
	var err2 error
	rep.Snapshot, rep.Merges, err2 = mergeHeads(ctx, repo, hist, sess, o.CacheDir, target, heads, o.Snapshot, o.Protect)
	return err2
}

// stopsLogin reports whether a failure to restore one file stops the
// login: the local disk is full, or no place gives a blob the login found
// on them (a medium removed or cut short, a mirror gone).
func stopsLogin(err error) bool {
	var de *image.DigestError
	var ce *image.ChunkError
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, image.ErrNotFound) || errors.As(err, &de) ||
		errors.As(err, &ce) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.EIO)
}

// updateInPlace brings an earlier session's directory to target: its edits
// since the session's snapshot are snapshotted first (so nothing is lost),
// then target's changes are merged in by path.
func updateInPlace(ctx context.Context, repo *image.Repo, hist *image.History, sess *Session, target *image.Snapshot, heads []*image.Snapshot, o LoginOptions, rep *LoginReport) error {
	rep.Updated = true
	base, err := hist.Find("", sess.Manifest.String())
	if err != nil {
		return fmt.Errorf("the session's snapshot %s: %w", sess.Snapshot, err)
	}
	if sess.Updating {
		if err := undoStoppedMerge(ctx, repo, sess.Dir, base); err != nil {
			return err
		}
	}
	ours, changed, err := snapshotEdits(ctx, repo, sess, base, o.Snapshot)
	if err != nil {
		return err
	}
	if changed {
		rep.Local = ours
		if hist, _, err = repo.History(ctx); err != nil {
			return err
		}
	}
	if o.Spec != "" || !o.At.IsZero() {
		heads = []*image.Snapshot{target}
	}
	rep.Snapshot, rep.Merges, err = mergeHeads(ctx, repo, hist, sess, o.CacheDir, ours, heads, o.Snapshot, o.Protect)
	return err
}

// snapshotEdits snapshots the session's directory with the session's
// snapshot as parent; changed is false (and the parent returned) when
// nothing changed.
func snapshotEdits(ctx context.Context, repo *image.Repo, sess *Session, parent *image.Snapshot, tmpl image.SnapshotOptions) (*image.Snapshot, bool, error) {
	opts := tmpl
	opts.Home, opts.Parent, opts.SkipUnchanged = parent.Home, parent, true
	if sess.Manifest == parent.Manifest {
		opts.ParentTree = sess.Tree
	}
	var rep image.SnapshotReport
	if opts.Report == nil {
		opts.Report = &rep
	}
	snap, _, err := repo.Snapshot(ctx, sess.Dir, opts)
	if err != nil {
		return nil, false, fmt.Errorf("snapshot the edits in %s: %w", sess.Dir, err)
	}
	if snap.Manifest == parent.Manifest {
		// The same home as the parent, as it lies on this disk: the next
		// run compares with this tree and reads nothing again.
		sess.Tree = opts.Report.Tree
		return parent, false, nil
	}
	sess.Wrote(snap)
	sess.At(snap)
	return snap, true, nil
}

// mergeHeads merges into the directory, which holds ours, every head that
// ours does not already descend from: a descendant fast-forwards, another
// head merges by path and gets a snapshot with both parents. It returns
// what the directory holds then.
//
// While it writes the directory, the record in the store directory store
// says so (Updating, not Complete): a login or sync stopped meanwhile leaves
// a directory that is part one snapshot, part another, which the next
// login takes as edits and merges again.
func mergeHeads(ctx context.Context, repo *image.Repo, hist *image.History, sess *Session, store string, ours *image.Snapshot, heads []*image.Snapshot, tmpl image.SnapshotOptions, protect []string) (*image.Snapshot, []MergeReport, error) {
	var merges []MergeReport
	sess.At(ours)
	if _, err := removeMergeTemps(sess.Dir); err != nil {
		return ours, nil, err
	}
	for _, h := range heads {
		lin := hist.Lineage()
		if h.Manifest == ours.Manifest || lin.IsAncestor(h.Signed(), ours.Manifest) {
			continue // already in
		}
		forward := lin.IsAncestor(ours.Signed(), h.Manifest)
		base := ours
		if !forward {
			base = CommonAncestor(hist, ours, h)
		}
		if !sess.Updating {
			sess.Updating, sess.Complete = true, false
			if err := sess.Save(store); err != nil {
				return ours, merges, err
			}
		}
		mr, err := Merge(ctx, repo, sess.Dir, base, ours, h, MergeOptions{Protect: protect})
		merges = append(merges, mr)
		if err != nil {
			return ours, merges, fmt.Errorf("merge snapshot %s into %s: %w", h.ID, sess.Dir, err)
		}
		if err := mergeProfile(ctx, repo, base, ours, h, tmpl.MergeProfiles); err != nil {
			return ours, merges, err
		}
		if forward && len(mr.Conflicts) == 0 {
			ours = h
			sess.At(ours)
			continue
		}
		opts := tmpl
		opts.Home, opts.Parent, opts.Parents = ours.Home, ours, []*image.Snapshot{h}
		merged, _, err := repo.Snapshot(ctx, sess.Dir, opts)
		if err != nil {
			return ours, merges, fmt.Errorf("snapshot the merge in %s: %w", sess.Dir, err)
		}
		sess.Wrote(merged)
		ours = merged
		sess.At(ours)
		if hist, _, err = repo.History(ctx); err != nil {
			return ours, merges, err
		}
	}
	sess.Updating, sess.Complete = false, true
	return ours, merges, nil
}

// removeMergeTemps removes what merges stopped by a crash left in dir:
// their temporary directories, whose content the snapshots hold. found
// reports whether there were any.
func removeMergeTemps(dir string) (found bool, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false, fmt.Errorf("merge into %s: %w", dir, err)
	}
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), MergeTempPrefix) {
			found = true
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return found, fmt.Errorf("remove what a stopped merge left: %w", err)
			}
		}
	}
	return found, nil
}

// undoStoppedMerge removes the temporary directory of a merge into dir
// that was stopped, and gives the directories the mtimes they have in
// base, the snapshot dir held when the merge began: a stopped merge's own
// traces are not the person's edits. What the directories hold is left as
// it is, and is snapshotted as edits.
func undoStoppedMerge(ctx context.Context, repo *image.Repo, dir string, base *image.Snapshot) error {
	if _, err := removeMergeTemps(dir); err != nil {
		return err
	}
	root, err := repo.FindNode(ctx, base, "")
	if err != nil {
		return fmt.Errorf("the session's snapshot %s: %w", base.ID, err)
	}
	var walk func(p string, n *image.Node) error
	walk = func(p string, n *image.Node) error {
		fi, err := os.Lstat(p)
		if err != nil || !fi.IsDir() {
			return nil // gone or replaced: an edit
		}
		tr, err := repo.LoadTree(ctx, n.Subtree)
		if err != nil {
			return fmt.Errorf("the session's snapshot %s: %w", base.ID, err)
		}
		for _, c := range tr.Nodes {
			if c.Type == image.TypeDir {
				if err := walk(filepath.Join(p, string(c.Name)), c); err != nil {
					return err
				}
			}
		}
		if fi.ModTime().Equal(n.Mtime) {
			return nil
		}
		if err := os.Chtimes(p, time.Time{}, n.Mtime); err != nil {
			return fmt.Errorf("undo a stopped merge into %s: %w", dir, err)
		}
		return nil
	}
	return walk(dir, root)
}

// placeUses lists what each place served: the cache and the media read in
// place through the stack, and the blobs the pull copied from each place.
func placeUses(o LoginOptions, prep delta.PullReport, stack *image.StackStore, pullTime time.Duration) []PlaceUse {
	served := map[string]image.PlaceUse{}
	for _, s := range stack.Served() {
		served[s.Name] = s
	}
	cache := served["local"]
	out := []PlaceUse{{Name: o.CacheDir, Kind: KindCache, Blobs: cache.Blobs, Bytes: cache.Bytes, Duration: cache.Time}}
	for _, p := range o.Places {
		u := PlaceUse{Name: p.Endpoint.String(), Kind: p.Kind}
		for _, m := range prep.Mirrors {
			if m.Mirror == u.Name {
				u.Blobs, u.Bytes, u.Duration = m.Blobs, m.Bytes, pullTime
				if !m.Reachable {
					u.Error = "unreachable"
				}
			}
		}
		for _, f := range prep.Failures {
			if f.Mirror == u.Name && !errors.Is(f.Err, image.ErrNotFound) && u.Error == "" {
				u.Error = f.Error()
			}
		}
		if s, ok := served[u.Name]; ok {
			u.Blobs += s.Blobs
			u.Bytes += s.Bytes
			u.Duration += s.Time
			if s.Faults > 0 && u.Error == "" {
				u.Error = fmt.Sprintf("%d damaged blobs, read from the next place instead", s.Faults)
			}
		}
		out = append(out, u)
	}
	return out
}

// fits reports whether n bytes fit in the file system of dir with room to
// spare.
func fits(dir string, n int64) bool {
	for {
		if _, err := os.Stat(dir); err == nil || filepath.Dir(dir) == dir {
			break
		}
		dir = filepath.Dir(dir)
	}
	free, err := freeBytes(dir)
	return err == nil && n < free/2
}
