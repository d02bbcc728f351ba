package image

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// A FallbackSource serves a blob from more than one place. When the bytes
// of a blob it served prove bad (a chunk that does not authenticate, a
// digest that does not match), OpenBlobAfter notes that the place served
// bad data and opens the same blob from the next place that holds it. The
// chunk reader of a [Repo] and [ReadBlob] use it; a [StackSource]
// implements it.
type FallbackSource interface {
	Source
	// OpenBlobAfter opens the blob bad holds from a place after the one
	// that served bad, which must be a blob this source opened; why says
	// what was wrong with it. It wraps ErrNotFound when no later place
	// holds the blob.
	OpenBlobAfter(ctx context.Context, bad Blob, why error) (Blob, error)
}

var (
	_ FallbackSource = (*StackSource)(nil)
	_ Store          = (*StackStore)(nil)
	_ Stateful       = (*StackStore)(nil)
)

// StackSource reads blobs from an ordered list of places (the local
// cache, a USB key, a disc, mirrors): each blob from the first place that
// has it, and from the next one when a place fails or serves bad data.
// Refs come from the first place. It counts what each place served.
type StackSource struct {
	places []*place

	mu     sync.Mutex
	faults []StackFault
}

type place struct {
	name   string
	src    Source
	blobs  atomic.Int64
	bytes  atomic.Int64
	nanos  atomic.Int64
	faults atomic.Int64
}

// StackStore is a [StackSource] whose first place, the local store, is
// also written: blobs, refs and the lock go there, and only there.
type StackStore struct {
	*StackSource
	local Store
}

// Stack puts local on top of lower: reads fall through from local to each
// lower place in turn, writes go to local. The result is a [*StackStore].
func Stack(local Store, lower ...Source) Store { return NewStack(local, lower...) }

// NewStack is [Stack], returning the concrete type so that callers can ask
// where blobs came from ([StackSource.Served]).
func NewStack(local Store, lower ...Source) *StackStore {
	s := NewStackSource(append([]Source{Named("local", local)}, lower...)...)
	return &StackStore{StackSource: s, local: local}
}

// NewStackSource reads from places in order. A place is named by
// [Named], else by its String method, else by its position ("place 2").
func NewStackSource(places ...Source) *StackSource {
	s := &StackSource{}
	for i, src := range places {
		p := &place{src: src, name: "place " + strconv.Itoa(i+1)}
		if n, ok := src.(*namedSource); ok {
			p.name, p.src = n.name, n.Source
		} else if st, ok := src.(fmt.Stringer); ok {
			p.name = st.String()
		}
		s.places = append(s.places, p)
	}
	return s
}

// Named names src in the report of a stack: "usb", "dvd", a mirror's URL.
// The name is only read by [NewStackSource] and [NewStack]; anywhere else
// the result is src under another name.
func Named(name string, src Source) Source { return &namedSource{Source: src, name: name} }

type namedSource struct {
	Source
	name string
}

func (n *namedSource) String() string { return n.name }

// Places names the places, in the order they are read.
func (s *StackSource) Places() []string {
	out := make([]string, len(s.places))
	for i, p := range s.places {
		out[i] = p.name
	}
	return out
}

// Refs implements [Source]: the first place's refs.
func (s *StackSource) Refs(ctx context.Context) ([]Ref, error) {
	if len(s.places) == 0 {
		return nil, nil
	}
	return s.places[0].src.Refs(ctx)
}

// StatBlob implements [Source]: the size the first place that has the
// blob gives.
func (s *StackSource) StatBlob(ctx context.Context, d Digest) (int64, error) {
	_, n, err := s.Where(ctx, d)
	return n, err
}

// Where names the first place that has blob d, and its size there. A place
// that fails is skipped, as by [StackSource.OpenBlob].
func (s *StackSource) Where(ctx context.Context, d Digest) (string, int64, error) {
	var errs []error
	for _, p := range s.places {
		n, err := p.src.StatBlob(ctx, d)
		if err == nil {
			return p.name, n, nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return "", 0, cerr
		}
		if !errors.Is(err, ErrNotFound) {
			errs = append(errs, fmt.Errorf("%s: %w", p.name, err))
		}
	}
	return "", 0, s.noPlace("stat", d, errs)
}

// OpenBlob implements [Source]: the blob from the first place that has
// it. ErrNotFound from a place falls through to the next, and so does any
// other failure, which is noted in [StackSource.Faults]. When no place
// serves it, the error wraps ErrNotFound only if every place said it does
// not hold the blob; otherwise it names each place's failure.
func (s *StackSource) OpenBlob(ctx context.Context, d Digest) (Blob, error) {
	return s.openFrom(ctx, d, 0)
}

// OpenBlobAfter implements [FallbackSource].
func (s *StackSource) OpenBlobAfter(ctx context.Context, bad Blob, why error) (Blob, error) {
	sb, ok := bad.(*stackBlob)
	if !ok || sb.s != s {
		return nil, errors.New("open blob after a bad one: the blob was not opened through this stack")
	}
	s.fault(sb.place, StackFault{Blob: sb.d, Err: why, Damaged: true})
	return s.openFrom(ctx, sb.d, sb.place+1)
}

func (s *StackSource) openFrom(ctx context.Context, d Digest, start int) (Blob, error) {
	var errs []error
	for i := start; i < len(s.places); i++ {
		p := s.places[i]
		t := time.Now()
		b, err := p.src.OpenBlob(ctx, d)
		p.nanos.Add(int64(time.Since(t)))
		if err == nil {
			p.blobs.Add(1)
			return &stackBlob{Blob: b, s: s, place: i, d: d}, nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		if !errors.Is(err, ErrNotFound) {
			s.fault(i, StackFault{Blob: d, Err: err})
			errs = append(errs, fmt.Errorf("%s: %w", p.name, err))
		}
	}
	return nil, s.noPlace("open", d, errs)
}

func (s *StackSource) noPlace(op string, d Digest, errs []error) error {
	if len(errs) == 0 {
		return fmt.Errorf("%s blob %s: in none of %d places: %w", op, d, len(s.places), ErrNotFound)
	}
	return fmt.Errorf("%s blob %s: no place serves it: %w", op, d, errors.Join(errs...))
}

func (s *StackSource) fault(i int, f StackFault) {
	f.Place = s.places[i].name
	s.places[i].faults.Add(1)
	s.mu.Lock()
	s.faults = append(s.faults, f)
	s.mu.Unlock()
}

// PlaceUse is what one place of a stack served.
type PlaceUse struct {
	Name  string
	Blobs int           // blobs opened there
	Bytes int64         // bytes read from them
	Time  time.Duration // spent opening and reading them
	// Faults counts the times the place failed or served bad data (see
	// [StackSource.Faults]).
	Faults int
}

// Served reports, per place in order, what it served so far.
func (s *StackSource) Served() []PlaceUse {
	out := make([]PlaceUse, len(s.places))
	for i, p := range s.places {
		out[i] = PlaceUse{Name: p.name, Blobs: int(p.blobs.Load()), Bytes: p.bytes.Load(),
			Time: time.Duration(p.nanos.Load()), Faults: int(p.faults.Load())}
	}
	return out
}

// StackFault is one failure of a place of a stack: it could not open a
// blob (a disc read error, a mirror down), or it served bad data.
type StackFault struct {
	Place string
	Blob  Digest
	Err   error
	// Damaged is true when the place served the blob but its bytes were
	// bad: a chunk that failed to authenticate, a digest mismatch.
	Damaged bool
}

func (f StackFault) Error() string {
	if f.Damaged {
		return fmt.Sprintf("%s served damaged data of blob %s: %v", f.Place, f.Blob, f.Err)
	}
	return fmt.Sprintf("%s: %v", f.Place, f.Err)
}

func (f StackFault) Unwrap() error { return f.Err }

// Faults lists the failures of places so far, in the order they happened.
func (s *StackSource) Faults() []StackFault {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]StackFault(nil), s.faults...)
}

// BlobPlace names the place of a stack that served b, or "" when b was not
// opened through a stack.
func BlobPlace(b Blob) string {
	if sb, ok := b.(*stackBlob); ok {
		return sb.s.places[sb.place].name
	}
	return ""
}

// stackBlob is a blob opened through a stack: it knows its place and
// counts the bytes read.
type stackBlob struct {
	Blob
	s     *StackSource
	place int
	d     Digest
}

func (b *stackBlob) ReadAt(p []byte, off int64) (int, error) {
	pl := b.s.places[b.place]
	t := time.Now()
	n, err := b.Blob.ReadAt(p, off)
	pl.nanos.Add(int64(time.Since(t)))
	pl.bytes.Add(int64(n))
	return n, err
}

// Local returns the store that is written.
func (s *StackStore) Local() Store { return s.local }

// CreateBlob implements [Store]: the blob goes to the local store.
func (s *StackStore) CreateBlob(ctx context.Context) (BlobWriter, error) {
	return s.local.CreateBlob(ctx)
}

// UpdateRefs implements [Store] on the local store.
func (s *StackStore) UpdateRefs(ctx context.Context, fn func([]Ref) ([]Ref, error)) error {
	return s.local.UpdateRefs(ctx, fn)
}

// Lock implements [Store]: the local store's lock.
func (s *StackStore) Lock(ctx context.Context) (func(), error) { return s.local.Lock(ctx) }

// Root is the local store's directory, or "" when it has none: snapshots
// leave it out.
func (s *StackStore) Root() string {
	if r, ok := s.local.(interface{ Root() string }); ok {
		return r.Root()
	}
	return ""
}

// LoadState implements [Stateful]: the local store's trust state, or an
// empty one when it keeps none.
func (s *StackStore) LoadState() (*State, error) {
	if sf, ok := s.local.(Stateful); ok {
		return sf.LoadState()
	}
	return newState(), nil
}

// UpdateState implements [Stateful] on the local store; a local store
// that keeps no trust state keeps none through the stack either.
func (s *StackStore) UpdateState(storeID string, fn func(*State) error) error {
	if sf, ok := s.local.(Stateful); ok {
		return sf.UpdateState(storeID, fn)
	}
	st := newState()
	st.StoreID = storeID
	return fn(st)
}
