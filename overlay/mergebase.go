package overlay

import (
	"slices"

	"github.com/dvpc/dvpc/image"
)

// CommonAncestor returns the nearest common ancestor of a and b in h: of the
// snapshots both reach through their parents (each counting as reaching
// itself), the one with the highest seq that h holds. Seq grows along
// parents, so no other common ancestor descends from it. A common ancestor
// that was forgotten has no tree to merge against and is passed over for
// an older one. It returns nil when a and b share no ancestor.
func CommonAncestor(h *image.History, a, b *image.Snapshot) *image.Snapshot {
	if a == nil || b == nil {
		return nil
	}
	lin := h.Lineage()
	inA := reachable(lin, a)
	inB := reachable(lin, b)
	var best *image.Snapshot
	for _, s := range h.Snapshots() {
		if !inA[s.Manifest] || !inB[s.Manifest] {
			continue
		}
		if best == nil || s.Config.Seq > best.Config.Seq ||
			s.Config.Seq == best.Config.Seq && slices.Compare(s.Manifest[:], best.Manifest[:]) > 0 {
			best = s
		}
	}
	return best
}

// reachable returns s and every snapshot reachable from it through parents
// in lin, forgotten ones included.
func reachable(lin image.Lineage, s *image.Snapshot) map[image.Digest]bool {
	seen := map[image.Digest]bool{s.Manifest: true}
	stack := slices.Clone(s.Parents)
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[d] {
			continue
		}
		seen[d] = true
		stack = append(stack, lin[d].Parents...)
	}
	return seen
}
