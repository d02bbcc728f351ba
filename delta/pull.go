package delta

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/dvpc/dvpc/image"
)

// ErrRollback means a mirror offered a snapshot below [PullOptions.MinSeq].
var ErrRollback = errors.New("snapshot sequence is lower than the minimum accepted: possible rollback")

// PullOptions tune [Pull].
type PullOptions struct {
	// MinSeq refuses snapshots whose signed sequence number is lower, so a
	// mirror cannot roll the store back to an older state by calling an old
	// snapshot its latest. With [WantLatest], the pull stops at the first
	// such snapshot.
	MinSeq uint64
	// Health ranks the mirrors, in the order given: a lower rank is asked
	// first (say 0 healthy, 1 failed last time, 2 served bad data). Nil
	// ranks them all alike.
	Health []int
	// Speed is each mirror's throughput in bytes/s measured before (by an
	// earlier pull or push), 0 when unknown. Within a rank, the fastest
	// mirror is asked first.
	Speed []float64
	// Want picks the snapshots: "" or [WantAll] every one the store lacks,
	// [WantLatest] every one of each home newer than the store's heads (of
	// a home the store lacks, its heads), or one snapshot by tag, ID or
	// manifest digest prefix. Only a snapshot named is brought back once
	// forgotten.
	Want string
	// Progress, when set, counts the blobs the pull needs and their bytes,
	// as fetched (BytesNew) or found in the store.
	Progress *image.Progress
	// Heal also fetches again every blob of the snapshots the store
	// already holds that is missing from it or damaged.
	Heal bool
	// Key is the key to trust when the store has none yet: one the caller
	// unlocked with the person's passphrase or matched to a signer
	// fingerprint, among [KeyCandidates]. A store without a key and a pull
	// without one is refused ([ErrKeyNotSettled]): the first key blob a
	// mirror offers is never trusted.
	Key *image.KeyFile
	// Lower are places the caller reads the store through besides dst,
	// such as the attached media under an image.Stack. A pack (a layer of
	// a snapshot manifest of type [image.PackType]) that a Lower place
	// holds at its size is not copied into dst, and is counted in
	// [PullReport.BlobsOnLower]. Everything else (manifests, configs,
	// index blobs, signatures, the key) is always copied, so that dst
	// names the snapshots and reads their history; trees are chunks of
	// packs, read through the stack. A Lower place is only asked for
	// sizes here: to have the metadata it holds read from it rather than
	// from a network mirror, give it among the places too, ranked first.
	Lower []image.Source
	// Home, when not zero, takes only snapshots of this home ID: with
	// [WantLatest], of a home dst lacks its heads, else every one newer
	// than dst's heads of it.
	Home image.HomeID
}

// ErrKeyNotSettled means a pull into a store without a key was not told
// which key to trust.
var ErrKeyNotSettled = errors.New("the store has no key yet, and none was settled: unlock or name the signer first")

// ErrForeignKey means a source's key blob is not the store's: it names
// another store or another signing key. Such a blob is never trusted as a
// source of keys; the source's other blobs may still serve a pull.
var ErrForeignKey = errors.New("the key blob is not this store's")

// Values of [PullOptions.Want].
const (
	WantAll    = "all"
	WantLatest = "latest"
)

// selectSnapshots returns the snapshot tags among refs that want names, in
// the order to try them: for [WantLatest], newest first.
func selectSnapshots(refs []image.Ref, want string) ([]string, error) {
	var names []string
	manifests := map[v1.Hash]bool{} // of the names a named want matches
	for _, r := range refs {
		if !image.IsSnapshotRef(r.Name) {
			continue
		}
		switch want {
		case "", WantAll, WantLatest:
			names = append(names, r.Name)
		default:
			if md, err := image.DigestFromHash(r.Desc.Digest); err == nil && image.MatchesSnapshot(r.Name, md, want) {
				names = append(names, r.Name)
				manifests[r.Desc.Digest] = true
			}
		}
	}
	// The order only decides which is verified first: what is taken is
	// decided on what is signed.
	slices.SortFunc(names, compareSnapshotRefs)
	if want == WantLatest {
		slices.Reverse(names)
	}
	switch {
	case len(names) == 0 && want != "" && want != WantAll && want != WantLatest:
		return nil, fmt.Errorf("no mirror holds snapshot %q: %w", want, image.ErrNoSnapshot)
	case len(manifests) > 1:
		// Several names of one manifest are not ambiguous: verifying
		// them keeps the one its signed manifest makes.
		return nil, fmt.Errorf("snapshot %q is ambiguous (%s); give more digits: %w", want, strings.Join(names, ", "), image.ErrNoSnapshot)
	}
	return names, nil
}

// PullReport says what a pull copied and what went wrong on the way.
type PullReport struct {
	Snapshots     []string // snapshot tags newly named in the store
	KeysAdded     bool
	BlobsFetched  int
	BytesFetched  int64
	BlobsPresent  int // already in the store, intact
	BlobsReplaced int // of snapshots already held: missing or damaged, fetched again
	BlobsOnLower  int // packs a Lower place holds: not copied ([PullOptions.Lower])
	BytesOnLower  int64
	Refused       []image.SnapshotProblem // bad signature, wrong store, rollback
	Failures      []MirrorFailure         // per mirror, including ones another mirror made up for
	ManifestsRead int
	Mirrors       []MirrorUse // one per mirror, in the order given
	// Behind names the mirrors whose newest snapshot is older than the
	// newest the store now holds: the next push catches them up. Media
	// ([SourceEndpoint]) are never behind.
	Behind []string
	// Diverged lists the homes that now have more than one head.
	Diverged []Divergence
	// Unhealed lists the missing or damaged blobs of snapshots already
	// held that no mirror served intact ([PullOptions.Heal]).
	Unhealed []UnrepairedBlob
	// Dropped lists the store's own tags that misnamed a snapshot also
	// named rightly (kept from a mirror by an older dvpc): removed.
	Dropped []string
}

// BadMirrors names the mirrors that served bytes that did not match their
// digest, snapshots whose signature does not verify, tags that misname a
// snapshot, or a key blob that is not the store's.
func (r PullReport) BadMirrors() []string {
	var out []string
	for _, f := range r.Failures {
		var de *image.DigestError
		if (errors.As(f.Err, &de) || errors.Is(f.Err, image.ErrBadSignature) || errors.Is(f.Err, image.ErrTagMismatch) || errors.Is(f.Err, ErrForeignKey)) && !slices.Contains(out, f.Mirror) {
			out = append(out, f.Mirror)
		}
	}
	return out
}

// wantBlob is a blob a pull needs; raw is set for manifests already read.
type wantBlob struct {
	digest image.Digest
	size   int64
	raw    []byte
	pack   bool // a pack of a snapshot: data, not metadata
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

	// The mirrors' tags, all listed at once and timed.
	ms, err := openMirrors(ctx, mirrors, MirrorOptions{Health: opts.Health, Speed: opts.Speed})
	defer func() {
		rep.Failures = ms.Failures()
		rep.Mirrors = ms.Report()
	}()
	if err != nil {
		return rep, err
	}
	return pullThrough(ctx, ms, dst, dstRefs, opts)
}

// PullThrough is [PullFrom] through a [MirrorSource] already opened, which
// the caller may go on reading through afterwards (a login reads the
// blobs it did not copy through it). Its Report and Failures are copied
// into the pull's report.
func PullThrough(ctx context.Context, ms *MirrorSource, dst image.Store, opts PullOptions) (rep PullReport, err error) {
	unlock, err := dst.Lock(ctx)
	if err != nil {
		return rep, err
	}
	defer unlock()
	dstRefs, err := dst.Refs(ctx)
	if err != nil {
		return rep, err
	}
	defer func() {
		rep.Failures = ms.Failures()
		rep.Mirrors = ms.Report()
	}()
	return pullThrough(ctx, ms, dst, dstRefs, opts)
}

// pullThrough is the pull once the store is locked and the mirrors listed.
func pullThrough(ctx context.Context, ms *MirrorSource, dst image.Store, dstRefs []image.Ref, opts PullOptions) (rep PullReport, err error) {
	fo, byMirror := ms.fo, ms.ranked()
	kf, keysRef, want, keysNewer, err := settleKey(ctx, dst, dstRefs, fo, byMirror, opts.Key)
	if err != nil {
		return rep, err
	}

	// Snapshots the store lacks, verified before anything of them is kept;
	// which of them are taken is decided on what is signed alone.
	local, err := readLocalHistory(ctx, dst, dstRefs, kf)
	if err != nil {
		return rep, err
	}
	names, err := selectSnapshots(fo.refs, opts.Want)
	if err != nil {
		return rep, err
	}
	if !opts.Home.IsZero() {
		names = ofHome(ctx, byMirror, names, opts.Home)
	}
	offered, err := offerSnapshots(ctx, fo, byMirror, names, local, kf, opts.MinSeq, &rep)
	if err != nil {
		return rep, err
	}
	if !opts.Home.IsZero() {
		// Decided on the signed manifest.
		offered = slices.DeleteFunc(offered, func(o offer) bool { return o.signed.Home != opts.Home })
	}
	named := opts.Want != "" && opts.Want != WantAll && opts.Want != WantLatest
	var acc []offer
	for _, o := range offered {
		if !named && local.state != nil && local.state.IsForgotten(o.signed.Manifest) {
			continue // forgotten on purpose: not brought back
		}
		acc = append(acc, o)
	}
	if opts.Want == WantLatest {
		acc = local.newer(acc)
	}
	for _, a := range acc {
		want = append(want, a.blobs...)
	}
	rep.Diverged = local.diverged(offered, acc)
	defer func() {
		if err == nil {
			rep.Behind = behind(ms.byMirror, local, offered, acc, opts.Home)
		}
	}()
	var heal []wantBlob
	if opts.Heal {
		if heal, err = heldBlobs(ctx, dst, fo, dstRefs); err != nil {
			return rep, err
		}
	}
	if err := dropMisnamed(ctx, dst, local.misnamed, &rep); err != nil {
		return rep, err
	}
	if len(acc) == 0 && len(heal) == 0 && !keysNewer {
		return rep, nil
	}

	// Blobs the store lacks or holds damaged, each once.
	fetch, err := lacksWanted(ctx, dst, slices.Concat(want, heal), LackOptions{Verify: true})
	if err != nil {
		return rep, err
	}
	wanted := map[image.Digest]bool{}
	for _, b := range want {
		wanted[b.digest] = true
	}
	counted := map[image.Digest]bool{}
	for _, b := range fetch {
		counted[b.digest] = true
	}
	for _, b := range slices.Concat(want, heal) {
		if counted[b.digest] {
			continue
		}
		counted[b.digest] = true
		rep.BlobsPresent++
		if p := opts.Progress; p != nil {
			p.Files.Add(1)
			p.Bytes.Add(b.size)
		}
	}
	if len(opts.Lower) > 0 {
		if fetch, err = onLower(ctx, opts.Lower, fetch, &rep, opts.Progress); err != nil {
			return rep, err
		}
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	for _, b := range fetch {
		held := !wanted[b.digest]
		g.Go(func() error {
			n, _, err := copyBlob(gctx, fo, dst, b)
			if err != nil && held && isSourceError(err) {
				mu.Lock()
				rep.Unhealed = append(rep.Unhealed, UnrepairedBlob{Digest: b.digest, Err: err})
				mu.Unlock()
				return nil // the snapshots pulled are whole without it
			}
			if err != nil {
				return err
			}
			if p := opts.Progress; p != nil {
				p.Files.Add(1)
				p.Bytes.Add(n)
				p.BytesNew.Add(n)
			}
			mu.Lock()
			rep.BlobsFetched++
			rep.BytesFetched += n
			if held {
				rep.BlobsReplaced++
			}
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return rep, err
	}
	if len(acc) == 0 && !keysNewer {
		return rep, nil
	}

	// Name them: the keys if new, each signature before its snapshot.
	err = dst.UpdateRefs(ctx, func(refs []image.Ref) ([]image.Ref, error) {
		if keysRef != nil {
			if _, ok := findRef(refs, image.KeysRef); !ok || keysNewer {
				refs = setRef(refs, *keysRef)
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
	if err := local.record(kf.StoreID, offered, acc, named); err != nil {
		return rep, fmt.Errorf("the snapshots are in the store, but: %w", err)
	}
	return rep, nil
}

// NewestVerified returns the tag of the snapshot with the highest signed
// sequence number among refs, a mirror's, that verifies against kf (""
// if none does), and the problems of the tags that claim a higher one and
// do not verify. A verified tag is the one its signed manifest makes, so
// the first that verifies, in the order of the sequence numbers the tags
// claim, is the newest by what is signed.
func NewestVerified(ctx context.Context, m image.Source, refs []image.Ref, kf *image.KeyFile) (string, []image.SnapshotProblem, error) {
	names, err := selectSnapshots(refs, WantLatest)
	if err != nil {
		return "", nil, err
	}
	var probs []image.SnapshotProblem
	for _, name := range names {
		r, _ := findRef(refs, name)
		md, err := image.DigestFromHash(r.Desc.Digest)
		if err != nil {
			probs = append(probs, image.SnapshotProblem{Ref: name, Err: err})
			continue
		}
		sig, _ := image.SignatureRefFor(refs, r)
		v, err := image.VerifySnapshot(ctx, m, kf, r, sig)
		if err != nil {
			if ctx.Err() != nil {
				return "", probs, ctx.Err()
			}
			probs = append(probs, image.SnapshotProblem{Ref: name, Manifest: md, Err: err})
			continue
		}
		return v.Signed.Ref(), probs, nil
	}
	return "", probs, nil
}

// verifiedBlobs lists the blobs a verified snapshot needs: its manifest
// and signature manifest (at hand), their configs and layers.
func verifiedBlobs(v *image.VerifiedSnapshot) []wantBlob {
	out := blobsOf(v.Signed.Manifest, v.Raw, v.Manifest)
	sd, _ := image.DigestFromHash(v.SigDesc.Digest)
	return append(out, blobsOf(sd, v.SigRaw, v.SigManifest)...)
}

// blobsOf lists a manifest read and checked as raw, with its config and
// layers; descriptors whose digest does not parse are left out (the
// manifest's reader refused them already).
func blobsOf(md image.Digest, raw []byte, m *v1.Manifest) []wantBlob {
	out := []wantBlob{{digest: md, size: int64(len(raw)), raw: raw}}
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		if dg, err := image.DigestFromHash(d.Digest); err == nil {
			out = append(out, wantBlob{digest: dg, size: d.Size, pack: isPack(m, d)})
		}
	}
	return out
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
		out = append(out, wantBlob{digest: dg, size: d.Size, pack: isPack(&m, d)})
	}
	return out, &m, raw, nil
}

// ofHome keeps the snapshot tags that some place's manifest under that
// tag places in home, or whose manifest does not read (verifying it will
// say why). The manifests are at hand: a registry kept them when it
// listed its tags. Only the signed manifest decides: what is kept here is
// verified before it is taken.
func ofHome(ctx context.Context, byMirror []mirrorRefs, names []string, home image.HomeID) []string {
	var out []string
	for _, name := range names {
		for _, mr := range byMirror {
			r, ok := findRef(mr.refs, name)
			if !ok {
				continue
			}
			h, ok := manifestHome(ctx, mr.st.ep, r.Desc)
			if !ok || h == home.String() {
				out = append(out, name)
				break
			}
		}
	}
	return out
}

// manifestHome reads the home ID annotation of the manifest desc names;
// ok is false when the manifest does not read.
func manifestHome(ctx context.Context, src image.Source, desc v1.Descriptor) (string, bool) {
	md, err := image.DigestFromHash(desc.Digest)
	if err != nil {
		return "", false
	}
	raw, err := image.ReadBlob(ctx, src, md, desc.Size)
	if err != nil {
		return "", false
	}
	var m v1.Manifest
	if json.Unmarshal(raw, &m) != nil {
		return "", false
	}
	return m.Annotations[image.AnnotationHome], true
}

// isPack reports whether d is a pack layer of m, a snapshot manifest.
func isPack(m *v1.Manifest, d v1.Descriptor) bool {
	return m.ArtifactType == image.SnapshotArtifactType && string(d.MediaType) == image.PackType &&
		slices.ContainsFunc(m.Layers, func(l v1.Descriptor) bool { return l.Digest == d.Digest })
}

// onLower moves out of fetch the packs a Lower place holds at their size,
// and counts them.
func onLower(ctx context.Context, lower []image.Source, fetch []wantBlob, rep *PullReport, p *image.Progress) ([]wantBlob, error) {
	var packs, out []wantBlob
	for _, b := range fetch {
		if b.pack {
			packs = append(packs, b)
		} else {
			out = append(out, b)
		}
	}
	left := packs
	for _, l := range lower {
		if len(left) == 0 {
			break
		}
		var err error
		if left, err = lacksWanted(ctx, l, left, LackOptions{}); err != nil {
			return nil, err
		}
	}
	lacking := map[image.Digest]bool{}
	for _, b := range left {
		lacking[b.digest] = true
	}
	for _, b := range packs {
		if lacking[b.digest] {
			continue
		}
		rep.BlobsOnLower++
		rep.BytesOnLower += b.size
		if p != nil {
			p.Files.Add(1)
			p.Bytes.Add(b.size)
		}
	}
	return append(out, left...), nil
}

// copyBlob writes one blob into dst from the first mirror that serves it
// intact, or from raw when the bytes are already at hand and verified, and
// names the mirror ("" for raw). A damaged copy in dst is replaced.
func copyBlob(ctx context.Context, fo *failover, dst image.Store, b wantBlob) (int64, string, error) {
	if b.raw != nil {
		n, err := writeBlob(ctx, dst, b, bytes.NewReader(b.raw))
		return n, "", err
	}
	var errs []error
	ms, release := fo.order(b.size)
	defer release()
	for _, m := range ms {
		start := time.Now()
		n, err := fetchInto(ctx, m.ep, dst, b.digest, b.size)
		if err != nil {
			if ctx.Err() != nil {
				return 0, "", ctx.Err()
			}
			var se *storeError
			if errors.As(err, &se) {
				return 0, "", se.err // the store failed, not the mirror
			}
			fo.fail(m, b.digest, err)
			errs = append(errs, err)
			continue
		}
		// Timed to the blob's arrival in the store: a local mirror's
		// blob is read only as it is written.
		fo.served(m, n, time.Since(start))
		return n, m.ep.String(), nil
	}
	return 0, "", &noSourceError{digest: b.digest, errs: errs}
}

// blobFetcher is a source that streams a blob of a declared size into a
// writer, never writing more than that size: a [Registry].
type blobFetcher interface {
	FetchBlob(ctx context.Context, d image.Digest, size int64, w io.Writer) (int64, error)
}

var _ blobFetcher = (*Registry)(nil)

// storeError is a failure of the store written to, not of the source.
type storeError struct{ err error }

func (e *storeError) Error() string { return e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

// storeWriter remembers the store's write error, to tell it apart from
// the source's.
type storeWriter struct {
	w   io.Writer
	err error
}

func (w *storeWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}

// fetchInto copies blob d, of the declared size, from src into dst. The
// bytes go straight into dst's own temporary area (its CreateBlob), never
// more than size of them, and are committed only when they match d: a
// source that sends more, less or other bytes is refused and what it sent
// is dropped. Failures of dst are returned as a *storeError.
func fetchInto(ctx context.Context, src image.Source, dst image.Store, d image.Digest, size int64) (int64, error) {
	w, err := dst.CreateBlob(ctx)
	if err != nil {
		return 0, &storeError{err}
	}
	sw := &storeWriter{w: w}
	if f, ok := src.(blobFetcher); ok {
		_, err = f.FetchBlob(ctx, d, size, sw)
	} else {
		err = copySized(ctx, src, d, size, sw)
	}
	if err != nil {
		w.Abort()
		if sw.err != nil {
			return 0, &storeError{sw.err}
		}
		return 0, err
	}
	got, n, err := w.Commit(ctx)
	if err != nil {
		return 0, &storeError{err}
	}
	if got != d || n != size {
		return 0, &image.DigestError{Want: d, Got: got, WantSize: size, GotSize: n}
	}
	return n, nil
}

// copySized copies blob d from src into w when it has the declared size
// and its bytes match d; w gets at most size bytes.
func copySized(ctx context.Context, src image.Source, d image.Digest, size int64, w io.Writer) error {
	blob, err := src.OpenBlob(ctx, d)
	if err != nil {
		return err
	}
	defer blob.Close()
	if blob.Size() != size {
		return &image.DigestError{Want: d, WantSize: size, GotSize: blob.Size()}
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(w, h), io.NewSectionReader(blob, 0, size)); err != nil {
		return fmt.Errorf("read blob %s: %w", d, err)
	}
	var got image.Digest
	h.Sum(got[:0])
	if got != d {
		return &image.DigestError{Want: d, Got: got, WantSize: size, GotSize: size}
	}
	return nil
}

// noSourceError means no mirror served a blob intact; errs says what each
// answered.
type noSourceError struct {
	digest image.Digest
	errs   []error
}

func (e *noSourceError) Error() string {
	return fmt.Sprintf("blob %s: no mirror serves it intact: %v", e.digest, errors.Join(e.errs...))
}

func (e *noSourceError) Unwrap() []error { return e.errs }

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

// compareSnapshotRefs orders snapshot tags by the sequence number they
// claim, then by name; tags not of the snapshot form come first.
func compareSnapshotRefs(a, b string) int {
	sa, _, oka := image.ParseSnapshotRef(a)
	sb, _, okb := image.ParseSnapshotRef(b)
	switch {
	case oka != okb:
		if oka {
			return 1
		}
		return -1
	case sa != sb:
		return cmp.Compare(sa, sb)
	}
	return strings.Compare(a, b)
}
