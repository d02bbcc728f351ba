package delta

import (
	"bytes"
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/dvpc/dvpc/image"
)

// KeyCandidate is one key blob that sources offer under the "keys" tag.
// Which one a store without a key trusts is settled by its caller, by
// unlocking it or matching its signer, before anything is written.
type KeyCandidate struct {
	KeyFile *image.KeyFile
	Sources []string // the sources that offer it, in the order given
}

// KeyCandidates reads each source's key blob, and returns the distinct
// ones in the order of the first source that offers each, and what the
// sources failed on. It trusts none of them: two blobs of one key that
// differ in a wrapper are two candidates, since only the one that opens
// may be kept.
func KeyCandidates(ctx context.Context, sources []Endpoint) ([]KeyCandidate, []MirrorFailure) {
	var out []KeyCandidate
	var fails []MirrorFailure
	read := map[v1.Hash]*image.KeyFile{} // by manifest digest: read once
	for _, src := range sources {
		refs, err := src.Refs(ctx)
		if err != nil {
			fails = append(fails, MirrorFailure{Mirror: src.String(), Err: err})
			continue
		}
		kr, ok := findRef(refs, image.KeysRef)
		if !ok {
			continue
		}
		kf, ok := read[kr.Desc.Digest]
		if !ok {
			if kf, err = image.ReadKeyFileAt(ctx, src, kr.Desc); err != nil {
				fails = append(fails, MirrorFailure{Mirror: src.String(), Err: fmt.Errorf("key blob: %w", err)})
				continue
			}
			read[kr.Desc.Digest] = kf
		}
		i := 0
		for i < len(out) && !sameBlob(out[i].KeyFile, kf) {
			i++
		}
		if i == len(out) {
			out = append(out, KeyCandidate{KeyFile: kf})
		}
		out[i].Sources = append(out[i].Sources, src.String())
	}
	return out, fails
}

// sameKey reports whether two key blobs are of one store and one signing
// key: whatever else differs between them (a recovery code burnt in one),
// a snapshot one verifies, the other verifies too. It is the one place
// that decides whether a mirror's key blob is the store's key or foreign.
func sameKey(a, b *image.KeyFile) bool {
	return a.StoreID == b.StoreID && a.SigningPublic == b.SigningPublic
}

// sameBlob reports whether two key blobs say the same: one store, one
// signing key and the same wrappers.
func sameBlob(a, b *image.KeyFile) bool {
	ab, errA := a.Marshal()
	bb, errB := b.Marshal()
	return errA == nil && errB == nil && bytes.Equal(ab, bb)
}

// settleKey returns the key snapshots are verified with: the store's own,
// else trusted, which the caller settled. With no key in the store, it
// also returns the keys tag of the first mirror whose key blob is trusted
// itself (not merely of the same key: a blob whose wrappers differ may not
// open), and the blobs of its manifest, to be named with the snapshots. Every mirror whose key blob is another key is named
// ([ErrForeignKey]); its other blobs may still serve the pull.
//
// A mirror's key blob of a later epoch along the store's own signed chain
// of rotations replaces the store's (newer is then true); an earlier one
// along the same chain is the store's key too; a rival chain is foreign.
func settleKey(ctx context.Context, dst image.Store, dstRefs []image.Ref, fo *failover, byMirror []mirrorRefs, trusted *image.KeyFile) (kf *image.KeyFile, keysRef *image.Ref, want []wantBlob, newer bool, err error) {
	own, haveOwn := findRef(dstRefs, image.KeysRef)
	if haveOwn {
		if kf, err = image.ReadKeyFile(ctx, dst); err != nil {
			return nil, nil, nil, false, err
		}
	} else if trusted == nil {
		return nil, nil, nil, false, ErrKeyNotSettled
	} else {
		kf = trusted
	}
	// A key blob read intact from one place is not asked of the next: the
	// best-ranked place that holds it (a medium) serves it.
	read := map[v1.Hash]*image.KeyFile{}
	for _, mr := range byMirror {
		kr, ok := findRef(mr.refs, image.KeysRef)
		if !ok {
			continue
		}
		md, err := image.DigestFromHash(kr.Desc.Digest)
		if err != nil {
			fo.fail(mr.st, image.Digest{}, fmt.Errorf("key manifest: %w", err))
			continue
		}
		if haveOwn && kr.Desc.Digest == own.Desc.Digest {
			continue // the store's own key blob
		}
		other, ok := read[kr.Desc.Digest]
		if !ok {
			if other, err = image.ReadKeyFileAt(ctx, mr.st.ep, kr.Desc); err != nil {
				if ctx.Err() != nil {
					return nil, nil, nil, false, ctx.Err()
				}
				fo.fail(mr.st, md, fmt.Errorf("key blob: %w", err))
				continue
			}
			read[kr.Desc.Digest] = other
		}
		later, _ := kf.Extends(other)
		earlier, _ := other.Extends(kf)
		if haveOwn && later && other.Epoch > kf.Epoch {
			blobs, err := manifestBlobs(ctx, mr.st.ep, kr.Desc)
			if err != nil {
				if ctx.Err() != nil {
					return nil, nil, nil, false, ctx.Err()
				}
				fo.fail(mr.st, md, fmt.Errorf("key manifest: %w", err))
				continue
			}
			kf, want, newer = other, blobs, true
			keysRef = &image.Ref{Name: image.KeysRef, Desc: v1.Descriptor{MediaType: kr.Desc.MediaType, Size: kr.Desc.Size,
				Digest: kr.Desc.Digest, ArtifactType: kr.Desc.ArtifactType}}
			continue
		}
		if !sameKey(kf, other) && !later && !earlier {
			fo.fail(mr.st, image.Digest{}, fmt.Errorf("key blob (tag %s) of store %s, signer %s: %w", image.KeysRef, other.StoreID, other.Signer(), ErrForeignKey))
			continue
		}
		if haveOwn || keysRef != nil || !sameBlob(kf, other) {
			continue
		}
		blobs, err := manifestBlobs(ctx, mr.st.ep, kr.Desc)
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil, nil, false, ctx.Err()
			}
			fo.fail(mr.st, md, fmt.Errorf("key manifest: %w", err))
			continue
		}
		want = blobs
		keysRef = &image.Ref{Name: image.KeysRef, Desc: v1.Descriptor{MediaType: kr.Desc.MediaType, Size: kr.Desc.Size,
			Digest: kr.Desc.Digest, ArtifactType: kr.Desc.ArtifactType}}
	}
	if !haveOwn && keysRef == nil {
		return nil, nil, nil, false, fmt.Errorf("no mirror serves the settled key blob (store %s): %w", kf.StoreID, image.ErrNotFound)
	}
	return kf, keysRef, want, newer, nil
}
