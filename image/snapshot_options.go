package image

import (
	"errors"
	"sync/atomic"
	"time"
)

// racyWindow is how close to the snapshot a file's ctime may be
// before its timestamps are not trusted next time: an edit in the same clock
// tick after it was read would leave size and times unchanged. Two seconds
// covers the coarsest timestamps (FAT).
const racyWindow = 2 * time.Second

// IgnoreFile is the name of per-directory exclude files (gitignore syntax).
const IgnoreFile = ".dvpcignore"

// SnapshotOptions tune [Repo.Snapshot].
type SnapshotOptions struct {
	Host     string
	Excludes []string // gitignore-syntax patterns relative to the root
	Time     time.Time
	Mirrors  []string
	// Home names the snapshot's home; empty derives it from the path
	// ([DefaultHomeName]).
	Home string
	// Parent is the snapshot the tree was started from (a login session's
	// snapshot); nil takes the newest head of the home. Unchanged files
	// are not read again; NoParent reads every file, keeping the lineage.
	Parent   *Snapshot
	NoParent bool
	// SkipUnchanged writes no snapshot when the tree holds what Parent's
	// holds ([Repo.SameTrees]): the run returns Parent itself.
	SkipUnchanged bool
	// ParentTree, when set, stands for Parent's tree in deciding which
	// files are unchanged: the same content as Parent, recorded as it lies
	// on this disk (inodes, change times) by an earlier run that wrote no
	// snapshot (see SnapshotReport.Tree). A tree the store no longer holds
	// is ignored.
	ParentTree ChunkID
	// Parents are the other parents of a merge, beside Parent (or the
	// newest head when Parent is nil): the snapshot records them all, and
	// its seq is above every one. They must belong to the same home.
	Parents []*Snapshot
	// Changed, when not nil, lists the slash-separated directories,
	// relative to the root ("." for the root itself), that may have
	// changed since the parent snapshot: each is read again wholly, new
	// subdirectories included. Every other subtree is the parent's, taken
	// as it is without reading the disk; a directory that holds a changed
	// one is the parent's entries with that child read again. Without a
	// parent (or with NoParent) everything is read.
	Changed []string
	// OnError receives each entry that could not be read; it is skipped and
	// the snapshot goes on. Store failures abort the snapshot instead.
	OnError func(path string, err error)
	// OnWarning receives entries skipped by choice (sockets, devices).
	OnWarning func(path string, msg string)
	// Progress, when set, is updated as the snapshot runs.
	Progress *Progress
	// Report, when set, receives what the run left out and took over.
	Report *SnapshotReport
	// MergeProfiles, when set, merges the profiles of two heads that grew
	// apart from base (nil where a side has none) into the profile of
	// their merge. Snapshot itself does not call it: the merge of heads
	// (overlay) saves its result as the store's profile before it writes
	// the merge snapshot. Nil keeps the store's own profile.
	MergeProfiles func(base, ours, theirs []byte) ([]byte, error)

	// A snapshot always leaves out the store it is written to and any
	// other dvpc store it meets ([IsStoreDir]). It also leaves out cache
	// directories: CacheDirs (see [UserCacheDirs]) and every directory
	// holding a CACHEDIR.TAG file, unless IncludeCaches is set.
	CacheDirs     []string
	IncludeCaches bool
}

// SnapshotReport says what a snapshot run left out of the tree, and which
// packs of earlier, interrupted runs it found and reused.
type SnapshotReport struct {
	LeftOut []LeftOut
	Adopted Adopted
	// Tree is the tree the run computed, also when SkipUnchanged wrote no
	// snapshot: a later run's ParentTree.
	Tree ChunkID
}

// Progress counts a running snapshot or restore; read it from any goroutine.
type Progress struct {
	Files    atomic.Int64
	Bytes    atomic.Int64 // bytes read or written
	BytesNew atomic.Int64
}

// ErrReadOnly means a write was asked of a read-only store.
var ErrReadOnly = errors.New("the store is read-only")
