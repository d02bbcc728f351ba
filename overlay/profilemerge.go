package overlay

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/dvpc/dvpc/image"
)

// mergeProfile makes the store's profile the merge of the profiles ours
// and theirs carry, which grew apart from base's (merge is
// [image.SnapshotOptions.MergeProfiles]), so that the merge snapshot, or
// the next snapshot after a fast-forward, carries both PCs' apps. Nothing
// is written when merge is nil or the store already holds the result.
func mergeProfile(ctx context.Context, repo *image.Repo, base, ours, theirs *image.Snapshot, merge func(base, ours, theirs []byte) ([]byte, error)) error {
	if merge == nil {
		return nil
	}
	var docs [3][]byte
	for i, s := range []*image.Snapshot{base, ours, theirs} {
		if s == nil {
			continue
		}
		doc, err := repo.SnapshotProfile(ctx, s)
		if errors.Is(err, image.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("merge the profiles: %w", err)
		}
		docs[i] = doc
	}
	merged, err := merge(docs[0], docs[1], docs[2])
	if err != nil {
		return fmt.Errorf("merge the profiles of %s and %s: %w", ours.ID, theirs.ID, err)
	}
	if merged == nil {
		return nil
	}
	cur, _, err := repo.Profile(ctx)
	if err != nil && !errors.Is(err, image.ErrNotFound) {
		return fmt.Errorf("merge the profiles: %w", err)
	}
	if err == nil && bytes.Equal(cur, merged) {
		return nil
	}
	// A side's own profile is taken as that side's blob: a new blob of
	// the same document would look like a change to the next snapshot.
	switch {
	case bytes.Equal(merged, docs[2]):
		err = repo.AdoptProfile(ctx, theirs)
	case bytes.Equal(merged, docs[1]):
		err = repo.AdoptProfile(ctx, ours)
	default:
		_, err = repo.SaveProfile(ctx, merged)
	}
	if err != nil {
		return fmt.Errorf("merge the profiles of %s and %s: %w", ours.ID, theirs.ID, err)
	}
	return nil
}

// followProfile makes the store's profile the one snap carries, snap being
// the newest snapshot a login brought into the session: the apps the
// other PCs added or removed follow the person to this one. A store
// profile that no snapshot carries yet (an app added here since) is
// merged with it instead, so that nothing is lost. Nothing is done when
// merge is nil or snap carries no profile.
func followProfile(ctx context.Context, repo *image.Repo, hist *image.History, snap *image.Snapshot, merge func(base, ours, theirs []byte) ([]byte, error)) error {
	if merge == nil || snap.Config.Profile == "" {
		return nil
	}
	theirs, err := repo.SnapshotProfile(ctx, snap)
	if err != nil {
		return fmt.Errorf("the profile of snapshot %s: %w", snap.ID, err)
	}
	cur, d, err := repo.Profile(ctx)
	if errors.Is(err, image.ErrNotFound) {
		return repo.AdoptProfile(ctx, snap)
	}
	if err != nil {
		return err
	}
	if d.String() == snap.Config.Profile {
		return nil
	}
	recorded := false
	for _, s := range hist.Snapshots() {
		recorded = recorded || s.Config.Profile == d.String()
	}
	merged := theirs
	if !recorded {
		if merged, err = merge(nil, cur, theirs); err != nil {
			return fmt.Errorf("merge this PC's profile with snapshot %s's: %w", snap.ID, err)
		}
	}
	if bytes.Equal(merged, theirs) {
		return repo.AdoptProfile(ctx, snap)
	}
	_, err = repo.SaveProfile(ctx, merged)
	return err
}
