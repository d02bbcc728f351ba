package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dvpc/dvpc/image"
)

func logCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:      "log",
		Usage:     "list snapshots, or the distinct versions of one file",
		ArgsUsage: "[PATH]",
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return usageError{fmt.Errorf("log takes at most one PATH")}
			}
			return runLog(c.Context, g, c.Args().First())
		},
	}
}

// loadSnapshots opens the store and lists its verified snapshots, warning
// about any that fail verification.
func (g *globals) loadSnapshots(ctx context.Context) (*image.Repo, []*image.Snapshot, error) {
	repo, err := g.openRepo(ctx)
	if err != nil {
		return nil, nil, err
	}
	snaps, probs, err := repo.Snapshots(ctx)
	if err != nil {
		repo.Close()
		return nil, nil, err
	}
	for _, p := range probs {
		fmt.Fprintf(g.stderr, "dvpc: ignoring %v\n", p)
	}
	return repo, snaps, nil
}

// findSnapshot opens the store and resolves one snapshot ("latest", an ID
// or a tag); the caller closes the repo.
func (g *globals) findSnapshot(ctx context.Context, spec string) (*image.Repo, []*image.Snapshot, *image.Snapshot, error) {
	repo, snaps, err := g.loadSnapshots(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	s, err := image.FindSnapshot(snaps, spec)
	if err != nil {
		repo.Close()
		return nil, nil, nil, err
	}
	return repo, snaps, s, nil
}

func runLog(ctx context.Context, g *globals, path string) error {
	repo, snaps, err := g.loadSnapshots(ctx)
	if err != nil {
		return err
	}
	defer repo.Close()
	if path != "" {
		return logFile(ctx, g, repo, snaps, path)
	}
	if g.json {
		out := []map[string]any{}
		for _, s := range snaps {
			out = append(out, map[string]any{"id": s.ID, "ref": s.Ref, "time": s.Time(), "host": s.Config.Host,
				"path": s.Config.Path, "seq": s.Config.Seq, "files": s.Config.Stats.Files, "bytes": s.Config.Stats.Bytes,
				"bytes_new": s.Config.Stats.BytesNew})
		}
		return json.NewEncoder(g.stdout).Encode(out)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tHOST\tPATH\tFILES\tSIZE\tADDED")
	for _, s := range snaps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", s.ID, s.Time().Local().Format("2006-01-02 15:04:05"), s.Config.Host,
			s.Config.Path, s.Config.Stats.Files, humanBytes(s.Config.Stats.Bytes), humanBytes(s.Config.Stats.BytesNew))
	}
	return tw.Flush()
}

func logFile(ctx context.Context, g *globals, repo *image.Repo, snaps []*image.Snapshot, path string) error {
	rel, err := snapshotRel(snaps, path)
	if err != nil {
		return err
	}
	vs, err := repo.Versions(ctx, snaps, rel)
	if err != nil {
		return err
	}
	if len(vs) == 0 {
		return fmt.Errorf("%s is in no snapshot: %w", rel, image.ErrNotFound)
	}
	if g.json {
		out := []map[string]any{}
		for _, v := range vs {
			out = append(out, map[string]any{"snapshot": v.Snapshot.ID, "time": v.Snapshot.Time(), "type": v.Node.Type.String(),
				"size": v.Node.Size, "mtime": v.Node.Mtime})
		}
		return json.NewEncoder(g.stdout).Encode(out)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SNAPSHOT\tTIME\tSIZE\tMODIFIED")
	for _, v := range vs {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", v.Snapshot.ID, v.Snapshot.Time().Local().Format("2006-01-02 15:04:05"),
			v.Node.Size, v.Node.Mtime.Local().Format(time.DateTime))
	}
	return tw.Flush()
}
