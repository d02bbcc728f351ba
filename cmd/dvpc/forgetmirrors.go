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

// forgetOnMirrors removes from every mirror, when on is set, the snapshots
// forget removed from the store (with their signatures), saying what each
// mirror removed and which refused.
func (g *globals) forgetOnMirrors(ctx context.Context, on bool, removed []*image.Snapshot) error {
	if !on || len(removed) == 0 {
		return nil
	}
	gone := make([]image.Digest, len(removed))
	for i, s := range removed {
		gone[i] = s.Manifest
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
