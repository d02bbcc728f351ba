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
	"math"
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

// MirrorUse is what one mirror did in a pull.
type MirrorUse struct {
	Mirror    string
	Reachable bool
	Latency   time.Duration // answer time: listing its tags, then small blobs
	Newest    string        // its newest snapshot by signed seq that this pull verified or the store holds, as a rebuilt tag
	Blobs     int           // blobs it served
	Bytes     int64
	Sampled   int // blobs of at least rateSampleMin bytes among them
	// Rate is its throughput in bytes/s measured on the blobs of at least
	// rateSampleMin bytes it served, 0 if none.
	Rate float64
}

// rateSampleMin is the smallest blob whose transfer time measures a
// mirror's throughput rather than its answer time.
const rateSampleMin = 64 << 10

// assumedRate is the throughput taken for a mirror not measured yet: such
// a mirror is tried before one known to be slower.
const assumedRate = 64 << 20

// PullReport says what a pull copied and what went wrong on the way.
type PullReport struct {
	Snapshots     []string // snapshot tags newly named in the store
	KeysAdded     bool
	BlobsFetched  int
	BytesFetched  int64
	BlobsPresent  int                     // already in the store, intact
	BlobsReplaced int                     // of snapshots already held: missing or damaged, fetched again
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

// mirrorState is what a pull knows of one mirror.
type mirrorState struct {
	ep      Endpoint
	rank    int
	strikes int // failures other than a missing blob in this pull
	use     MirrorUse
	prior   float64 // bytes/s from before
	// rateBytes over rateSecs is the throughput measured on large blobs,
	// each blob's time counted whole even when transfers overlap.
	rateBytes, rateSecs float64
	inflight            int64 // bytes of the transfers it was picked for
}

// rate is the mirror's throughput in bytes/s as this pull measured it,
// with the figure known from before counted as one sample of 1 MiB; 0 when
// neither is known.
func (m *mirrorState) rate() float64 {
	bytes, secs := m.rateBytes, m.rateSecs
	if m.prior > 0 {
		bytes += 1 << 20
		secs += (1 << 20) / m.prior
	}
	if bytes <= 0 || secs <= 0 {
		return 0
	}
	return bytes / secs
}

// failover reads from several mirrors: each blob from the best-ranked,
// fastest one that serves it intact.
type failover struct {
	refs []image.Ref

	mu       sync.Mutex
	mirrors  []*mirrorState // reachable ones
	failures []MirrorFailure
}

var _ image.Source = (*failover)(nil)

func (f *failover) fail(m *mirrorState, d image.Digest, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures = append(f.failures, MirrorFailure{Mirror: m.ep.String(), Digest: d, Err: err})
	if !errors.Is(err, image.ErrNotFound) {
		m.strikes++
	}
}

// served records a transfer of n bytes that took d.
func (f *failover) served(m *mirrorState, n int64, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m.use.Blobs++
	m.use.Bytes += n
	if n >= rateSampleMin && d > 0 {
		m.use.Sampled++
		m.rateBytes += float64(n)
		m.rateSecs += d.Seconds()
	} else {
		// A small blob's time is the mirror's answer time.
		m.use.Latency = (m.use.Latency + d) / 2
	}
}

// order lists the mirrors to ask for a blob of size bytes (0 if not
// known): by rank (a mirror that failed in this pull drops one), then by
// the time each would take: its answer time plus what it is already
// sending and the blob, at its rate. A mirror whose rate is not known yet
// is taken to be as fast as the fastest known one, and at least
// assumedRate, so that it is tried before mirrors known to be slower, but
// with one blob at a time until that blob has measured it. The first
// mirror is counted as sending the blob until release is called, so that
// transfers started together spread over the mirrors.
func (f *failover) order(size int64) (ms []*mirrorState, release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	type key struct {
		rank int
		cost float64 // seconds
	}
	best := float64(assumedRate)
	for _, m := range f.mirrors {
		best = max(best, m.rate())
	}
	keys := make(map[*mirrorState]key, len(f.mirrors))
	for _, m := range f.mirrors {
		k := key{rank: m.rank, cost: m.use.Latency.Seconds()}
		if m.strikes > 0 {
			k.rank++
		}
		r := m.rate()
		switch {
		case r > 0:
			k.cost += float64(m.inflight+size) / r
		case m.inflight > 0:
			// Not measured yet and already sending a blob: the one
			// transfer measures it before it is sent more.
			k.cost = math.Inf(1)
		default:
			k.cost += float64(size) / best
		}
		keys[m] = k
	}
	out := slices.Clone(f.mirrors)
	slices.SortStableFunc(out, func(a, b *mirrorState) int {
		ka, kb := keys[a], keys[b]
		if ka.rank != kb.rank {
			return ka.rank - kb.rank
		}
		return cmp.Compare(ka.cost, kb.cost)
	})
	if len(out) == 0 || size <= 0 {
		return out, func() {}
	}
	first := out[0]
	first.inflight += size
	var once sync.Once
	return out, func() {
		once.Do(func() {
			f.mu.Lock()
			first.inflight -= size
			f.mu.Unlock()
		})
	}
}

func (f *failover) Refs(ctx context.Context) ([]image.Ref, error) { return f.refs, nil }

// OpenBlob tries each mirror in turn; [Registry.OpenBlob] has checked the
// bytes against d.
func (f *failover) OpenBlob(ctx context.Context, d image.Digest) (image.Blob, error) {
	var errs []error
	ms, _ := f.order(0)
	for _, m := range ms {
		start := time.Now()
		b, err := m.ep.OpenBlob(ctx, d)
		if err == nil {
			f.served(m, b.Size(), time.Since(start))
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
	ms, _ := f.order(0)
	for _, m := range ms {
		n, err := m.ep.StatBlob(ctx, d)
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

	// The mirrors' tags, all listed at once and timed; the first mirror's
	// entry wins for each name.
	fo := &failover{}
	states := make([]*mirrorState, len(mirrors))
	lists := make([][]image.Ref, len(mirrors))
	listErrs := make([]error, len(mirrors))
	var wg sync.WaitGroup
	for i, m := range mirrors {
		st := &mirrorState{ep: m, use: MirrorUse{Mirror: m.String()}}
		if i < len(opts.Health) {
			st.rank = opts.Health[i]
		}
		if i < len(opts.Speed) {
			st.prior = opts.Speed[i]
		}
		states[i] = st
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			lists[i], listErrs[i] = m.Refs(ctx)
			st.use.Latency = time.Since(start)
		}()
	}
	wg.Wait()
	var byMirror []mirrorRefs // every reachable mirror's own tags, in mirror order
	seen := map[string]bool{}
	for i, st := range states {
		if listErrs[i] != nil {
			fo.fail(st, image.Digest{}, listErrs[i])
			continue
		}
		st.use.Reachable = true
		fo.mirrors = append(fo.mirrors, st)
		byMirror = append(byMirror, mirrorRefs{st, lists[i]})
		for _, r := range lists[i] {
			if !seen[r.Name] {
				seen[r.Name] = true
				fo.refs = append(fo.refs, r)
			}
		}
	}
	defer func() {
		rep.Failures = fo.failures
		for _, st := range states {
			u := st.use
			if st.rateSecs > 0 {
				u.Rate = st.rateBytes / st.rateSecs
			}
			rep.Mirrors = append(rep.Mirrors, u)
		}
	}()
	if len(fo.mirrors) == 0 {
		return rep, fmt.Errorf("no mirror answers: %w", errors.Join(listErrs...))
	}

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
	offered, err := offerSnapshots(ctx, fo, byMirror, names, local, kf, opts.MinSeq, &rep)
	if err != nil {
		return rep, err
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
			rep.Behind = behind(byMirror, local, offered, acc)
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
	var mu sync.Mutex
	done := map[image.Digest]bool{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	for i, b := range append(want, heal...) {
		if done[b.digest] {
			continue
		}
		done[b.digest] = true
		held := i >= len(want)
		g.Go(func() error {
			if haveBlob(gctx, dst, b) {
				mu.Lock()
				rep.BlobsPresent++
				mu.Unlock()
				if p := opts.Progress; p != nil {
					p.Files.Add(1)
					p.Bytes.Add(b.size)
				}
				return nil
			}
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
			out = append(out, wantBlob{digest: dg, size: d.Size})
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
		out = append(out, wantBlob{digest: dg, size: d.Size})
	}
	return out, &m, raw, nil
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
