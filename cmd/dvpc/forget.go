package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dvpc/dvpc/image"
)

func forgetCommand(g *globals) *cli.Command {
	var p image.KeepPolicy
	var dryRun, prune, mirrors bool
	return &cli.Command{
		Name: "forget",
		Usage: "remove snapshots from the store: those named (the newest too), or those a --keep policy does not keep " +
			"in each home (it keeps each home's newest); their data goes with --prune or `dvpc prune`",
		ArgsUsage: "[SNAP...]",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "keep-last", Usage: "keep the `N` newest snapshots", Destination: &p.Last},
			&cli.IntFlag{Name: "keep-hourly", Usage: "keep the newest snapshot of each of the last `N` hours that have one", Destination: &p.Hourly},
			&cli.IntFlag{Name: "keep-daily", Usage: "... of the last `N` days", Destination: &p.Daily},
			&cli.IntFlag{Name: "keep-weekly", Usage: "... of the last `N` ISO weeks", Destination: &p.Weekly},
			&cli.IntFlag{Name: "keep-monthly", Usage: "... of the last `N` months", Destination: &p.Monthly},
			&cli.IntFlag{Name: "keep-yearly", Usage: "... of the last `N` years", Destination: &p.Yearly},
			&cli.DurationFlag{Name: "keep-within", Usage: "keep every snapshot taken within `DURATION` (such as 720h) of the newest", Destination: &p.Within},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "only say what would be removed", Destination: &dryRun},
			&cli.BoolFlag{Name: "prune", Usage: "then delete the data no snapshot needs any more", Destination: &prune},
			&cli.BoolFlag{Name: "mirrors", Usage: "remove the snapshots' tags from the mirrors too (registries must allow deletion)", Destination: &mirrors},
		},
		Action: func(c *cli.Context) error {
			for _, n := range []int{p.Last, p.Hourly, p.Daily, p.Weekly, p.Monthly, p.Yearly} {
				if n < 0 {
					return usageError{errors.New("--keep-* counts cannot be negative")}
				}
			}
			if p.Within < 0 {
				return usageError{errors.New("--keep-within cannot be negative")}
			}
			if c.NArg() == 0 && p.IsZero() {
				return usageError{errors.New("forget needs the snapshots to remove, or a policy such as --keep-daily 7 --keep-weekly 5")}
			}
			if c.NArg() > 0 && !p.IsZero() {
				return usageError{errors.New("forget takes either SNAP... or --keep-* flags, not both")}
			}
			return runForget(c.Context, g, c.Args().Slice(), p, dryRun, prune, mirrors)
		},
	}
}

func runForget(ctx context.Context, g *globals, specs []string, p image.KeepPolicy, dryRun, prune, mirrors bool) error {
	lay, err := image.OpenLayout(g.store)
	if err != nil {
		if isMedium(g.store) {
			return usageError{fmt.Errorf("%s is a medium, which is read-only: forget works on a store directory", g.store)}
		}
		return err
	}
	repo, hist, err := g.loadHistory(ctx)
	if err != nil {
		return err
	}
	defer repo.Close()
	snaps := hist.Snapshots()
	var remove []*image.Snapshot
	reasons := map[*image.Snapshot][]string{}
	if len(specs) > 0 {
		for _, spec := range specs {
			// "latest" is the newest head of the home the current
			// directory is in (else "home"): an accidental snapshot
			// is undone with `dvpc forget latest`.
			s, err := g.pickSnapshot(hist, "", spec, "")
			if err != nil {
				return err
			}
			if !containsSnap(remove, s) {
				remove = append(remove, s)
			}
		}
	} else {
		// The policy keeps within each home: another home's snapshots
		// never count against it.
		for _, h := range hist.Homes() {
			keep, rm := p.Apply(hist.Of(h), time.Local)
			for s, why := range keep {
				reasons[s] = why
			}
			remove = append(remove, rm...)
		}
	}
	type line struct {
		ID     string    `json:"id"`
		Ref    string    `json:"ref"`
		Time   time.Time `json:"time"`
		Action string    `json:"action"` // keep or remove
		Why    []string  `json:"why,omitempty"`
	}
	var lines []line
	for _, s := range snaps {
		l := line{ID: s.ID, Ref: s.Ref, Time: s.Time(), Action: "keep", Why: reasons[s]}
		if containsSnap(remove, s) {
			l.Action, l.Why = "remove", nil
		}
		lines = append(lines, l)
	}
	if !dryRun {
		// The trust state keeps the highest seq and the forgotten
		// digests, so forgetting the newest weakens no rollback check.
		if err := repo.Forget(ctx, remove); err != nil {
			return err
		}
	}
	var pst *image.PruneStats
	if prune {
		st, err := image.Prune(ctx, lay, dryRun)
		if err != nil {
			return err
		}
		pst = &st
	}
	if g.json {
		out := map[string]any{"snapshots": lines, "removed": len(remove), "dry_run": dryRun}
		if pst != nil {
			out["prune"] = pruneJSON(*pst)
		}
		if err := json.NewEncoder(g.stdout).Encode(out); err != nil {
			return err
		}
		return g.forgetOnMirrors(ctx, mirrors && !dryRun, remove)
	}
	for _, l := range lines {
		why := ""
		if len(l.Why) > 0 {
			why = " (" + strings.Join(l.Why, ", ") + ")"
		}
		fmt.Fprintf(g.stdout, "%-6s %s  %s%s\n", l.Action, l.ID, l.Time.Local().Format("2006-01-02 15:04:05"), why)
	}
	verb := "removed"
	if dryRun {
		verb = "would remove"
	}
	fmt.Fprintf(g.stdout, "%s %d of %s\n", verb, len(remove), plural(len(snaps), "snapshot"))
	if pst != nil {
		printPrune(g, *pst, dryRun)
	} else if len(remove) > 0 && !dryRun {
		if mirrors {
			fmt.Fprintln(g.stdout, "their data stays until `dvpc prune`")
		} else {
			fmt.Fprintln(g.stdout, "their data stays until `dvpc prune`; mirrors keep their copies (`--mirrors` removes them there too)")
		}
	}
	return g.forgetOnMirrors(ctx, mirrors && !dryRun, remove)
}

func containsSnap(list []*image.Snapshot, s *image.Snapshot) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func pruneCommand(g *globals) *cli.Command {
	var dryRun bool
	return &cli.Command{
		Name:  "prune",
		Usage: "delete the data no snapshot needs: what forgotten snapshots and interrupted runs left (needs no passphrase)",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "only count what would be deleted", Destination: &dryRun},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageError{errors.New("prune takes no arguments")}
			}
			lay, err := image.OpenLayout(g.store)
			if err != nil {
				return err
			}
			st, err := image.Prune(c.Context, lay, dryRun)
			if err != nil {
				return err
			}
			if g.json {
				return json.NewEncoder(g.stdout).Encode(pruneJSON(st))
			}
			printPrune(g, st, dryRun)
			return nil
		},
	}
}

func pruneJSON(st image.PruneStats) map[string]any {
	return map[string]any{"blobs_removed": st.Removed, "bytes_removed": st.RemovedBytes, "blobs_kept": st.Kept, "bytes_kept": st.KeptBytes}
}

func printPrune(g *globals, st image.PruneStats, dryRun bool) {
	verb := "deleted"
	if dryRun {
		verb = "would delete"
	}
	fmt.Fprintf(g.stdout, "prune: %s %s (%s); %s (%s) still needed\n", verb, plural(st.Removed, "blob"),
		humanBytes(st.RemovedBytes), plural(st.Kept, "blob"), humanBytes(st.KeptBytes))
}
