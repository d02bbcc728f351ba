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

// Excluder tells which entries below a root a snapshot leaves out; see the
// Linux and macOS builds.
type Excluder struct{}

// Excluder is not available here, as snapshots are not.
func (r *Repo) Excluder(root string, opts SnapshotOptions) (*Excluder, error) {
	return nil, errors.New("snapshots are taken on Linux and macOS; this dvpc lists, verifies and restores")
}

// Excluded reports false: nothing is snapshotted here.
func (e *Excluder) Excluded(rel string, isDir bool) bool { return false }
