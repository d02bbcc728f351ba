package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/dvpc/dvpc/image"
)

func lsCommand(g *globals) *cli.Command {
	var home string
	return &cli.Command{
		Name:      "ls",
		Usage:     "list the files in a snapshot (default: latest)",
		ArgsUsage: "[SNAP] [PATH]",
		Flags:     []cli.Flag{homeFlag(&home)},
		Action: func(c *cli.Context) error {
			if c.NArg() > 2 {
				return usageError{fmt.Errorf("ls takes [SNAP] [PATH]")}
			}
			return runLs(c.Context, g, home, c.Args().Get(0), c.Args().Get(1))
		},
	}
}

func runLs(ctx context.Context, g *globals, home, spec, path string) error {
	repo, hist, s, err := g.findSnapshot(ctx, home, spec, path)
	if err != nil {
		return err
	}
	defer repo.Close()
	rel, err := snapshotRel(hist, s.Home, path)
	if err != nil {
		return err
	}
	if _, err := repo.FindNode(ctx, s, rel); err != nil {
		return err
	}
	var out []map[string]any
	err = repo.Walk(ctx, s, func(p string, n *image.Node) error {
		if rel != "" && p != rel && !strings.HasPrefix(p, rel+"/") {
			return nil
		}
		if g.json {
			out = append(out, map[string]any{"path": p, "type": n.Type.String(), "mode": fmt.Sprintf("%04o", n.Mode),
				"size": n.Size, "mtime": n.Mtime, "target": string(n.Target)})
			return nil
		}
		line := fmt.Sprintf("%s %10d %s %s", modeString(n), n.Size, n.Mtime.Local().Format("2006-01-02 15:04"), quoteName(p))
		if n.Type == image.TypeSymlink {
			line += " -> " + quoteName(string(n.Target))
		}
		_, err := fmt.Fprintln(g.stdout, line)
		return err
	})
	if err != nil {
		return err
	}
	if g.json {
		if out == nil {
			out = []map[string]any{}
		}
		return json.NewEncoder(g.stdout).Encode(out)
	}
	return nil
}

func modeString(n *image.Node) string {
	m := fs.FileMode(n.Mode & 0o777)
	switch n.Type {
	case image.TypeDir:
		m |= fs.ModeDir
	case image.TypeSymlink:
		m |= fs.ModeSymlink
	case image.TypeFIFO:
		m |= fs.ModeNamedPipe
	}
	if n.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if n.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if n.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m.String()
}

// quoteName shows names with control bytes or invalid UTF-8 quoted, so a
// listing stays one line per entry.
func quoteName(s string) string {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return fmt.Sprintf("%q", s)
		}
	}
	return s
}
