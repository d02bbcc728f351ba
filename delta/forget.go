package delta

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/dvpc/dvpc/image"
)

// ErrDeleteRefused means a mirror does not let tags be removed: a registry
// without deletion enabled (distribution's storage.delete.enabled) answers
// 405 UNSUPPORTED, and most public registries never allow it through the
// API.
var ErrDeleteRefused = errors.New("the mirror does not allow deleting tags")

// tagRemover is a mirror whose tags can be removed.
type tagRemover interface {
	removeRefs(ctx context.Context, refs []image.Ref) error
}

var (
	_ tagRemover = (*Registry)(nil)
	_ tagRemover = (*LocalMirror)(nil)
)

// MirrorForget is what [ForgetOnMirrors] did on one mirror.
type MirrorForget struct {
	Mirror  string
	Removed []string // tags removed
	Err     error    // why the mirror kept the others; wraps ErrDeleteRefused when it does not allow it
}

// ForgetOnMirrors removes from each mirror the tags of the snapshots whose
// manifest digests are given, and their signature tags. Blobs stay: a
// registry's garbage collection, or a prune of a local mirror, frees them.
// A mirror that is unreachable or refuses is reported and the others are
// still done.
func ForgetOnMirrors(ctx context.Context, mirrors []Endpoint, manifests []image.Digest) []MirrorForget {
	out := make([]MirrorForget, len(mirrors))
	for i, m := range mirrors {
		out[i] = forgetOn(ctx, m, manifests)
	}
	return out
}

func forgetOn(ctx context.Context, m Endpoint, manifests []image.Digest) MirrorForget {
	res := MirrorForget{Mirror: m.String()}
	tr, ok := m.(tagRemover)
	if !ok {
		res.Err = fmt.Errorf("%s: %w: it is read-only", m, ErrDeleteRefused)
		return res
	}
	refs, err := m.Refs(ctx)
	if err != nil {
		res.Err = err
		return res
	}
	names := map[string]bool{}
	for _, d := range manifests {
		names[image.SignatureRef(d)] = true
	}
	var drop []image.Ref
	for _, r := range refs {
		d, err := image.DigestFromHash(r.Desc.Digest)
		if err == nil && slices.Contains(manifests, d) || names[r.Name] {
			drop = append(drop, r)
		}
	}
	if len(drop) == 0 {
		return res
	}
	// Signatures first, then the snapshots, so that an interrupted run
	// leaves no snapshot tag without its signature's removal pending;
	// what is left is removed by the next run.
	slices.SortStableFunc(drop, func(a, b image.Ref) int {
		return boolCmp(!names[a.Name], !names[b.Name])
	})
	if err := tr.removeRefs(ctx, drop); err != nil {
		res.Err = err
	}
	rest, err := m.Refs(ctx)
	if err != nil {
		if res.Err == nil {
			res.Err = err
		}
		return res
	}
	for _, r := range drop {
		if !slices.ContainsFunc(rest, func(x image.Ref) bool { return x.Name == r.Name }) {
			res.Removed = append(res.Removed, r.Name)
		}
	}
	return res
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// removeRefs deletes the manifests the refs name, by digest, which removes
// their tags: DELETE /v2/<name>/manifests/<digest>. It stops at the first
// refusal.
func (r *Registry) removeRefs(ctx context.Context, refs []image.Ref) error {
	scopes := []string{"repository:" + r.path + ":pull,push,delete"}
	for _, ref := range refs {
		resp, err := r.do(ctx, scopes, http.MethodDelete, r.url("/manifests/"+ref.Desc.Digest.String()), nil, 0, nil,
			http.StatusAccepted, http.StatusOK, http.StatusNoContent)
		var he *HTTPError
		switch {
		case errors.Is(err, image.ErrNotFound):
			continue // gone already
		case errors.As(err, &he) && (he.Status == http.StatusMethodNotAllowed || he.Status == http.StatusNotImplemented):
			code := ""
			if strings.Contains(he.Body, "UNSUPPORTED") {
				code = " UNSUPPORTED"
			}
			return fmt.Errorf("%w: DELETE answered %d%s (a registry allows it with storage.delete.enabled)", ErrDeleteRefused, he.Status, code)
		case errors.Is(err, ErrAuth):
			return fmt.Errorf("%w: %w", ErrDeleteRefused, err)
		case err != nil:
			return fmt.Errorf("delete tag %s: %w", ref.Name, err)
		}
		resp.Body.Close()
		r.mu.Lock()
		if d, err := image.DigestFromHash(ref.Desc.Digest); err == nil {
			delete(r.manifests, d)
		}
		r.mu.Unlock()
	}
	return nil
}

// removeRefs drops the refs from the layout's index.json, in one atomic
// rewrite under the layout's lock.
func (l *LocalMirror) removeRefs(ctx context.Context, refs []image.Ref) error {
	unlock, err := l.Lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	return l.UpdateRefs(ctx, func(have []image.Ref) ([]image.Ref, error) {
		return slices.DeleteFunc(have, func(h image.Ref) bool {
			return slices.ContainsFunc(refs, func(r image.Ref) bool { return r.Name == h.Name && r.Desc.Digest == h.Desc.Digest })
		}), nil
	})
}
