package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
)

// ErrTargetNotEmpty means a restore target holds files and --overwrite was
// not given.
var ErrTargetNotEmpty = errors.New("target directory is not empty")

// RestoreOptions tune [Repo.Restore].
type RestoreOptions struct {
	Target string
	// Paths restricts the restore to these slash-separated paths relative to
	// the snapshot root (and what is below them).
	Paths     []string
	Overwrite bool
	// OnError receives each entry that could not be restored; the restore
	// goes on with the others.
	OnError func(path string, err error)
	// Protect names live store directories (the one in use, the default
	// one). A restore never writes inside them, nor inside any directory
	// below the target that [IsStoreDir] recognises: it leaves their
	// subtrees alone and reports each to OnStoreKept.
	Protect []string
	// OnStoreKept receives each store directory the restore left alone.
	OnStoreKept func(dir string)
	// KeepSetid keeps the setuid and setgid bits of files. Without it they
	// are cleared, and each file that lost them goes to OnSetidCleared
	// (called from several goroutines at once).
	KeepSetid      bool
	OnSetidCleared func(path string)
	Progress       *Progress
}

// ErrInsideStore means a restore target lies inside a live store.
var ErrInsideStore = errors.New("restore target is inside a dvpc store")

// PartialError reports a restore in which some entries failed.
type PartialError struct {
	Failed int
	First  error
}

func (e *PartialError) Error() string {
	return fmt.Sprintf("%d entries could not be restored; first: %v", e.Failed, e.First)
}

func (e *PartialError) Unwrap() error { return e.First }

// dirHandle is an open directory of the restore target. Every entry is
// made, opened and changed relative to the handle of its directory, never
// through a path: a directory swapped for a link after it was opened cannot
// redirect what is written into it, and one swapped before is refused. The
// walker and the file workers share a handle; the last to let go closes it.
type dirHandle struct {
	sysDir
	host string // for messages and the store checks
	refs atomic.Int32
}

func (d *dirHandle) retain() { d.refs.Add(1) }

func (d *dirHandle) release() {
	if d.refs.Add(-1) == 0 {
		d.close()
	}
}

type restoreJob struct {
	dir  *dirHandle // retained for the job
	name string
	node *Node
}

type restorer struct {
	r    *Repo
	opts RestoreOptions
	jobs chan restoreJob
	root *dirHandle
	// links maps a hard-link group to the first member's path relative
	// to the target.
	links map[uint64]string
	dirs  []dirMeta
	// hardlinks are made once every file is written: {existing, new},
	// relative to the target.
	hardlinks [][2]string
	failed    atomic.Int64
	first     atomic.Value
	isRoot    bool
	chunks    *semaphore.Weighted // bounds the chunks in flight
	// protect holds the live stores' directories, symlinks resolved.
	protect []string
	kept    map[string]bool // store directories reported as left alone
}

type dirMeta struct {
	rel  string // slash-separated, relative to the target; "" is the target
	host string
	node *Node
}

// rootNode returns the single entry of a snapshot's top tree: the snapshotted
// directory itself.
func (r *Repo) rootNode(ctx context.Context, s *Snapshot) (*Node, error) {
	if err := r.LoadIndex(ctx, s); err != nil {
		return nil, err
	}
	top, err := r.LoadTree(ctx, s.Config.Root)
	if err != nil {
		return nil, err
	}
	if len(top.Nodes) != 1 || top.Nodes[0].Type != TypeDir {
		return nil, fmt.Errorf("snapshot %s: top tree must hold one directory: %w", s.ID, ErrFormat)
	}
	return top.Nodes[0], nil
}

// CleanPath checks and normalises a path inside a snapshot: slash-separated,
// relative, no "..". "" and "." mean the root.
func CleanPath(p string) (string, error) {
	c := path.Clean(strings.TrimLeft(p, "/"))
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("path %q leaves the snapshot", p)
	}
	if c == "." {
		c = ""
	}
	return c, nil
}

// Restore writes a snapshot (or the chosen paths) into opts.Target, which
// becomes the snapshotted directory. It never writes outside the target.
func (r *Repo) Restore(ctx context.Context, s *Snapshot, opts RestoreOptions) error {
	rootNode, err := r.rootNode(ctx, s)
	if err != nil {
		return err
	}
	var sel []string
	for _, p := range opts.Paths {
		c, err := CleanPath(p)
		if err != nil {
			return err
		}
		if c == "" {
			sel = nil
			break
		}
		sel = append(sel, c)
	}
	if len(opts.Paths) > 0 && len(sel) > 0 {
		for _, p := range sel {
			if _, err := r.FindNode(ctx, s, p); err != nil {
				return err
			}
		}
	}
	protect := ResolveDirs(opts.Protect)
	if err := checkTarget(opts.Target, protect); err != nil {
		return err
	}
	target, err := prepareTarget(opts.Target, opts.Overwrite)
	if err != nil {
		return err
	}
	root, err := openTarget(target)
	if err != nil {
		return fmt.Errorf("open restore target: %w", err)
	}
	defer root.release()
	rs := &restorer{r: r, opts: opts, jobs: make(chan restoreJob, 64), root: root, links: map[uint64]string{}, isRoot: os.Geteuid() == 0,
		chunks: semaphore.NewWeighted(restoreChunks()), protect: protect, kept: map[string]bool{}}
	// A live store inside the target is left alone whether or not the
	// snapshot holds a copy of it: say so.
	realTarget, _ := filepath.EvalSymlinks(target)
	for _, p := range protect {
		if p != realTarget && within(p, realTarget) {
			rs.keep(p)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	var workers sync.WaitGroup
	for range 4 * runtime.GOMAXPROCS(0) {
		workers.Add(1)
		g.Go(func() error {
			defer workers.Done()
			return rs.worker(gctx)
		})
	}
	g.Go(func() error {
		defer close(rs.jobs)
		return rs.dir(gctx, root, rootNode, "", sel)
	})
	err = g.Wait()
	// Jobs left when the workers stopped early hold handles: let go.
	for job := range rs.jobs {
		job.dir.release()
	}
	if err != nil {
		return err
	}
	for _, l := range rs.hardlinks {
		if err := rs.link(l[0], l[1]); err != nil {
			rs.fail(rs.hostOf(l[1]), err)
		}
	}
	// Directory metadata last, deepest first, so writing children does not
	// change it.
	for i := len(rs.dirs) - 1; i >= 0; i-- {
		d := rs.dirs[i]
		if err := rs.dirMeta(d.rel, d.node); err != nil {
			rs.fail(d.host, err)
		}
	}
	if n := rs.failed.Load(); n > 0 {
		return &PartialError{Failed: int(n), First: rs.first.Load().(error)}
	}
	return nil
}

func prepareTarget(dir string, overwrite bool) (string, error) {
	if dir == "" {
		return "", errors.New("no restore target: give --to DIR")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(abs, 0o700); err != nil {
			return "", fmt.Errorf("create restore target: %w", err)
		}
	case err != nil:
		return "", err
	case !fi.IsDir():
		return "", fmt.Errorf("restore target %s is not a directory", abs)
	default:
		ents, err := os.ReadDir(abs)
		if err != nil {
			return "", err
		}
		if len(ents) > 0 && !overwrite {
			return "", fmt.Errorf("%s: %w; choose an empty one, or add --overwrite to replace what the snapshot holds", abs, ErrTargetNotEmpty)
		}
	}
	// The target itself may be reached through a symlink the person chose;
	// everything below it is created by the restore and never followed.
	return filepath.EvalSymlinks(abs)
}

func (rs *restorer) fail(p string, err error) {
	rs.failed.Add(1)
	rs.first.CompareAndSwap(nil, fmt.Errorf("%s: %w", p, err))
	if rs.opts.OnError != nil {
		rs.opts.OnError(p, err)
	}
}

// selected says whether rel is chosen, and whether its descendants might be.
func selected(sel []string, rel string) (in, below bool) {
	if len(sel) == 0 {
		return true, true
	}
	for _, s := range sel {
		if rel == s || strings.HasPrefix(rel, s+"/") || s == "" {
			return true, true
		}
		if rel == "" || strings.HasPrefix(s, rel+"/") {
			below = true
		}
	}
	return false, below
}

func (rs *restorer) dir(ctx context.Context, d *dirHandle, node *Node, rel string, sel []string) error {
	rs.dirs = append(rs.dirs, dirMeta{rel: rel, host: d.host, node: node})
	tree, err := rs.r.LoadTree(ctx, node.Subtree)
	if err != nil {
		rs.fail(d.host, err)
		return nil
	}
	for _, n := range tree.Nodes {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		name := string(n.Name)
		crel := path.Join(rel, name)
		in, below := selected(sel, crel)
		if !in && !(below && n.Type == TypeDir) {
			continue
		}
		chost := filepath.Join(d.host, name)
		if rs.isStore(chost) {
			rs.keep(chost)
			continue
		}
		if err := rs.clear(d, name, n.Type == TypeDir); err != nil {
			rs.fail(chost, err)
			continue
		}
		switch n.Type {
		case TypeDir:
			if err := d.mkdir(name); err != nil && !errors.Is(err, fs.ErrExist) {
				rs.fail(chost, err)
				continue
			}
			// Opened without following a link: a directory replaced by
			// one since the check above fails here, alone.
			sub, err := d.openDir(name)
			if err != nil {
				rs.fail(chost, err)
				continue
			}
			err = rs.dir(ctx, sub, n, crel, sel)
			sub.release()
			if err != nil {
				return err
			}
		case TypeFile:
			if n.LinkGroup != 0 {
				if first, ok := rs.links[n.LinkGroup]; ok {
					rs.hardlinks = append(rs.hardlinks, [2]string{first, crel})
					continue
				}
				rs.links[n.LinkGroup] = crel
			}
			// Workers create the files: creating is the slow part on many
			// file systems, and directories can take creates in parallel.
			d.retain()
			select {
			case rs.jobs <- restoreJob{dir: d, name: name, node: n}:
			case <-ctx.Done():
				d.release()
				return ctx.Err()
			}
		case TypeSymlink:
			if err := d.symlink(string(n.Target), name); err != nil {
				rs.fail(chost, err)
				continue
			}
			if err := rs.setMeta(d, name, n, nil); err != nil {
				rs.fail(chost, err)
			}
		case TypeFIFO:
			if err := rs.makeFIFO(d, name, n); err != nil {
				rs.fail(chost, err)
			}
		}
	}
	return nil
}

// clear makes room for an entry: without --overwrite the target is empty;
// with it, whatever is in the way (a symlink above all) is removed, so
// nothing is ever written through a link.
func (rs *restorer) clear(d *dirHandle, name string, wantDir bool) error {
	isDir, err := d.lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !rs.opts.Overwrite {
		return fmt.Errorf("already exists")
	}
	if wantDir && isDir {
		return nil
	}
	if isDir {
		if s := rs.storeBelow(filepath.Join(d.host, name)); s != "" {
			return fmt.Errorf("not replaced: the dvpc store %s is inside it", s)
		}
	}
	return d.removeAll(name)
}

// hostOf returns the path on this system of rel, for messages.
func (rs *restorer) hostOf(rel string) string {
	return filepath.Join(rs.root.host, filepath.FromSlash(rel))
}

// link makes the hard link newRel to oldRel, both below the target,
// through handles of their directories opened without following links.
func (rs *restorer) link(oldRel, newRel string) error {
	od, err := rs.root.openBeneath(path.Dir(oldRel))
	if err != nil {
		return err
	}
	defer od.release()
	nd, err := rs.root.openBeneath(path.Dir(newRel))
	if err != nil {
		return err
	}
	defer nd.release()
	return nd.link(od, path.Base(oldRel), path.Base(newRel))
}

// dirMeta sets the metadata of the directory rel through a handle of it.
func (rs *restorer) dirMeta(rel string, n *Node) error {
	if rel == "" {
		return rs.setMeta(nil, rs.root.host, n, rs.root.file())
	}
	parent, err := rs.root.openBeneath(path.Dir(rel))
	if err != nil {
		return err
	}
	defer parent.release()
	d, err := parent.openDir(path.Base(rel))
	if err != nil {
		return err
	}
	defer d.release()
	return rs.setMeta(parent, path.Base(rel), n, d.file())
}

// mode returns the mode bits to give the entry n at host: setuid and
// setgid are cleared from all but directories unless KeepSetid. On a
// directory setgid only passes its group on to new entries, and no
// program runs with it.
func (rs *restorer) mode(host string, n *Node) uint32 {
	m := n.Mode & 0o7777
	if n.Type != TypeDir && m&0o6000 != 0 && !rs.opts.KeepSetid {
		m &^= 0o6000
		if rs.opts.OnSetidCleared != nil {
			rs.opts.OnSetidCleared(host)
		}
	}
	return m
}

// keep reports a store directory the restore leaves alone, once.
func (rs *restorer) keep(dir string) {
	if rs.kept[dir] {
		return
	}
	rs.kept[dir] = true
	if rs.opts.OnStoreKept != nil {
		rs.opts.OnStoreKept(dir)
	}
}

// ResolveDirs makes directories absolute with symlinks resolved, dropping
// those that do not exist: the live stores' directories a restore or a
// merge must not write into (one that does not exist cannot be written
// into by mistake).
func ResolveDirs(dirs []string) []string {
	var out []string
	for _, d := range dirs {
		if d == "" {
			continue
		}
		abs, err := filepath.Abs(d)
		if err != nil {
			continue
		}
		if r, err := filepath.EvalSymlinks(abs); err == nil {
			out = append(out, r)
		}
	}
	return out
}

// checkTarget refuses a target inside one of the live stores, or inside
// any dvpc store.
func checkTarget(target string, protect []string) error {
	abs, err := filepath.Abs(target)
	if err != nil {
		return err
	}
	// The nearest existing directory, symlinks resolved.
	p := abs
	for {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			rest, _ := filepath.Rel(p, abs)
			abs = filepath.Join(r, rest)
			break
		}
		parent := filepath.Dir(p)
		if parent == p {
			break
		}
		p = parent
	}
	for _, s := range protect {
		if within(abs, s) {
			return fmt.Errorf("restore to %s: %w %s", target, ErrInsideStore, s)
		}
	}
	for p := abs; ; p = filepath.Dir(p) {
		if IsStoreDir(p) {
			return fmt.Errorf("restore to %s: %w %s", target, ErrInsideStore, p)
		}
		if filepath.Dir(p) == p {
			return nil
		}
	}
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// isStore reports whether host is a live store or a directory that is a
// dvpc store: the restore leaves it alone.
func (rs *restorer) isStore(host string) bool {
	for _, s := range rs.protect {
		if host == s {
			return true
		}
	}
	fi, err := os.Lstat(host)
	return err == nil && fi.IsDir() && IsStoreDir(host)
}

// storeBelow returns a store directory at or below dir, or "".
func (rs *restorer) storeBelow(dir string) string {
	for _, s := range rs.protect {
		if within(s, dir) {
			return s
		}
	}
	found := ""
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if IsStoreDir(p) {
			found = p
			return filepath.SkipAll
		}
		return nil
	})
	return found
}

func (rs *restorer) worker(ctx context.Context) error {
	for job := range rs.jobs {
		err := rs.restoreFile(ctx, job)
		job.dir.release()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			rs.fail(filepath.Join(job.dir.host, job.name), err)
			continue
		}
		if pr := rs.opts.Progress; pr != nil {
			pr.Files.Add(1)
		}
	}
	return nil
}

// restoreFile creates, writes and closes one file in its directory; a file
// that could not be written whole is removed.
func (rs *restorer) restoreFile(ctx context.Context, job restoreJob) error {
	f, err := job.dir.create(job.name)
	if err != nil {
		return err
	}
	err = rs.writeFile(ctx, f, job.node)
	if err == nil {
		err = rs.setMeta(job.dir, job.name, job.node, f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		job.dir.remove(job.name)
	}
	return err
}

// restoreChunks bounds the chunks the restore workers hold at once, each
// with its sealed and its plain bytes: the workers outnumber the cores so
// that small files are written in parallel, but opening chunks is bound
// by the cores, and each chunk in flight holds up to twice MaxChunk.
func restoreChunks() int64 { return int64(runtime.GOMAXPROCS(0)) + 1 }

func (rs *restorer) writeFile(ctx context.Context, f *os.File, n *Node) error {
	var off int64
	for _, p := range n.Parts {
		if p.Hole > 0 {
			off += int64(p.Hole)
			continue
		}
		if err := rs.chunks.Acquire(ctx, 1); err != nil {
			return err
		}
		dp := dataPool.Get()
		data, err := rs.r.loadChunk(ctx, KindData, p.Chunk, (*dp)[:0])
		if err == nil {
			*dp = data[:0]
			_, err = f.WriteAt(data, off)
		}
		dataPool.Put(dp)
		rs.chunks.Release(1)
		if err != nil {
			return err
		}
		off += int64(len(data))
		if pr := rs.opts.Progress; pr != nil {
			pr.Bytes.Add(int64(len(data)))
		}
	}
	return f.Truncate(n.Size)
}

// FindNode returns the entry at a slash-separated path in a snapshot; "" is
// the snapshotted directory itself.
func (r *Repo) FindNode(ctx context.Context, s *Snapshot, p string) (*Node, error) {
	p, err := CleanPath(p)
	if err != nil {
		return nil, err
	}
	n, err := r.rootNode(ctx, s)
	if err != nil {
		return nil, err
	}
	if p == "" {
		return n, nil
	}
	for _, c := range strings.Split(p, "/") {
		if n.Type != TypeDir {
			return nil, fmt.Errorf("%s: not in snapshot %s: %w", p, s.ID, ErrNotFound)
		}
		t, err := r.LoadTree(ctx, n.Subtree)
		if err != nil {
			return nil, err
		}
		if n = t.Find([]byte(c)); n == nil {
			return nil, fmt.Errorf("%s: not in snapshot %s: %w", p, s.ID, ErrNotFound)
		}
	}
	return n, nil
}

// WriteContent writes a file's content to w, holes as zeros.
func (r *Repo) WriteContent(ctx context.Context, n *Node, w io.Writer) error {
	if n.Type != TypeFile {
		return fmt.Errorf("%s is a %s, not a file", n.Name, n.Type)
	}
	var buf []byte
	zeros := make([]byte, 64<<10)
	for _, p := range n.Parts {
		for h := int64(p.Hole); h > 0; {
			k := min(h, int64(len(zeros)))
			if _, err := w.Write(zeros[:k]); err != nil {
				return err
			}
			h -= k
		}
		if p.Hole > 0 {
			continue
		}
		data, err := r.loadChunk(ctx, KindData, p.Chunk, buf)
		if err != nil {
			return err
		}
		buf = data
		if _, err := w.Write(data); err != nil {
			return err
		}
	}
	return nil
}

// Walk calls fn for every entry below the snapshot root in depth-first,
// name order; rel is slash-separated.
func (r *Repo) Walk(ctx context.Context, s *Snapshot, fn func(rel string, n *Node) error) error {
	root, err := r.rootNode(ctx, s)
	if err != nil {
		return err
	}
	return r.walkTree(ctx, root.Subtree, "", fn)
}

func (r *Repo) walkTree(ctx context.Context, id ChunkID, rel string, fn func(string, *Node) error) error {
	t, err := r.LoadTree(ctx, id)
	if err != nil {
		return err
	}
	for _, n := range t.Nodes {
		crel := path.Join(rel, string(n.Name))
		if err := fn(crel, n); err != nil {
			return err
		}
		if n.Type == TypeDir {
			if err := r.walkTree(ctx, n.Subtree, crel, fn); err != nil {
				return err
			}
		}
	}
	return nil
}
