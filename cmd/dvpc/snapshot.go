package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dvpc/dvpc/delta"
	"github.com/dvpc/dvpc/image"
)

type snapshotOpts struct {
	excludes      []string
	host          string
	noParent      bool
	includeCaches bool
	name          string
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
			&cli.BoolFlag{Name: "include-caches", Usage: "keep cache directories (CACHEDIR.TAG, ~/.cache) that are left out by default", Destination: &o.includeCaches},
			&cli.StringFlag{Name: "name", Usage: "the home the snapshot belongs to (default: \"home\" for your home directory, else the directory's name)", Destination: &o.name},
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
	var report image.SnapshotReport
	var nerr int
	opts := image.SnapshotOptions{
		Host: o.host, Excludes: o.excludes, NoParent: o.noParent, Home: o.name, Progress: &prog, Mirrors: mirrors.URLs(),
		Report: &report, CacheDirs: image.UserCacheDirs(), IncludeCaches: o.includeCaches,
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
		return explainStopped(ctx, err)
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
			"home": snap.Home, "parents": snap.Parents, "seq": snap.Config.Seq,
			"files": st.Files, "dirs": st.Dirs, "bytes": st.Bytes, "bytes_read": st.BytesRead,
			"bytes_new": st.BytesNew, "errors": st.Errors, "duration_s": dur.Seconds(), "queued_for": queued,
			"left_out": leftOutJSON(report.LeftOut), "reused_packs": report.Adopted.Packs, "reused_bytes": report.Adopted.Bytes,
		})
	} else {
		printReport(g.stderr, report)
		fmt.Fprintf(g.stderr, "snapshot %s of %s (home %s): %s, %s, %s; read %s, added %s, in %.1fs\n",
			snap.ID, snap.Config.Path, snap.Home, plural(st.Files, "file"), plural(st.Dirs, "dir"), humanBytes(st.Bytes), humanBytes(st.BytesRead), humanBytes(st.BytesNew), dur.Seconds())
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

// printReport says what the snapshot left out, one line per store and a
// summary, and which packs of an interrupted snapshot it reused.
func printReport(w io.Writer, r image.SnapshotReport) {
	if r.Adopted.Packs > 0 {
		fmt.Fprintf(w, "reused %s (%s) written by an interrupted snapshot\n", snapPlural(r.Adopted.Packs, "pack", "packs"), humanBytes(r.Adopted.Bytes))
	}
	var stores, caches int
	var files, bytes int64
	exact := true
	for _, lo := range r.LeftOut {
		switch lo.Kind {
		case image.LeftOutStore:
			stores++
			which := "another dvpc store"
			if lo.ThisStore {
				which = "the store this snapshot is written to"
			}
			fmt.Fprintf(w, "left out %s: %s\n", lo.Path, which)
		case image.LeftOutCache:
			caches++
			files += lo.Files
			bytes += lo.Bytes
			exact = exact && lo.Exact
		}
	}
	var parts []string
	if stores > 0 {
		parts = append(parts, snapPlural(stores, "dvpc store", "dvpc stores"))
	}
	if caches > 0 {
		size := humanBytes(bytes)
		if !exact {
			size = "over " + size
		}
		parts = append(parts, fmt.Sprintf("%s (%s in %s); --include-caches keeps them",
			snapPlural(caches, "cache directory", "cache directories"), size, snapPlural(int(files), "file", "files")))
	}
	if len(parts) > 0 {
		fmt.Fprintf(w, "left out: %s\n", strings.Join(parts, ", "))
	}
}

func leftOutJSON(los []image.LeftOut) []map[string]any {
	out := []map[string]any{}
	for _, lo := range los {
		m := map[string]any{"path": lo.Path, "kind": lo.Kind.String()}
		if lo.Kind == image.LeftOutStore {
			m["this_store"] = lo.ThisStore
		} else {
			m["files"], m["bytes"], m["exact"] = lo.Files, lo.Bytes, lo.Exact
		}
		out = append(out, m)
	}
	return out
}

// explainStopped says, for a snapshot that was interrupted or failed, what
// it leaves behind for the next one.
func explainStopped(ctx context.Context, err error) error {
	var se *image.StoppedError
	if !errors.As(err, &se) {
		return err
	}
	interrupted := ctx.Err() != nil || errors.Is(err, context.Canceled)
	if se.Packs == 0 {
		if interrupted {
			return stoppedError{msg: "interrupted before any data was stored", err: err}
		}
		return err
	}
	verb := "are"
	if se.Packs == 1 {
		verb = "is"
	}
	kept := fmt.Sprintf("%s (%s) already written %s kept; the next snapshot reuses them",
		snapPlural(se.Packs, "pack", "packs"), humanBytes(se.Bytes), verb)
	if interrupted {
		return stoppedError{msg: "interrupted: " + kept, err: err}
	}
	return stoppedError{msg: fmt.Sprintf("%v; %s", se.Err, kept), err: err}
}

// stoppedError replaces the message of an error it keeps for classify.
type stoppedError struct {
	msg string
	err error
}

func (e stoppedError) Error() string { return e.msg }
func (e stoppedError) Unwrap() error { return e.err }

func snapPlural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
