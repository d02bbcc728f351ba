package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Manifest annotations of a snapshot. They are signed with the manifest and
// readable without the key, so a mirror can order snapshots.
const (
	AnnotationCreated = "org.opencontainers.image.created"
	AnnotationSeq     = "dev.dvpc.seq"
	AnnotationStore   = "dev.dvpc.store"
	// AnnotationHome is the snapshot's home ID ([HomeID]).
	AnnotationHome = "dev.dvpc.home"
	// AnnotationParents lists the parents' manifest digests, sorted and
	// comma-separated.
	AnnotationParents = "dev.dvpc.parents"
)

// ErrNoSnapshot means no snapshot matched a request.
var ErrNoSnapshot = errors.New("no such snapshot")

// SnapshotConfig is the sealed config blob of a snapshot.
type SnapshotConfig struct {
	Version  int       `json:"version"`
	Root     ChunkID   `json:"root"`
	Time     time.Time `json:"time"`
	Host     string    `json:"host"`
	OS       string    `json:"os,omitempty"` // the system the snapshot was taken on (GOOS); empty before it was recorded
	User     string    `json:"user"`
	Path     string    `json:"path"`
	Home     string    `json:"home,omitempty"`    // empty: written before homes existed
	Parents  []Digest  `json:"parents,omitempty"` // manifest digests, sorted
	Parent   string    `json:"parent,omitempty"`  // the one parent of a snapshot written before homes existed
	Seq      uint64    `json:"seq"`
	Mirrors  []string  `json:"mirrors,omitempty"`
	Profile  string    `json:"profile,omitempty"`
	Excludes []string  `json:"excludes,omitempty"`
	Stats    Stats     `json:"stats"`
}

// Stats summarise a snapshot run.
type Stats struct {
	Files     int64 `json:"files"`
	Dirs      int64 `json:"dirs"`
	Bytes     int64 `json:"bytes"`      // total size of the files
	BytesRead int64 `json:"bytes_read"` // read from disk (changed files)
	BytesNew  int64 `json:"bytes_new"`  // stored after dedup and compression
	Errors    int64 `json:"errors"`     // entries skipped because of errors
}

// Snapshot is a verified snapshot.
type Snapshot struct {
	ID       string // first 12 hex digits of the manifest digest
	Ref      string
	Manifest Digest
	Desc     v1.Descriptor
	Config   *SnapshotConfig
	Layers   []v1.Descriptor
	// Home is the name of the snapshot's home, HomeID its ID; for a
	// snapshot written before homes existed, derived from its path.
	Home    string
	HomeID  HomeID
	Parents []Digest // sorted
	raw     []byte
}

// Signed returns the snapshot's place in the history.
func (s *Snapshot) Signed() Signed {
	return Signed{Manifest: s.Manifest, Seq: s.Config.Seq, Home: s.HomeID, Parents: s.Parents}
}

// Time returns when the snapshot was taken.
func (s *Snapshot) Time() time.Time { return s.Config.Time }

// RawManifest returns the signed manifest bytes.
func (s *Snapshot) RawManifest() []byte { return s.raw }

// SignatureRef returns the tag under which a manifest's signature is stored.
func SignatureRef(manifest Digest) string { return "sha256-" + manifest.Hex() + ".sig" }

// SnapshotProblem is a snapshot that failed to load or verify.
type SnapshotProblem struct {
	Ref      string
	Manifest Digest
	Err      error
}

func (p SnapshotProblem) Error() string {
	return fmt.Sprintf("snapshot %s (%s): %v", p.Ref, p.Manifest.Short(), p.Err)
}

func (p SnapshotProblem) Unwrap() error { return p.Err }

// Snapshots loads and verifies every snapshot, oldest first. Snapshots whose
// signature, manifest or config fail are returned as problems, never used.
func (r *Repo) Snapshots(ctx context.Context) ([]*Snapshot, []SnapshotProblem, error) {
	refs, err := r.src.Refs(ctx)
	if err != nil {
		return nil, nil, err
	}
	var snaps []*Snapshot
	var probs []SnapshotProblem
	for _, ref := range refs {
		if !IsSnapshotRef(ref.Name) {
			continue
		}
		s, err := r.loadSnapshot(ctx, refs, ref)
		if err != nil {
			d, _ := DigestFromHash(ref.Desc.Digest)
			probs = append(probs, SnapshotProblem{Ref: ref.Name, Manifest: d, Err: err})
			continue
		}
		snaps = append(snaps, s)
	}
	slices.SortFunc(snaps, func(a, b *Snapshot) int {
		if a.Config.Seq != b.Config.Seq {
			return cmpU64(a.Config.Seq, b.Config.Seq)
		}
		return a.Config.Time.Compare(b.Config.Time)
	})
	return snaps, probs, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Signature returns the armored SSHSIG signature of a snapshot manifest.
func (r *Repo) Signature(ctx context.Context, s *Snapshot) ([]byte, error) {
	refs, err := r.src.Refs(ctx)
	if err != nil {
		return nil, err
	}
	sref, ok := findRef(refs, SignatureRef(s.Manifest))
	if !ok {
		return nil, fmt.Errorf("no signature (tag %s): %w", SignatureRef(s.Manifest), ErrBadSignature)
	}
	_, _, sig, err := readSignatureAt(ctx, r.src, sref.Desc)
	return sig, err
}

func (r *Repo) loadSnapshot(ctx context.Context, refs []Ref, ref Ref) (*Snapshot, error) {
	sigRef, _ := SignatureRefFor(refs, ref)
	v, err := VerifySnapshot(ctx, r.src, r.kf, ref, sigRef)
	if err != nil {
		return nil, err
	}
	md, m := v.Signed.Manifest, v.Manifest
	cd, err := DigestFromHash(m.Config.Digest)
	if err != nil {
		return nil, err
	}
	sealed, err := ReadBlob(ctx, r.src, cd, m.Config.Size)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	pt, err := r.keys.openMeta(sealed, []byte("dvpc v1 snapshot config"))
	if err != nil {
		return nil, fmt.Errorf("config blob %s: %w", cd, err)
	}
	var cfg SnapshotConfig
	if err := json.Unmarshal(pt, &cfg); err != nil {
		return nil, fmt.Errorf("config blob %s: %w: %v", cd, ErrFormat, err)
	}
	if cfg.Seq != v.Seq {
		return nil, fmt.Errorf("config sequence %d does not match the signed manifest's %d: %w", cfg.Seq, v.Seq, ErrFormat)
	}
	s := &Snapshot{ID: md.Short(), Ref: ref.Name, Manifest: md, Desc: ref.Desc, Config: &cfg, Layers: m.Layers, raw: v.Raw}
	if err := r.placeSnapshot(s, v.Signed); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", md, err)
	}
	return s, nil
}

// placeSnapshot sets the home and parents of a loaded snapshot from its
// config, checked against what the signed manifest says in the clear.
func (r *Repo) placeSnapshot(s *Snapshot, sg Signed) error {
	cfg := s.Config
	if cfg.Home == "" {
		// Written before homes existed: the home comes from the path.
		if !sg.Home.IsZero() || len(sg.Parents) > 0 || len(cfg.Parents) > 0 {
			return fmt.Errorf("config names no home but the manifest has home or parents: %w", ErrFormat)
		}
		s.Home = legacyHomeName(cfg)
		s.HomeID = r.keys.HomeID(s.Home)
		if cfg.Parent != "" {
			p, err := ParseDigest(cfg.Parent)
			if err != nil {
				return fmt.Errorf("config parent: %w: %w", ErrFormat, err)
			}
			s.Parents = []Digest{p}
		}
		return nil
	}
	if err := CheckHomeName(cfg.Home); err != nil {
		return fmt.Errorf("config: %w: %w", ErrFormat, err)
	}
	s.Home, s.HomeID = cfg.Home, r.keys.HomeID(cfg.Home)
	if sg.Home != s.HomeID {
		return fmt.Errorf("config home %q does not match the signed manifest's home id %s: %w", cfg.Home, sg.Home, ErrFormat)
	}
	if !slices.Equal(sortedParents(cfg.Parents), sg.Parents) {
		return fmt.Errorf("config parents do not match the signed manifest's: %w", ErrFormat)
	}
	s.Parents = sg.Parents
	return nil
}

// FindSnapshot resolves "latest", a snapshot ID or prefix, a manifest
// digest, or a tag among snaps (oldest first).
func FindSnapshot(snaps []*Snapshot, spec string) (*Snapshot, error) {
	if len(snaps) == 0 {
		return nil, fmt.Errorf("the store holds no snapshots; make one with `dvpc snapshot`: %w", ErrNoSnapshot)
	}
	if spec == "" || spec == "latest" {
		return snaps[len(snaps)-1], nil
	}
	var found *Snapshot
	for _, s := range snaps {
		if MatchesSnapshot(s.Ref, s.Manifest, spec) {
			if found != nil && found != s {
				return nil, fmt.Errorf("snapshot %q is ambiguous; give more digits: %w", spec, ErrNoSnapshot)
			}
			found = s
		}
	}
	if found == nil {
		return nil, fmt.Errorf("snapshot %q: %w; `dvpc log` lists them", spec, ErrNoSnapshot)
	}
	return found, nil
}

// MatchesSnapshot reports whether spec names the snapshot with tag ref and
// manifest md: the tag itself, or at least 4 leading hex digits of the
// manifest digest (its ID), with or without "sha256:". The one rule for
// naming a snapshot, in a store or on a mirror.
func MatchesSnapshot(ref string, md Digest, spec string) bool {
	if spec == ref || spec == md.String() {
		return true
	}
	p := strings.TrimPrefix(strings.ToLower(spec), "sha256:")
	return len(p) >= 4 && strings.HasPrefix(md.Hex(), p)
}

// SnapshotAt returns the newest snapshot taken at or before t.
func SnapshotAt(snaps []*Snapshot, t time.Time) (*Snapshot, error) {
	var best *Snapshot
	for _, s := range snaps {
		if !s.Config.Time.After(t) && (best == nil || !s.Config.Time.Before(best.Config.Time)) {
			best = s
		}
	}
	if best == nil {
		return nil, fmt.Errorf("no snapshot at or before %s: %w", t.Format(time.RFC3339), ErrNoSnapshot)
	}
	return best, nil
}

// commitSnapshot writes the config, manifest and signature of a snapshot,
// names it in the store and records it in the trust state with heads, the
// heads of every home the store held. Every blob in layers must already be
// stored.
func (r *Repo) commitSnapshot(ctx context.Context, cfg *SnapshotConfig, layers []v1.Descriptor, heads []Signed) (*Snapshot, error) {
	cfg.Parents = sortedParents(cfg.Parents)
	pt, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cdesc, err := PutBlob(ctx, r.st, SnapshotConfigType, seal(r.keys.meta, nil, pt, []byte("dvpc v1 snapshot config")))
	if err != nil {
		return nil, err
	}
	m := v1.Manifest{
		SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: SnapshotArtifactType,
		Config: cdesc, Layers: layers,
		Annotations: map[string]string{
			AnnotationCreated: cfg.Time.UTC().Format(time.RFC3339Nano),
			AnnotationSeq:     strconv.FormatUint(cfg.Seq, 10),
			AnnotationStore:   r.kf.StoreID,
			AnnotationEpoch:   strconv.FormatUint(uint64(r.keys.Epoch()), 10),
		},
	}
	homeID := r.keys.HomeID(cfg.Home)
	if cfg.Home != "" {
		m.Annotations[AnnotationHome] = homeID.String()
		if len(cfg.Parents) > 0 {
			m.Annotations[AnnotationParents] = formatParents(cfg.Parents)
		}
	}
	mdesc, raw, err := putManifest(ctx, r.st, m)
	if err != nil {
		return nil, err
	}
	md, _ := DigestFromHash(mdesc.Digest)
	sig, err := r.keys.sign.signSSHSIG(raw)
	if err != nil {
		return nil, err
	}
	sdesc, err := PutBlob(ctx, r.st, SignatureType, sig)
	if err != nil {
		return nil, err
	}
	subject := mdesc
	subject.ArtifactType = ""
	sigDesc, _, err := putArtifact(ctx, r.st, SignatureArtifactType, []v1.Descriptor{sdesc}, &subject, nil)
	if err != nil {
		return nil, err
	}
	name := SnapshotRef(cfg.Seq, md)
	// The signature is named first: a snapshot is never visible unsigned.
	err = r.st.UpdateRefs(ctx, func(refs []Ref) ([]Ref, error) {
		refs = setRef(refs, Ref{Name: SignatureRef(md), Desc: sigDesc})
		return setRef(refs, Ref{Name: name, Desc: mdesc}), nil
	})
	if err != nil {
		return nil, err
	}
	snap := &Snapshot{ID: md.Short(), Ref: name, Manifest: md, Desc: mdesc, Config: cfg, Layers: layers,
		Home: cfg.Home, HomeID: homeID, Parents: cfg.Parents, raw: raw}
	if sf, ok := r.st.(Stateful); ok {
		err = sf.UpdateState(r.kf.StoreID, func(st *State) error {
			lin := Lineage{}
			for _, h := range heads {
				lin.Add(h)
			}
			lin.Add(snap.Signed())
			for _, h := range heads {
				st.Record(h, lin)
			}
			st.Record(snap.Signed(), lin)
			return nil
		})
		if err != nil {
			return snap, fmt.Errorf("snapshot %s is stored, but: %w", snap.ID, err)
		}
	}
	return snap, nil
}
