package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	v1 "github.com/google/go-containerregistry/pkg/v1"

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
	repo, err := g.unlock(ctx, src)
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
	damage, err := mediaDamage(ctx, ms)
	if err != nil {
		return err
	}
	unreadable := unreadableBlobs(ctx, src, snaps)
	programs, badPrograms, err := checkPrograms(ms, repo)
	if err != nil {
		return err
	}
	if g.json {
		var list []map[string]any
		for _, s := range snaps {
			bad := []string{}
			for _, b := range unreadable[s.ID] {
				bad = append(bad, b.digest.String())
			}
			list = append(list, map[string]any{"id": s.ID, "time": s.Time(), "host": s.Config.Host, "files": s.Config.Stats.Files, "bytes": s.Config.Stats.Bytes,
				"complete": len(bad) == 0, "unreadable_blobs": bad})
		}
		var med []map[string]any
		for i, m := range ms {
			e := map[string]any{"path": m.Path, "kind": m.Kind, "label": m.Label}
			if m.Set != nil {
				e["disc"], e["discs"] = m.Set.Disc, m.Set.Discs
			}
			d := damage[i]
			e["cut_short"] = d.Cut()
			if d.Cut() {
				e["bytes"], e["want_bytes"] = d.End, d.Want
			}
			files := []map[string]string{}
			for _, f := range d.Files {
				files = append(files, map[string]string{"path": f.Path, "error": damagedFile(f)})
			}
			e["unreadable_files"] = files
			med = append(med, e)
		}
		perr := []string{}
		for _, p := range probs {
			perr = append(perr, p.Error())
		}
		if programs == nil {
			programs = []string{}
		}
		bad := []map[string]string{}
		for _, p := range badPrograms {
			bad = append(bad, map[string]string{"path": p.Path, "error": p.Error()})
		}
		json.NewEncoder(g.stdout).Encode(map[string]any{"media": med, "store_id": kf.StoreID, "signer": kf.SigningPublic,
			"snapshots": list, "problems": perr, "missing_discs": missing, "programs": programs, "bad_programs": bad})
	} else {
		for i, m := range ms {
			set := ""
			if m.Set != nil {
				set = fmt.Sprintf(", disc %d of %d", m.Set.Disc, m.Set.Discs)
			}
			if d := damage[i]; d.Cut() {
				set += fmt.Sprintf(", CUT SHORT: %s of %s", humanBytes(d.End), humanBytes(d.Want))
			}
			fmt.Fprintf(g.stdout, "%s: %s %s%s\n", m.Path, m.Kind, m.Label, set)
		}
		fmt.Fprintf(g.stdout, "store %s, signed by %s\n", kf.StoreID, kf.SigningPublic)
		tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTIME\tHOST\tFILES\tSIZE\tSIGNATURE\tDATA")
		for _, s := range snaps {
			data := "complete"
			if n := len(unreadable[s.ID]); n > 0 {
				data = plural(n, "blob") + " unreadable"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\tgood\t%s\n", s.ID, s.Time().Local().Format("2006-01-02 15:04:05"), s.Config.Host, s.Config.Stats.Files, humanBytes(s.Config.Stats.Bytes), data)
		}
		tw.Flush()
		for _, p := range probs {
			fmt.Fprintf(g.stdout, "PROBLEM %v\n", p)
		}
		if len(programs) > 0 {
			fmt.Fprintf(g.stdout, "programs signed by the store's key: %s\n", strings.Join(programs, ", "))
		}
		for _, p := range badPrograms {
			fmt.Fprintf(g.stdout, "BAD PROGRAM %v\n", p)
		}
		for _, d := range damage {
			for _, f := range d.Files {
				fmt.Fprintf(g.stdout, "UNREADABLE %s\n", damagedFile(f))
			}
		}
		for _, id := range slices.Sorted(maps.Keys(unreadable)) {
			var short []string
			for _, b := range unreadable[id] {
				short = append(short, b.digest.Hex()[:12])
			}
			fmt.Fprintf(g.stdout, "DAMAGED snapshot %s does not restore whole: it needs %s that cannot be read: %s\n",
				id, plural(len(short), "blob"), strings.Join(short, ", "))
			for _, b := range unreadable[id] {
				if !errors.Is(b.err, media.ErrDamaged) { // cut-off files are listed above
					fmt.Fprintf(g.stdout, "  %v\n", b.err)
				}
			}
		}
		for _, d := range missing {
			fmt.Fprintf(g.stdout, "MISSING disc %d of the set; attach it to restore files stored on it\n", d)
		}
	}
	if len(probs) > 0 {
		return integrityError{fmt.Errorf("%s failed verification", plural(len(probs), "snapshot"))}
	}
	if err := programsError(badPrograms); err != nil {
		return err
	}
	var files int
	for _, d := range damage {
		files += len(d.Files)
	}
	if files > 0 || len(unreadable) > 0 {
		what := fmt.Sprintf("%d of %s restore whole", len(snaps)-len(unreadable), plural(len(snaps), "snapshot"))
		if files > 0 {
			what = plural(files, "file") + " cannot be read; " + what
		}
		return integrityError{fmt.Errorf("%w: %s", media.ErrDamaged, what)}
	}
	if len(missing) > 0 {
		return partialError{fmt.Errorf("discs %v of the set are missing", missing)}
	}
	return nil
}

// checkPrograms checks the signatures of the programs every medium
// carries against the unlocked store's signing key.
func checkPrograms(ms []*media.Medium, repo *image.Repo) (good []string, bad []*media.ClientError, err error) {
	for _, m := range ms {
		g, b, err := m.CheckPrograms(repo.ClientSigner())
		if err != nil {
			return nil, nil, err
		}
		prefix := ""
		if len(ms) > 1 {
			prefix = m.Path + ": "
		}
		for _, p := range g {
			good = append(good, prefix+p)
		}
		for _, e := range b {
			e.Path = prefix + e.Path
			bad = append(bad, e)
		}
	}
	return good, bad, nil
}

// programsError is the error for programs that failed their signature
// check, naming them, or nil.
func programsError(bad []*media.ClientError) error {
	if len(bad) == 0 {
		return nil
	}
	var names []string
	for _, b := range bad {
		names = append(names, b.Path)
	}
	return integrityError{withHint(fmt.Errorf("%s on the medium failed the signature check: %s",
		plural(len(bad), "program file"), strings.Join(names, ", ")),
		"do not run these programs or type a passphrase into them; restore with a dvpc you trust, and write the medium again")}
}

// mediaDamage checks each medium for files that cannot be read.
func mediaDamage(ctx context.Context, ms []*media.Medium) ([]*media.Damage, error) {
	out := make([]*media.Damage, len(ms))
	for i, m := range ms {
		d, err := m.Damage(ctx)
		if err != nil {
			return nil, err
		}
		out[i] = d
	}
	return out, nil
}

// damagedFile says what is wrong with a file on a medium, naming it.
func damagedFile(f media.DamagedFile) string {
	var ce *media.CutError
	if errors.As(f.Err, &ce) {
		return ce.Error()
	}
	return f.Path + ": " + f.Err.Error()
}

// badBlob is a blob a snapshot needs that cannot be read.
type badBlob struct {
	digest image.Digest
	err    error
}

// unreadableBlobs returns, by snapshot ID, the blobs each snapshot needs
// that are cut off or unreadable. Blobs on a missing disc of a set are
// left to the missing-disc report.
func unreadableBlobs(ctx context.Context, src image.Source, snaps []*image.Snapshot) map[string][]badBlob {
	out := map[string][]badBlob{}
	checked := map[image.Digest]error{}
	for _, s := range snaps {
		for _, l := range append([]v1.Descriptor{s.Desc}, s.Layers...) {
			d, err := image.DigestFromHash(l.Digest)
			if err != nil {
				out[s.ID] = append(out[s.ID], badBlob{err: err})
				continue
			}
			err, ok := checked[d]
			if !ok {
				var n int64
				n, err = src.StatBlob(ctx, d)
				if err == nil && n != l.Size {
					err = &image.DigestError{Want: d, WantSize: l.Size, GotSize: n}
				}
				var md *media.MissingDiscError
				if errors.As(err, &md) {
					err = nil
				}
				checked[d] = err
			}
			if err != nil {
				out[s.ID] = append(out[s.ID], badBlob{digest: d, err: err})
			}
		}
	}
	return out
}
