package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/dvpc/dvpc/image"
	"github.com/dvpc/dvpc/media"
)

func attachCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:      "attach",
		Usage:     "show what a DVD/ISO image, USB image or device holds, and verify its signatures",
		ArgsUsage: "MEDIUM...   (name every disc of a spanned set)",
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usageError{fmt.Errorf("attach needs at least one MEDIUM")}
			}
			return runAttach(c.Context, g, c.Args().Slice())
		},
	}
}

func runAttach(ctx context.Context, g *globals, paths []string) error {
	src, ms, err := media.OpenSet(paths)
	if err != nil {
		return err
	}
	defer func() {
		for _, m := range ms {
			m.Close()
		}
	}()
	kf, err := image.ReadKeyFile(ctx, src)
	if err != nil {
		return err
	}
	g.store = strings.Join(paths, ",")
	pass, err := readPassphrase(g.stderr, "Passphrase for "+g.store+": ")
	if err != nil {
		return err
	}
	repo, _, err := image.Open(ctx, src, pass)
	if err != nil {
		return err
	}
	defer repo.Close()
	snaps, probs, err := repo.Snapshots(ctx)
	if err != nil {
		return err
	}
	var missing []int
	if u, ok := src.(*media.Union); ok {
		missing = u.Missing()
	}
	if g.json {
		var list []map[string]any
		for _, s := range snaps {
			list = append(list, map[string]any{"id": s.ID, "time": s.Time(), "host": s.Config.Host, "files": s.Config.Stats.Files, "bytes": s.Config.Stats.Bytes})
		}
		var med []map[string]any
		for _, m := range ms {
			e := map[string]any{"path": m.Path, "kind": m.Kind, "label": m.Label}
			if m.Set != nil {
				e["disc"], e["discs"] = m.Set.Disc, m.Set.Discs
			}
			med = append(med, e)
		}
		perr := []string{}
		for _, p := range probs {
			perr = append(perr, p.Error())
		}
		json.NewEncoder(g.stdout).Encode(map[string]any{"media": med, "store_id": kf.StoreID, "signer": kf.SigningPublic,
			"snapshots": list, "problems": perr, "missing_discs": missing})
	} else {
		for _, m := range ms {
			set := ""
			if m.Set != nil {
				set = fmt.Sprintf(", disc %d of %d", m.Set.Disc, m.Set.Discs)
			}
			fmt.Fprintf(g.stdout, "%s: %s %s%s\n", m.Path, m.Kind, m.Label, set)
		}
		fmt.Fprintf(g.stdout, "store %s, signed by %s\n", kf.StoreID, kf.SigningPublic)
		tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTIME\tHOST\tFILES\tSIZE\tSIGNATURE")
		for _, s := range snaps {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\tgood\n", s.ID, s.Time().Local().Format("2006-01-02 15:04:05"), s.Config.Host, s.Config.Stats.Files, humanBytes(s.Config.Stats.Bytes))
		}
		tw.Flush()
		for _, p := range probs {
			fmt.Fprintf(g.stdout, "PROBLEM %v\n", p)
		}
		for _, d := range missing {
			fmt.Fprintf(g.stdout, "MISSING disc %d of the set; attach it to restore files stored on it\n", d)
		}
	}
	if len(probs) > 0 {
		return integrityError{fmt.Errorf("%s failed verification", plural(len(probs), "snapshot"))}
	}
	if len(missing) > 0 {
		return partialError{fmt.Errorf("discs %v of the set are missing", missing)}
	}
	return nil
}
