package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dvpc/dvpc/image"
)

func logCommand(g *globals) *cli.Command {
	var home string
	return &cli.Command{
		Name:      "log",
		Usage:     "list snapshots by home, or the distinct versions of one file",
		ArgsUsage: "[PATH]",
		Flags:     []cli.Flag{homeFlag(&home)},
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return usageError{fmt.Errorf("log takes at most one PATH")}
			}
			return runLog(c.Context, g, home, c.Args().First())
		},
	}
}

// findSnapshot opens the store and resolves one snapshot ("latest" within
// home, an ID or a tag); the caller closes the repo.
func (g *globals) findSnapshot(ctx context.Context, home, spec, path string) (*image.Repo, *image.History, *image.Snapshot, error) {
	repo, hist, err := g.loadHistory(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	s, err := g.pickSnapshot(hist, home, spec, path)
	if err != nil {
		repo.Close()
		return nil, nil, nil, err
	}
	return repo, hist, s, nil
}

func runLog(ctx context.Context, g *globals, home, path string) error {
	repo, hist, err := g.loadHistory(ctx)
	if err != nil {
		return err
	}
	defer repo.Close()
	if path != "" {
		return logFile(ctx, g, repo, hist, home, path)
	}
	homes := hist.Homes()
	if home != "" {
		if _, err := hist.Choose(home, ""); err != nil {
			return err
		}
		homes = []string{home}
	}
	if g.json {
		out := []map[string]any{}
		for _, h := range homes {
			heads := hist.Heads(h)
			for _, s := range hist.Of(h) {
				out = append(out, map[string]any{"id": s.ID, "ref": s.Ref, "time": s.Time(), "host": s.Config.Host,
					"path": s.Config.Path, "seq": s.Config.Seq, "home": s.Home, "head": slices.Contains(heads, s),
					"parents": s.Parents, "files": s.Config.Stats.Files, "bytes": s.Config.Stats.Bytes,
					"bytes_new": s.Config.Stats.BytesNew})
			}
		}
		return json.NewEncoder(g.stdout).Encode(out)
	}
	for i, h := range homes {
		if i > 0 {
			fmt.Fprintln(g.stdout)
		}
		roots := hist.Roots(h)
		fmt.Fprintf(g.stdout, "home %s (%s)\n", h, strings.Join(roots, ", "))
		tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTIME\tHOST\tPATH\tFILES\tSIZE\tADDED")
		for _, s := range hist.Of(h) {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", s.ID, s.Time().Local().Format("2006-01-02 15:04:05"), s.Config.Host,
				s.Config.Path, s.Config.Stats.Files, humanBytes(s.Config.Stats.Bytes), humanBytes(s.Config.Stats.BytesNew))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		g.warnDiverged(h, hist.Heads(h))
	}
	return nil
}

func logFile(ctx context.Context, g *globals, repo *image.Repo, hist *image.History, home, path string) error {
	home, err := chooseHome(hist, home, path)
	if err != nil {
		return err
	}
	rel, err := snapshotRel(hist, home, path)
	if err != nil {
		return err
	}
	vs, err := repo.Versions(ctx, hist.Of(home), rel)
	if err != nil {
		return err
	}
	if len(vs) == 0 {
		return fmt.Errorf("%s is in no snapshot of the home %q: %w", rel, home, image.ErrNotFound)
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
