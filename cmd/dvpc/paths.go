package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/dvpc/dvpc/image"
)

// homeFlag is --home, which names the home that "latest", --at and paths
// resolve in.
func homeFlag(dest *string) cli.Flag {
	return &cli.StringFlag{Name: "home", Usage: "resolve latest, --at and paths in the home `NAME` " +
		"(default: the home the current directory or the absolute PATH is in, else \"home\", else the only one)", Destination: dest}
}

// loadHistory opens the store and groups its verified snapshots into
// homes, warning about any that fail verification.
func (g *globals) loadHistory(ctx context.Context) (*image.Repo, *image.History, error) {
	repo, err := g.openRepo(ctx)
	if err != nil {
		return nil, nil, err
	}
	hist, probs, err := repo.History(ctx)
	if err != nil {
		repo.Close()
		return nil, nil, err
	}
	for _, p := range probs {
		fmt.Fprintf(g.stderr, "dvpc: ignoring %v\n", p)
	}
	return repo, hist, nil
}

// workDir is the current directory, or "" when it cannot be known.
func workDir() string {
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	return wd
}

// chooseHome picks the home a command is about (docs/design.md §1): name,
// else the home that contains path when it is absolute, or else the
// current directory; else "home"; else the only home.
func chooseHome(hist *image.History, name, path string) (string, error) {
	if !filepath.IsAbs(path) {
		path = workDir()
	}
	return hist.Choose(name, path)
}

// pickSnapshot resolves spec: an ID or tag names a snapshot of any home
// (and must be of home when one is named); "latest" is the newest head of
// the home chosen with path. A diverged home is reported.
func (g *globals) pickSnapshot(hist *image.History, home, spec, path string) (*image.Snapshot, error) {
	if spec != "" && spec != "latest" {
		s, err := hist.Find("", spec)
		if err != nil {
			return nil, err
		}
		if home != "" && s.Home != home {
			return nil, fmt.Errorf("snapshot %s belongs to the home %q, not %q: %w", s.ID, s.Home, home, image.ErrNoSnapshot)
		}
		return s, nil
	}
	name, err := chooseHome(hist, home, path)
	if err != nil {
		return nil, err
	}
	s, heads, err := hist.Latest(name)
	if err != nil {
		return nil, err
	}
	g.warnDiverged(name, heads)
	return s, nil
}

// warnDiverged says when a home has several heads, and which "latest" is.
func (g *globals) warnDiverged(home string, heads []*image.Snapshot) {
	if len(heads) < 2 {
		return
	}
	ids := make([]string, len(heads))
	for i, h := range heads {
		ids[i] = h.ID
	}
	fmt.Fprintf(g.stderr, "dvpc: the home %q diverged on two PCs (heads %s); latest is %s, the newest; `dvpc sync` merges them\n",
		home, strings.Join(ids, ", "), heads[len(heads)-1].ID)
}

// snapshotRel turns a path given by the person into a path inside the
// snapshots of home: an absolute path under the home's directory is made
// relative to it; a relative path is taken from the current directory when
// that lies in the home's directory, else from the home's top.
func snapshotRel(hist *image.History, home, p string) (string, error) {
	return hist.Rel(home, p, workDir())
}
