//go:build !unix

package image

import (
	"context"
	"errors"
)

// Snapshot is not available here: this build of dvpc reads stores and
// restores them.
func (r *Repo) Snapshot(ctx context.Context, root string, opts SnapshotOptions) (*Snapshot, Stats, error) {
	return nil, Stats{}, errors.New("snapshots are taken on Linux and macOS; this dvpc lists, verifies and restores")
}
