package image

import (
	"bytes"
	"context"
	"fmt"
	"slices"
)

// SameTrees reports whether two snapshot trees hold the same home as a
// person sees it: the same names, types, contents, link targets, modes,
// owners, mtimes, extended attributes and hard links. What only records
// where the files lie on one disk (inode numbers, change times, and the
// numbers naming hard-link groups) does not count, nor does the name of
// the top directory: a home restored elsewhere is the same home.
func (r *Repo) SameTrees(ctx context.Context, a, b ChunkID) (bool, error) {
	ta, err := r.LoadTree(ctx, a)
	if err != nil {
		return false, err
	}
	tb, err := r.LoadTree(ctx, b)
	if err != nil {
		return false, err
	}
	if len(ta.Nodes) != 1 || len(tb.Nodes) != 1 {
		return false, fmt.Errorf("compare trees: a top tree must hold one directory: %w", ErrFormat)
	}
	c := &treeComparer{r: r, groups: map[uint64]uint64{}, back: map[uint64]uint64{}}
	return c.nodes(ctx, ta.Nodes[0], tb.Nodes[0])
}

type treeComparer struct {
	r      *Repo
	groups map[uint64]uint64 // a's link group → b's
	back   map[uint64]uint64 // b's → a's
}

func (c *treeComparer) nodes(ctx context.Context, a, b *Node) (bool, error) {
	if a.Type != b.Type || a.Size != b.Size || !bytes.Equal(a.Target, b.Target) || !slices.Equal(a.Parts, b.Parts) || !sameMeta(a, b) {
		return false, nil
	}
	if (a.LinkGroup == 0) != (b.LinkGroup == 0) {
		return false, nil
	}
	if a.LinkGroup != 0 {
		ga, okA := c.groups[a.LinkGroup]
		gb, okB := c.back[b.LinkGroup]
		if okA != okB || okA && (ga != b.LinkGroup || gb != a.LinkGroup) {
			return false, nil
		}
		c.groups[a.LinkGroup], c.back[b.LinkGroup] = b.LinkGroup, a.LinkGroup
	}
	if a.Type != TypeDir || a.Subtree == b.Subtree {
		return true, nil
	}
	ta, err := c.r.LoadTree(ctx, a.Subtree)
	if err != nil {
		return false, err
	}
	tb, err := c.r.LoadTree(ctx, b.Subtree)
	if err != nil {
		return false, err
	}
	if len(ta.Nodes) != len(tb.Nodes) {
		return false, nil
	}
	for i := range ta.Nodes {
		if !bytes.Equal(ta.Nodes[i].Name, tb.Nodes[i].Name) {
			return false, nil
		}
		if same, err := c.nodes(ctx, ta.Nodes[i], tb.Nodes[i]); err != nil || !same {
			return false, err
		}
	}
	return true, nil
}
