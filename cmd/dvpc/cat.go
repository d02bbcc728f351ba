package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/urfave/cli/v2"
)

func catCommand(g *globals) *cli.Command {
	var home string
	return &cli.Command{
		Name:      "cat",
		Usage:     "print a snapshot's signed manifest, its SSH signature, or its decrypted config",
		ArgsUsage: "manifest|signature|config SNAP",
		Flags:     []cli.Flag{homeFlag(&home)},
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usageError{fmt.Errorf("cat takes manifest|signature|config and a snapshot")}
			}
			return runCat(c.Context, g, home, c.Args().Get(0), c.Args().Get(1))
		},
	}
}

func runCat(ctx context.Context, g *globals, home, what, spec string) error {
	repo, _, s, err := g.findSnapshot(ctx, home, spec, "")
	if err != nil {
		return err
	}
	defer repo.Close()
	switch what {
	case "manifest":
		_, err = g.stdout.Write(s.RawManifest())
	case "signature":
		var sig []byte
		if sig, err = repo.Signature(ctx, s); err == nil {
			_, err = g.stdout.Write(sig)
		}
	case "config":
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(s.Config)
	default:
		return usageError{fmt.Errorf("cat %q: want manifest, signature or config", what)}
	}
	return err
}
