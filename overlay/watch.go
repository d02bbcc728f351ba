package overlay

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// ErrWatchLimit means the system refused to watch more directories (on
// Linux, fs.inotify.max_user_watches or max_user_instances; elsewhere, open
// files).
var ErrWatchLimit = errors.New("the system's limit on watched directories was reached")

// Defaults of [WatchOptions].
const (
	DefaultDebounce = 2 * time.Second
	DefaultMaxDelay = 60 * time.Second
)

// WatchOptions tune [Watch].
type WatchOptions struct {
	// Debounce is how long after the last change a snapshot is taken
	// (DefaultDebounce when zero).
	Debounce time.Duration
	// MaxDelay bounds how long a change waits while changes go on
	// (DefaultMaxDelay when zero).
	MaxDelay time.Duration
	// Skip reports whether an entry, slash-separated and relative to the
	// root, is left out of snapshots (see image.Excluder): changes to it
	// never call Snapshot, and a skipped directory is not watched.
	Skip func(rel string, isDir bool) bool
	// Snapshot records the root; changed lists the directories with
	// changes since the last call that succeeded, slash-separated and
	// relative to the root ("." for the root), none inside another (see
	// image.SnapshotOptions.Changed). It is never called concurrently, and
	// its context is not cancelled with Watch's: a snapshot started is
	// finished.
	Snapshot func(ctx context.Context, changed []string) error
	// OnError receives what does not end the watch: a failed snapshot
	// (its directories are kept for the next one, tried at least MaxDelay
	// later), a directory that could not be watched, lost events. When nil,
	// the first such error ends the watch.
	OnError func(error)
	// Started, when set, is called once every directory is watched, with
	// their number.
	Started func(dirs int)
	// Initial asks for a snapshot of the whole root (changed is ["."]) once
	// every directory is watched: changes made before that, since the last
	// snapshot, are not seen otherwise.
	Initial bool
}

// Watch watches every directory below root that Skip does not leave out,
// adding new ones as they appear, and calls Snapshot Debounce after the
// last change, and at least every MaxDelay while changes go on. When ctx is
// done it stops watching, finishes the running and the pending snapshot,
// and returns nil, or the error that ended the watch.
func Watch(ctx context.Context, root string, opts WatchOptions) error {
	if opts.Snapshot == nil {
		return errors.New("watch: no snapshot function")
	}
	if opts.Debounce < 0 || opts.MaxDelay < 0 {
		return fmt.Errorf("watch: negative delay (debounce %v, max delay %v)", opts.Debounce, opts.MaxDelay)
	}
	if opts.Debounce == 0 {
		opts.Debounce = DefaultDebounce
	}
	if opts.MaxDelay == 0 {
		opts.MaxDelay = DefaultMaxDelay
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return fmt.Errorf("watch %s: %w", root, err)
	}
	if fi, err := os.Stat(abs); err != nil {
		return fmt.Errorf("watch %s: %w", abs, err)
	} else if !fi.IsDir() {
		return fmt.Errorf("watch %s: not a directory", abs)
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", abs, watchErr(err))
	}
	w := &watcher{root: abs, opts: opts, fsw: fsw, dirs: map[string]bool{}, pending: map[string]bool{}}
	defer w.close()
	if err := w.watchTree(""); err != nil {
		return err
	}
	if opts.Started != nil {
		opts.Started(len(w.dirs))
	}
	if opts.Initial {
		w.mark(".")
	}
	return w.loop(ctx)
}

// watcher is the state of one [Watch]; only its loop touches it.
type watcher struct {
	root string
	opts WatchOptions
	fsw  *fsnotify.Watcher
	dirs map[string]bool // watched directories, relative ("" is the root)

	pending     map[string]bool // changed directories not yet snapshotted
	first, last time.Time       // of the pending changes
	notBefore   time.Time       // after a failed snapshot
	fatal       error           // ends the loop when OnError is nil

	// The last write, as a file being written sends many in a row.
	lastWrite, lastWriteDir string // lastWriteDir is "" when it was skipped
}

func (w *watcher) close() {
	w.fsw.Close()
	// fsnotify's reader may be blocked sending; drain what is left.
	for range w.fsw.Events {
	}
}

func (w *watcher) loop(ctx context.Context) error {
	sctx := context.WithoutCancel(ctx)
	done := make(chan error, 1)
	running := false
	var changed []string // of the running snapshot
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for w.fatal == nil {
		if !running && len(w.pending) > 0 {
			if wait := time.Until(w.due()); wait > 0 {
				timer.Reset(wait)
			} else {
				changed = w.take()
				running = true
				go func(changed []string) { done <- w.opts.Snapshot(sctx, changed) }(changed)
			}
		}
		select {
		case <-ctx.Done():
			if running {
				w.finished(changed, <-done)
			}
			if len(w.pending) > 0 && w.fatal == nil {
				last := w.take()
				w.finished(last, w.opts.Snapshot(sctx, last))
			}
			return w.fatal
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return fmt.Errorf("watch %s: the watcher stopped", w.root)
			}
			w.event(ev)
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return fmt.Errorf("watch %s: the watcher stopped", w.root)
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				// Changes were lost: read everything next time, and watch
				// the directories whose creation was lost.
				w.mark(".")
				err = fmt.Errorf("watch %s: too many changes at once; the next snapshot reads everything: %w", w.root, err)
				if werr := w.watchTree(""); werr != nil {
					w.report(werr)
				}
			} else {
				err = fmt.Errorf("watch %s: %w", w.root, err)
			}
			w.report(err)
		case <-timer.C:
		case err := <-done:
			running = false
			w.finished(changed, err)
		}
	}
	if running {
		<-done // a snapshot started is finished, and never outlives Watch
	}
	return w.fatal
}

// due is when the pending changes are to be snapshotted: Debounce after
// the last, MaxDelay after the first at the latest, and not before a
// failed snapshot's retry time.
func (w *watcher) due() time.Time {
	due := w.last.Add(w.opts.Debounce)
	if maxAt := w.first.Add(w.opts.MaxDelay); maxAt.Before(due) {
		due = maxAt
	}
	if w.notBefore.After(due) {
		due = w.notBefore
	}
	return due
}

// finished handles the end of a snapshot of changed: a failure keeps its
// directories for the next one.
func (w *watcher) finished(changed []string, err error) {
	if err == nil {
		return
	}
	now := time.Now()
	if len(w.pending) == 0 {
		w.first = now
		w.last = now
	}
	for _, d := range changed {
		w.pending[d] = true
	}
	w.notBefore = now.Add(w.opts.MaxDelay)
	w.report(fmt.Errorf("watch %s: snapshot: %w", w.root, err))
}

func (w *watcher) report(err error) {
	if w.opts.OnError != nil {
		w.opts.OnError(err)
	} else if w.fatal == nil {
		w.fatal = err
	}
}

// take returns the pending directories, none inside another, and clears them.
func (w *watcher) take() []string {
	dirs := make([]string, 0, len(w.pending))
	for d := range w.pending {
		dirs = append(dirs, d)
	}
	slices.Sort(dirs)
	var out []string
	for _, d := range dirs {
		if !slices.ContainsFunc(out, func(o string) bool { return inside(d, o) }) {
			out = append(out, d)
		}
	}
	clear(w.pending)
	return out
}

// inside reports whether the relative directory p is dir or lies below it.
func inside(p, dir string) bool {
	return dir == "." || p == dir || strings.HasPrefix(p, dir) && p[len(dir)] == '/'
}

// mark records a change in the directory rel ("." for the root).
func (w *watcher) mark(rel string) {
	now := time.Now()
	if len(w.pending) == 0 {
		w.first = now
	}
	w.last = now
	w.pending[rel] = true
}

// event records one notification about an entry: a file's change marks
// its directory, a directory's marks the directory itself (see
// image.SnapshotOptions.Changed: the directories above it are rebuilt
// around it).
func (w *watcher) event(ev fsnotify.Event) {
	rel, err := filepath.Rel(w.root, ev.Name)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return
	}
	rel = filepath.ToSlash(rel)
	if ev.Op == fsnotify.Write && rel == w.lastWrite {
		if w.lastWriteDir != "" {
			w.mark(w.lastWriteDir)
		}
		return
	}
	w.lastWrite = ""
	if rel == "." {
		// The root itself: its own metadata, or it went away.
		w.mark(".")
		return
	}
	gone := ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename)
	isDir := w.dirs[rel]
	if !gone {
		if fi, err := os.Lstat(ev.Name); err == nil {
			isDir = fi.IsDir()
		} else {
			gone = true
		}
	}
	if w.opts.Skip != nil && w.opts.Skip(rel, isDir) {
		if ev.Op == fsnotify.Write {
			w.lastWrite, w.lastWriteDir = rel, ""
		}
		// A watched directory may have become one that snapshots leave
		// out (a CACHEDIR.TAG appeared in it): the next snapshot leaves it
		// out, and it is no longer watched.
		if dir := path.Dir(rel); dir != "." && w.dirs[dir] && w.opts.Skip(dir, true) {
			w.unwatch(dir)
			w.mark(dir)
		}
		return
	}
	switch {
	case gone && w.dirs[rel]:
		// A directory went away: its parent is rebuilt without it.
		w.unwatch(rel)
		w.mark(rel)
	case isDir:
		// A new directory (or one moved in) is watched with what it
		// holds, and read wholly, since it may have filled before its
		// watch; its parent is rebuilt with it. A watched one changed
		// its own metadata.
		if !w.dirs[rel] {
			if err := w.watchTree(rel); err != nil {
				w.report(err)
			}
		}
		w.mark(rel)
	default:
		w.mark(path.Dir(rel))
	}
	if ev.Op == fsnotify.Write {
		w.lastWrite, w.lastWriteDir = rel, path.Dir(rel)
	}
}

// watchTree watches the directory rel and every directory below it that
// Skip does not leave out.
func (w *watcher) watchTree(rel string) error {
	top := filepath.Join(w.root, filepath.FromSlash(rel))
	return filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // gone since: its parent's event says so
			}
			w.report(fmt.Errorf("watch %s: %w", p, err))
			return nil
		}
		if !d.IsDir() {
			return nil
		}
		r, _ := filepath.Rel(w.root, p)
		r = filepath.ToSlash(r)
		if r == "." {
			r = ""
		}
		if r != "" && w.opts.Skip != nil && w.opts.Skip(r, true) {
			return fs.SkipDir
		}
		if w.dirs[r] {
			return nil
		}
		if err := w.fsw.Add(p); err != nil {
			err = watchErr(err)
			if errors.Is(err, ErrWatchLimit) {
				return fmt.Errorf("watch %s: %d directories watched: %w", p, len(w.dirs), err)
			}
			if !errors.Is(err, fs.ErrNotExist) {
				w.report(fmt.Errorf("watch %s: %w", p, err))
			}
			return nil
		}
		w.dirs[r] = true
		return nil
	})
}

// unwatch forgets the directory rel, gone or moved away, and every one
// below it.
func (w *watcher) unwatch(rel string) {
	for d := range w.dirs {
		if d != "" && inside(d, rel) {
			w.fsw.Remove(filepath.Join(w.root, filepath.FromSlash(d))) // the kernel may have dropped it already
			delete(w.dirs, d)
		}
	}
}

// watchErr names the system's watch limits.
func watchErr(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
		return fmt.Errorf("%w: %w", ErrWatchLimit, err)
	}
	return err
}
