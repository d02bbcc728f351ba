package image

import (
	"bytes"
	"context"
	"errors"
	"slices"
)

// Version is one distinct version of a file across snapshots.
type Version struct {
	Snapshot *Snapshot
	Node     *Node
}

// Versions returns the distinct versions of the entry at p, oldest first:
// a snapshot appears only where the entry's content, type or target changed
// (or it reappeared after being deleted).
func (r *Repo) Versions(ctx context.Context, snaps []*Snapshot, p string) ([]Version, error) {
	var out []Version
	var prev *Node
	for _, s := range snaps {
		n, err := r.FindNode(ctx, s, p)
		if errors.Is(err, ErrNotFound) {
			prev = nil
			continue
		}
		if err != nil {
			return nil, err
		}
		if prev != nil && sameContent(prev, n) {
			continue
		}
		out = append(out, Version{Snapshot: s, Node: n})
		prev = n
	}
	return out, nil
}

func sameContent(a, b *Node) bool {
	return a.Type == b.Type && a.Size == b.Size && bytes.Equal(a.Target, b.Target) &&
		a.Subtree == b.Subtree && slices.Equal(a.Parts, b.Parts)
}

func sameMeta(a, b *Node) bool {
	return a.Mode == b.Mode && a.UID == b.UID && a.GID == b.GID && a.Mtime.Equal(b.Mtime) &&
		slices.EqualFunc(a.Xattrs, b.Xattrs, func(x, y Xattr) bool {
			return bytes.Equal(x.Name, y.Name) && bytes.Equal(x.Value, y.Value)
		})
}

// Change kinds reported by [Repo.Diff].
const (
	Added    = '+'
	Removed  = '-'
	Modified = 'M' // content or type changed
	Meta     = 'U' // only metadata (mode, owner, mtime, xattrs) changed
)

// Change is one difference between two snapshots.
type Change struct {
	Path     string
	Kind     byte
	Old, New *Node
}

// Diff lists what changed from snapshot a to b, in path order. Subtrees
// with equal IDs are skipped without reading them.
func (r *Repo) Diff(ctx context.Context, a, b *Snapshot) ([]Change, error) {
	ra, err := r.rootNode(ctx, a)
	if err != nil {
		return nil, err
	}
	rb, err := r.rootNode(ctx, b)
	if err != nil {
		return nil, err
	}
	var out []Change
	err = r.diffTrees(ctx, ra.Subtree, rb.Subtree, "", &out)
	return out, err
}

func (r *Repo) diffTrees(ctx context.Context, ida, idb ChunkID, rel string, out *[]Change) error {
	if ida == idb {
		return nil
	}
	var ta, tb *Tree
	var err error
	if !ida.IsZero() {
		if ta, err = r.LoadTree(ctx, ida); err != nil {
			return err
		}
	} else {
		ta = &Tree{}
	}
	if !idb.IsZero() {
		if tb, err = r.LoadTree(ctx, idb); err != nil {
			return err
		}
	} else {
		tb = &Tree{}
	}
	i, j := 0, 0
	for i < len(ta.Nodes) || j < len(tb.Nodes) {
		var na, nb *Node
		switch {
		case j >= len(tb.Nodes):
			na = ta.Nodes[i]
			i++
		case i >= len(ta.Nodes):
			nb = tb.Nodes[j]
			j++
		default:
			c := bytes.Compare(ta.Nodes[i].Name, tb.Nodes[j].Name)
			switch {
			case c < 0:
				na = ta.Nodes[i]
				i++
			case c > 0:
				nb = tb.Nodes[j]
				j++
			default:
				na, nb = ta.Nodes[i], tb.Nodes[j]
				i++
				j++
			}
		}
		var name []byte
		if na != nil {
			name = na.Name
		} else {
			name = nb.Name
		}
		crel := joinRel(rel, string(name))
		switch {
		case nb == nil:
			*out = append(*out, Change{Path: crel, Kind: Removed, Old: na})
			if na.Type == TypeDir {
				if err := r.diffTrees(ctx, na.Subtree, ChunkID{}, crel, out); err != nil {
					return err
				}
			}
		case na == nil:
			*out = append(*out, Change{Path: crel, Kind: Added, New: nb})
			if nb.Type == TypeDir {
				if err := r.diffTrees(ctx, ChunkID{}, nb.Subtree, crel, out); err != nil {
					return err
				}
			}
		default:
			if na.Type != nb.Type || (na.Type != TypeDir && !sameContent(na, nb)) {
				*out = append(*out, Change{Path: crel, Kind: Modified, Old: na, New: nb})
			} else if !sameMeta(na, nb) {
				*out = append(*out, Change{Path: crel, Kind: Meta, Old: na, New: nb})
			}
			var sa, sb ChunkID
			if na.Type == TypeDir {
				sa = na.Subtree
			}
			if nb.Type == TypeDir {
				sb = nb.Subtree
			}
			if !sa.IsZero() || !sb.IsZero() {
				if err := r.diffTrees(ctx, sa, sb, crel, out); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
