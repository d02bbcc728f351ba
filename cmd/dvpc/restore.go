package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dvpc/dvpc/cmd/internal/timespec"
	"github.com/dvpc/dvpc/image"
)

type restoreOpts struct {
	at        string
	to        string
	overwrite bool
	stdout    bool
	keepSetid bool
	home      string
}

func restoreCommand(g *globals) *cli.Command {
	var o restoreOpts
	return &cli.Command{
		Name:      "restore",
		Usage:     "restore a snapshot, or chosen paths of it, into a directory",
		ArgsUsage: "[SNAP] [PATH...]   (SNAP is an ID, a tag or \"latest\"; with --at, every argument is a PATH)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "at", Usage: "the newest snapshot at or before TIME (RFC 3339, 2024-05-01, \"yesterday 09:00\", \"3 days ago\", \"last monday\")", Destination: &o.at},
			&cli.StringFlag{Name: "to", Usage: "target directory; it becomes the snapshotted directory", Destination: &o.to},
			&cli.BoolFlag{Name: "overwrite", Usage: "restore into a non-empty directory, replacing what is in the way", Destination: &o.overwrite},
			&cli.BoolFlag{Name: "stdout", Usage: "write one file's content to standard output", Destination: &o.stdout},
			&cli.BoolFlag{Name: "keep-setid", Usage: "keep the setuid and setgid bits of files (cleared by default)", Destination: &o.keepSetid},
			homeFlag(&o.home),
		},
		Action: func(c *cli.Context) error {
			args := c.Args().Slice()
			spec := ""
			if o.at == "" {
				if len(args) == 0 {
					return usageError{fmt.Errorf("restore needs a snapshot (an ID or \"latest\") or --at TIME")}
				}
				spec, args = args[0], args[1:]
			}
			if o.stdout {
				if len(args) != 1 || o.to != "" {
					return usageError{fmt.Errorf("--stdout takes exactly one PATH and no --to")}
				}
			} else if o.to == "" {
				return usageError{fmt.Errorf("restore needs --to DIR (or --stdout for one file)")}
			}
			return runRestore(c.Context, g, o, spec, args)
		},
	}
}

func runRestore(ctx context.Context, g *globals, o restoreOpts, spec string, paths []string) error {
	repo, hist, err := g.loadHistory(ctx)
	if err != nil {
		return err
	}
	defer repo.Close()
	// The home: named, else the one the first absolute PATH or the
	// current directory is in.
	hint := ""
	if len(paths) > 0 {
		hint = paths[0]
	}
	var s *image.Snapshot
	if o.at != "" {
		t, err := timespec.Parse(o.at, time.Now())
		if err != nil {
			return usageError{err}
		}
		home, err := chooseHome(hist, o.home, hint)
		if err != nil {
			return err
		}
		if s, err = hist.At(home, t); err != nil {
			return err
		}
		fmt.Fprintf(g.stderr, "dvpc: --at %s chose snapshot %s of %s (home %s)\n", o.at, s.ID, s.Time().Local().Format(time.DateTime), s.Home)
	} else if s, err = g.pickSnapshot(hist, o.home, spec, hint); err != nil {
		return err
	}
	rels := make([]string, len(paths))
	for i, p := range paths {
		if rels[i], err = snapshotRel(hist, s.Home, p); err != nil {
			return usageError{err}
		}
	}
	if o.stdout {
		n, err := repo.FindNode(ctx, s, rels[0])
		if err != nil {
			return err
		}
		return repo.WriteContent(ctx, n, g.stdout)
	}
	var prog image.Progress
	start := time.Now()
	stop := startProgress(g.stderr, "restore:", &prog)
	var kept []string
	var setid atomic.Int64
	err = repo.Restore(ctx, s, image.RestoreOptions{
		Target: o.to, Paths: rels, Overwrite: o.overwrite, Progress: &prog, Protect: g.liveStores(),
		OnError:        func(p string, err error) { fmt.Fprintf(g.stderr, "dvpc: could not restore %s: %v\n", p, err) },
		OnStoreKept:    func(dir string) { kept = append(kept, dir) },
		KeepSetid:      o.keepSetid,
		OnSetidCleared: func(string) { setid.Add(1) },
	})
	stop()
	if len(kept) > 0 {
		fmt.Fprintf(g.stderr, "dvpc: left the store %s alone: a restore never writes into a dvpc store; everything else was restored\n", strings.Join(kept, ", "))
	}
	if n := setid.Load(); n > 0 {
		fmt.Fprintf(g.stderr, "dvpc: cleared the setuid/setgid bits of %s; add --keep-setid to keep them\n", plural(n, "file"))
	}
	if g.json {
		res := map[string]any{"snapshot": s.ID, "to": o.to, "files": prog.Files.Load(), "bytes": prog.Bytes.Load(), "duration_s": time.Since(start).Seconds()}
		if len(kept) > 0 {
			res["stores_left_alone"] = kept
		}
		if n := setid.Load(); n > 0 {
			res["setid_cleared"] = n
		}
		if err != nil {
			res["error"] = err.Error()
		}
		json.NewEncoder(g.stdout).Encode(res)
	} else if err == nil {
		fmt.Fprintf(g.stderr, "restored snapshot %s to %s: %s, %s\n", s.ID, o.to, plural(prog.Files.Load(), "file"), humanBytes(prog.Bytes.Load()))
	}
	return err
}

// liveStores lists the store directories a restore must not write into:
// the store in use when it is a directory, and the default store.
func (g *globals) liveStores() []string {
	var out []string
	if storeKind(g.store) == kindDir {
		out = append(out, g.store)
	}
	if d := defaultStore(); !slices.Contains(out, d) {
		out = append(out, d)
	}
	for i, d := range out {
		if abs, err := filepath.Abs(d); err == nil {
			out[i] = abs
		}
	}
	return out
}
