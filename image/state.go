package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// StateFile is the trust state of a store directory, kept next to
// index.json (docs/design.md §3). It is not part of the OCI layout and is
// never copied to mirrors or media.
const StateFile = "dvpc-state.json"

// maxStateFile bounds how much of a state file is read.
const maxStateFile = 64 << 20

// State is a store's evidence of what it held: the highest sequence number
// it ever verified or wrote, the heads of each home, and the snapshots the
// owner forgot on purpose. An old copy of index.json cannot lower it.
type State struct {
	Version int    `json:"version"`
	StoreID string `json:"store_id"`
	HighSeq uint64 `json:"high_seq"`
	// Heads are the manifest digests and seqs of each home's heads, by
	// home ID; the zero ID holds snapshots written before homes existed.
	Heads map[HomeID][]StateHead `json:"heads"`
	// Forgotten are the snapshots forgotten on purpose, with their
	// parents, so that lineage still passes through them.
	Forgotten []Signed `json:"forgotten,omitempty"`
}

// StateHead is one head a state records.
type StateHead struct {
	Manifest Digest `json:"manifest"`
	Seq      uint64 `json:"seq"`
}

// Ref returns the tag the head is named by.
func (h StateHead) Ref() string { return SnapshotRef(h.Seq, h.Manifest) }

// Stateful is a store that keeps a trust state. A [Layout] is one; media
// and mirrors are not.
type Stateful interface {
	// LoadState reads the state; a store without one has an empty state.
	LoadState() (*State, error)
	// UpdateState applies fn to the state of the store storeID and
	// replaces it atomically. A state recorded for another store ID is
	// evidence of nothing and starts over. The caller holds the store's
	// lock.
	UpdateState(storeID string, fn func(*State) error) error
}

var _ Stateful = (*Layout)(nil)

func newState() *State { return &State{Version: 1, Heads: map[HomeID][]StateHead{}} }

// LoadState implements [Stateful].
func (l *Layout) LoadState() (*State, error) {
	f, err := os.Open(filepath.Join(l.root, StateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return newState(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read trust state: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStateFile+1))
	if err != nil {
		return nil, fmt.Errorf("read trust state: %w", err)
	}
	if len(b) > maxStateFile {
		return nil, fmt.Errorf("read trust state %s: larger than %d bytes: %w", filepath.Join(l.root, StateFile), maxStateFile, ErrFormat)
	}
	st := newState()
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("read trust state %s: %w: %v", filepath.Join(l.root, StateFile), ErrFormat, err)
	}
	if st.Version != 1 {
		return nil, fmt.Errorf("read trust state %s: version %d, want 1: %w", filepath.Join(l.root, StateFile), st.Version, ErrFormat)
	}
	if st.Heads == nil {
		st.Heads = map[HomeID][]StateHead{}
	}
	return st, nil
}

// UpdateState implements [Stateful].
func (l *Layout) UpdateState(storeID string, fn func(*State) error) error {
	st, err := l.LoadState()
	if err != nil {
		return err
	}
	if st.StoreID != storeID {
		st = newState()
		st.StoreID = storeID
	}
	if err := fn(st); err != nil {
		return err
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(l.root, StateFile, append(b, '\n'))
}

// Record notes a snapshot written or verified in the store: it raises
// HighSeq and makes s a head of its home unless it is an ancestor of (or
// equal to) one already recorded; the heads it descends from (in l, which
// may be nil) stop being heads. A forgotten snapshot stays forgotten until
// [State.Unforget].
func (st *State) Record(s Signed, l Lineage) {
	st.HighSeq = max(st.HighSeq, s.Seq)
	if st.IsForgotten(s.Manifest) {
		return // an old index.json may still name it; it stays forgotten
	}
	if l == nil {
		l = Lineage{}
	}
	if _, ok := l[s.Manifest]; !ok {
		l = cloneLineage(l)
		l.Add(s)
	}
	heads := st.Heads[s.Home]
	for _, h := range heads {
		if h.Manifest == s.Manifest || h.Seq > s.Seq && l.IsAncestor(s, h.Manifest) {
			return // already known
		}
	}
	heads = slices.DeleteFunc(heads, func(h StateHead) bool {
		return slices.Contains(s.Parents, h.Manifest) || h.Seq < s.Seq && l.IsAncestor(Signed{Manifest: h.Manifest, Seq: h.Seq}, s.Manifest)
	})
	st.Heads[s.Home] = append(heads, StateHead{Manifest: s.Manifest, Seq: s.Seq})
	slices.SortFunc(st.Heads[s.Home], func(a, b StateHead) int { return cmpU64(a.Seq, b.Seq) })
}

func cloneLineage(l Lineage) Lineage {
	c := make(Lineage, len(l)+1)
	for k, v := range l {
		c[k] = v
	}
	return c
}

// Forget notes that the owner forgot s: it is no head any more, and pull
// and prune do not count it as lost. HighSeq keeps its seq, so the next
// snapshot's seq is higher.
func (st *State) Forget(s Signed) {
	st.HighSeq = max(st.HighSeq, s.Seq)
	st.Heads[s.Home] = slices.DeleteFunc(st.Heads[s.Home], func(h StateHead) bool { return h.Manifest == s.Manifest })
	if len(st.Heads[s.Home]) == 0 {
		delete(st.Heads, s.Home)
	}
	if !st.IsForgotten(s.Manifest) {
		st.Forgotten = append(st.Forgotten, s)
	}
}

// Unforget takes md off the forgotten list: the owner asked for it again.
func (st *State) Unforget(md Digest) {
	st.Forgotten = slices.DeleteFunc(st.Forgotten, func(f Signed) bool { return f.Manifest == md })
}

// IsForgotten reports whether the owner forgot the snapshot md.
func (st *State) IsForgotten(md Digest) bool {
	return slices.ContainsFunc(st.Forgotten, func(f Signed) bool { return f.Manifest == md })
}

// AddForgotten puts the forgotten snapshots into l, so that ancestry walks
// through them.
func (st *State) AddForgotten(l Lineage) {
	for _, f := range st.Forgotten {
		if _, ok := l[f.Manifest]; !ok {
			l.Add(f)
		}
	}
}

// Missing returns the recorded heads that are neither among present (the
// manifests index.json names) nor forgotten: evidence that index.json went
// backwards.
func (st *State) Missing(present map[Digest]bool) []StateHead {
	var out []StateHead
	for _, hs := range st.Heads {
		for _, h := range hs {
			if !present[h.Manifest] && !st.IsForgotten(h.Manifest) {
				out = append(out, h)
			}
		}
	}
	slices.SortFunc(out, func(a, b StateHead) int { return cmpU64(a.Seq, b.Seq) })
	return out
}

// ErrIndexBehind means index.json lacks snapshots the store held before:
// it went backwards (an old copy restored or copied back).
var ErrIndexBehind = errors.New("the store's index.json lacks snapshots it held before")

// MissingHeadsError names the snapshots the trust state records as heads
// and index.json lacks.
type MissingHeadsError struct {
	Op    string
	Heads []StateHead
}

func (e *MissingHeadsError) Error() string {
	refs := make([]string, len(e.Heads))
	for i, h := range e.Heads {
		refs[i] = h.Ref()
	}
	return fmt.Sprintf("%s: index.json lacks %d snapshots this store held (%s), so nothing is deleted",
		e.Op, len(e.Heads), strings.Join(refs, ", "))
}

func (e *MissingHeadsError) Unwrap() error { return ErrIndexBehind }
