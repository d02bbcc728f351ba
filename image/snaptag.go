package image

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/crypto/ssh"
)

// The rules about snapshot tags and signatures (docs/design.md §2) live
// here, once: what a snapshot tag looks like, and what makes a snapshot a
// mirror or a disc offers verified. Pull, push, mirror status and loading
// a store all call them.

const snapRefPrefix = "snap-"

// ErrTagMismatch means a tag does not name its snapshot as the signed
// manifest says (snap-<seq>-<id>): it is refused, never kept.
var ErrTagMismatch = errors.New("the tag does not match the signed snapshot")

// SnapshotRef returns the tag of the snapshot with manifest md and sequence
// number seq: snap-<seq, at least 8 digits>-<12 hex of md>. Tags are always
// rebuilt from the signed manifest; a tag name read from a store or mirror
// is never trusted.
func SnapshotRef(seq uint64, md Digest) string {
	return fmt.Sprintf("%s%08d-%s", snapRefPrefix, seq, md.Short())
}

// IsSnapshotRef reports whether a tag claims to name a snapshot. The claim
// is checked by [VerifySnapshot]; a tag that makes it falsely is refused.
func IsSnapshotRef(name string) bool { return strings.HasPrefix(name, snapRefPrefix) }

// ParseSnapshotRef reads the sequence number and ID a snapshot tag claims,
// for display and for ordering the store's own tags, which were rebuilt
// from verified manifests. ok is false for a tag not of the form
// [SnapshotRef] writes.
func ParseSnapshotRef(name string) (seq uint64, id string, ok bool) {
	rest, found := strings.CutPrefix(name, snapRefPrefix)
	if !found {
		return 0, "", false
	}
	num, id, found := strings.Cut(rest, "-")
	if !found || len(id) != 12 || !allIn(id, "0123456789abcdef") || len(num) < 8 || !allIn(num, "0123456789") {
		return 0, "", false
	}
	seq, err := strconv.ParseUint(num, 10, 64)
	if err != nil || fmt.Sprintf("%08d", seq) != num {
		return 0, "", false
	}
	return seq, id, true
}

// VerifiedSnapshot is a snapshot manifest whose signature verified against
// a store's key, with its place in the history and the signature that
// vouches for it.
type VerifiedSnapshot struct {
	Signed
	Manifest    *v1.Manifest
	Raw         []byte // the signed manifest bytes
	Desc        v1.Descriptor
	SigManifest *v1.Manifest
	SigRaw      []byte
	SigDesc     v1.Descriptor
}

// Ref returns the snapshot's tag, rebuilt from the signed manifest.
func (v *VerifiedSnapshot) Ref() Ref { return Ref{Name: v.Signed.Ref(), Desc: cleanDesc(v.Desc)} }

// SigRef returns the tag of the snapshot's signature.
func (v *VerifiedSnapshot) SigRef() Ref {
	return Ref{Name: SignatureRef(v.Signed.Manifest), Desc: cleanDesc(v.SigDesc)}
}

// cleanDesc keeps of a descriptor what names the bytes, and drops what a
// source added (such as its own ref.name annotation).
func cleanDesc(d v1.Descriptor) v1.Descriptor {
	return v1.Descriptor{MediaType: d.MediaType, Size: d.Size, Digest: d.Digest, ArtifactType: d.ArtifactType}
}

// VerifySnapshot is the one check of a snapshot read from anywhere: it
// reads the manifest snap names and the signature manifest sig names from
// src (each checked against its digest), verifies the signature over the
// manifest bytes with kf's key before anything in the manifest is used,
// checks that the manifest is a snapshot of kf's store, and that snap's
// tag is the one the signed manifest makes ([ErrTagMismatch] if not).
// A bad or missing signature is [ErrBadSignature].
func VerifySnapshot(ctx context.Context, src Source, kf *KeyFile, snap, sig Ref) (*VerifiedSnapshot, error) {
	md, err := DigestFromHash(snap.Desc.Digest)
	if err != nil {
		return nil, err
	}
	m, raw, err := readManifest(ctx, src, snap.Desc)
	if err != nil {
		return nil, err
	}
	if sig.Name != SignatureRef(md) {
		return nil, fmt.Errorf("no signature (tag %s): %w", SignatureRef(md), ErrBadSignature)
	}
	sm, sraw, sigBytes, err := readSignatureAt(ctx, src, sig.Desc)
	if err != nil {
		return nil, err
	}
	// The signature is checked before anything in the manifest is used.
	if err := kf.verifyManifest(m, raw, sigBytes); err != nil {
		return nil, err
	}
	if m.ArtifactType != SnapshotArtifactType || string(m.Config.MediaType) != SnapshotConfigType {
		return nil, fmt.Errorf("manifest %s is not a dvpc snapshot: %w", md.Short(), ErrFormat)
	}
	if m.Annotations[AnnotationStore] != kf.StoreID {
		return nil, fmt.Errorf("manifest %s belongs to store %q, not %q", md.Short(), m.Annotations[AnnotationStore], kf.StoreID)
	}
	sg, err := ParseSigned(md, m)
	if err != nil {
		return nil, err
	}
	if snap.Name != sg.Ref() {
		// A mirror cannot reorder snapshots by naming them.
		return nil, fmt.Errorf("tag %s names snapshot %s, whose signed manifest makes it %s: %w", snap.Name, md.Short(), sg.Ref(), ErrTagMismatch)
	}
	return &VerifiedSnapshot{Signed: sg, Manifest: m, Raw: raw, Desc: snap.Desc, SigManifest: sm, SigRaw: sraw, SigDesc: sig.Desc}, nil
}

// verifyManifest checks an armored SSHSIG signature over a snapshot
// manifest's bytes: the one place a snapshot's signature meets the key
// that must have made it.
func (kf *KeyFile) verifyManifest(m *v1.Manifest, raw, sig []byte) error {
	pub, err := kf.SignerOf(m.Annotations)
	if err != nil {
		return err
	}
	return VerifySSHSIG(pub, raw, sig)
}

// SignerFingerprint returns the fingerprint of a public key in
// authorized_keys form as OpenSSH shows it (ssh-keygen -l):
// "SHA256:" and the unpadded base64 of the SHA-256 of the key.
func SignerFingerprint(authorizedKey string) string {
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(authorizedKey))
	if err != nil {
		return "(unreadable key)"
	}
	return ssh.FingerprintSHA256(pub)
}

// Signer returns the fingerprint of the store's snapshot signing key
// ([SignerFingerprint]).
func (kf *KeyFile) Signer() string { return SignerFingerprint(kf.SigningPublic) }

// readSignatureAt reads the signature manifest desc names and its one
// signature blob.
func readSignatureAt(ctx context.Context, src Source, desc v1.Descriptor) (*v1.Manifest, []byte, []byte, error) {
	sm, sraw, err := readManifest(ctx, src, desc)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("signature manifest: %w", err)
	}
	if len(sm.Layers) != 1 || string(sm.Layers[0].MediaType) != SignatureType {
		return nil, nil, nil, fmt.Errorf("signature manifest: want one %s layer: %w", SignatureType, ErrBadSignature)
	}
	sd, err := DigestFromHash(sm.Layers[0].Digest)
	if err != nil {
		return nil, nil, nil, err
	}
	if sm.Layers[0].Size > maxSignature {
		return nil, nil, nil, fmt.Errorf("signature blob %s: %d bytes, over the %d-byte limit: %w", sd, sm.Layers[0].Size, maxSignature, ErrBadSignature)
	}
	sig, err := ReadBlob(ctx, src, sd, sm.Layers[0].Size)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("signature blob: %w", err)
	}
	return sm, sraw, sig, nil
}

// maxSignature bounds an armored SSHSIG signature read into memory; one is
// under 1 KiB.
const maxSignature = 64 << 10

// SignatureRefFor returns the signature tag among refs of the snapshot
// snap names; ok is false when there is none.
func SignatureRefFor(refs []Ref, snap Ref) (Ref, bool) {
	md, err := DigestFromHash(snap.Desc.Digest)
	if err != nil {
		return Ref{}, false
	}
	return findRef(refs, SignatureRef(md))
}
