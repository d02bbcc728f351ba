package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dvpc/dvpc/delta"
	"github.com/dvpc/dvpc/image"
)

type snapshotOpts struct {
	excludes []string
	host     string
	noParent bool
}

func snapshotCommand(g *globals) *cli.Command {
	var o snapshotOpts
	var excl cli.StringSlice
	return &cli.Command{
		Name:      "snapshot",
		Usage:     "snapshot a directory (default: your home) and print the snapshot ID",
		ArgsUsage: "[PATH]",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "exclude", Usage: "leave out paths matching PATTERN (gitignore syntax; repeatable); .dvpcignore files work too", Destination: &excl},
			&cli.StringFlag{Name: "host", Usage: "host name to record (default: this computer's)", Destination: &o.host},
			&cli.BoolFlag{Name: "no-parent", Usage: "read every file, trusting nothing from the previous snapshot", Destination: &o.noParent},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return usageError{fmt.Errorf("snapshot takes one PATH, got %d", c.NArg())}
			}
			path := c.Args().First()
			if path == "" {
				h, err := os.UserHomeDir()
				if err != nil {
					return err
				}
				path = h
			}
			o.excludes = excl.Value()
			return runSnapshot(c.Context, g, o, path)
		},
	}
}

func runSnapshot(ctx context.Context, g *globals, o snapshotOpts, path string) error {
	repo, err := g.openRepo(ctx)
	if err != nil {
		return err
	}
	defer repo.Close()
	mirrors, err := delta.LoadMirrors(g.store)
	if err != nil {
		return err
	}
	var prog image.Progress
	var nerr int
	opts := image.SnapshotOptions{
		Host: o.host, Excludes: o.excludes, NoParent: o.noParent, Progress: &prog, Mirrors: mirrors.URLs(),
		OnError: func(p string, err error) {
			nerr++
			fmt.Fprintf(g.stderr, "dvpc: skipped %s: %v\n", p, err)
		},
		OnWarning: func(p string, msg string) { fmt.Fprintf(g.stderr, "dvpc: %s: %s\n", p, msg) },
	}
	start := time.Now()
	stop := startProgress(g.stderr, "snapshot:", &prog)
	snap, st, err := repo.Snapshot(ctx, path, opts)
	stop()
	if err != nil {
		return err
	}
	dur := time.Since(start)
	// The snapshot waits for every mirror, offline or not, until a push
	// delivers it; the mirror list knows what each last received.
	queued := []string{}
	for _, m := range mirrors.Mirrors {
		if m.Waits(snap.Ref) {
			queued = append(queued, m.Name)
		}
	}
	if g.json {
		err = json.NewEncoder(g.stdout).Encode(map[string]any{
			"id": snap.ID, "ref": snap.Ref, "manifest": snap.Manifest.String(), "time": snap.Time(),
			"files": st.Files, "dirs": st.Dirs, "bytes": st.Bytes, "bytes_read": st.BytesRead,
			"bytes_new": st.BytesNew, "errors": st.Errors, "duration_s": dur.Seconds(), "queued_for": queued,
		})
	} else {
		fmt.Fprintf(g.stderr, "snapshot %s of %s: %s, %s, %s; read %s, added %s, in %.1fs\n",
			snap.ID, snap.Config.Path, plural(st.Files, "file"), plural(st.Dirs, "dir"), humanBytes(st.Bytes), humanBytes(st.BytesRead), humanBytes(st.BytesNew), dur.Seconds())
		if len(queued) > 0 {
			fmt.Fprintf(g.stderr, "queued for %s (%s): `dvpc push` delivers it\n", plural(len(queued), "mirror"), strings.Join(queued, ", "))
		}
		fmt.Fprintln(g.stdout, snap.ID)
	}
	if err == nil && st.Errors > 0 {
		return partialError{fmt.Errorf("snapshot %s is complete except for %s that could not be read", snap.ID, plural(st.Errors, "entry"))}
	}
	return err
}
