package overlay

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/dvpc/dvpc/image"
)

// cheapContent is the size up to which a file's content is compared with
// ours' before it is replaced or removed; larger files are judged by type,
// size, mtime and permissions.
const cheapContent = 64 << 10

// apply restores what the plan takes from theirs into a temporary
// directory inside dir, then carries the plan out path by path.
func (m *merger) apply(opts MergeOptions) (err error) {
	root, err := os.OpenRoot(m.host)
	if err != nil {
		return err
	}
	defer root.Close()
	m.root = root
	defer func() {
		if e := m.finish(); err == nil {
			err = e
		}
	}()
	if len(m.restore) > 0 {
		if err := m.touch(""); err != nil {
			return err
		}
		tmp, err := os.MkdirTemp(m.host, MergeTempPrefix)
		if err != nil {
			return fmt.Errorf("make a temporary directory: %w", err)
		}
		m.tmp = filepath.Base(tmp)
		err = m.repo.Restore(m.ctx, m.theirs, image.RestoreOptions{Target: tmp, Paths: m.restore, Protect: opts.Protect})
		if err != nil {
			return fmt.Errorf("restore from %s: %w", m.theirs.ID, err)
		}
	}
	for _, a := range m.acts {
		if err := m.ctx.Err(); err != nil {
			return err
		}
		var err error
		switch a.kind {
		case actTake:
			err = m.take(a)
		case actCopy:
			err = m.conflict(a)
		case actClash:
			err = m.clash(a)
		case actRemove:
			err = m.remove(a)
		case actKeep:
			m.rep.Kept = append(m.rep.Kept, a.rel)
		case actDirDone:
			err = m.dirDone(a)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", displayRel(a.rel), err)
		}
	}
	return nil
}

// finish removes the temporary directory and gives back the permissions
// of the directories that were made writable for a while, deepest first.
func (m *merger) finish() error {
	var errs []error
	if m.tmp != "" {
		if err := m.removeAll(m.tmp); err != nil {
			errs = append(errs, fmt.Errorf("remove the temporary directory %s: %w", m.tmp, err))
		}
		m.tmp = ""
	}
	dirs := make([]string, 0, len(m.modes))
	for d := range m.modes {
		dirs = append(dirs, d)
	}
	slices.SortFunc(dirs, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	for _, d := range dirs {
		if err := m.root.Chmod(osRel(d), m.modes[d]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if m.rootMtime != nil {
		if err := m.root.Chtimes(".", time.Time{}, *m.rootMtime); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// take puts theirs at a.rel, where dir must still hold ours (a.o, nil for
// nothing); else theirs goes to a conflict copy.
func (m *merger) take(a action) error {
	if done, err := m.place(a.rel); done || err != nil {
		return err
	}
	ok, err := m.holds(a.rel, a.o)
	if err != nil {
		return err
	}
	if !ok {
		return m.copyTheirs(a.rel, ConflictEdited)
	}
	if err := m.touch(parentRel(a.rel)); err != nil {
		return err
	}
	// A file replaces a file by rename alone; a change of type needs room.
	if a.o != nil && (isDir(a.o) || isDir(a.t)) {
		if err := m.removeAll(osRel(a.rel)); err != nil {
			return err
		}
	}
	if err := m.moveIn(a.rel, a.rel); err != nil {
		return err
	}
	m.rep.Taken = append(m.rep.Taken, a.rel)
	return nil
}

// conflict writes theirs beside a.rel, which both sides changed.
func (m *merger) conflict(a action) error {
	if done, err := m.place(a.rel); done || err != nil {
		return err
	}
	return m.copyTheirs(a.rel, a.why)
}

// clash keeps both a file of ours and a directory of theirs at a.rel: the
// file moves to a conflict name and the directory takes its place.
func (m *merger) clash(a action) error {
	if done, err := m.place(a.rel); done || err != nil {
		return err
	}
	fi, err := m.root.Lstat(osRel(a.rel))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := m.moveIn(a.rel, a.rel); err != nil {
			return err
		}
		m.rep.Taken = append(m.rep.Taken, a.rel)
		return nil
	case err != nil:
		return err
	case fi.IsDir(): // a directory of ours made since
		return m.copyTheirs(a.rel, ConflictEdited)
	}
	name, err := m.freeName(a.rel, m.ours)
	if err != nil {
		return err
	}
	if err := m.touch(parentRel(a.rel)); err != nil {
		return err
	}
	if err := m.root.Rename(osRel(a.rel), osRel(name)); err != nil {
		return err
	}
	if err := m.moveIn(a.rel, a.rel); err != nil {
		return err
	}
	m.rep.Conflicts = append(m.rep.Conflicts, Conflict{Path: a.rel, Copy: name, Kind: ConflictType})
	return nil
}

// remove deletes ours at a.rel, which theirs deleted, if dir still holds
// it; else it is kept.
func (m *merger) remove(a action) error {
	if m.guarded(a.rel) {
		return nil
	}
	if p, _, err := m.firstNonDir(parentRel(a.rel)); err != nil || p != "" {
		return err // not there any more
	}
	ok, err := m.holds(a.rel, a.o)
	if err != nil {
		return err
	}
	if !ok {
		if _, err := m.root.Lstat(osRel(a.rel)); err == nil {
			m.rep.Kept = append(m.rep.Kept, a.rel)
		}
		return nil
	}
	if err := m.touch(parentRel(a.rel)); err != nil {
		return err
	}
	if err := m.root.Remove(osRel(a.rel)); err != nil {
		return err
	}
	m.rep.Removed = append(m.rep.Removed, a.rel)
	return nil
}

// dirDone ends a directory once its entries are merged: one theirs deleted
// goes when nothing is left in it; one both hold gets theirs' permissions
// and mtime if theirs alone changed them, else keeps ours' mtime despite
// the merge's writes into it.
func (m *merger) dirDone(a action) error {
	if a.rel != "" {
		if _, ok := m.movedWith(a.rel); ok || m.guarded(a.rel) {
			return nil
		}
		if p, _, err := m.firstNonDir(parentRel(a.rel)); err != nil || p != "" {
			return err
		}
	}
	fi, err := m.root.Lstat(osRel(a.rel))
	if errors.Is(err, fs.ErrNotExist) || err == nil && !fi.IsDir() {
		return nil
	}
	if err != nil {
		return err
	}
	if a.o == nil {
		return nil // brought back from theirs: restored with its metadata
	}
	if a.t == nil {
		names, err := m.names(a.rel)
		if err != nil || len(names) > 0 {
			return err
		}
		if err := m.touch(parentRel(a.rel)); err != nil {
			return err
		}
		if err := m.root.Remove(osRel(a.rel)); err != nil {
			return err
		}
		delete(m.modes, a.rel)
		m.rep.Removed = append(m.rep.Removed, a.rel)
		return nil
	}
	want := a.o
	if !sameMeta(a.b, a.t) && sameMeta(a.b, a.o) {
		want = a.t
	}
	perm, tmpPerm := fi.Mode().Perm(), false
	if p, ok := m.modes[a.rel]; ok {
		perm, tmpPerm = p, true
	}
	if wantPerm := os.FileMode(want.Mode & 0o777); perm == os.FileMode(a.o.Mode&0o777) && wantPerm != perm {
		if tmpPerm {
			m.modes[a.rel] = wantPerm
		} else if err := m.root.Chmod(osRel(a.rel), wantPerm); err != nil {
			return err
		}
	}
	before := fi
	if t, ok := m.touched[a.rel]; ok {
		before = t
	}
	if before.ModTime().Equal(a.o.Mtime) && !fi.ModTime().Equal(want.Mtime) {
		if err := m.root.Chtimes(osRel(a.rel), time.Time{}, want.Mtime); err != nil {
			return err
		}
	}
	if a.rel == "" && before.ModTime().Equal(a.o.Mtime) {
		mt := want.Mtime // set again once the temporary directory is gone
		m.rootMtime = &mt
	}
	return nil
}

// place makes sure the directories above rel are real directories of dir
// before theirs is put at rel. One that is missing is moved in whole from
// the temporary directory, rel with it; one that is something else now
// stays, and theirs goes beside it as a conflict copy. It reports whether
// rel was thereby dealt with.
func (m *merger) place(rel string) (bool, error) {
	if name, ok := m.movedWith(rel); ok {
		if name == "" {
			m.rep.Taken = append(m.rep.Taken, rel)
		}
		return true, nil
	}
	if m.guarded(rel) {
		m.rep.Conflicts = append(m.rep.Conflicts, Conflict{Path: rel, Kind: ConflictProtected})
		return true, nil
	}
	p, missing, err := m.firstNonDir(parentRel(rel))
	if err != nil || p == "" {
		return false, err
	}
	if missing {
		if err := m.moveIn(p, p); err != nil {
			return false, err
		}
		m.moved[p] = ""
		m.rep.Taken = append(m.rep.Taken, rel)
		return true, nil
	}
	name, err := m.freeName(p, m.theirs)
	if err != nil {
		return false, err
	}
	if err := m.moveIn(p, name); err != nil {
		return false, err
	}
	m.moved[p] = name
	m.rep.Conflicts = append(m.rep.Conflicts, Conflict{Path: p, Copy: name, Kind: ConflictEdited})
	return true, nil
}

// movedWith reports whether rel was moved from the temporary directory
// with an ancestor (or itself), and where that ancestor went: "" for its
// own name.
func (m *merger) movedWith(rel string) (string, bool) {
	for p := rel; p != ""; p = parentRel(p) {
		if name, ok := m.moved[p]; ok {
			return name, true
		}
	}
	return "", false
}

// copyTheirs moves theirs, restored, to a conflict name beside rel.
func (m *merger) copyTheirs(rel, kind string) error {
	name, err := m.freeName(rel, m.theirs)
	if err != nil {
		return err
	}
	if err := m.moveIn(rel, name); err != nil {
		return err
	}
	m.rep.Conflicts = append(m.rep.Conflicts, Conflict{Path: rel, Copy: name, Kind: kind})
	return nil
}

// freeName returns a conflict name beside rel for a version of s that
// names nothing in dir yet.
func (m *merger) freeName(rel string, s *image.Snapshot) (string, error) {
	dir, base := path.Split(rel)
	for n := 1; n <= 1000; n++ {
		cand := dir + conflictName(base, s.Config.Host, s.Config.Time, n)
		_, err := m.root.Lstat(osRel(cand))
		if errors.Is(err, fs.ErrNotExist) {
			return cand, nil
		}
		if err != nil {
			return "", err
		}
	}
	return "", fmt.Errorf("no free conflict name beside %s", rel)
}

// moveIn renames theirs, restored at from in the temporary directory, to
// to in dir.
func (m *merger) moveIn(from, to string) error {
	if err := m.touch(parentRel(to)); err != nil {
		return err
	}
	// Restored directories have theirs' permissions: a read-only one must
	// let go of its entries.
	for p := parentRel(from); ; p = parentRel(p) {
		if err := m.root.Chmod(filepath.Join(m.tmp, filepath.FromSlash(p)), 0o700); err != nil {
			return err
		}
		if p == "" {
			break
		}
	}
	return m.root.Rename(filepath.Join(m.tmp, osRel(from)), osRel(to))
}

// touch notes a directory of dir before the merge changes its entries,
// and makes it writable for the while if it was not.
func (m *merger) touch(dir string) error {
	if _, ok := m.touched[dir]; ok {
		return nil
	}
	fi, err := m.root.Lstat(osRel(dir))
	if err != nil {
		return err
	}
	m.touched[dir] = fi
	if perm := fi.Mode().Perm(); perm&0o300 != 0o300 && runtime.GOOS != "windows" {
		m.modes[dir] = perm
		return m.root.Chmod(osRel(dir), perm|0o700)
	}
	return nil
}

// removeAll removes rel and everything below it, read-only directories
// included.
func (m *merger) removeAll(rel string) error {
	err := fs.WalkDir(m.root.FS(), filepath.ToSlash(rel), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			return m.root.Chmod(filepath.FromSlash(p), 0o700)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return m.root.RemoveAll(rel)
}

// firstNonDir returns the first of rel and its ancestors, from the top,
// that is not a directory of dir (never following a link), and whether it
// is missing; "" when all are directories.
func (m *merger) firstNonDir(rel string) (string, bool, error) {
	if rel == "" {
		return "", false, nil
	}
	parts := strings.Split(rel, "/")
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		fi, err := m.root.Lstat(osRel(p))
		if errors.Is(err, fs.ErrNotExist) {
			return p, true, nil
		}
		if err != nil {
			return "", false, err
		}
		if !fi.IsDir() {
			return p, false, nil
		}
	}
	return "", false, nil
}

// guarded reports whether rel is, or lies inside, a store the merge must
// not write in.
func (m *merger) guarded(rel string) bool {
	for p := rel; p != ""; p = parentRel(p) {
		v, ok := m.stores[p]
		if !ok {
			host := filepath.Join(m.host, osRel(p))
			v = slices.Contains(m.protect, host) || image.IsStoreDir(host)
			m.stores[p] = v
		}
		if v {
			return true
		}
	}
	return false
}

// holds reports whether dir still holds ours' version n of rel (nil:
// nothing), as ours was taken: same type, size, mtime and permissions, the
// same link target, and for a small file the same content; a directory
// holds exactly ours' entries.
func (m *merger) holds(rel string, n *image.Node) (bool, error) {
	fi, err := m.root.Lstat(osRel(rel))
	if errors.Is(err, fs.ErrNotExist) {
		return n == nil, nil
	}
	if err != nil || n == nil {
		return false, err
	}
	permOK := runtime.GOOS == "windows" || fi.Mode().Perm() == os.FileMode(n.Mode&0o777)
	switch n.Type {
	case image.TypeFile:
		if !fi.Mode().IsRegular() || fi.Size() != n.Size || !fi.ModTime().Equal(n.Mtime) || !permOK {
			return false, nil
		}
		if n.Size <= cheapContent {
			return m.sameContent(rel, n), nil
		}
		return true, nil
	case image.TypeSymlink:
		if fi.Mode().Type() != fs.ModeSymlink {
			return false, nil
		}
		target, err := m.root.Readlink(osRel(rel))
		return err == nil && target == string(n.Target), nil
	case image.TypeFIFO:
		return fi.Mode().Type() == fs.ModeNamedPipe && permOK, nil
	case image.TypeDir:
		if !fi.IsDir() || m.guarded(rel) {
			return false, nil
		}
		return m.holdsTree(rel, n)
	}
	return false, nil
}

// holdsTree reports whether the directory rel holds exactly the entries of
// ours' directory n, each as ours has it.
func (m *merger) holdsTree(rel string, n *image.Node) (bool, error) {
	tr, err := m.repo.LoadTree(m.ctx, n.Subtree)
	if err != nil {
		return false, err
	}
	names, err := m.names(rel)
	if err != nil {
		return false, err
	}
	if len(names) != len(tr.Nodes) {
		return false, nil
	}
	slices.Sort(names)
	for i, c := range tr.Nodes {
		if names[i] != string(c.Name) {
			return false, nil
		}
		if ok, err := m.holds(path.Join(rel, names[i]), c); !ok || err != nil {
			return false, err
		}
	}
	return true, nil
}

func (m *merger) names(rel string) ([]string, error) {
	f, err := m.root.Open(osRel(rel))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// sameContent reports whether the file at rel holds n's content. A content
// that cannot be read from the store counts as different: the file is
// then left alone.
func (m *merger) sameContent(rel string, n *image.Node) bool {
	f, err := m.root.Open(osRel(rel))
	if err != nil {
		return false
	}
	defer f.Close()
	if err := m.repo.WriteContent(m.ctx, n, &compareWriter{r: f}); err != nil {
		return false
	}
	var one [1]byte
	k, _ := f.Read(one[:])
	return k == 0
}

// compareWriter fails a write that differs from what r holds next.
type compareWriter struct {
	r   io.Reader
	buf []byte
}

var errDiffers = errors.New("content differs")

func (c *compareWriter) Write(p []byte) (int, error) {
	if cap(c.buf) < len(p) {
		c.buf = make([]byte, len(p))
	}
	b := c.buf[:len(p)]
	if _, err := io.ReadFull(c.r, b); err != nil || !bytes.Equal(b, p) {
		return 0, errDiffers
	}
	return len(p), nil
}

// parentRel returns the directory of a slash-separated path; "" is the
// top.
func parentRel(rel string) string {
	d := path.Dir(rel)
	if d == "." || d == "/" {
		return ""
	}
	return d
}

// osRel turns a slash-separated path relative to dir into one for os.Root.
func osRel(rel string) string {
	if rel == "" {
		return "."
	}
	return filepath.FromSlash(rel)
}
