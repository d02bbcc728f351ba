//go:build unix

package image

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/dvpc/dvpc/image/ignore"
)

// Excluder tells which entries below a root a snapshot of it leaves out,
// by the same rules [Repo.Snapshot] follows: the store it writes to, any
// other dvpc store, cache directories (unless kept), the exclude patterns
// and the .dvpcignore files on the way down. It reads the disk at each
// call, so it follows the files as they change. A watcher uses it to
// ignore what no snapshot would record.
type Excluder struct {
	root  string
	rules *leaveOut
}

// Excluder returns the [Excluder] of snapshots of root taken with opts.
func (r *Repo) Excluder(root string, opts SnapshotOptions) (*Excluder, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("exclusions of %s: %w", root, err)
	}
	rules, err := newLeaveOut(r.st, abs, opts)
	if err != nil {
		return nil, err
	}
	return &Excluder{root: abs, rules: rules}, nil
}

// Excluded reports whether a snapshot leaves out the entry rel: a
// slash-separated path relative to the root, or one below a directory it
// leaves out. isDir tells whether rel is a directory. The root itself is
// never left out.
func (e *Excluder) Excluded(rel string, isDir bool) bool {
	rel = path.Clean(rel)
	if rel == "." || rel == "/" || rel == ".." || strings.HasPrefix(rel, "../") {
		return false
	}
	rel = strings.TrimPrefix(rel, "/")
	ign := ignore.New()
	dir, drel := e.root, ""
	for {
		// Unreadable patterns are the snapshot's to report.
		_ = addIgnoreFile(ign, filepath.Join(dir, IgnoreFile), drel)
		left := rel
		if drel != "" {
			left = rel[len(drel)+1:]
		}
		name, _, more := strings.Cut(left, "/")
		crel := path.Join(drel, name)
		cabs := filepath.Join(dir, name)
		d := isDir || more
		if e.rules.excl.Match(crel, d) || ign.Match(crel, d) {
			return true
		}
		if d && e.leftOutDir(cabs) {
			return true
		}
		if !more {
			return false
		}
		dir, drel = cabs, crel
	}
}

// leftOutDir reports whether the directory abs is one a snapshot leaves
// out by rule. A directory that is gone is not.
func (e *Excluder) leftOutDir(abs string) bool {
	var st unix.Stat_t
	if err := unix.Lstat(abs, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return false
	}
	kind, _ := e.rules.kind(abs, &st, func(name string) bool {
		_, err := os.Lstat(filepath.Join(abs, name))
		return err == nil
	})
	return kind != 0
}
