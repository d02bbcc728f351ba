package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/dvpc/dvpc/image"
)

func verifyCommand(g *globals) *cli.Command {
	var readData bool
	return &cli.Command{
		Name:  "verify",
		Usage: "check every signature, manifest, index and tree; with --read-data every blob too; never modifies",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "read-data", Usage: "read every blob: digests and every chunk's seal", Destination: &readData},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageError{fmt.Errorf("verify takes no arguments")}
			}
			return runVerify(c.Context, g, readData)
		},
	}
}

func runVerify(ctx context.Context, g *globals, readData bool) error {
	repo, err := g.openRepo(ctx)
	if err != nil {
		return err
	}
	defer repo.Close()
	var prog image.Progress
	stop := startProgress(g.stderr, "verify:", &prog)
	rep, err := repo.Verify(ctx, image.VerifyOptions{ReadData: readData, Progress: &prog})
	stop()
	if err != nil {
		return err
	}
	// A medium's programs are checked too: its page tells people to run
	// them.
	_, badPrograms, err := checkPrograms(g.media, repo)
	if err != nil {
		return err
	}
	if g.json {
		probs := []map[string]any{}
		for _, p := range rep.Problems {
			m := map[string]any{"error": p.Err.Error(), "snapshots": p.Snapshots}
			if !p.Blob.IsZero() {
				m["blob"] = p.Blob.String()
			}
			probs = append(probs, m)
		}
		for _, p := range badPrograms {
			probs = append(probs, map[string]any{"error": p.Error(), "program": p.Path})
		}
		json.NewEncoder(g.stdout).Encode(map[string]any{"snapshots": rep.Snapshots, "trees": rep.Trees, "blobs": rep.Blobs,
			"bytes_read": rep.BytesRead, "read_data": readData, "problems": probs})
	} else {
		for _, p := range rep.Problems {
			fmt.Fprintf(g.stdout, "PROBLEM %v\n", p)
		}
		for _, p := range badPrograms {
			fmt.Fprintf(g.stdout, "BAD PROGRAM %v\n", p)
		}
		what := "structure"
		if readData {
			what = "structure and data"
		}
		fmt.Fprintf(g.stdout, "checked %s of %s, %s, %s (%s read): %s\n",
			what, plural(rep.Snapshots, "snapshot"), plural(rep.Trees, "tree"), plural(rep.Blobs, "blob"), humanBytes(rep.BytesRead), plural(len(rep.Problems), "problem"))
	}
	if len(rep.Problems) > 0 {
		err := fmt.Errorf("verify found %s", plural(len(rep.Problems), "problem"))
		// Its own hint: the general one for damaged data advises running
		// verify --read-data, which this may be.
		hint := "`dvpc verify --read-data` also reads every blob"
		if readData {
			hint = "`dvpc repair` fetches intact copies of the damaged blobs from the mirrors and media"
		}
		return integrityError{withHint(err, hint)}
	}
	return programsError(badPrograms)
}
