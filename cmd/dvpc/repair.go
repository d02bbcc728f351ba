package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/dvpc/dvpc/delta"
	"github.com/dvpc/dvpc/image"
)

type repairOpts struct {
	from     []string // media
	urls     []string // mirrors not in the store's list
	insecure bool
}

func repairCommand(g *globals) *cli.Command {
	var from cli.StringSlice
	var insecure bool
	return &cli.Command{
		Name: "repair",
		Usage: "fetch again every blob `dvpc verify --read-data` finds damaged or missing, from the store's mirrors, " +
			"the mirrors named and the media given with --from that hold it intact",
		ArgsUsage: "[URL...]",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "from", Usage: "also read from `MEDIUM` (an ISO or USB image, a device, a mounted disc); repeatable", Destination: &from},
			&cli.BoolFlag{Name: "insecure", Usage: "allow plain HTTP to non-loopback registries", Destination: &insecure},
		},
		Action: func(c *cli.Context) error {
			urls, media, rest := sourceArgs(c.Args().Slice())
			if len(rest) > 0 {
				return notASource("repair", rest[0])
			}
			o := repairOpts{from: append(from.Value(), media...), insecure: insecure}
			for _, u := range urls {
				o.urls = append(o.urls, strings.TrimPrefix(u, registryPrefix))
			}
			for _, m := range o.from {
				if !isMediumArg(m) {
					return usageError{fmt.Errorf("repair --from %s: no such medium", m)}
				}
			}
			return runRepair(c.Context, g, o)
		},
	}
}

// runRepair verifies the store with --read-data, fetches again what is
// damaged or missing, and reports each blob's source.
func runRepair(ctx context.Context, g *globals, o repairOpts) error {
	if isMedium(g.store) {
		return usageError{fmt.Errorf("%s is read-only: repair mends a store directory (name it with --store)", g.store)}
	}
	lay, err := image.OpenLayout(g.store)
	if err != nil {
		return err
	}
	repo, err := g.openRepo(ctx)
	if err != nil {
		return err
	}
	var prog image.Progress
	stop := startProgress(g.stderr, "verify:", &prog)
	vrep, err := repo.Verify(ctx, image.VerifyOptions{ReadData: true, Progress: &prog})
	stop()
	defer repo.Close()
	if err != nil {
		return err
	}
	var bad []image.Digest
	var structural []image.Problem // no blob to fetch again
	for _, p := range vrep.Problems {
		if p.Blob.IsZero() {
			structural = append(structural, p)
		} else if !containsDigest(bad, p.Blob) {
			bad = append(bad, p.Blob)
		}
	}
	if len(vrep.Problems) == 0 {
		if g.json {
			return json.NewEncoder(g.stdout).Encode(map[string]any{"repaired": []any{}, "unrepaired": []any{}})
		}
		fmt.Fprintf(g.stdout, "verify found no problems in %d snapshots and %d blobs: nothing to repair\n", vrep.Snapshots, vrep.Blobs)
		return nil
	}

	sources, health, speed, err := g.repairSources(o)
	if err != nil {
		return err
	}
	var fetched image.Progress
	stop = startProgressOf(g.stderr, "repair:", "blobs", "fetched", &fetched)
	rep, err := delta.Repair(ctx, sources, lay, bad, delta.RepairOptions{Health: health, Speed: speed, Progress: &fetched})
	stop()
	printFailures(g, rep.Failures)
	if err != nil {
		return err
	}
	if len(rep.Repaired) > 0 {
		// A snapshot that failed because of a blob fetched again (its
		// signature, its config) loads now: check the structure again.
		repo.CloseBlobs()
		again, err := repo.Verify(ctx, image.VerifyOptions{})
		if err != nil {
			return err
		}
		rep.Unrepaired, structural = stillBroken(vrep.Problems, again.Problems, rep.Unrepaired)
	}
	if g.json {
		type line struct {
			Blob   string `json:"blob"`
			Size   int64  `json:"size,omitempty"`
			Source string `json:"source,omitempty"`
			Error  string `json:"error,omitempty"`
		}
		fixed, left := []line{}, []line{}
		for _, r := range rep.Repaired {
			fixed = append(fixed, line{Blob: r.Digest.String(), Size: r.Size, Source: r.Source})
		}
		for _, u := range rep.Unrepaired {
			left = append(left, line{Blob: u.Digest.String(), Error: u.Err.Error()})
		}
		for _, p := range structural {
			left = append(left, line{Error: p.Error()})
		}
		json.NewEncoder(g.stdout).Encode(map[string]any{"repaired": fixed, "unrepaired": left})
	} else {
		for _, r := range rep.Repaired {
			fmt.Fprintf(g.stdout, "repaired blob %s (%s) from %s\n", r.Digest, humanBytes(r.Size), r.Source)
		}
		for _, u := range rep.Unrepaired {
			fmt.Fprintf(g.stdout, "NOT REPAIRED blob %s: %v\n", u.Digest, u.Err)
		}
		for _, p := range structural {
			fmt.Fprintf(g.stdout, "NOT REPAIRED %v\n", p)
		}
		fmt.Fprintf(g.stdout, "repair: verify found %d problems; %d blobs fetched again, %d problems could not be repaired\n",
			len(vrep.Problems), len(rep.Repaired), len(rep.Unrepaired)+len(structural))
	}
	if n := len(rep.Unrepaired) + len(structural); n > 0 {
		return integrityError{fmt.Errorf("repair: %d problems could not be repaired from %d sources", n, len(sources))}
	}
	return nil
}

// repairSources opens the store's mirrors, the mirrors named and the
// media, in that order, with the mirrors' health and speed.
func (g *globals) repairSources(o repairOpts) (eps []delta.Endpoint, health []int, speed []float64, err error) {
	ms, err := delta.LoadMirrors(g.store)
	if err != nil {
		return nil, nil, nil, err
	}
	if eps, err = ms.Endpoints(g.timeout); err != nil {
		return nil, nil, nil, err
	}
	for _, m := range ms.Mirrors {
		health = append(health, mirrorHealth(m))
		speed = append(speed, m.Rate())
	}
	for _, u := range o.urls {
		if ms.Find(u) != nil {
			continue
		}
		if p, ok := strings.CutPrefix(u, delta.LocalPrefix); ok {
			if _, err := os.Stat(filepath.Join(p, "oci-layout")); err != nil {
				return nil, nil, nil, usageError{fmt.Errorf("repair from %s: no OCI layout there", u)}
			}
		}
		ep, err := delta.OpenEndpoint(u, delta.RegistryOptions{Insecure: o.insecure, Timeout: g.timeout})
		if err != nil {
			return nil, nil, nil, usageError{err}
		}
		eps = append(eps, ep)
	}
	for _, m := range o.from {
		ep, err := g.openMediumSource(m)
		if err != nil {
			return nil, nil, nil, err
		}
		eps = append(eps, ep)
	}
	if len(eps) == 0 {
		return nil, nil, nil, usageError{errors.New("repair has nowhere to fetch from: the store has no mirrors; name one (URL) or a medium (--from MEDIUM)")}
	}
	return eps, health, speed, nil
}

func containsDigest(ds []image.Digest, d image.Digest) bool {
	for _, x := range ds {
		if x == d {
			return true
		}
	}
	return false
}

// stillBroken keeps, of what repair could not mend, what is still broken
// after it: a blob whose copy was intact stays unrepaired when its damage
// was in its data (read by verify --read-data) or the structure check still
// blames it. It also returns the structure problems that remain.
func stillBroken(before, after []image.Problem, unrepaired []delta.UnrepairedBlob) ([]delta.UnrepairedBlob, []image.Problem) {
	blamed := map[image.Digest]bool{}
	var structural []image.Problem
	for _, p := range after {
		if p.Blob.IsZero() {
			structural = append(structural, p)
		}
		blamed[p.Blob] = true
	}
	data := map[image.Digest]bool{}
	for _, p := range before {
		var ce *image.ChunkError
		var de *image.DigestError
		if errors.As(p.Err, &ce) && ce.Pack == p.Blob || errors.As(p.Err, &de) && de.Want == p.Blob {
			data[p.Blob] = true // its own bytes, not a blob it needs
		}
	}
	var out []delta.UnrepairedBlob
	for _, u := range unrepaired {
		if errors.Is(u.Err, delta.ErrIntactCopy) && !blamed[u.Digest] && !data[u.Digest] {
			continue
		}
		out = append(out, u)
	}
	return out, structural
}
