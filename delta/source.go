package delta

import (
	"context"

	"github.com/dvpc/dvpc/image"
)

// SourceEndpoint is a read-only place to pull from that is not a mirror: a
// medium (an ISO or USB image, a device, a mounted or extracted medium).
// It is asked like a mirror, but nothing is ever written to it.
type SourceEndpoint struct {
	image.Source
	name string
}

var _ Endpoint = (*SourceEndpoint)(nil)

// NewSourceEndpoint names src, a read-only store, as a source for [PullFrom]
// and [Repair].
func NewSourceEndpoint(name string, src image.Source) *SourceEndpoint {
	return &SourceEndpoint{Source: src, name: name}
}

func (s *SourceEndpoint) String() string { return s.name }

// Tags lists the source's tags.
func (s *SourceEndpoint) Tags(ctx context.Context) ([]string, error) {
	refs, err := s.Refs(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(refs))
	for _, r := range refs {
		out = append(out, r.Name)
	}
	return out, nil
}
