package image

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ErrAmbiguousHome means a request could belong to several homes and none
// was named.
var ErrAmbiguousHome = errors.New("the store holds several homes")

// History is a store's verified snapshots, grouped into homes: the one
// place where a snapshot's home, the heads of a home and the resolution of
// "latest", an ID or a time within a home are decided (docs/design.md §1–2).
type History struct {
	snaps []*Snapshot // oldest first
	lin   Lineage
}

// NewHistory groups snaps (oldest first); st, when not nil, adds the
// forgotten snapshots the lineage passes through.
func NewHistory(snaps []*Snapshot, st *State) *History {
	h := &History{snaps: snaps, lin: Lineage{}}
	for _, s := range snaps {
		h.lin.Add(s.Signed())
	}
	if st != nil {
		st.AddForgotten(h.lin)
	}
	return h
}

// History loads and verifies the store's snapshots, as [Repo.Snapshots],
// and groups them into homes.
func (r *Repo) History(ctx context.Context) (*History, []SnapshotProblem, error) {
	snaps, probs, err := r.Snapshots(ctx)
	if err != nil {
		return nil, nil, err
	}
	// The state only adds forgotten snapshots to the lineage here: a
	// damaged one must not stop reading; writes report it.
	st, _ := r.state()
	return NewHistory(snaps, st), probs, nil
}

// state returns the store's trust state, or nil for a store that keeps none.
func (r *Repo) state() (*State, error) {
	sf, ok := r.src.(Stateful)
	if !ok {
		return nil, nil
	}
	st, err := sf.LoadState()
	if err != nil {
		return nil, err
	}
	if st.StoreID != "" && st.StoreID != r.kf.StoreID {
		return newState(), nil // another store's evidence: none
	}
	return st, nil
}

// Snapshots returns every snapshot, oldest first.
func (h *History) Snapshots() []*Snapshot { return h.snaps }

// Homes returns the names of the homes: [DefaultHome] first, then the
// others in alphabetical order.
func (h *History) Homes() []string {
	var out []string
	for _, s := range h.snaps {
		if !slices.Contains(out, s.Home) {
			out = append(out, s.Home)
		}
	}
	slices.SortFunc(out, func(a, b string) int {
		switch {
		case a == b:
			return 0
		case a == DefaultHome:
			return -1
		case b == DefaultHome:
			return 1
		}
		if c := strings.Compare(strings.ToLower(a), strings.ToLower(b)); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return out
}

// Of returns the snapshots of a home, oldest first.
func (h *History) Of(home string) []*Snapshot {
	var out []*Snapshot
	for _, s := range h.snaps {
		if s.Home == home {
			out = append(out, s)
		}
	}
	return out
}

// Heads returns the heads of a home: its snapshots that none of its others
// descends from, oldest first by seq. Two or more mean the home diverged.
func (h *History) Heads(home string) []*Snapshot {
	of := h.Of(home)
	if len(of) == 0 {
		return nil
	}
	members := make([]Digest, len(of))
	for i, s := range of {
		members[i] = s.Manifest
	}
	var out []*Snapshot
	for _, sg := range h.lin.Heads(of[0].HomeID, members) {
		for _, s := range of {
			if s.Manifest == sg.Manifest {
				out = append(out, s)
			}
		}
	}
	return out
}

// AllHeads returns the heads of every home.
func (h *History) AllHeads() []Signed {
	var out []Signed
	for _, home := range h.Homes() {
		for _, s := range h.Heads(home) {
			out = append(out, s.Signed())
		}
	}
	return out
}

// Lineage returns the graph of the snapshots and the forgotten ones.
func (h *History) Lineage() Lineage { return h.lin }

// Latest returns the newest head of a home by seq, and every head: more
// than one means the home diverged, and the caller should say so.
func (h *History) Latest(home string) (*Snapshot, []*Snapshot, error) {
	heads := h.Heads(home)
	if len(heads) == 0 {
		if len(h.snaps) == 0 {
			return nil, nil, fmt.Errorf("the store holds no snapshots; make one with `dvpc snapshot`: %w", ErrNoSnapshot)
		}
		return nil, nil, fmt.Errorf("the store holds no snapshot of the home %q (it holds %s): %w", home, strings.Join(h.Homes(), ", "), ErrNoSnapshot)
	}
	return heads[len(heads)-1], heads, nil
}

// Find resolves spec: "" or "latest" is the newest head of home; an ID,
// digest or tag names a snapshot of any home.
func (h *History) Find(home, spec string) (*Snapshot, error) {
	if spec == "" || spec == "latest" {
		s, _, err := h.Latest(home)
		return s, err
	}
	return FindSnapshot(h.snaps, spec)
}

// At returns the newest snapshot of home taken at or before t.
func (h *History) At(home string, t time.Time) (*Snapshot, error) {
	of := h.Of(home)
	if len(of) == 0 {
		_, _, err := h.Latest(home)
		return nil, err
	}
	s, err := SnapshotAt(of, t)
	if err != nil {
		return nil, fmt.Errorf("home %s: %w", home, err)
	}
	return s, nil
}

// Roots returns the directories a home's snapshots were taken of, newest
// first, each once.
func (h *History) Roots(home string) []string {
	var out []string
	of := h.Of(home)
	for i := len(of) - 1; i >= 0; i-- {
		if p := of[i].Config.Path; !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// HomeOf returns the home whose directory contains the absolute path p
// (the deepest one when homes nest), and that directory.
func (h *History) HomeOf(p string) (home, root string, ok bool) {
	p = filepath.Clean(p)
	for i := len(h.snaps) - 1; i >= 0; i-- {
		s := h.snaps[i]
		r := filepath.Clean(s.Config.Path)
		if (p == r || strings.HasPrefix(p, strings.TrimSuffix(r, string(filepath.Separator))+string(filepath.Separator))) && len(r) > len(root) {
			home, root, ok = s.Home, r, true
		}
	}
	return home, root, ok
}

// Choose picks the home a request is about: name if given; else the home
// whose directory contains the absolute path p (the current directory or a
// path given); else [DefaultHome]; else the only home.
func (h *History) Choose(name, p string) (string, error) {
	homes := h.Homes()
	if name != "" {
		if err := CheckHomeName(name); err != nil {
			return "", err
		}
		if !slices.Contains(homes, name) {
			return "", fmt.Errorf("the store holds no home %q (it holds %s): %w", name, strings.Join(homes, ", "), ErrNoSnapshot)
		}
		return name, nil
	}
	if p != "" && filepath.IsAbs(p) {
		if home, _, ok := h.HomeOf(p); ok {
			return home, nil
		}
	}
	switch {
	case slices.Contains(homes, DefaultHome):
		return DefaultHome, nil
	case len(homes) == 1:
		return homes[0], nil
	case len(homes) == 0:
		return DefaultHome, nil // nothing to find; the lookup says so
	}
	return "", fmt.Errorf("%w (%s); name one", ErrAmbiguousHome, strings.Join(homes, ", "))
}

// Rel turns a path given by the person into a path inside the snapshots of
// home: an absolute path under one of the home's directories is made
// relative to it; a relative path is taken from cwd when cwd lies in one of
// them, else from the home's top.
func (h *History) Rel(home, p, cwd string) (string, error) {
	roots := h.Roots(home)
	under := func(abs string) (string, bool) {
		abs = filepath.Clean(abs)
		for _, root := range roots {
			root = filepath.Clean(root)
			if abs == root {
				return "", true
			}
			if rest, ok := strings.CutPrefix(abs, strings.TrimSuffix(root, string(filepath.Separator))+string(filepath.Separator)); ok {
				return rest, true
			}
		}
		return "", false
	}
	if filepath.IsAbs(p) {
		if rest, ok := under(p); ok {
			return CleanPath(filepath.ToSlash(rest))
		}
		return CleanPath(p)
	}
	if cwd != "" && filepath.IsAbs(cwd) {
		if _, ok := under(cwd); ok {
			rest, ok := under(filepath.Join(cwd, p))
			if !ok {
				return "", fmt.Errorf("path %q leaves the home's directory", p)
			}
			return CleanPath(filepath.ToSlash(rest))
		}
	}
	return CleanPath(p)
}

// nextSnapshot decides the home, parents and sequence number of a new
// snapshot of dir (docs/design.md §1): the home named, else the one derived
// from dir; the parent given, else the newest head of the home, first, then
// the other parents of a merge (extra), each once; the seq one more than
// every seq the store holds, its parents' and high, the trust state's
// high-water mark.
func (h *History) nextSnapshot(dir, home string, parent *Snapshot, extra []*Snapshot, high uint64) (string, []*Snapshot, uint64, error) {
	if home == "" {
		home = DefaultHomeName(dir)
	}
	if err := CheckHomeName(home); err != nil {
		return "", nil, 0, err
	}
	var parents []*Snapshot
	if parent != nil {
		parents = []*Snapshot{parent}
	} else if heads := h.Heads(home); len(heads) > 0 {
		parents = heads[len(heads)-1:]
	}
	for _, p := range extra {
		if p == nil {
			continue
		}
		if p.Home != home {
			return "", nil, 0, fmt.Errorf("merge parent %s belongs to the home %q, not %q", p.ID, p.Home, home)
		}
		if !slices.ContainsFunc(parents, func(q *Snapshot) bool { return q.Manifest == p.Manifest }) {
			parents = append(parents, p)
		}
	}
	seq := high
	for _, s := range h.snaps {
		seq = max(seq, s.Config.Seq)
	}
	for _, p := range parents {
		seq = max(seq, p.Config.Seq)
	}
	return home, parents, seq + 1, nil
}

// historyForWrite groups snaps for a new snapshot and returns the trust
// state's high-water mark.
func (r *Repo) historyForWrite(snaps []*Snapshot) (*History, uint64, error) {
	st, err := r.state()
	if err != nil {
		return nil, 0, err
	}
	if st == nil {
		return NewHistory(snaps, nil), 0, nil
	}
	return NewHistory(snaps, st), st.HighSeq, nil
}
