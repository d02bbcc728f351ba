package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The profile: the person's list of apps, a document the profiles package
// writes. The store keeps the current one under the ref [ProfileRef]; each
// snapshot made while there is one names its blob in its config (Profile)
// and carries it as its last layer, so that it travels with the snapshot.
const (
	ProfileRef          = "profile"
	ProfileArtifactType = "application/vnd.dvpc.profile.v1"
	ProfileType         = "application/vnd.dvpc.profile.v1+sealed"
	// ProfileNamespace is the SSHSIG namespace of profile signatures.
	ProfileNamespace = "dvpc-profile"
	profileAD        = "dvpc v1 profile"
	maxProfile       = 4 << 20
)

// signedProfile is the sealed plaintext of a profile blob: the document
// and the signature of the key epoch that wrote it.
type signedProfile struct {
	Epoch     uint32 `json:"epoch"`
	Doc       []byte `json:"doc"`
	Signature string `json:"signature"` // SSHSIG over Doc, namespace dvpc-profile
}

// SaveProfile signs and seals doc, stores it and names it the store's
// current profile. The next snapshots carry it.
func (r *Repo) SaveProfile(ctx context.Context, doc []byte) (Digest, error) {
	if r.st == nil {
		return Digest{}, fmt.Errorf("save profile: %w", ErrReadOnly)
	}
	if len(doc) > maxProfile {
		return Digest{}, fmt.Errorf("save profile: %d bytes is more than %d", len(doc), maxProfile)
	}
	sig, err := r.keys.sign.signSSHSIGIn(ProfileNamespace, doc)
	if err != nil {
		return Digest{}, fmt.Errorf("save profile: %w", err)
	}
	pt, err := json.Marshal(signedProfile{Epoch: r.keys.Epoch(), Doc: doc, Signature: string(sig)})
	if err != nil {
		return Digest{}, err
	}
	unlock, err := r.st.Lock(ctx)
	if err != nil {
		return Digest{}, err
	}
	defer unlock()
	desc, err := PutBlob(ctx, r.st, ProfileType, seal(r.keys.meta, nil, pt, []byte(profileAD)))
	if err != nil {
		return Digest{}, fmt.Errorf("save profile: %w", err)
	}
	mdesc, _, err := putArtifact(ctx, r.st, ProfileArtifactType, []v1.Descriptor{desc}, nil,
		map[string]string{AnnotationStore: r.kf.StoreID})
	if err != nil {
		return Digest{}, fmt.Errorf("save profile: %w", err)
	}
	err = r.st.UpdateRefs(ctx, func(refs []Ref) ([]Ref, error) {
		return setRef(refs, Ref{Name: ProfileRef, Desc: mdesc}), nil
	})
	if err != nil {
		return Digest{}, fmt.Errorf("save profile: %w", err)
	}
	d, _ := DigestFromHash(desc.Digest)
	return d, nil
}

// AdoptProfile names the profile snapshot s carries the store's current
// one, the same blob, so that the next snapshots carry it unchanged. It
// wraps [ErrNotFound] when s carries none.
func (r *Repo) AdoptProfile(ctx context.Context, s *Snapshot) error {
	if r.st == nil {
		return fmt.Errorf("adopt profile: %w", ErrReadOnly)
	}
	if _, err := r.SnapshotProfile(ctx, s); err != nil {
		return fmt.Errorf("adopt profile: %w", err)
	}
	var layer v1.Descriptor
	for _, l := range s.Layers {
		if l.Digest.String() == s.Config.Profile && string(l.MediaType) == ProfileType {
			layer = l
		}
	}
	d, err := DigestFromHash(layer.Digest)
	if err != nil {
		return fmt.Errorf("adopt profile: %w", err)
	}
	// The blob may be read from a medium: the store keeps its own copy.
	sealed, err := ReadBlob(ctx, r.src, d, layer.Size)
	if err != nil {
		return fmt.Errorf("adopt profile: %w", err)
	}
	unlock, err := r.st.Lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	desc, err := PutBlob(ctx, r.st, ProfileType, sealed)
	if err != nil {
		return fmt.Errorf("adopt profile: %w", err)
	}
	mdesc, _, err := putArtifact(ctx, r.st, ProfileArtifactType, []v1.Descriptor{desc}, nil,
		map[string]string{AnnotationStore: r.kf.StoreID})
	if err != nil {
		return fmt.Errorf("adopt profile: %w", err)
	}
	err = r.st.UpdateRefs(ctx, func(refs []Ref) ([]Ref, error) {
		return setRef(refs, Ref{Name: ProfileRef, Desc: mdesc}), nil
	})
	if err != nil {
		return fmt.Errorf("adopt profile: %w", err)
	}
	return nil
}

// Profile returns the store's current profile document and its blob's
// digest; it wraps [ErrNotFound] when the store has none.
func (r *Repo) Profile(ctx context.Context) ([]byte, Digest, error) {
	desc, err := r.profileLayer(ctx)
	if err != nil {
		return nil, Digest{}, err
	}
	d, err := DigestFromHash(desc.Digest)
	if err != nil {
		return nil, Digest{}, err
	}
	doc, err := r.openProfile(ctx, d, desc.Size)
	return doc, d, err
}

// profileLayer returns the descriptor of the current profile blob.
func (r *Repo) profileLayer(ctx context.Context) (v1.Descriptor, error) {
	refs, err := r.src.Refs(ctx)
	if err != nil {
		return v1.Descriptor{}, err
	}
	ref, ok := findRef(refs, ProfileRef)
	if !ok {
		return v1.Descriptor{}, fmt.Errorf("profile: %w", ErrNotFound)
	}
	m, _, err := readManifest(ctx, r.src, ref.Desc)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("profile: %w", err)
	}
	if m.ArtifactType != ProfileArtifactType || len(m.Layers) != 1 || string(m.Layers[0].MediaType) != ProfileType {
		return v1.Descriptor{}, fmt.Errorf("profile manifest: %w", ErrFormat)
	}
	return m.Layers[0], nil
}

// SnapshotProfile returns the profile a snapshot carries; it wraps
// [ErrNotFound] when the snapshot was made without one.
func (r *Repo) SnapshotProfile(ctx context.Context, s *Snapshot) ([]byte, error) {
	if s.Config.Profile == "" {
		return nil, fmt.Errorf("snapshot %s has no profile: %w", s.ID, ErrNotFound)
	}
	d, err := ParseDigest(s.Config.Profile)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s profile: %w: %w", s.ID, ErrFormat, err)
	}
	for _, l := range s.Layers {
		if l.Digest.Hex == d.Hex() && string(l.MediaType) == ProfileType {
			return r.openProfile(ctx, d, l.Size)
		}
	}
	return nil, fmt.Errorf("snapshot %s names profile %s but does not carry it: %w", s.ID, d.Short(), ErrFormat)
}

// openProfile reads, opens and checks the signature of a profile blob.
func (r *Repo) openProfile(ctx context.Context, d Digest, size int64) ([]byte, error) {
	if size > maxProfile+64<<10 {
		return nil, fmt.Errorf("profile %s: %d bytes: %w", d.Short(), size, ErrFormat)
	}
	sealed, err := ReadBlob(ctx, r.src, d, size)
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", d.Short(), err)
	}
	pt, err := r.keys.openMeta(sealed, []byte(profileAD))
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", d.Short(), err)
	}
	var sp signedProfile
	if err := json.Unmarshal(pt, &sp); err != nil {
		return nil, fmt.Errorf("profile %s: %w: %v", d.Short(), ErrFormat, err)
	}
	signer, err := r.kf.SignerFor(strconv.FormatUint(uint64(sp.Epoch), 10), 0)
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", d.Short(), err)
	}
	if err := verifySSHSIGIn(ProfileNamespace, signer, sp.Doc, []byte(sp.Signature)); err != nil {
		return nil, fmt.Errorf("profile %s: %w: %w", d.Short(), ErrBadSignature, err)
	}
	return sp.Doc, nil
}

// withProfile adds the store's current profile to a new snapshot's config
// and layers; a store that has none (a PC where no app was ever added)
// passes on the first parent's, so that the apps still follow the person.
func (r *Repo) withProfile(ctx context.Context, cfg *SnapshotConfig, layers []v1.Descriptor, parents []*Snapshot) ([]v1.Descriptor, error) {
	desc, err := r.profileLayer(ctx)
	if errors.Is(err, ErrNotFound) {
		if len(parents) == 0 || parents[0].Config.Profile == "" {
			return layers, nil
		}
		for _, l := range parents[0].Layers {
			if l.Digest.String() == parents[0].Config.Profile && string(l.MediaType) == ProfileType {
				cfg.Profile = parents[0].Config.Profile
				return append(layers, l), nil
			}
		}
		return layers, nil
	}
	if err != nil {
		return nil, err
	}
	d, err := DigestFromHash(desc.Digest)
	if err != nil {
		return nil, err
	}
	cfg.Profile = d.String()
	return append(layers, desc), nil
}

// carriesProfile reports whether snapshot s carries the profile a new
// snapshot would: the store's current one, if it has one.
func (r *Repo) carriesProfile(ctx context.Context, s *Snapshot) (bool, error) {
	desc, err := r.profileLayer(ctx)
	if errors.Is(err, ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	d, err := DigestFromHash(desc.Digest)
	if err != nil {
		return false, err
	}
	return s.Config.Profile == d.String(), nil
}
