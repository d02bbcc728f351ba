//go:build linux

package treecmp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// Difference is one way in which the compared trees differ.
type Difference struct {
	// Path is the entry's path relative to the roots, with "/" between
	// names; "." is the root itself. Names are arbitrary bytes.
	Path string
	// What says what differs, e.g. "mode: want 0644, got 0600".
	What string
}

// String returns "path: what", quoting the path if it holds bytes that are
// not printable UTF-8 (such as a newline).
func (d Difference) String() string {
	return displayPath(d.Path) + ": " + d.What
}

// Option changes what [Compare] checks.
type Option func(*config)

type config struct {
	ignoreRootMtime bool
	ignore          []func(rel string) bool
}

// IgnoreRootMtime makes [Compare] accept a different mtime on the root
// directories themselves. Everything below the roots is still compared.
func IgnoreRootMtime() Option {
	return func(c *config) { c.ignoreRootMtime = true }
}

// IgnorePaths makes [Compare] skip every entry for which ignore returns true,
// in both trees. ignore is called with the entry's relative path (as in
// [Difference.Path], never "." for the root); if it returns true for a
// directory, the whole subtree is skipped, and skipped files take no part in
// the hard-link check. Several IgnorePaths options combine: an entry is
// skipped if any of them says so.
func IgnorePaths(ignore func(rel string) bool) Option {
	return func(c *config) { c.ignore = append(c.ignore, ignore) }
}

// Compare walks the trees rooted at want and got and returns every
// difference of got from want, in walk order (names sorted bytewise within
// each directory), followed by hard-link differences sorted by path. It never
// follows symlinks, not even at the roots, and never opens anything but
// regular files.
//
// An entry only in want is reported once as missing, and one only in got
// once as extra, without listing what lies below it. Regular files are
// compared byte for byte, streaming. The hard-link check requires that the
// partition of regular-file paths by (device, inode) is the same in both
// trees; it is reported on each path present in both trees whose group
// differs.
//
// The error is non-nil if either root cannot be examined or reading any entry
// fails; the differences found up to then are returned with it.
func Compare(want, got string, opts ...Option) ([]Difference, error) {
	c := &comparer{
		want:  want,
		got:   got,
		wantL: newLinks(),
		gotL:  newLinks(),
	}
	for _, o := range opts {
		o(&c.cfg)
	}
	var ws, gs unix.Stat_t
	if err := unix.Lstat(want, &ws); err != nil {
		return nil, &os.PathError{Op: "lstat", Path: want, Err: err}
	}
	if err := unix.Lstat(got, &gs); err != nil {
		return nil, &os.PathError{Op: "lstat", Path: got, Err: err}
	}
	if err := c.entry(".", &ws, &gs); err != nil {
		return c.diffs, err
	}
	c.compareLinks()
	return c.diffs, nil
}

// Format lists diffs one per line for a test failure message, at most 50 of
// them followed by a count of the rest.
func Format(diffs []Difference) string {
	const limit = 50
	if len(diffs) == 0 {
		return "no differences"
	}
	var b strings.Builder
	if len(diffs) == 1 {
		b.WriteString("1 difference:")
	} else {
		fmt.Fprintf(&b, "%d differences:", len(diffs))
	}
	for i, d := range diffs {
		if i == limit {
			fmt.Fprintf(&b, "\n  ... and %d more", len(diffs)-limit)
			break
		}
		b.WriteString("\n  ")
		b.WriteString(d.String())
	}
	return b.String()
}

type comparer struct {
	cfg         config
	want, got   string
	diffs       []Difference
	wantL, gotL *links
	contentBufs [2][]byte
}

func (c *comparer) add(rel, format string, args ...any) {
	c.diffs = append(c.diffs, Difference{Path: rel, What: fmt.Sprintf(format, args...)})
}

func (c *comparer) ignored(rel string) bool {
	for _, f := range c.cfg.ignore {
		if f(rel) {
			return true
		}
	}
	return false
}

// full returns the filesystem path of rel below root. rel holds no "." or
// ".." names below the root, so no cleaning is wanted.
func full(root, rel string) string {
	if rel == "." {
		return root
	}
	return root + "/" + rel
}

func child(rel, name string) string {
	if rel == "." {
		return name
	}
	return rel + "/" + name
}

// entry compares the entry rel, which exists in both trees.
func (c *comparer) entry(rel string, ws, gs *unix.Stat_t) error {
	wp, gp := full(c.want, rel), full(c.got, rel)
	wt, gt := ws.Mode&unix.S_IFMT, gs.Mode&unix.S_IFMT
	if wt != gt {
		c.add(rel, "type: want %s, got %s", typeName(wt), typeName(gt))
		// Files below a directory present in one tree only still belong
		// to hard-link groups.
		if err := c.collect(c.wantL, c.want, rel, ws); err != nil {
			return err
		}
		return c.collect(c.gotL, c.got, rel, gs)
	}

	if wm, gm := ws.Mode&07777, gs.Mode&07777; wm != gm {
		c.add(rel, "mode: want %04o, got %04o", wm, gm)
	}
	if !(rel == "." && c.cfg.ignoreRootMtime) {
		if ws.Mtim != gs.Mtim {
			c.add(rel, "mtime: want %s, got %s", fmtTime(ws.Mtim), fmtTime(gs.Mtim))
		}
	}
	if err := c.xattrs(rel, wp, gp); err != nil {
		return err
	}

	switch wt {
	case unix.S_IFREG:
		c.wantL.add(rel, ws)
		c.gotL.add(rel, gs)
		if ws.Size != gs.Size {
			c.add(rel, "size: want %d, got %d", ws.Size, gs.Size)
			return nil
		}
		return c.content(rel, wp, gp)
	case unix.S_IFLNK:
		wl, err := os.Readlink(wp)
		if err != nil {
			return err
		}
		gl, err := os.Readlink(gp)
		if err != nil {
			return err
		}
		if wl != gl {
			c.add(rel, "symlink target: want %q, got %q", wl, gl)
		}
	case unix.S_IFCHR, unix.S_IFBLK:
		if ws.Rdev != gs.Rdev {
			c.add(rel, "device: want %d:%d, got %d:%d",
				unix.Major(ws.Rdev), unix.Minor(ws.Rdev), unix.Major(gs.Rdev), unix.Minor(gs.Rdev))
		}
	case unix.S_IFDIR:
		return c.dir(rel, wp, gp)
	}
	return nil
}

// dir compares the children of the directory rel.
func (c *comparer) dir(rel, wp, gp string) error {
	wn, err := readNames(wp)
	if err != nil {
		return err
	}
	gn, err := readNames(gp)
	if err != nil {
		return err
	}
	i, j := 0, 0
	for i < len(wn) || j < len(gn) {
		var name string
		inWant, inGot := false, false
		switch {
		case j == len(gn) || (i < len(wn) && wn[i] < gn[j]):
			name, inWant = wn[i], true
			i++
		case i == len(wn) || gn[j] < wn[i]:
			name, inGot = gn[j], true
			j++
		default:
			name, inWant, inGot = wn[i], true, true
			i++
			j++
		}
		crel := child(rel, name)
		if c.ignored(crel) {
			continue
		}
		var ws, gs unix.Stat_t
		if inWant {
			if err := lstat(full(c.want, crel), &ws); err != nil {
				return err
			}
		}
		if inGot {
			if err := lstat(full(c.got, crel), &gs); err != nil {
				return err
			}
		}
		switch {
		case inWant && inGot:
			err = c.entry(crel, &ws, &gs)
		case inWant:
			c.add(crel, "missing (%s)", typeName(ws.Mode&unix.S_IFMT))
			err = c.collect(c.wantL, c.want, crel, &ws)
		default:
			c.add(crel, "extra (%s)", typeName(gs.Mode&unix.S_IFMT))
			err = c.collect(c.gotL, c.got, crel, &gs)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// collect records the regular files at and below rel, which exists in one
// tree only, for the hard-link check.
func (c *comparer) collect(l *links, root, rel string, st *unix.Stat_t) error {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		l.add(rel, st)
	case unix.S_IFDIR:
		names, err := readNames(full(root, rel))
		if err != nil {
			return err
		}
		for _, name := range names {
			crel := child(rel, name)
			if c.ignored(crel) {
				continue
			}
			var cst unix.Stat_t
			if err := lstat(full(root, crel), &cst); err != nil {
				return err
			}
			if err := c.collect(l, root, crel, &cst); err != nil {
				return err
			}
		}
	}
	return nil
}

// content compares two regular files of equal size byte for byte.
func (c *comparer) content(rel, wp, gp string) error {
	const bufSize = 64 << 10
	wf, err := os.Open(wp)
	if err != nil {
		return err
	}
	defer wf.Close()
	gf, err := os.Open(gp)
	if err != nil {
		return err
	}
	defer gf.Close()
	if c.contentBufs[0] == nil {
		c.contentBufs = [2][]byte{make([]byte, bufSize), make([]byte, bufSize)}
	}
	wb, gb := c.contentBufs[0], c.contentBufs[1]
	var off int64
	for {
		wn, werr := io.ReadFull(wf, wb)
		gn, gerr := io.ReadFull(gf, gb)
		if werr != nil && werr != io.EOF && werr != io.ErrUnexpectedEOF {
			return &os.PathError{Op: "read", Path: wp, Err: werr}
		}
		if gerr != nil && gerr != io.EOF && gerr != io.ErrUnexpectedEOF {
			return &os.PathError{Op: "read", Path: gp, Err: gerr}
		}
		n := min(wn, gn)
		if !bytes.Equal(wb[:n], gb[:n]) {
			k := 0
			for wb[k] == gb[k] {
				k++
			}
			c.add(rel, "content differs at byte %d", off+int64(k))
			return nil
		}
		if wn != gn {
			// The sizes matched when stat'ed; a file changed meanwhile.
			c.add(rel, "content differs at byte %d (length changed while comparing)", off+int64(n))
			return nil
		}
		if werr != nil { // EOF on both
			return nil
		}
		off += int64(n)
	}
}

// xattrs compares the user.* extended attributes of wp and gp.
func (c *comparer) xattrs(rel, wp, gp string) error {
	wx, err := userXattrs(wp)
	if err != nil {
		return err
	}
	gx, err := userXattrs(gp)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(wx)+len(gx))
	for n := range wx {
		names = append(names, n)
	}
	for n := range gx {
		if _, ok := wx[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		wv, inW := wx[n]
		gv, inG := gx[n]
		switch {
		case !inG:
			c.add(rel, "xattr %s: missing (want %s)", n, fmtValue(wv))
		case !inW:
			c.add(rel, "xattr %s: extra (got %s)", n, fmtValue(gv))
		case !bytes.Equal(wv, gv):
			c.add(rel, "xattr %s: want %s, got %s", n, fmtValue(wv), fmtValue(gv))
		}
	}
	return nil
}

// userXattrs returns the user.* extended attributes of path, not following
// a symlink. A filesystem without xattr support has none.
func userXattrs(path string) (map[string][]byte, error) {
	var list []byte
	for {
		n, err := unix.Llistxattr(path, nil)
		if err != nil {
			if unsupported(err) {
				return nil, nil
			}
			return nil, &os.PathError{Op: "llistxattr", Path: path, Err: err}
		}
		if n == 0 {
			return nil, nil
		}
		list = make([]byte, n)
		n, err = unix.Llistxattr(path, list)
		if errors.Is(err, unix.ERANGE) {
			continue // grew in between
		}
		if err != nil {
			return nil, &os.PathError{Op: "llistxattr", Path: path, Err: err}
		}
		list = list[:n]
		break
	}
	var m map[string][]byte
	for _, name := range strings.Split(string(list), "\x00") {
		if !strings.HasPrefix(name, "user.") {
			continue
		}
		v, ok, err := getXattr(path, name)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue // removed in between
		}
		if m == nil {
			m = make(map[string][]byte)
		}
		m[name] = v
	}
	return m, nil
}

func getXattr(path, name string) ([]byte, bool, error) {
	for {
		n, err := unix.Lgetxattr(path, name, nil)
		if errors.Is(err, unix.ENODATA) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, &os.PathError{Op: "lgetxattr " + name, Path: path, Err: err}
		}
		v := make([]byte, n)
		if n == 0 {
			return v, true, nil
		}
		n, err = unix.Lgetxattr(path, name, v)
		switch {
		case errors.Is(err, unix.ERANGE):
			continue
		case errors.Is(err, unix.ENODATA):
			return nil, false, nil
		case err != nil:
			return nil, false, &os.PathError{Op: "lgetxattr " + name, Path: path, Err: err}
		}
		return v[:n], true, nil
	}
}

func unsupported(err error) bool {
	return errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP)
}

// links records, for one tree, the regular-file paths of each inode.
type links struct {
	byKey map[fileKey][]string
	keyOf map[string]fileKey
}

type fileKey struct{ dev, ino uint64 }

func newLinks() *links {
	return &links{byKey: make(map[fileKey][]string), keyOf: make(map[string]fileKey)}
}

func (l *links) add(rel string, st *unix.Stat_t) {
	k := fileKey{uint64(st.Dev), uint64(st.Ino)}
	l.byKey[k] = append(l.byKey[k], rel)
	l.keyOf[rel] = k
}

// others returns the sorted paths other than rel that share rel's inode.
func (l *links) others(rel string) []string {
	var out []string
	for _, p := range l.byKey[l.keyOf[rel]] {
		if p != rel {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// compareLinks reports each path, regular in both trees, whose hard-link
// group differs.
func (c *comparer) compareLinks() {
	var paths []string
	for p := range c.wantL.keyOf {
		if _, ok := c.gotL.keyOf[p]; ok {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	for _, p := range paths {
		w, g := c.wantL.others(p), c.gotL.others(p)
		if !slices.Equal(w, g) {
			c.add(p, "hard links: want linked with %s, got linked with %s", fmtPaths(w), fmtPaths(g))
		}
	}
}

func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

func lstat(path string, st *unix.Stat_t) error {
	if err := unix.Lstat(path, st); err != nil {
		return &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	return nil
}

func typeName(t uint32) string {
	switch t {
	case unix.S_IFREG:
		return "regular file"
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	}
	return fmt.Sprintf("type %#o", t)
}

func fmtTime(ts unix.Timespec) string {
	return time.Unix(ts.Sec, ts.Nsec).UTC().Format("2006-01-02T15:04:05.000000000Z")
}

func fmtValue(v []byte) string {
	const limit = 64
	if len(v) > limit {
		return fmt.Sprintf("%q... (%d bytes)", v[:limit], len(v))
	}
	return fmt.Sprintf("%q", v)
}

func fmtPaths(ps []string) string {
	if len(ps) == 0 {
		return "nothing"
	}
	q := make([]string, len(ps))
	for i, p := range ps {
		q[i] = displayPath(p)
	}
	return "{" + strings.Join(q, ", ") + "}"
}

// displayPath returns p as is if it is printable UTF-8, else Go-quoted.
func displayPath(p string) string {
	if utf8.ValidString(p) && strings.IndexFunc(p, func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return p
	}
	return strconv.Quote(p)
}
