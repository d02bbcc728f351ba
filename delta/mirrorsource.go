package delta

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/dvpc/dvpc/image"
)

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

// MirrorOptions rank the places a [MirrorSource] reads from, in the order
// they are given.
type MirrorOptions struct {
	// Health ranks them: a lower rank is asked first for every blob (say 0
	// for media, 1 for healthy mirrors, 2 for one that failed last time).
	// A place that fails in this session, other than by lacking a blob,
	// drops one rank. Nil ranks them all alike.
	Health []int
	// Speed is each place's throughput in bytes/s measured before (by an
	// earlier pull or push), 0 when unknown. Within a rank, the place that
	// would deliver a blob first is asked first.
	Speed []float64
}

// MirrorSource reads from several places at once, mirrors and media, as
// one [image.Source]: the failover [PullFrom] reads through. Its refs are
// every place's tags, the first place's entry winning for each name; each
// blob comes from the best-ranked place that would deliver it first (its
// answer time, what it is already sending and the blob at its measured
// throughput), and the next one is asked when it fails. Every blob is
// checked against its digest by the place that serves it. Report and
// Failures say what each place did.
type MirrorSource struct {
	fo       *failover
	states   []*mirrorState // one per place, in the order given
	byMirror []mirrorRefs   // every reachable place's own tags, in the order given
}

var _ image.Source = (*MirrorSource)(nil)

// NewMirrorSource lists every place's tags at once, timing each answer. A
// place that does not answer is left out, and named in Failures; when none
// answers, NewMirrorSource fails.
func NewMirrorSource(ctx context.Context, places []Endpoint, opts MirrorOptions) (*MirrorSource, error) {
	ms, err := openMirrors(ctx, places, opts)
	if err != nil {
		return nil, err
	}
	return ms, nil
}

// openMirrors is [NewMirrorSource], returning the source even when no
// place answers, so that its report says why.
func openMirrors(ctx context.Context, places []Endpoint, opts MirrorOptions) (*MirrorSource, error) {
	ms := &MirrorSource{fo: &failover{}, states: make([]*mirrorState, len(places))}
	lists := make([][]image.Ref, len(places))
	listErrs := make([]error, len(places))
	var wg sync.WaitGroup
	for i, p := range places {
		st := newMirrorState(i, p, opts)
		ms.states[i] = st
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			lists[i], listErrs[i] = p.Refs(ctx)
			st.use.Latency = time.Since(start)
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, st := range ms.states {
		if listErrs[i] != nil {
			ms.fo.fail(st, image.Digest{}, listErrs[i])
			continue
		}
		st.use.Reachable = true
		ms.fo.mirrors = append(ms.fo.mirrors, st)
		ms.byMirror = append(ms.byMirror, mirrorRefs{st, lists[i]})
		for _, r := range lists[i] {
			if !seen[r.Name] {
				seen[r.Name] = true
				ms.fo.refs = append(ms.fo.refs, r)
			}
		}
	}
	if len(ms.fo.mirrors) == 0 {
		return ms, fmt.Errorf("no mirror answers: %w", errors.Join(listErrs...))
	}
	return ms, nil
}

// newMirrorState is what is known of place i before it is asked anything.
func newMirrorState(i int, ep Endpoint, opts MirrorOptions) *mirrorState {
	st := &mirrorState{ep: ep, use: MirrorUse{Mirror: ep.String()}}
	if i < len(opts.Health) {
		st.rank = opts.Health[i]
	}
	if i < len(opts.Speed) {
		st.prior = opts.Speed[i]
	}
	return st
}

// Refs returns every place's tags; of a name several places hold, the
// first place's entry.
func (m *MirrorSource) Refs(ctx context.Context) ([]image.Ref, error) { return m.fo.Refs(ctx) }

// OpenBlob asks the places in turn, best first, for a blob checked against d.
func (m *MirrorSource) OpenBlob(ctx context.Context, d image.Digest) (image.Blob, error) {
	return m.fo.OpenBlob(ctx, d)
}

// StatBlob asks the places in turn, best first, for d's size.
func (m *MirrorSource) StatBlob(ctx context.Context, d image.Digest) (int64, error) {
	return m.fo.StatBlob(ctx, d)
}

// Report says what each place did so far, one entry per place in the
// order given.
func (m *MirrorSource) Report() []MirrorUse {
	m.fo.mu.Lock()
	defer m.fo.mu.Unlock()
	out := make([]MirrorUse, 0, len(m.states))
	for _, st := range m.states {
		u := st.use
		if st.rateSecs > 0 {
			u.Rate = st.rateBytes / st.rateSecs
		}
		out = append(out, u)
	}
	return out
}

// Failures lists what the places could not serve so far, including what
// another place made up for.
func (m *MirrorSource) Failures() []MirrorFailure {
	m.fo.mu.Lock()
	defer m.fo.mu.Unlock()
	return slices.Clone(m.fo.failures)
}

// ranked returns the reachable places' tags, best rank first, in the order
// given within a rank: the place a snapshot's manifests are read from first
// is the cheapest that names it.
func (m *MirrorSource) ranked() []mirrorRefs {
	out := slices.Clone(m.byMirror)
	slices.SortStableFunc(out, func(a, b mirrorRefs) int { return cmp.Compare(a.st.rank, b.st.rank) })
	return out
}
