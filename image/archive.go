//go:build unix

package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/dvpc/dvpc/image/ignore"
)

type linkGroup struct {
	id      uint64
	primary *Node
	members []*Node
}

type dirBuild struct {
	tree    Tree
	subdirs []subdir
	taken   []*Node // entries taken over from the parent snapshot as they are
}

type subdir struct {
	node  *Node
	child *dirBuild
}

type fileJob struct {
	abs  string
	node *Node
	ino  uint64
	dev  uint64
}

type sealJob struct {
	id   ChunkID
	data *[]byte
}

type archiver struct {
	r       *Repo
	opts    SnapshotOptions
	rules   *leaveOut
	du      duCounter
	scope   *rescan          // nil: read every directory
	taken   map[ChunkID]bool // subtrees taken over, marked used
	excl    *ignore.Matcher  // --exclude: always wins (rules.excl)
	ign     *ignore.Matcher  // .dvpcignore files
	cutoff  time.Time
	links   map[[2]uint64]*linkGroup
	skipped map[*Node]bool
	skipMu  sync.Mutex

	files chan fileJob
	seals chan sealJob
	data  *packer
	trees *packer

	stats Stats
	read  atomic.Int64
	newB  atomic.Int64
	errs  atomic.Int64
	nfile atomic.Int64
}

// Snapshot records the directory root as a new snapshot.
func (r *Repo) Snapshot(ctx context.Context, root string, opts SnapshotOptions) (*Snapshot, Stats, error) {
	if r.st == nil {
		return nil, Stats{}, ErrReadOnly
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, Stats{}, err
	}
	scope, err := newRescan(opts.Changed)
	if err != nil {
		return nil, Stats{}, fmt.Errorf("snapshot %s: %w", abs, err)
	}
	var rst unix.Stat_t
	if err := unix.Stat(abs, &rst); err != nil {
		return nil, Stats{}, fmt.Errorf("snapshot %s: %w", abs, err)
	}
	if rst.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, Stats{}, fmt.Errorf("snapshot %s: not a directory", abs)
	}
	rules, err := newLeaveOut(r.st, abs, opts)
	if err != nil {
		return nil, Stats{}, err
	}
	unlock, err := r.st.Lock(ctx)
	if err != nil {
		return nil, Stats{}, err
	}
	defer unlock()
	if opts.Time.IsZero() {
		opts.Time = time.Now()
	}
	if opts.Host == "" {
		opts.Host, _ = os.Hostname()
	}
	snaps, _, err := r.Snapshots(ctx)
	if err != nil {
		return nil, Stats{}, err
	}
	for _, s := range snaps {
		if err := r.LoadIndex(ctx, s); err != nil {
			return nil, Stats{}, fmt.Errorf("load index of snapshot %s: %w", s.ID, err)
		}
	}
	adopted, err := r.adoptPacks(ctx, snaps)
	if err != nil {
		return nil, Stats{}, err
	}
	if opts.Report != nil {
		opts.Report.Adopted = adopted
	}
	hist, high, err := r.historyForWrite(snaps)
	if err != nil {
		return nil, Stats{}, err
	}
	home, parents, seq, err := hist.nextSnapshot(abs, opts.Home, opts.Parent, opts.Parents, high)
	if err != nil {
		return nil, Stats{}, fmt.Errorf("snapshot %s: %w", abs, err)
	}
	var parent *Snapshot // its tree's unchanged files are not read again
	if len(parents) > 0 && !opts.NoParent {
		parent = parents[0]
	}
	a := &archiver{
		r: r, opts: opts, rules: rules, excl: rules.excl, ign: ignore.New(), cutoff: opts.Time.Add(-racyWindow),
		links: map[[2]uint64]*linkGroup{}, skipped: map[*Node]bool{},
		data:  newPacker(r.st, r.keys, r.idx, KindData, runtime.GOMAXPROCS(0)),
		trees: newPacker(r.st, r.keys, r.idx, KindTree, 1),
		du:    duCounter{budget: maxCacheCount}, taken: map[ChunkID]bool{},
	}
	if parent != nil {
		a.scope = scope // without a parent to take subtrees from, read them all
	}
	var parentTop *Tree
	if parent != nil {
		if !opts.ParentTree.IsZero() && opts.ParentTree != parent.Config.Root {
			// The parent's content as it lies on this disk; gone (pruned),
			// the parent's own tree serves.
			parentTop, _ = r.LoadTree(ctx, opts.ParentTree)
		}
		if parentTop == nil {
			if parentTop, err = r.LoadTree(ctx, parent.Config.Root); err != nil {
				return nil, Stats{}, fmt.Errorf("parent snapshot %s: %w", parent.ID, err)
			}
		}
	}
	rootID, used, err := a.run(ctx, abs, &rst, parentTop)
	if err != nil {
		return nil, Stats{}, a.stopped(ctx, err)
	}
	if opts.Report != nil {
		opts.Report.Tree = rootID
	}
	if opts.SkipUnchanged && parent != nil && len(parents) == 1 {
		same := rootID == parent.Config.Root
		if !same {
			if same, err = r.SameTrees(ctx, rootID, parent.Config.Root); err != nil {
				return nil, Stats{}, a.stopped(ctx, err)
			}
		}
		if same {
			// A profile changed since (an app added) is a change too.
			if same, err = r.carriesProfile(ctx, parent); err != nil {
				return nil, Stats{}, a.stopped(ctx, err)
			}
		}
		if same {
			a.stats.BytesRead, a.stats.BytesNew, a.stats.Errors = a.read.Load(), a.newB.Load(), a.errs.Load()
			return parent, a.stats, nil
		}
	}
	layers, err := r.layersFor(ctx, used)
	if err != nil {
		return nil, Stats{}, a.stopped(ctx, err)
	}
	a.stats.BytesRead = a.read.Load()
	a.stats.BytesNew = a.newB.Load()
	a.stats.Errors = a.errs.Load()
	userName := ""
	if u, err := user.Current(); err == nil {
		userName = u.Username
	}
	cfg := &SnapshotConfig{
		Version: 1, Root: rootID, Time: opts.Time, Host: opts.Host, OS: runtime.GOOS, User: userName, Path: abs,
		Home: home, Seq: seq, Mirrors: opts.Mirrors, Excludes: opts.Excludes, Stats: a.stats,
	}
	for _, p := range parents {
		cfg.Parents = append(cfg.Parents, p.Manifest)
	}
	if layers, err = r.withProfile(ctx, cfg, layers, parents); err != nil {
		return nil, Stats{}, a.stopped(ctx, err)
	}
	snap, err := r.commitSnapshot(ctx, cfg, layers, hist.AllHeads())
	if err != nil {
		return nil, a.stats, a.stopped(ctx, err)
	}
	return snap, a.stats, nil
}

// stopped ends a run that failed or was interrupted before its snapshot
// was committed: the packs it was filling are finished, so that they and
// the ones it finished before are kept for the next run to adopt.
func (a *archiver) stopped(ctx context.Context, err error) error {
	dp, dn := a.data.checkpoint(ctx)
	tp, tn := a.trees.checkpoint(ctx)
	a.r.idx.dropUnstored()
	return &StoppedError{Packs: dp + tp, Bytes: dn + tn, Err: err}
}

// devIno names a file by device and inode, as the walk meets it, whatever
// path led there.
type devIno struct{ dev, ino uint64 }

// devInoOf converts Dev, which is 32-bit on some systems.
func devInoOf(st *unix.Stat_t) devIno { return devIno{uint64(st.Dev), st.Ino} }

// storeDir returns the device and inode of the directory of st, when it has
// one, so that the walk leaves it out. It refuses a root inside the store.
func storeDir(st Store, root string) (devIno, error) {
	rs, ok := st.(interface{ Root() string })
	if !ok || rs.Root() == "" {
		return devIno{}, nil
	}
	var sst unix.Stat_t
	if err := unix.Stat(rs.Root(), &sst); err != nil {
		return devIno{}, fmt.Errorf("snapshot: stat the store: %w", err)
	}
	id := devInoOf(&sst)
	for p := root; ; p = filepath.Dir(p) {
		var pst unix.Stat_t
		if unix.Stat(p, &pst) == nil && devInoOf(&pst) == id {
			return devIno{}, fmt.Errorf("snapshot %s: it lies inside the store %s, which snapshots leave out", root, rs.Root())
		}
		if filepath.Dir(p) == p {
			return id, nil
		}
	}
}

// leaveOutDir reports whether the directory abs, whose entries are names
// (nil before it is read), is one a snapshot leaves out (see
// [leaveOut.kind]), and records it.
func (a *archiver) leaveOutDir(abs string, st *unix.Stat_t, names []string) bool {
	kind, this := a.rules.kind(abs, st, func(name string) bool { return slices.Contains(names, name) })
	if kind == 0 {
		return false
	}
	lo := LeftOut{Path: abs, Kind: kind, ThisStore: this}
	if kind == LeftOutCache {
		lo.Exact = a.du.count(abs, &lo)
	}
	if a.opts.Report != nil {
		a.opts.Report.LeftOut = append(a.opts.Report.LeftOut, lo)
	}
	return true
}

// leaveOut holds the rules by which a snapshot leaves directories out, and
// its exclude patterns; .dvpcignore files are read on the way down.
type leaveOut struct {
	store         devIno          // the store's directory, when it has one
	caches        map[devIno]bool // cache directories left out
	includeCaches bool
	excl          *ignore.Matcher // --exclude: always wins
}

func newLeaveOut(st Store, abs string, opts SnapshotOptions) (*leaveOut, error) {
	store, err := storeDir(st, abs)
	if err != nil {
		return nil, err
	}
	l := &leaveOut{store: store, caches: map[devIno]bool{}, includeCaches: opts.IncludeCaches, excl: ignore.New()}
	if !opts.IncludeCaches {
		for _, d := range opts.CacheDirs {
			var st unix.Stat_t
			if unix.Stat(d, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
				l.caches[devInoOf(&st)] = true
			}
		}
	}
	l.excl.AddPatterns("", opts.Excludes)
	return l, nil
}

// kind says why the directory abs is left out, or 0 when it is not: it is
// the store being written to (this), another dvpc store, or (unless caches
// are kept) a user's cache directory or one tagged with CACHEDIR.TAG. has
// reports whether the directory holds an entry.
func (l *leaveOut) kind(abs string, st *unix.Stat_t, has func(name string) bool) (kind LeftOutKind, this bool) {
	id := devInoOf(st)
	switch {
	case l.store != (devIno{}) && id == l.store:
		return LeftOutStore, true
	case has("oci-layout") && IsStoreDir(abs):
		return LeftOutStore, false
	case l.includeCaches:
		return 0, false
	case l.caches[id], has(CacheDirTag) && isCacheDirTag(filepath.Join(abs, CacheDirTag)):
		return LeftOutCache, false
	}
	return 0, false
}

// errLeftOut tells the walk that a directory was left out by rule.
var errLeftOut = errors.New("left out")

// run walks and stores the tree; it returns the top tree and every chunk the
// snapshot uses.
func (a *archiver) run(ctx context.Context, abs string, rst *unix.Stat_t, parentTop *Tree) (ChunkID, map[ChunkID]bool, error) {
	workers := runtime.GOMAXPROCS(0)
	a.files = make(chan fileJob, 256)
	a.seals = make(chan sealJob) // a reader hands a chunk straight to a free sealer
	g, gctx := errgroup.WithContext(ctx)
	var readers sync.WaitGroup
	for i := range workers {
		g.Go(func() error { return a.sealer(gctx, i) })
	}
	for range workers {
		readers.Add(1)
		g.Go(func() error {
			defer readers.Done()
			return a.reader(gctx)
		})
	}
	top := &dirBuild{}
	g.Go(func() error {
		defer close(a.files)
		var parent *Tree
		var pnode *Node
		if parentTop != nil && len(parentTop.Nodes) == 1 {
			pnode = parentTop.Nodes[0]
		}
		if pnode != nil && pnode.Type == TypeDir {
			var err error
			if parent, err = a.r.LoadTree(gctx, pnode.Subtree); err != nil {
				return fmt.Errorf("parent snapshot: %w", err)
			}
		}
		node := a.newNode(abs, filepath.Base(abs), rst)
		node.Type = TypeDir
		child, err := a.walkDir(gctx, abs, "", rst, parent)
		if err != nil {
			return err
		}
		top.tree.Nodes = []*Node{node}
		top.subdirs = []subdir{{node: node, child: child}}
		return nil
	})
	go func() {
		readers.Wait()
		close(a.seals)
	}()
	if err := g.Wait(); err != nil {
		return ChunkID{}, nil, err
	}
	if err := a.data.flush(ctx); err != nil {
		return ChunkID{}, nil, err
	}
	for _, lg := range a.links {
		for _, m := range lg.members {
			if a.skipped[lg.primary] {
				a.skipped[m] = true
				continue
			}
			m.Parts, m.Size, m.Xattrs = lg.primary.Parts, lg.primary.Size, lg.primary.Xattrs
		}
	}
	used := map[ChunkID]bool{}
	id, err := a.finishDir(ctx, top, used)
	if err != nil {
		return ChunkID{}, nil, err
	}
	if err := a.trees.flush(ctx); err != nil {
		return ChunkID{}, nil, err
	}
	if err := a.r.writeIndexBlob(ctx, used); err != nil {
		return ChunkID{}, nil, err
	}
	return id, used, nil
}

func (a *archiver) fail(p string, err error) {
	a.errs.Add(1)
	if a.opts.OnError != nil {
		a.opts.OnError(p, err)
	}
}

// newNode records an entry's metadata; xattrs are read unless the caller
// can take them from the parent snapshot (see unchanged).
func (a *archiver) newNode(abs, name string, st *unix.Stat_t) *Node {
	n := a.statNode(name, st)
	a.readXattrs(abs, n)
	return n
}

func (a *archiver) readXattrs(abs string, n *Node) {
	if x, err := readXattrs(abs); err != nil {
		a.fail(abs, err)
	} else {
		n.Xattrs = x
	}
}

func (a *archiver) statNode(name string, st *unix.Stat_t) *Node {
	n := &Node{
		Name: []byte(name), Mode: uint32(st.Mode) & 0o7777, UID: st.Uid, GID: st.Gid,
		Mtime: time.Unix(st.Mtim.Unix()), Ctime: time.Unix(st.Ctim.Unix()),
	}
	if n.Ctime.Before(a.cutoff) {
		// Every write moves ctime, which nobody can set by hand: a file
		// changed within the racy window is read again next time.
		n.Inode = st.Ino
	}
	return n
}

func (a *archiver) walkDir(ctx context.Context, abs, rel string, st *unix.Stat_t, parent *Tree) (*dirBuild, error) {
	if rel != "" && a.leaveOutDir(abs, st, nil) { // known by identity: not even read
		return nil, errLeftOut
	}
	if parent != nil && !a.scope.all(rel) {
		// Not read, but it may have become a store or a cache since.
		var marks []string
		for _, m := range []string{"oci-layout", CacheDirTag} {
			if _, err := os.Lstat(filepath.Join(abs, m)); err == nil {
				marks = append(marks, m)
			}
		}
		if rel != "" && a.leaveOutDir(abs, st, marks) {
			return nil, errLeftOut
		}
		return a.walkAncestor(ctx, abs, rel, parent)
	}
	f, err := os.Open(abs)
	if err != nil {
		return nil, err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return nil, err
	}
	slicesSortStrings(names)
	if rel != "" && a.leaveOutDir(abs, st, names) { // known by what it holds
		return nil, errLeftOut
	}
	db := &dirBuild{}
	for _, name := range names {
		if name == IgnoreFile {
			if err := a.addIgnoreFile(filepath.Join(abs, name), rel); err != nil {
				a.fail(filepath.Join(abs, name), err)
			}
		}
	}
	for _, name := range names {
		var pnode *Node
		if parent != nil {
			pnode = parent.Find([]byte(name))
		}
		if err := a.entry(ctx, db, abs, rel, name, pnode, false); err != nil {
			return nil, err
		}
	}
	return db, nil
}

// walkAncestor builds a directory that holds changed directories below it
// but did not change itself (see [SnapshotOptions.Changed]): its entries
// are the parent snapshot's, except those on the way to a changed
// directory, which are read from the disk again.
func (a *archiver) walkAncestor(ctx context.Context, abs, rel string, parent *Tree) (*dirBuild, error) {
	if err := a.addIgnoreFile(filepath.Join(abs, IgnoreFile), rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
		a.fail(filepath.Join(abs, IgnoreFile), err)
	}
	db := &dirBuild{}
	names := a.scope.below(rel)
	for _, n := range parent.Nodes {
		crel := path.Join(rel, string(n.Name))
		if a.scope.touches(crel) {
			continue // among names already
		}
		db.tree.Nodes = append(db.tree.Nodes, n)
		db.taken = append(db.taken, n)
	}
	for _, name := range names {
		if err := a.entry(ctx, db, abs, rel, name, parent.Find([]byte(name)), true); err != nil {
			return nil, err
		}
	}
	return db, nil
}

// entry records the directory entry name of abs into db; pnode is the
// parent snapshot's entry of that name, if any. An entry that no longer
// exists is left out silently when gone is set, and reported otherwise.
// Only a failure that ends the walk is returned.
func (a *archiver) entry(ctx context.Context, db *dirBuild, abs, rel, name string, pnode *Node, gone bool) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	cabs := filepath.Join(abs, name)
	crel := path.Join(rel, name)
	var st unix.Stat_t
	if err := unix.Lstat(cabs, &st); err != nil {
		if !gone || !errors.Is(err, unix.ENOENT) {
			a.fail(cabs, err)
		}
		return nil
	}
	ftype := st.Mode & unix.S_IFMT
	if isDir := ftype == unix.S_IFDIR; a.excl.Match(crel, isDir) || a.ign.Match(crel, isDir) {
		return nil
	}
	switch ftype {
	case unix.S_IFREG:
		node := a.statNode(name, &st)
		node.Type, node.Size = TypeFile, st.Size
		db.tree.Nodes = append(db.tree.Nodes, node)
		a.stats.Files++
		a.stats.Bytes += st.Size
		if st.Nlink > 1 {
			key := [2]uint64{uint64(st.Dev), st.Ino}
			if lg, ok := a.links[key]; ok {
				node.LinkGroup = lg.id
				lg.members = append(lg.members, node)
				return nil
			}
			lg := &linkGroup{id: linkGroupID(key), primary: node}
			a.links[key] = lg
			node.LinkGroup = lg.id
		}
		if a.unchanged(node, pnode) {
			// Setting an xattr moves ctime, so they are unchanged too.
			node.Parts, node.Xattrs = pnode.Parts, pnode.Xattrs
			a.progress(0)
			return nil
		}
		a.readXattrs(cabs, node)
		select {
		case a.files <- fileJob{abs: cabs, node: node, ino: st.Ino, dev: uint64(st.Dev)}:
		case <-ctx.Done():
			return ctx.Err()
		}
	case unix.S_IFDIR:
		node := a.newNode(cabs, name, &st)
		node.Type = TypeDir
		var ptree *Tree
		if pnode != nil && pnode.Type == TypeDir {
			var err error
			if ptree, err = a.r.LoadTree(ctx, pnode.Subtree); err != nil {
				return fmt.Errorf("parent snapshot: %w", err)
			}
		}
		child, err := a.walkDir(ctx, cabs, crel, &st, ptree)
		if errors.Is(err, errLeftOut) {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			a.fail(cabs, err)
			return nil
		}
		a.stats.Dirs++
		db.tree.Nodes = append(db.tree.Nodes, node)
		db.subdirs = append(db.subdirs, subdir{node: node, child: child})
	case unix.S_IFLNK:
		target, err := readlinkBytes(cabs)
		if err != nil {
			a.fail(cabs, err)
			return nil
		}
		node := a.newNode(cabs, name, &st)
		node.Type, node.Target = TypeSymlink, target
		db.tree.Nodes = append(db.tree.Nodes, node)
	case unix.S_IFIFO:
		node := a.newNode(cabs, name, &st)
		node.Type = TypeFIFO
		db.tree.Nodes = append(db.tree.Nodes, node)
	default:
		if a.opts.OnWarning != nil {
			a.opts.OnWarning(cabs, "skipped: sockets and device nodes are not recorded")
		}
	}
	return nil
}

// linkGroupID names the hard-link group of a file by its device and inode,
// so that a group keeps its number from one snapshot to the next and the
// subtrees a partial rescan takes over from the parent agree with the ones
// it reads again.
func linkGroupID(key [2]uint64) uint64 {
	id := key[1] ^ key[0]*0x9e3779b97f4a7c15
	if id == 0 {
		id = 1
	}
	return id
}

func (a *archiver) addIgnoreFile(p, rel string) error { return addIgnoreFile(a.ign, p, rel) }

// addIgnoreFile adds the patterns of the ignore file p, in the directory
// rel, to m.
func addIgnoreFile(m *ignore.Matcher, p, rel string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return m.AddFile(rel, io.LimitReader(f, 1<<20))
}

// unchanged reports whether the parent snapshot's entry can stand for node
// without reading the file: same size, mtime, ctime and inode, and every
// chunk present in the store.
func (a *archiver) unchanged(node, p *Node) bool {
	if p == nil || p.Type != TypeFile || p.Inode == 0 || node.Inode == 0 || p.Inode != node.Inode ||
		p.Size != node.Size || !p.Mtime.Equal(node.Mtime) || !p.Ctime.Equal(node.Ctime) {
		return false
	}
	for _, part := range p.Parts {
		if part.Hole == 0 && !a.r.idx.Has(part.Chunk) {
			return false
		}
	}
	return true
}

func (a *archiver) progress(n int64) {
	if pr := a.opts.Progress; pr != nil {
		pr.Files.Add(1)
		pr.Bytes.Add(n)
	}
}

func (a *archiver) reader(ctx context.Context) error {
	bp := chunkerPool.Get()
	defer chunkerPool.Put(bp)
	for job := range a.files {
		err := a.readFile(ctx, job, *bp)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			var se *storeError
			if errors.As(err, &se) {
				return se.err
			}
			a.skipMu.Lock()
			a.skipped[job.node] = true
			a.skipMu.Unlock()
			a.fail(job.abs, err)
		}
	}
	return nil
}

// storeError marks failures that must abort the snapshot.
type storeError struct{ err error }

func (e *storeError) Error() string { return e.err.Error() }

func (a *archiver) readFile(ctx context.Context, job fileJob, buf []byte) error {
	f, err := openNoFollow(job.abs)
	if err != nil {
		return err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return err
	}
	if st.Ino != job.ino || uint64(st.Dev) != job.dev || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return errors.New("replaced while being read; skipped")
	}
	regions, err := dataRegions(f, st.Size, st.Blocks)
	if err != nil {
		return err
	}
	var parts []Part
	var pos, total int64
	shrunk := false
	for _, rg := range regions {
		if rg.off > pos {
			parts = append(parts, Part{Hole: uint64(rg.off - pos)})
			total += rg.off - pos
		}
		ch := NewChunker(io.NewSectionReader(f, rg.off, rg.len), a.r.keys.gear, buf)
		var got int64
		for {
			data, err := ch.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			id := a.r.keys.ChunkID(data)
			parts = append(parts, Part{Chunk: id, Size: uint32(len(data))})
			got += int64(len(data))
			a.read.Add(int64(len(data)))
			a.progressBytes(int64(len(data)))
			if !a.r.idx.reserve(id) {
				continue
			}
			dp := dataPool.Get()
			*dp = append((*dp)[:0], data...)
			select {
			case a.seals <- sealJob{id: id, data: dp}:
			case <-ctx.Done():
				a.r.idx.unreserve(id)
				return ctx.Err()
			}
		}
		total += got
		pos = rg.off + got
		if got < rg.len {
			shrunk = true // the file shrank while being read
			break
		}
	}
	if !shrunk && pos < st.Size {
		parts = append(parts, Part{Hole: uint64(st.Size - pos)}) // a trailing hole
		total += st.Size - pos
	}
	var after unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &after); err != nil {
		return err
	}
	node := job.node
	if after.Size != st.Size || after.Mtim != st.Mtim || after.Ctim != st.Ctim || total != st.Size {
		node.Inode = 0 // changed while being read: read it again next time
		if a.opts.OnWarning != nil {
			a.opts.OnWarning(job.abs, "changed while being read; stored as read")
		}
	}
	node.Parts, node.Size = parts, total
	if pr := a.opts.Progress; pr != nil {
		pr.Files.Add(1)
	}
	return nil
}

func (a *archiver) progressBytes(n int64) {
	if pr := a.opts.Progress; pr != nil {
		pr.Bytes.Add(n)
	}
}

func (a *archiver) sealer(ctx context.Context, writer int) error {
	bp := sealPool.Get()
	defer sealPool.Put(bp)
	for job := range a.seals {
		sealed := a.r.sealChunk(KindData, job.id, *job.data, bp)
		raw := len(*job.data)
		dataPool.Put(job.data)
		if err := a.data.add(ctx, writer, job.id, sealed, raw); err != nil {
			return err
		}
		a.newB.Add(int64(len(sealed)))
		if pr := a.opts.Progress; pr != nil {
			pr.BytesNew.Add(int64(len(sealed)))
		}
	}
	return nil
}

// finishDir stores the trees below db, deepest first, and returns db's ID.
func (a *archiver) finishDir(ctx context.Context, db *dirBuild, used map[ChunkID]bool) (ChunkID, error) {
	for _, sd := range db.subdirs {
		id, err := a.finishDir(ctx, sd.child, used)
		if err != nil {
			return ChunkID{}, err
		}
		sd.node.Subtree = id
	}
	for _, n := range db.taken {
		switch n.Type {
		case TypeFile:
			a.stats.Files++
			a.stats.Bytes += n.Size
		case TypeDir:
			c, err := a.r.takeSubtree(ctx, n.Subtree, used, a.taken)
			if err != nil {
				return ChunkID{}, err
			}
			a.stats.Dirs += 1 + c.dirs
			a.stats.Files += c.files
			a.stats.Bytes += c.bytes
		}
	}
	nodes := db.tree.Nodes[:0]
	for _, n := range db.tree.Nodes {
		if a.skipped[n] {
			continue
		}
		for _, p := range n.Parts {
			if p.Hole == 0 {
				used[p.Chunk] = true
			}
		}
		nodes = append(nodes, n)
	}
	db.tree.Nodes = nodes
	db.tree.Sort()
	enc := db.tree.Encode()
	if len(enc) > maxTreeBlob {
		return ChunkID{}, fmt.Errorf("a directory with %d entries encodes to %d bytes, over the %d-byte limit", len(nodes), len(enc), maxTreeBlob)
	}
	id := a.r.keys.ChunkID(enc)
	used[id] = true
	if a.r.idx.reserve(id) {
		bp := sealPool.Get()
		sealed := a.r.sealChunk(KindTree, id, enc, bp)
		err := a.trees.add(ctx, 0, id, sealed, len(enc))
		sealPool.Put(bp)
		if err != nil {
			return ChunkID{}, err
		}
		a.newB.Add(int64(len(sealed)))
	}
	return id, nil
}

// layersFor lists the index blobs and packs that hold the given chunks.
func (r *Repo) layersFor(ctx context.Context, used map[ChunkID]bool) ([]v1.Descriptor, error) {
	packs := map[Digest]bool{}
	for id := range used {
		loc, ok := r.idx.lookup(id)
		if !ok {
			return nil, fmt.Errorf("chunk %s was not stored: %w", id.String()[:16], ErrNotFound)
		}
		packs[loc.pack] = true
	}
	indexes := map[Digest]bool{}
	var packDescs, indexDescs []v1.Descriptor
	for p := range packs {
		size, ix, ok := r.idx.packInfo(p)
		if !ok || ix.IsZero() {
			return nil, fmt.Errorf("pack %s is in no index blob", p)
		}
		packDescs = append(packDescs, descriptor(PackType, p, size))
		if !indexes[ix] {
			indexes[ix] = true
			n, err := r.src.StatBlob(ctx, ix)
			if err != nil {
				return nil, err
			}
			indexDescs = append(indexDescs, descriptor(IndexType, ix, n))
		}
	}
	sortDescs(packDescs)
	sortDescs(indexDescs)
	return append(indexDescs, packDescs...), nil
}
