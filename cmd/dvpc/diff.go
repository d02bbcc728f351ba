package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/dvpc/dvpc/image"
)

func diffCommand(g *globals) *cli.Command {
	var home string
	return &cli.Command{
		Name:      "diff",
		Usage:     "show what changed between two snapshots (+ added, - removed, M modified, U metadata only)",
		ArgsUsage: "A B",
		Flags:     []cli.Flag{homeFlag(&home)},
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usageError{fmt.Errorf("diff takes two snapshots, A and B")}
			}
			return runDiff(c.Context, g, home, c.Args().Get(0), c.Args().Get(1))
		},
	}
}

func runDiff(ctx context.Context, g *globals, home, specA, specB string) error {
	repo, hist, err := g.loadHistory(ctx)
	if err != nil {
		return err
	}
	defer repo.Close()
	a, err := g.pickSnapshot(hist, home, specA, "")
	if err != nil {
		return err
	}
	b, err := g.pickSnapshot(hist, home, specB, "")
	if err != nil {
		return err
	}
	changes, err := repo.Diff(ctx, a, b)
	if err != nil {
		return err
	}
	size := func(n *image.Node) int64 {
		if n == nil {
			return 0
		}
		return n.Size
	}
	if g.json {
		out := []map[string]any{}
		for _, c := range changes {
			out = append(out, map[string]any{"path": c.Path, "change": string(c.Kind), "old_size": size(c.Old), "new_size": size(c.New)})
		}
		return json.NewEncoder(g.stdout).Encode(out)
	}
	var added, removed, modified int64
	for _, c := range changes {
		switch c.Kind {
		case image.Added:
			fmt.Fprintf(g.stdout, "+ %s (%s)\n", quoteName(c.Path), plural(size(c.New), "byte"))
			added += size(c.New)
		case image.Removed:
			fmt.Fprintf(g.stdout, "- %s (%s)\n", quoteName(c.Path), plural(size(c.Old), "byte"))
			removed += size(c.Old)
		case image.Modified:
			fmt.Fprintf(g.stdout, "M %s (%d -> %s)\n", quoteName(c.Path), size(c.Old), plural(size(c.New), "byte"))
			modified++
		default:
			fmt.Fprintf(g.stdout, "U %s\n", quoteName(c.Path))
		}
	}
	fmt.Fprintf(g.stderr, "%s: %s added, %s removed, %d modified\n", plural(len(changes), "change"), humanBytes(added), humanBytes(removed), modified)
	return nil
}
