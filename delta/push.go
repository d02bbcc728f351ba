package delta

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/dvpc/dvpc/image"
)

// concurrency bounds the transfers in flight to one registry.
const concurrency = 4

// PushOptions tune [Push].
type PushOptions struct {
	// MountFrom names another repository (path only) on the same registry
	// whose blobs may be mounted instead of uploaded.
	MountFrom string
	// Progress, when set, counts the blobs and bytes sent or found in place.
	Progress *image.Progress
}

// PushReport counts what a push sent.
type PushReport struct {
	BlobsUploaded int
	BytesUploaded int64
	BlobsMounted  int
	BlobsSkipped  int // already on the mirror
	BytesSkipped  int64
	Manifests     int // tags written
	TagsSkipped   int // already naming the same manifest
	// Refused counts the store's snapshots that were not sent because
	// they do not verify against its key or their tag misnames them.
	Refused int
}

// pushRefs picks the refs a mirror carries: the keys, and each snapshot
// that verifies against the store's key with its signature, both named by
// tags rebuilt from the verified manifest. A snapshot that does not verify,
// or whose tag is not the one its manifest makes, is never sent: it is
// returned as refused.
func pushRefs(ctx context.Context, src image.Source, refs []image.Ref) (main, sigs []image.Ref, refused []image.SnapshotProblem, err error) {
	k, ok := findRef(refs, image.KeysRef)
	if !ok {
		return nil, nil, nil, fmt.Errorf("source has no %q tag: %w", image.KeysRef, image.ErrNotFound)
	}
	kf, err := image.ReadKeyFileAt(ctx, src, k.Desc)
	if err != nil {
		return nil, nil, nil, err
	}
	main = append(main, k)
	for _, r := range refs {
		if !image.IsSnapshotRef(r.Name) {
			continue
		}
		sig, _ := image.SignatureRefFor(refs, r)
		v, err := image.VerifySnapshot(ctx, src, kf, r, sig)
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil, nil, ctx.Err()
			}
			d, _ := image.DigestFromHash(r.Desc.Digest)
			refused = append(refused, image.SnapshotProblem{Ref: r.Name, Manifest: d, Err: err})
			continue
		}
		main = append(main, v.Ref())
		sigs = append(sigs, v.SigRef())
	}
	return main, sigs, refused, nil
}

// Push sends dst what it lacks of src's keys, verified snapshots and their
// signatures ([pushRefs]). Blobs go first, then the manifests with their tags, then the
// signatures, so the mirror never names a manifest whose blobs are not all
// there. Blobs and tags already on the mirror are not sent again.
func Push(ctx context.Context, src image.Source, dst *Registry, opts PushOptions) (PushReport, error) {
	var rep PushReport
	srcRefs, err := src.Refs(ctx)
	if err != nil {
		return rep, err
	}
	main, sigs, refused, err := pushRefs(ctx, src, srcRefs)
	if err != nil {
		return rep, err
	}
	rep.Refused = len(refused)
	dstRefs, err := dst.Refs(ctx)
	if err != nil {
		return rep, err
	}
	have := map[string]string{}
	for _, r := range dstRefs {
		have[r.Name] = r.Desc.Digest.String()
	}
	// A tag that already names the same manifest has all its blobs there.
	var send []image.Ref
	for _, r := range append(append([]image.Ref{}, main...), sigs...) {
		if have[r.Name] == r.Desc.Digest.String() {
			rep.TagsSkipped++
			continue
		}
		send = append(send, r)
	}
	if len(send) == 0 {
		return rep, nil
	}
	blobs, err := image.BlobsOf(ctx, src, send)
	if err != nil {
		return rep, err
	}
	isManifest := map[image.Digest]bool{}
	for _, r := range send {
		d, _ := image.DigestFromHash(r.Desc.Digest)
		isManifest[d] = true
	}

	var data []image.BlobRef
	for _, b := range blobs {
		if !isManifest[b.Digest] {
			data = append(data, b)
		}
	}
	// A HEAD request each, with the push's own credentials.
	lack, err := Lacks(ctx, pushing{dst, scopesFor(dst.path, true, opts.MountFrom)}, data, LackOptions{Strict: true})
	if err != nil {
		return rep, err
	}
	lacking := map[image.Digest]bool{}
	for _, b := range lack {
		lacking[b.Digest] = true
	}
	for _, b := range data {
		if !lacking[b.Digest] {
			rep.count(blobSkipped, b.Size, opts.Progress)
		}
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	for _, b := range lack {
		g.Go(func() error {
			res, err := dst.putBlob(gctx, src, b, opts.MountFrom)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			rep.count(res, b.Size, opts.Progress)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return rep, err
	}

	// Manifests, then signatures.
	for _, phase := range [][]image.Ref{main, sigs} {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(concurrency)
		for _, r := range phase {
			if have[r.Name] == r.Desc.Digest.String() {
				continue
			}
			g.Go(func() error {
				if err := dst.putManifest(gctx, src, r); err != nil {
					return err
				}
				mu.Lock()
				rep.Manifests++
				mu.Unlock()
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

type blobResult int

const (
	blobSkipped blobResult = iota
	blobMounted
	blobUploaded
)

// count adds one blob's outcome to the report and the progress.
func (rep *PushReport) count(res blobResult, size int64, p *image.Progress) {
	switch res {
	case blobSkipped:
		rep.BlobsSkipped++
		rep.BytesSkipped += size
	case blobMounted:
		rep.BlobsMounted++
	case blobUploaded:
		rep.BlobsUploaded++
		rep.BytesUploaded += size
		if p != nil {
			p.BytesNew.Add(size)
		}
	}
	if p != nil {
		p.Files.Add(1)
		p.Bytes.Add(size)
	}
}

// pushing is a registry as a push sees it: its blobs are asked for with
// the push's credentials (push and pull scopes), so that the checks and the
// uploads share one token.
type pushing struct {
	*Registry
	scopes []string
}

func (p pushing) StatBlob(ctx context.Context, d image.Digest) (int64, error) {
	return p.statBlob(ctx, p.scopes, d)
}

// putBlob sends one blob the mirror lacks ([Lacks]), mounting it from
// mountFrom when that repository holds it. A blob a killed registry left
// torn (it answers 500) is sent again, which repairs it.
func (r *Registry) putBlob(ctx context.Context, src image.Source, b image.BlobRef, mountFrom string) (blobResult, error) {
	scopes := scopesFor(r.path, true, mountFrom)
	start := r.url("/blobs/uploads/")
	if mountFrom != "" {
		start += "?" + url.Values{"mount": {b.Digest.String()}, "from": {mountFrom}}.Encode()
	}
	resp, err := r.do(ctx, scopes, http.MethodPost, start, func() io.Reader { return nil }, 0, nil, http.StatusCreated, http.StatusAccepted)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusCreated {
		return blobMounted, nil
	}
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil || resp.Header.Get("Location") == "" {
		return 0, fmt.Errorf("%s: upload of %s: bad Location %q", r, b.Digest, resp.Header.Get("Location"))
	}
	q := loc.Query()
	q.Set("digest", b.Digest.String())
	loc.RawQuery = q.Encode()

	blob, err := src.OpenBlob(ctx, b.Digest)
	if err != nil {
		return 0, err
	}
	defer blob.Close()
	size := blob.Size()
	if b.Size >= 0 && size != b.Size {
		return 0, &image.DigestError{Want: b.Digest, WantSize: b.Size, GotSize: size}
	}
	body := func() io.Reader { return io.NewSectionReader(blob, 0, size) }
	resp, err = r.do(ctx, scopes, http.MethodPut, loc.String(), body, size,
		map[string]string{"Content-Type": "application/octet-stream"}, http.StatusCreated)
	if err != nil {
		return 0, fmt.Errorf("upload of %s: %w", b.Digest, err)
	}
	resp.Body.Close()
	return blobUploaded, nil
}

// putManifest tags the manifest of ref with its bytes unchanged.
func (r *Registry) putManifest(ctx context.Context, src image.Source, ref image.Ref) error {
	d, err := image.DigestFromHash(ref.Desc.Digest)
	if err != nil {
		return err
	}
	raw, err := image.ReadBlob(ctx, src, d, ref.Desc.Size)
	if err != nil {
		return err
	}
	mt := string(ref.Desc.MediaType)
	if mt == "" {
		mt = image.ManifestType
	}
	resp, err := r.do(ctx, scopesFor(r.path, true, ""), http.MethodPut, r.url("/manifests/"+ref.Name),
		func() io.Reader { return bytes.NewReader(raw) }, int64(len(raw)),
		map[string]string{"Content-Type": mt}, http.StatusCreated)
	if err != nil {
		return fmt.Errorf("tag %s: %w", ref.Name, err)
	}
	resp.Body.Close()
	if h := resp.Header.Get("Docker-Content-Digest"); h != "" && h != d.String() {
		return fmt.Errorf("%s: tag %s: the registry names the manifest %s, want %s", r, ref.Name, h, d)
	}
	r.mu.Lock()
	r.manifests[d] = manifest{raw: raw, mediaType: mt}
	r.mu.Unlock()
	return nil
}

// MirrorResult is the outcome of a push to one mirror.
type MirrorResult struct {
	Mirror  Endpoint
	Report  PushReport
	Err     error
	Elapsed time.Duration
}

// Rate is the upload throughput the push measured, in bytes/s, or 0 when
// it sent too little to tell.
func (r MirrorResult) Rate() float64 {
	if r.Report.BytesUploaded < 1<<20 || r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Report.BytesUploaded) / r.Elapsed.Seconds()
}

// PushAll pushes src to every mirror at once. A failing mirror holds up
// none of the others; each result carries its own error.
func PushAll(ctx context.Context, src image.Source, mirrors []*Registry, opts PushOptions) []MirrorResult {
	eps := make([]Endpoint, len(mirrors))
	for i, m := range mirrors {
		eps[i] = m
	}
	return PushTo(ctx, src, eps, opts)
}

// PushTo is [PushAll] to any mirrors: registries, local layouts and other
// [WritableEndpoint]s such as a USB key written in place. Of
// several repositories on one registry, the first is pushed to as usual
// and the others after it, mounting from it what it received instead of
// uploading the bytes again; a blob that cannot be mounted is uploaded.
func PushTo(ctx context.Context, src image.Source, mirrors []Endpoint, opts PushOptions) []MirrorResult {
	res := make([]MirrorResult, len(mirrors))
	lead := map[string]*Registry{}         // by host: the first repository
	leadDone := map[string]chan struct{}{} // closed when its push ends
	var wg sync.WaitGroup
	for i, m := range mirrors {
		var wait chan struct{}
		o := opts
		var done chan struct{}
		if r, ok := m.(*Registry); ok {
			if l, ok := lead[r.Host()]; ok && opts.MountFrom == "" {
				wait, o.MountFrom = leadDone[r.Host()], l.Repository()
			} else if !ok {
				lead[r.Host()] = r
				done = make(chan struct{})
				leadDone[r.Host()] = done
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if done != nil {
				defer close(done)
			}
			if wait != nil {
				select {
				case <-wait:
				case <-ctx.Done():
				}
			}
			start := time.Now()
			var rep PushReport
			var err error
			switch m := m.(type) {
			case *Registry:
				rep, err = Push(ctx, src, m, o)
			case WritableEndpoint:
				rep, err = CopyTo(ctx, src, m, o)
			default:
				err = fmt.Errorf("mirrors of type %T cannot be pushed to", m)
			}
			if err != nil {
				err = fmt.Errorf("mirror %s: %w", m, err)
			}
			res[i] = MirrorResult{Mirror: m, Report: rep, Err: err, Elapsed: time.Since(start)}
		}()
	}
	wg.Wait()
	return res
}
