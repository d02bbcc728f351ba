package image

import (
	"context"
	"fmt"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// BlobRef is one blob a set of refs needs.
type BlobRef struct {
	Digest    Digest
	Size      int64
	MediaType string
}

// SelectRefs returns the refs a copy of the given snapshots needs: the key
// manifest, each snapshot manifest and its signature.
func SelectRefs(refs []Ref, snaps []*Snapshot) ([]Ref, error) {
	var out []Ref
	k, ok := findRef(refs, KeysRef)
	if !ok {
		return nil, fmt.Errorf("store has no %q tag: %w", KeysRef, ErrNotFound)
	}
	out = append(out, k)
	for _, s := range snaps {
		r, ok := findRef(refs, s.Ref)
		if !ok {
			return nil, fmt.Errorf("snapshot %s: tag %s: %w", s.ID, s.Ref, ErrNotFound)
		}
		sig, ok := findRef(refs, SignatureRef(s.Manifest))
		if !ok {
			return nil, fmt.Errorf("snapshot %s: no signature: %w", s.ID, ErrBadSignature)
		}
		out = append(out, r, sig)
	}
	return out, nil
}

// BlobsOf lists every blob the refs' manifests name, the manifests
// themselves included, each once, sorted by digest. Manifests are read and
// checked against their digests.
func BlobsOf(ctx context.Context, src Source, refs []Ref) ([]BlobRef, error) {
	seen := map[Digest]BlobRef{}
	add := func(d v1.Descriptor) error {
		dg, err := DigestFromHash(d.Digest)
		if err != nil {
			return err
		}
		seen[dg] = BlobRef{Digest: dg, Size: d.Size, MediaType: string(d.MediaType)}
		return nil
	}
	for _, r := range refs {
		m, _, err := readManifest(ctx, src, r.Desc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.Name, err)
		}
		desc := r.Desc
		if desc.MediaType == "" {
			desc.MediaType = mediaTypeOf(ManifestType)
		}
		if err := add(desc); err != nil {
			return nil, err
		}
		if err := add(m.Config); err != nil {
			return nil, err
		}
		for _, l := range m.Layers {
			if err := add(l); err != nil {
				return nil, err
			}
		}
	}
	out := make([]BlobRef, 0, len(seen))
	for _, b := range seen {
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b BlobRef) int { return strings.Compare(a.Digest.Hex(), b.Digest.Hex()) })
	return out, nil
}

// IndexJSON renders refs as an OCI index.json, as a layout holds it.
func IndexJSON(refs []Ref) ([]byte, error) { return encodeIndex(refs) }
