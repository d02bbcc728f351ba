package overlay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"time"

	"github.com/dvpc/dvpc/image"
)

// The three-way merge (docs/design.md §2, "heads are merged"). Merge walks
// the trees of base, ours and theirs together, by path, skipping every
// subtree whose ID shows that theirs changed nothing in it, and plans one
// action per path:
//
//   - the same on both sides, or changed by ours alone: nothing;
//   - changed by theirs alone: theirs is taken (written, or removed);
//   - deleted on one side and changed on the other: the changed version
//     stays, or comes back;
//   - changed on both sides, differently: ours stays, theirs is written
//     beside it as a conflict copy ([ConflictName]); a file on one side and
//     a directory on the other are both kept, the file under the conflict
//     name.
//
// Then it restores, in one run, every entry of theirs the plan needs into a
// temporary directory inside dir, and applies the plan path by path. Before
// it replaces or removes anything, it checks that dir still holds ours'
// version (type, size, mtime, permissions, and the content of small files);
// where it does not, the entry was edited since ours was taken: it is left
// alone and theirs goes to a conflict copy. Entries are moved into place by
// rename, so a crash never leaves a half-written file under its real name.

// MergeTempPrefix starts the name of the temporary directory a merge
// restores into, inside the merged directory; it is removed when the merge
// ends.
const MergeTempPrefix = ".dvpc-merge-"

// Conflict kinds.
const (
	// ConflictBoth: both sides changed the file; Copy holds theirs.
	ConflictBoth = "both-changed"
	// ConflictEdited: theirs changed the entry, but dir no longer held
	// ours' version (it was edited since); Copy holds theirs.
	ConflictEdited = "edited-since"
	// ConflictType: a file on one side, a directory on the other. The
	// directory keeps the name; Copy holds the file (ours or theirs).
	ConflictType = "file-dir"
	// ConflictProtected: theirs has an entry where a dvpc store lives;
	// nothing was written (Copy is empty).
	ConflictProtected = "store"
)

// MergeOptions tune [Merge].
type MergeOptions struct {
	// Protect names live store directories (the one in use, the default
	// one). The merge never writes inside them, nor inside any directory
	// below dir that [image.IsStoreDir] recognises.
	Protect []string
}

// MergeReport says what a merge did, each path slash-separated and relative
// to the merged directory, in path order.
type MergeReport struct {
	Taken     []string // written from theirs
	Removed   []string // removed because theirs deleted them
	Kept      []string // ours kept where theirs deleted it
	Conflicts []Conflict
}

// Conflict is a path where both sides are kept.
type Conflict struct {
	Path string // the path both sides hold
	Copy string // where the other version went, beside Path
	Kind string // ConflictBoth, ConflictEdited, ConflictType or ConflictProtected
}

// Merge brings theirs' changes since base into dir, which holds ours (the
// caller has just snapshotted it), possibly with edits made since. base nil
// means an empty tree; base equal to ours is a fast-forward, which rewrites
// only what theirs changed. Neither side loses a byte: where both changed
// a path, both are kept. Merge never follows a symlink out of dir, and
// never writes inside a store. On error, the report says what was done
// before.
func Merge(ctx context.Context, repo *image.Repo, dir string, base, ours, theirs *image.Snapshot, opts MergeOptions) (MergeReport, error) {
	if ours == nil || theirs == nil {
		return MergeReport{}, errors.New("merge: both sides must be given")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return MergeReport{}, fmt.Errorf("merge into %s: %w", dir, err)
	}
	if abs, err = filepath.EvalSymlinks(abs); err != nil {
		return MergeReport{}, fmt.Errorf("merge into %s: %w", dir, err)
	}
	m := &merger{ctx: ctx, repo: repo, host: abs, ours: ours, theirs: theirs,
		protect: image.ResolveDirs(opts.Protect), stores: map[string]bool{},
		moved: map[string]string{}, touched: map[string]os.FileInfo{}, modes: map[string]os.FileMode{}}
	roots := [3]*image.Node{}
	for i, s := range []*image.Snapshot{base, ours, theirs} {
		if s == nil {
			continue
		}
		if roots[i], err = repo.FindNode(ctx, s, ""); err != nil {
			return MergeReport{}, fmt.Errorf("merge: snapshot %s: %w", s.ID, err)
		}
	}
	if err := m.dir("", roots[0], roots[1], roots[2]); err != nil {
		return MergeReport{}, fmt.Errorf("merge %s into %s: %w", theirs.ID, abs, err)
	}
	if err := m.apply(opts); err != nil {
		return m.rep, fmt.Errorf("merge %s into %s: %w", theirs.ID, abs, err)
	}
	return m.rep, nil
}

type actKind int

const (
	actTake    actKind = iota // put theirs at rel, replacing ours if dir still holds it
	actCopy                   // write theirs beside rel as a conflict copy
	actClash                  // ours, a file, moves to a conflict name; theirs, a directory, takes rel
	actRemove                 // remove ours at rel if dir still holds it
	actKeep                   // report ours kept over theirs' delete
	actDirDone                // after a directory's entries: remove it, or set its metadata
)

type action struct {
	kind    actKind
	rel     string
	b, o, t *image.Node
	why     string // the conflict kind of actCopy
}

// merger holds one merge: the plan, then the state of applying it.
type merger struct {
	ctx          context.Context
	repo         *image.Repo
	host         string // dir, absolute, symlinks resolved
	ours, theirs *image.Snapshot
	acts         []action
	restore      []string // theirs' paths the plan writes
	rep          MergeReport
	root         *os.Root
	tmp          string // the temporary directory, relative to root
	protect      []string
	stores       map[string]bool        // paths that are, or are not, stores
	moved        map[string]string      // paths of tmp moved into dir, with where they went ("" for their own name)
	touched      map[string]os.FileInfo // directories of dir changed, as they were before
	modes        map[string]os.FileMode // directories made writable for a while, with the mode to give back
	rootMtime    *time.Time             // the top directory's mtime, set again at the end
}

func (m *merger) add(a action) {
	m.acts = append(m.acts, a)
	if a.kind == actTake || a.kind == actCopy || a.kind == actClash {
		m.restore = append(m.restore, a.rel)
	}
}

// entry plans the merge of one path; b, o and t are its entries in base,
// ours and theirs, nil where absent.
func (m *merger) entry(rel string, b, o, t *image.Node) error {
	switch {
	case sameNode(o, t):
		return nil
	case isDir(o) && isDir(t):
		return m.dir(rel, b, o, t)
	case sameNode(b, t): // changed by ours alone
		return nil
	case sameNode(b, o): // changed by theirs alone
		if t == nil {
			if isDir(o) {
				return m.dir(rel, b, o, nil)
			}
			m.add(action{kind: actRemove, rel: rel, b: b, o: o})
			return nil
		}
		m.add(action{kind: actTake, rel: rel, b: b, o: o, t: t})
	case o == nil: // deleted by ours, changed by theirs: theirs comes back
		if isDir(b) && isDir(t) {
			return m.dir(rel, b, nil, t)
		}
		m.add(action{kind: actTake, rel: rel, b: b, t: t})
	case t == nil: // deleted by theirs, changed by ours: ours stays
		if isDir(b) && isDir(o) {
			return m.dir(rel, b, o, nil)
		}
		m.add(action{kind: actKeep, rel: rel})
	case isDir(o): // theirs is not a directory
		m.add(action{kind: actCopy, rel: rel, b: b, o: o, t: t, why: ConflictType})
	case isDir(t): // ours is not a directory
		m.add(action{kind: actClash, rel: rel, b: b, o: o, t: t})
	case sameData(o, t): // both made the same change; only times differ
		return nil
	default:
		m.add(action{kind: actCopy, rel: rel, b: b, o: o, t: t, why: ConflictBoth})
	}
	return nil
}

// dir plans the entries of a directory at least one side holds, then its
// own end.
func (m *merger) dir(rel string, b, o, t *image.Node) error {
	if err := m.ctx.Err(); err != nil {
		return err
	}
	subtree := func(n *image.Node) (image.ChunkID, bool) {
		if !isDir(n) {
			return image.ChunkID{}, false
		}
		return n.Subtree, true
	}
	sb, hasB := subtree(b)
	so, hasO := subtree(o)
	st, hasT := subtree(t)
	// Theirs changed nothing below: neither an edit nor a delete to bring.
	same := hasT && (hasO && so == st || hasB && sb == st)
	if !same {
		var trees [3]*image.Tree
		for i, id := range []image.ChunkID{sb, so, st} {
			if !(hasB && i == 0 || hasO && i == 1 || hasT && i == 2) {
				trees[i] = &image.Tree{}
				continue
			}
			tr, err := m.repo.LoadTree(m.ctx, id)
			if err != nil {
				return fmt.Errorf("%s: %w", displayRel(rel), err)
			}
			trees[i] = tr
		}
		for _, name := range unionNames(trees) {
			crel := path.Join(rel, name)
			if err := m.entry(crel, trees[0].Find([]byte(name)), trees[1].Find([]byte(name)), trees[2].Find([]byte(name))); err != nil {
				return err
			}
		}
	}
	m.acts = append(m.acts, action{kind: actDirDone, rel: rel, b: b, o: o, t: t})
	return nil
}

// unionNames returns the names of the entries of the trees, sorted, each
// once.
func unionNames(trees [3]*image.Tree) []string {
	var names []string
	for _, tr := range trees {
		for _, n := range tr.Nodes {
			names = append(names, string(n.Name))
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

func isDir(n *image.Node) bool { return n != nil && n.Type == image.TypeDir }

// sameNode reports whether two entries are the same version: type,
// content, permissions, mtime and xattrs; a directory by its entries too.
// Owners are left out: two PCs number one person differently.
func sameNode(a, b *image.Node) bool {
	if a == nil || b == nil {
		return a == b
	}
	if !sameData(a, b) || !a.Mtime.Equal(b.Mtime) {
		return false
	}
	return a.Type != image.TypeDir || a.Subtree == b.Subtree
}

// sameData reports whether two entries hold the same thing, whatever their
// times: type, content or link target, permissions and xattrs.
func sameData(a, b *image.Node) bool {
	return a.Type == b.Type && a.Mode == b.Mode && a.Size == b.Size && bytes.Equal(a.Target, b.Target) &&
		slices.Equal(a.Parts, b.Parts) &&
		slices.EqualFunc(a.Xattrs, b.Xattrs, func(x, y image.Xattr) bool {
			return bytes.Equal(x.Name, y.Name) && bytes.Equal(x.Value, y.Value)
		})
}

// sameMeta reports whether two directories have the same metadata.
func sameMeta(a, b *image.Node) bool {
	return a != nil && b != nil && a.Mode == b.Mode && a.Mtime.Equal(b.Mtime) &&
		slices.EqualFunc(a.Xattrs, b.Xattrs, func(x, y image.Xattr) bool {
			return bytes.Equal(x.Name, y.Name) && bytes.Equal(x.Value, y.Value)
		})
}

func displayRel(rel string) string {
	if rel == "" {
		return "the top directory"
	}
	return rel
}
