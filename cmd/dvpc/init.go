package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/dvpc/dvpc/image"
)

func initCommand(g *globals) *cli.Command {
	var argonMiB uint
	return &cli.Command{
		Name:  "init",
		Usage: "create a store, its keys and one-time recovery codes",
		Flags: []cli.Flag{
			&cli.UintFlag{Name: "argon2-memory", Value: uint(image.DefaultArgon2.MemoryKiB >> 10), Usage: "MiB of memory for argon2id passphrase hashing (8 or more)", Destination: &argonMiB},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageError{withHint(fmt.Errorf("init takes no arguments"), "name the store with --store DIR")}
			}
			p := image.DefaultArgon2
			p.MemoryKiB = uint32(argonMiB << 10)
			return runInit(c.Context, g, p)
		},
	}
}

func runInit(ctx context.Context, g *globals, p image.Argon2Params) error {
	pass, err := readNewPassphrase(g.stderr, "DVPC_PASSPHRASE_FILE", "DVPC_PASSPHRASE")
	if err != nil {
		return err
	}
	lay, err := image.InitLayout(g.store)
	if err != nil {
		return err
	}
	codes, kf, err := image.Init(ctx, lay, pass, p)
	if err != nil {
		return err
	}
	if g.json {
		return json.NewEncoder(g.stdout).Encode(map[string]any{"store": g.store, "store_id": kf.StoreID, "recovery_codes": codes, "signing_key": kf.SigningPublic})
	}
	fmt.Fprintf(g.stdout, "Created store %s (id %s).\n\n", g.store, kf.StoreID)
	fmt.Fprintf(g.stdout, "Recovery codes: each one alone unlocks the store once, in place of the passphrase.\nWrite them down now and keep them apart from this computer; they are shown only this once.\n\n")
	for _, c := range codes {
		fmt.Fprintf(g.stdout, "  %s\n", c)
	}
	fmt.Fprintf(g.stdout, "\nIf the passphrase and every recovery code are lost, the data in this store is lost: nobody can decrypt it.\n")
	fmt.Fprintf(g.stdout, "Snapshot signing key: %s\n", kf.SigningPublic)
	return nil
}
