package delta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/dvpc/dvpc/image"
)

// Divergence is a home with more than one head after a pull: two PCs
// snapshotted it apart. `dvpc sync` merges them.
type Divergence struct {
	Home  image.HomeID `json:"home"`
	Heads []string     `json:"heads"` // tags, oldest first
}

// offer is a snapshot a mirror offers, verified.
type offer struct {
	signed    image.Signed
	snap, sig image.Ref
	blobs     []wantBlob
}

// localHistory is what the store holds, as the heads and rollback rules
// see it (docs/design.md §2): its snapshots' signed places in the history,
// and its trust state.
type localHistory struct {
	sf      image.Stateful // nil when the store keeps no state
	state   *image.State   // nil likewise
	present map[image.Digest]bool
	members []image.Digest // the store's snapshots whose manifests read
	lin     image.Lineage  // those, and the forgotten ones
	// misnamed are the store's tags that name a snapshot otherwise than
	// its signed manifest does, while the right tag names it too (as an
	// older dvpc kept a mirror's tag): they are dropped.
	misnamed []image.Ref
}

// readLocalHistory reads the store's snapshot manifests and checks their
// signatures with kf again: a store's files can be changed behind dvpc's
// back, and heads are decided on what is signed alone. A manifest that does
// not read or verify counts as present, not as a head.
func readLocalHistory(ctx context.Context, dst image.Store, refs []image.Ref, kf *image.KeyFile) (*localHistory, error) {
	h := &localHistory{present: map[image.Digest]bool{}, lin: image.Lineage{}}
	for _, r := range refs {
		if !image.IsSnapshotRef(r.Name) {
			continue
		}
		md, err := image.DigestFromHash(r.Desc.Digest)
		if err != nil {
			continue
		}
		h.present[md] = true
		raw, err := image.ReadBlob(ctx, dst, md, r.Desc.Size)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			continue
		}
		var m v1.Manifest
		if json.Unmarshal(raw, &m) != nil {
			continue
		}
		sg, err := image.ParseSigned(md, &m)
		if err != nil {
			continue
		}
		sig, _ := findRef(refs, image.SignatureRef(md))
		if _, err := image.VerifySnapshot(ctx, dst, kf, image.Ref{Name: sg.Ref(), Desc: r.Desc}, sig); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			continue
		}
		h.lin.Add(sg)
		h.members = append(h.members, md)
		if sg.Ref() != r.Name {
			if right, ok := findRef(refs, sg.Ref()); ok && right.Desc.Digest == r.Desc.Digest {
				h.misnamed = append(h.misnamed, r)
			}
		}
	}
	if sf, ok := dst.(image.Stateful); ok {
		st, err := sf.LoadState()
		if err != nil {
			return nil, err
		}
		h.sf, h.state = sf, st
		st.AddForgotten(h.lin)
	}
	return h, nil
}

// signedOf returns what is known of the snapshot md: present is true when
// the store holds it or it is among offered; Signed is zero when its
// manifest could not be read.
func (h *localHistory) signedOf(md image.Digest, offered []offer) (image.Signed, bool) {
	for _, o := range offered {
		if o.signed.Manifest == md {
			return o.signed, true
		}
	}
	if h.present[md] {
		return h.lin[md], true
	}
	return image.Signed{}, false
}

// heads returns the heads of a home: the store's, and those its trust state
// records (which index.json may have lost).
func (h *localHistory) heads(lin image.Lineage, home image.HomeID) []image.Signed {
	heads := lin.Heads(home, h.members)
	if h.state != nil {
		for _, sh := range h.state.Heads[home] {
			if slices.ContainsFunc(heads, func(s image.Signed) bool { return s.Manifest == sh.Manifest }) {
				continue
			}
			s, ok := lin[sh.Manifest]
			if !ok {
				s = image.Signed{Manifest: sh.Manifest, Seq: sh.Seq, Home: home}
			}
			heads = append(heads, s)
		}
	}
	return heads
}

// with returns the store's lineage with the offered snapshots added.
func (h *localHistory) with(offers []offer) image.Lineage {
	l := make(image.Lineage, len(h.lin)+len(offers))
	for k, v := range h.lin {
		l[k] = v
	}
	for _, o := range offers {
		l.Add(o.signed)
	}
	return l
}

// newer picks, of each home, the offered snapshots newer than the store's
// heads: those that descend from a head or from none (a divergence), and a
// recorded head index.json lost. Ancestors of a head are history, never
// taken as newer: a head only moves to a descendant. Of a home the store
// does not hold yet, it takes the offered heads.
func (h *localHistory) newer(offers []offer) []offer {
	lin := h.with(offers)
	byHome := map[image.HomeID][]offer{}
	var homes []image.HomeID
	for _, o := range offers {
		if _, ok := byHome[o.signed.Home]; !ok {
			homes = append(homes, o.signed.Home)
		}
		byHome[o.signed.Home] = append(byHome[o.signed.Home], o)
	}
	var out []offer
	for _, home := range homes {
		of := byHome[home]
		heads := h.heads(lin, home)
		if len(heads) == 0 {
			var ds []image.Digest
			for _, o := range of {
				ds = append(ds, o.signed.Manifest)
			}
			top := lin.Heads(home, ds)
			for _, o := range of {
				if slices.ContainsFunc(top, func(s image.Signed) bool { return s.Manifest == o.signed.Manifest }) {
					out = append(out, o)
				}
			}
			continue
		}
		for _, o := range of {
			lost := slices.ContainsFunc(heads, func(s image.Signed) bool { return s.Manifest == o.signed.Manifest })
			if lost || lin.Relate(o.signed, heads) != image.Known {
				out = append(out, o)
			}
		}
	}
	return out
}

// diverged lists the homes that have more than one head once taken are in
// the store; ancestry walks through every snapshot offered. Snapshots
// written before homes existed carry no lineage and are not counted.
func (h *localHistory) diverged(offered, taken []offer) []Divergence {
	lin := h.with(offered)
	members := slices.Clone(h.members)
	var homes []image.HomeID
	for _, o := range taken {
		members = append(members, o.signed.Manifest)
	}
	for _, m := range members {
		if home := lin[m].Home; !home.IsZero() && !slices.Contains(homes, home) {
			homes = append(homes, home)
		}
	}
	var out []Divergence
	for _, home := range homes {
		heads := lin.Heads(home, members)
		if len(heads) < 2 {
			continue
		}
		d := Divergence{Home: home}
		for _, s := range heads {
			d.Heads = append(d.Heads, s.Ref())
		}
		out = append(out, d)
	}
	return out
}

// record notes the taken snapshots, and the heads the store held, in its
// trust state. Named ones (asked for by name) are no longer forgotten.
func (h *localHistory) record(storeID string, offered, taken []offer, named bool) error {
	if h.sf == nil {
		return nil
	}
	lin := h.with(offered)
	var all []image.Signed
	for _, home := range homesOf(lin, h.members) {
		all = append(all, lin.Heads(home, h.members)...)
	}
	for _, o := range taken {
		all = append(all, o.signed)
	}
	slices.SortStableFunc(all, func(a, b image.Signed) int {
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
	return h.sf.UpdateState(storeID, func(st *image.State) error {
		if named {
			for _, o := range taken {
				st.Unforget(o.signed.Manifest)
			}
		}
		for _, s := range all {
			st.Record(s, lin)
		}
		return nil
	})
}

func homesOf(lin image.Lineage, members []image.Digest) []image.HomeID {
	var out []image.HomeID
	for _, m := range members {
		if s, ok := lin[m]; ok && !slices.Contains(out, s.Home) {
			out = append(out, s.Home)
		}
	}
	return out
}

// mirrorRefs is one reachable mirror's own tags.
type mirrorRefs struct {
	st   *mirrorState
	refs []image.Ref
}

// behind names the mirrors (not media, which no push catches up) that lack
// a head of the store once taken are in it: a mirror is behind when some
// head is neither a snapshot it holds nor an ancestor of one. What a
// mirror holds is the manifests its snapshot tags point at, placed by
// their signed manifests, never by the tags' names. It also sets each
// mirror's newest snapshot by signed seq. With home set, only that home's
// heads count: the others' snapshots were not read.
func behind(byMirror []mirrorRefs, h *localHistory, offered, taken []offer, home image.HomeID) []string {
	lin := h.with(offered)
	members := slices.Clone(h.members)
	for _, o := range taken {
		members = append(members, o.signed.Manifest)
	}
	var heads []image.Signed
	seen := map[image.HomeID]bool{}
	for _, m := range members {
		s, ok := lin[m]
		if !ok || seen[s.Home] || !home.IsZero() && s.Home != home {
			continue
		}
		seen[s.Home] = true
		heads = append(heads, lin.Heads(s.Home, members)...)
	}
	var out []string
	for _, mr := range byMirror {
		var held []image.Signed
		var newest image.Signed
		for _, r := range mr.refs {
			if !image.IsSnapshotRef(r.Name) {
				continue
			}
			md, err := image.DigestFromHash(r.Desc.Digest)
			if err != nil {
				continue
			}
			if s, ok := lin[md]; ok {
				held = append(held, s)
				if newest.Manifest.IsZero() || s.Seq > newest.Seq {
					newest = s
				}
			}
		}
		if !newest.Manifest.IsZero() {
			mr.st.use.Newest = newest.Ref()
		}
		if _, medium := mr.st.ep.(*SourceEndpoint); medium {
			continue // read-only: no push catches it up
		}
		for _, hd := range heads {
			if !slices.ContainsFunc(held, func(s image.Signed) bool {
				return s.Manifest == hd.Manifest || lin.IsAncestor(hd, s.Manifest)
			}) {
				out = append(out, mr.st.use.Mirror)
				break
			}
		}
	}
	return out
}

// offerSnapshots verifies the snapshots names lists that the store lacks.
// A name may point at different manifests on different mirrors: each
// mirror's version (with that mirror's signature tag) is tried in turn,
// so a hostile mirror listed first cannot hide an honest one's. A tag that
// misnames its snapshot, or a forged signature, names the mirror; what
// cannot be verified anywhere is refused in rep. Which of the verified
// ones are taken is decided later, on what is signed alone.
func offerSnapshots(ctx context.Context, fo *failover, byMirror []mirrorRefs, names []string, local *localHistory, kf *image.KeyFile, minSeq uint64, rep *PullReport) ([]offer, error) {
	var offered []offer
	for _, name := range names {
		var errs []error
		var lastMD image.Digest
		tried := map[string]bool{}
		var done bool
		for _, mr := range byMirror {
			refs := mr.refs
			r, found := findRef(refs, name)
			if !found {
				continue
			}
			md, err := image.DigestFromHash(r.Desc.Digest)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if known, ok := local.signedOf(md, offered); ok {
				// Held already, or offered under its own name: a tag
				// that gives it another is refused, not kept.
				if known.Manifest == md && known.Ref() != name {
					err := fmt.Errorf("tag %s names snapshot %s, whose signed manifest makes it %s: %w", name, md.Short(), known.Ref(), image.ErrTagMismatch)
					fo.fail(mr.st, md, err)
					errs = append(errs, err)
					lastMD = md
					break
				}
				done = true
				break
			}
			lastMD = md
			sigRef, found := image.SignatureRefFor(refs, r)
			if !found {
				errs = append(errs, fmt.Errorf("no signature (tag %s): %w", image.SignatureRef(md), image.ErrBadSignature))
				continue
			}
			key := r.Desc.Digest.String() + " " + sigRef.Desc.Digest.String()
			if tried[key] {
				continue
			}
			tried[key] = true
			v, err := image.VerifySnapshot(ctx, preferring{fo, mr.st}, kf, r, sigRef)
			rep.ManifestsRead += 2
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				if errors.Is(err, image.ErrBadSignature) || errors.Is(err, image.ErrTagMismatch) {
					// Named: this mirror's version of the snapshot is
					// forged, or its tag misnames it.
					fo.fail(mr.st, md, fmt.Errorf("%s: %w", name, err))
				}
				errs = append(errs, err)
				continue
			}
			sg := v.Signed
			if sg.Seq < minSeq {
				errs = append(errs, fmt.Errorf("sequence %d < %d: %w", sg.Seq, minSeq, ErrRollback))
				continue
			}
			offered = append(offered, offer{signed: sg, snap: v.Ref(), sig: v.SigRef(), blobs: verifiedBlobs(v)})
			done = true
			break
		}
		if !done && len(errs) > 0 {
			rep.Refused = append(rep.Refused, image.SnapshotProblem{Ref: name, Manifest: lastMD, Err: errors.Join(errs...)})
		}
	}
	return offered, nil
}

// dropMisnamed removes the store's tags that misname a snapshot also named
// by its right tag.
func dropMisnamed(ctx context.Context, dst image.Store, misnamed []image.Ref, rep *PullReport) error {
	if len(misnamed) == 0 {
		return nil
	}
	err := dst.UpdateRefs(ctx, func(refs []image.Ref) ([]image.Ref, error) {
		return slices.DeleteFunc(refs, func(r image.Ref) bool {
			return slices.ContainsFunc(misnamed, func(m image.Ref) bool { return m.Name == r.Name && m.Desc.Digest == r.Desc.Digest })
		}), nil
	})
	if err != nil {
		return fmt.Errorf("drop misnamed tags: %w", err)
	}
	for _, m := range misnamed {
		rep.Dropped = append(rep.Dropped, m.Name)
	}
	return nil
}

// preferring reads through the failover, asking one mirror first: the one
// whose tags named what is read, which should hold it.
type preferring struct {
	fo *failover
	m  *mirrorState
}

var _ image.Source = preferring{}

func (p preferring) Refs(ctx context.Context) ([]image.Ref, error) { return p.fo.Refs(ctx) }

func (p preferring) OpenBlob(ctx context.Context, d image.Digest) (image.Blob, error) {
	start := time.Now()
	b, err := p.m.ep.OpenBlob(ctx, d)
	if err == nil {
		p.fo.served(p.m, b.Size(), time.Since(start))
		return b, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	p.fo.fail(p.m, d, err)
	return p.fo.OpenBlob(ctx, d)
}

func (p preferring) StatBlob(ctx context.Context, d image.Digest) (int64, error) {
	return p.fo.StatBlob(ctx, d)
}
