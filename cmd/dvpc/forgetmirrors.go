package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/dvpc/dvpc/delta"
	"github.com/dvpc/dvpc/image"
)

// alsoOnMirrors runs forget, and when on is set removes from every mirror
// the snapshots it removed from the store (with their signatures), saying
// what each mirror removed and which refused.
func (g *globals) alsoOnMirrors(ctx context.Context, on bool, forget func() error) error {
	if !on {
		return forget()
	}
	lay, err := image.OpenLayout(g.store)
	if err != nil {
		return forget() // it says what is wrong with the store
	}
	before, err := lay.Refs(ctx)
	if err != nil {
		return err
	}
	if err := forget(); err != nil {
		return err
	}
	after, err := lay.Refs(ctx)
	if err != nil {
		return err
	}
	var gone []image.Digest
	for _, r := range before {
		if !image.IsSnapshotRef(r.Name) || slicesHasRef(after, r) {
			continue
		}
		if d, err := image.DigestFromHash(r.Desc.Digest); err == nil {
			gone = append(gone, d)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	ms, err := delta.LoadMirrors(g.store)
	if err != nil {
		return err
	}
	if len(ms.Mirrors) == 0 {
		return usageError{errors.New("forget --mirrors: the store has no mirrors")}
	}
	eps, err := ms.Endpoints(g.timeout)
	if err != nil {
		return err
	}
	var w io.Writer = g.stdout
	if g.json {
		w = g.stderr // stdout holds forget's JSON
	}
	var refused []string
	for i, r := range delta.ForgetOnMirrors(ctx, eps, gone) {
		name := ms.Mirrors[i].Name
		if r.Err != nil {
			refused = append(refused, name)
			fmt.Fprintf(w, "mirror %s (%s): removed %d tags, refused the rest: %v\n", name, r.Mirror, len(r.Removed), r.Err)
			continue
		}
		fmt.Fprintf(w, "mirror %s (%s): removed %d tags\n", name, r.Mirror, len(r.Removed))
	}
	if len(refused) > 0 {
		return partialError{fmt.Errorf("forget --mirrors: %d of %d mirrors kept the forgotten snapshots: %s", len(refused), len(eps), strings.Join(refused, ", "))}
	}
	return nil
}

func slicesHasRef(refs []image.Ref, r image.Ref) bool {
	for _, x := range refs {
		if x.Name == r.Name && x.Desc.Digest == r.Desc.Digest {
			return true
		}
	}
	return false
}
