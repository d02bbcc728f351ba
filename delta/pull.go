package delta

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/dvpc/dvpc/image"
)

// ErrRollback means a mirror offered a snapshot older than one already seen.
var ErrRollback = errors.New("snapshot sequence is lower than the minimum accepted: possible rollback")

// PullOptions tune [Pull].
type PullOptions struct {
	// MinSeq refuses snapshots whose signed sequence number is lower, so a
	// mirror cannot roll the store back to an older state.
	MinSeq uint64
}

// MirrorFailure is one thing a mirror could not serve.
type MirrorFailure struct {
	Mirror string
	Digest image.Digest // zero when the mirror failed as a whole
	Err    error
}

func (f MirrorFailure) Error() string {
	if f.Digest.IsZero() {
		return fmt.Sprintf("mirror %s: %v", f.Mirror, f.Err)
	}
	return fmt.Sprintf("mirror %s: blob %s: %v", f.Mirror, f.Digest.Short(), f.Err)
}

func (f MirrorFailure) Unwrap() error { return f.Err }

// PullReport says what a pull copied and what went wrong on the way.
type PullReport struct {
	Snapshots     []string // snapshot tags newly named in the store
	KeysAdded     bool
	BlobsFetched  int
	BytesFetched  int64
	BlobsPresent  int                     // already in the store
	Refused       []image.SnapshotProblem // bad signature, wrong store, rollback
	Failures      []MirrorFailure         // per mirror, including ones another mirror made up for
	ManifestsRead int
}

// BadMirrors names the mirrors that served bytes that did not match their
// digest.
func (r PullReport) BadMirrors() []string {
	var out []string
	for _, f := range r.Failures {
		var de *image.DigestError
		if errors.As(f.Err, &de) && !slices.Contains(out, f.Mirror) {
			out = append(out, f.Mirror)
		}
	}
	return out
}

// failover reads from several mirrors: each blob from the first that
// serves it intact.
type failover struct {
	mirrors []Endpoint
	refs    []image.Ref

	mu       sync.Mutex
	failures []MirrorFailure
}

var _ image.Source = (*failover)(nil)

func (f *failover) fail(m Endpoint, d image.Digest, err error) {
	f.mu.Lock()
	f.failures = append(f.failures, MirrorFailure{Mirror: m.String(), Digest: d, Err: err})
	f.mu.Unlock()
}

func (f *failover) Refs(ctx context.Context) ([]image.Ref, error) { return f.refs, nil }

// OpenBlob tries each mirror in turn; [Registry.OpenBlob] has checked the
// bytes against d.
func (f *failover) OpenBlob(ctx context.Context, d image.Digest) (image.Blob, error) {
	var errs []error
	for _, m := range f.mirrors {
		b, err := m.OpenBlob(ctx, d)
		if err == nil {
			return b, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		f.fail(m, d, err)
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("blob %s: no mirror serves it intact: %w", d, errors.Join(errs...))
}

func (f *failover) StatBlob(ctx context.Context, d image.Digest) (int64, error) {
	var errs []error
	for _, m := range f.mirrors {
		n, err := m.StatBlob(ctx, d)
		if err == nil {
			return n, nil
		}
		errs = append(errs, err)
	}
	return 0, errors.Join(errs...)
}

// wantBlob is a blob a pull needs; raw is set for manifests already read.
type wantBlob struct {
	digest image.Digest
	size   int64
	raw    []byte
}

// Pull copies into dst the signed snapshots the mirrors hold and dst lacks,
// with the key manifest if dst has none. Each blob comes from the first
// mirror that serves it intact and is checked before it is written; only
// blobs dst lacks are fetched. A snapshot is named in dst only after its
// signature verifies against the store's key (dst's own key when it has
// one) and all its blobs are in dst; snapshots that fail are refused and
// reported. When a blob cannot be had from any mirror, Pull names nothing
// and returns an error.
func Pull(ctx context.Context, mirrors []*Registry, dst image.Store, opts PullOptions) (PullReport, error) {
	eps := make([]Endpoint, len(mirrors))
	for i, m := range mirrors {
		eps[i] = m
	}
	return PullFrom(ctx, eps, dst, opts)
}

// PullFrom is [Pull] from any mirrors: registries and local layouts.
func PullFrom(ctx context.Context, mirrors []Endpoint, dst image.Store, opts PullOptions) (rep PullReport, err error) {
	unlock, err := dst.Lock(ctx)
	if err != nil {
		return rep, err
	}
	defer unlock()
	dstRefs, err := dst.Refs(ctx)
	if err != nil {
		return rep, err
	}

	// The mirrors' tags, the first mirror's entry winning for each name.
	fo := &failover{}
	seen := map[string]bool{}
	var byMirror [][]image.Ref // every mirror's own tags, in mirror order
	var listErrs []error
	for _, m := range mirrors {
		refs, err := m.Refs(ctx)
		if err != nil {
			fo.fail(m, image.Digest{}, err)
			listErrs = append(listErrs, err)
			continue
		}
		fo.mirrors = append(fo.mirrors, m)
		byMirror = append(byMirror, refs)
		for _, r := range refs {
			if !seen[r.Name] {
				seen[r.Name] = true
				fo.refs = append(fo.refs, r)
			}
		}
	}
	defer func() { rep.Failures = fo.failures }()
	if len(fo.mirrors) == 0 {
		return rep, fmt.Errorf("no mirror answers: %w", errors.Join(listErrs...))
	}

	// The key: the store's own if it has one, else the mirrors'.
	var kf *image.KeyFile
	var keysRef *image.Ref
	var want []wantBlob
	if _, ok := findRef(dstRefs, image.KeysRef); ok {
		if kf, err = image.ReadKeyFile(ctx, dst); err != nil {
			return rep, err
		}
	} else {
		kr, ok := findRef(fo.refs, image.KeysRef)
		if !ok {
			return rep, fmt.Errorf("no mirror holds a %q tag: %w", image.KeysRef, image.ErrNotFound)
		}
		if kf, err = image.ReadKeyFile(ctx, fo); err != nil {
			return rep, fmt.Errorf("key file from the mirrors: %w", err)
		}
		blobs, err := manifestBlobs(ctx, fo, kr.Desc)
		if err != nil {
			return rep, err
		}
		want = append(want, blobs...)
		keysRef = &kr
	}

	// Snapshots the store lacks, verified before anything of them is kept.
	// A name may point at different manifests on different mirrors: each
	// mirror's version (with that mirror's signature tag) is tried in turn,
	// so a hostile mirror listed first cannot hide an honest one's.
	type accepted struct{ snap, sig image.Ref }
	var acc []accepted
	var names []string
	for _, r := range fo.refs {
		if strings.HasPrefix(r.Name, "snap-") {
			names = append(names, r.Name)
		}
	}
	for _, name := range names {
		var errs []error
		var lastMD image.Digest
		tried := map[string]bool{}
		var done bool
		for _, refs := range byMirror {
			r, found := findRef(refs, name)
			if !found {
				continue
			}
			if have, held := findRef(dstRefs, r.Name); held && have.Desc.Digest == r.Desc.Digest {
				done = true
				break
			}
			md, err := image.DigestFromHash(r.Desc.Digest)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			lastMD = md
			sigRef, found := findRef(refs, image.SignatureRef(md))
			if !found {
				errs = append(errs, fmt.Errorf("no signature (tag %s): %w", image.SignatureRef(md), image.ErrBadSignature))
				continue
			}
			key := r.Desc.Digest.String() + " " + sigRef.Desc.Digest.String()
			if tried[key] {
				continue
			}
			tried[key] = true
			blobs, m, err := verifySnapshot(ctx, fo, kf, r, sigRef)
			rep.ManifestsRead += 2
			if err != nil {
				if ctx.Err() != nil {
					return rep, ctx.Err()
				}
				errs = append(errs, err)
				continue
			}
			seq, err := strconv.ParseUint(m.Annotations[image.AnnotationSeq], 10, 64)
			if err != nil {
				errs = append(errs, fmt.Errorf("sequence %q: %w", m.Annotations[image.AnnotationSeq], image.ErrFormat))
				continue
			}
			if seq < opts.MinSeq {
				errs = append(errs, fmt.Errorf("sequence %d < %d: %w", seq, opts.MinSeq, ErrRollback))
				continue
			}
			want = append(want, blobs...)
			acc = append(acc, accepted{r, sigRef})
			done = true
			break
		}
		if !done && len(errs) > 0 {
			rep.Refused = append(rep.Refused, image.SnapshotProblem{Ref: name, Manifest: lastMD, Err: errors.Join(errs...)})
		}
	}
	if len(acc) == 0 {
		return rep, nil
	}

	// Blobs the store lacks, each once.
	var mu sync.Mutex
	done := map[image.Digest]bool{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	for _, b := range want {
		if done[b.digest] {
			continue
		}
		done[b.digest] = true
		g.Go(func() error {
			if n, err := dst.StatBlob(gctx, b.digest); err == nil && n == b.size {
				mu.Lock()
				rep.BlobsPresent++
				mu.Unlock()
				return nil
			}
			n, err := copyBlob(gctx, fo, dst, b)
			if err != nil {
				return err
			}
			mu.Lock()
			rep.BlobsFetched++
			rep.BytesFetched += n
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return rep, err
	}

	// Name them: the keys if new, each signature before its snapshot.
	err = dst.UpdateRefs(ctx, func(refs []image.Ref) ([]image.Ref, error) {
		if keysRef != nil {
			if _, ok := findRef(refs, image.KeysRef); !ok {
				refs = append(refs, *keysRef)
			}
		}
		for _, a := range acc {
			refs = setRef(refs, a.sig)
			refs = setRef(refs, a.snap)
		}
		return refs, nil
	})
	if err != nil {
		return rep, err
	}
	rep.KeysAdded = keysRef != nil
	for _, a := range acc {
		rep.Snapshots = append(rep.Snapshots, a.snap.Name)
	}
	return rep, nil
}

// verifySnapshot reads a snapshot manifest and its signature, checks the
// signature against the key file and the store ID, and returns the blobs
// both manifests need.
func verifySnapshot(ctx context.Context, src image.Source, kf *image.KeyFile, snap, sig image.Ref) ([]wantBlob, *v1.Manifest, error) {
	sblobs, m, raw, err := readManifestBlobs(ctx, src, snap.Desc)
	if err != nil {
		return nil, nil, err
	}
	gblobs, sm, _, err := readManifestBlobs(ctx, src, sig.Desc)
	if err != nil {
		return nil, nil, fmt.Errorf("signature manifest: %w", err)
	}
	if len(sm.Layers) != 1 || string(sm.Layers[0].MediaType) != image.SignatureType {
		return nil, nil, fmt.Errorf("signature manifest: want one %s layer: %w", image.SignatureType, image.ErrBadSignature)
	}
	sd, err := image.DigestFromHash(sm.Layers[0].Digest)
	if err != nil {
		return nil, nil, err
	}
	sigBytes, err := image.ReadBlob(ctx, src, sd, sm.Layers[0].Size)
	if err != nil {
		return nil, nil, fmt.Errorf("signature blob: %w", err)
	}
	if err := image.VerifySSHSIG(kf.SigningPublic, raw, sigBytes); err != nil {
		return nil, nil, err
	}
	if m.ArtifactType != image.SnapshotArtifactType {
		return nil, nil, fmt.Errorf("not a dvpc snapshot: %w", image.ErrFormat)
	}
	if m.Annotations[image.AnnotationStore] != kf.StoreID {
		return nil, nil, fmt.Errorf("belongs to store %q, not %q", m.Annotations[image.AnnotationStore], kf.StoreID)
	}
	return append(sblobs, gblobs...), m, nil
}

func manifestBlobs(ctx context.Context, src image.Source, desc v1.Descriptor) ([]wantBlob, error) {
	b, _, _, err := readManifestBlobs(ctx, src, desc)
	return b, err
}

// readManifestBlobs reads a manifest, checked against its digest, and lists
// it with its config and layers.
func readManifestBlobs(ctx context.Context, src image.Source, desc v1.Descriptor) ([]wantBlob, *v1.Manifest, []byte, error) {
	md, err := image.DigestFromHash(desc.Digest)
	if err != nil {
		return nil, nil, nil, err
	}
	raw, err := image.ReadBlob(ctx, src, md, desc.Size)
	if err != nil {
		return nil, nil, nil, err
	}
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil || m.SchemaVersion != 2 {
		return nil, nil, nil, fmt.Errorf("manifest %s: %w", md, image.ErrFormat)
	}
	out := []wantBlob{{digest: md, size: int64(len(raw)), raw: raw}}
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		dg, err := image.DigestFromHash(d.Digest)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("manifest %s: %w", md, err)
		}
		out = append(out, wantBlob{digest: dg, size: d.Size})
	}
	return out, &m, raw, nil
}

// copyBlob writes one blob into dst from the first mirror that serves it
// intact, or from raw when the bytes are already at hand and verified.
func copyBlob(ctx context.Context, fo *failover, dst image.Store, b wantBlob) (int64, error) {
	if b.raw != nil {
		return writeBlob(ctx, dst, b, bytes.NewReader(b.raw))
	}
	var errs []error
	for _, m := range fo.mirrors {
		blob, err := m.OpenBlob(ctx, b.digest)
		if err == nil && blob.Size() != b.size {
			blob.Close()
			err = &image.DigestError{Want: b.digest, WantSize: b.size, GotSize: blob.Size()}
		}
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			fo.fail(m, b.digest, err)
			errs = append(errs, err)
			continue
		}
		n, err := writeBlob(ctx, dst, b, io.NewSectionReader(blob, 0, blob.Size()))
		blob.Close()
		if err != nil {
			var de *image.DigestError
			if !errors.As(err, &de) {
				return 0, err // the store failed, not the mirror
			}
			fo.fail(m, b.digest, err)
			errs = append(errs, err)
			continue
		}
		return n, nil
	}
	return 0, fmt.Errorf("blob %s: no mirror serves it intact: %w", b.digest, errors.Join(errs...))
}

// writeBlob stores r in dst and checks it was named b's digest.
func writeBlob(ctx context.Context, dst image.Store, b wantBlob, r io.Reader) (int64, error) {
	w, err := dst.CreateBlob(ctx)
	if err != nil {
		return 0, err
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Abort()
		return 0, err
	}
	d, n, err := w.Commit(ctx)
	if err != nil {
		return 0, err
	}
	if d != b.digest || n != b.size {
		// Committed under its own digest, which names other bytes: harmless.
		return 0, &image.DigestError{Want: b.digest, Got: d, WantSize: b.size, GotSize: n}
	}
	return n, nil
}

func findRef(refs []image.Ref, name string) (image.Ref, bool) {
	for _, r := range refs {
		if r.Name == name {
			return r, true
		}
	}
	return image.Ref{}, false
}

func setRef(refs []image.Ref, r image.Ref) []image.Ref {
	for i := range refs {
		if refs[i].Name == r.Name {
			refs[i] = r
			return refs
		}
	}
	return append(refs, r)
}
