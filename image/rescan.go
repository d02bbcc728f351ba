package image

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
)

// A partial rescan (see [SnapshotOptions.Changed]) reads again only the
// directories that may have changed since the parent snapshot. Every other
// subtree is the parent's, taken by its tree ID without touching the disk,
// and a directory on the way down to a changed one is the parent's entries
// with the changed child rebuilt.

// rescan is the set of changed directories of a partial rescan, cleaned,
// sorted and without one that lies inside another; nil means everything.
type rescan struct {
	dirs []string // "" is the root
}

// newRescan checks and cleans the changed directories.
func newRescan(changed []string) (*rescan, error) {
	if changed == nil {
		return nil, nil
	}
	dirs := make([]string, 0, len(changed))
	for _, c := range changed {
		if strings.ContainsRune(c, 0) || strings.HasPrefix(c, "/") || strings.Contains(c, `\`) {
			return nil, fmt.Errorf("changed directory %q: want a slash-separated path relative to the root", c)
		}
		p := path.Clean(c)
		if p == ".." || strings.HasPrefix(p, "../") {
			return nil, fmt.Errorf("changed directory %q: it lies outside the root", c)
		}
		if p == "." {
			p = ""
		}
		dirs = append(dirs, p)
	}
	slices.Sort(dirs)
	dirs = slices.Compact(dirs)
	var kept []string
	for _, d := range dirs { // sorted: a directory comes after those it lies in
		if !slices.ContainsFunc(kept, func(k string) bool { return underDir(d, k) }) {
			kept = append(kept, d)
		}
	}
	return &rescan{dirs: kept}, nil
}

// underDir reports whether the slash-separated p is dir or lies below it.
func underDir(p, dir string) bool {
	return dir == "" || p == dir || strings.HasPrefix(p, dir) && p[len(dir)] == '/'
}

// all reports whether the directory rel is read again wholly: every
// directory is when the rescan is not partial.
func (s *rescan) all(rel string) bool {
	if s == nil {
		return true
	}
	for _, d := range s.dirs {
		if underDir(rel, d) {
			return true
		}
	}
	return false
}

// touches reports whether rel is read again, wholly or in part.
func (s *rescan) touches(rel string) bool {
	if s.all(rel) {
		return true
	}
	for _, d := range s.dirs {
		if underDir(d, rel) {
			return true
		}
	}
	return false
}

// below returns the names of rel's entries that lead to a changed
// directory, sorted; rel itself is not read again wholly.
func (s *rescan) below(rel string) []string {
	var names []string
	for _, d := range s.dirs {
		if d == rel || !underDir(d, rel) {
			continue
		}
		rest := d
		if rel != "" {
			rest = d[len(rel)+1:]
		}
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			rest = rest[:i]
		}
		if len(names) == 0 || names[len(names)-1] != rest {
			names = append(names, rest)
		}
	}
	return names
}

// treeCount counts the entries below a directory.
type treeCount struct{ files, dirs, bytes int64 }

// treeSum is what a partial rescan needs of a tree it takes over: the
// chunks it names and what lies below it. Trees are named by their
// content, so a sum never goes stale; a Repo keeps them from one snapshot
// to the next (a watch takes many), up to maxTreeSums.
type treeSum struct {
	chunks   []ChunkID // of its files
	subtrees []ChunkID
	own      treeCount // its own entries
	total    treeCount // everything below it, once a run has counted it
}

const maxTreeSums = 1 << 20

type treeSums struct {
	mu sync.Mutex
	m  map[ChunkID]*treeSum
}

func (r *Repo) treeSum(ctx context.Context, id ChunkID) (*treeSum, error) {
	r.sums.mu.Lock()
	s := r.sums.m[id]
	r.sums.mu.Unlock()
	if s != nil {
		return s, nil
	}
	t, err := r.LoadTree(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("parent snapshot: %w", err)
	}
	s = &treeSum{}
	for _, n := range t.Nodes {
		switch n.Type {
		case TypeFile:
			s.own.files++
			s.own.bytes += n.Size
			for _, p := range n.Parts {
				if p.Hole == 0 {
					s.chunks = append(s.chunks, p.Chunk)
				}
			}
		case TypeDir:
			s.own.dirs++
			s.subtrees = append(s.subtrees, n.Subtree)
		}
	}
	r.sums.mu.Lock()
	if r.sums.m == nil || len(r.sums.m) >= maxTreeSums {
		r.sums.m = map[ChunkID]*treeSum{}
	}
	r.sums.m[id] = s
	r.sums.mu.Unlock()
	return s, nil
}

// takeSubtree marks as used every chunk of the parent's subtree id, which
// a partial rescan takes over as it is, and counts what it holds. seen
// holds the trees this run has marked already.
func (r *Repo) takeSubtree(ctx context.Context, id ChunkID, used, seen map[ChunkID]bool) (treeCount, error) {
	s, err := r.treeSum(ctx, id)
	if err != nil {
		return treeCount{}, err
	}
	if seen[id] {
		return s.total, nil
	}
	seen[id] = true
	used[id] = true
	for _, c := range s.chunks {
		used[c] = true
	}
	total := s.own
	for _, sub := range s.subtrees {
		c, err := r.takeSubtree(ctx, sub, used, seen)
		if err != nil {
			return treeCount{}, err
		}
		total.files += c.files
		total.dirs += c.dirs
		total.bytes += c.bytes
	}
	r.sums.mu.Lock()
	s.total = total
	r.sums.mu.Unlock()
	return total, nil
}
