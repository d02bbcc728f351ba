package main

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dvpc/dvpc/image"
)

func initCommand(g *globals) *cli.Command {
	var argonMiB uint
	return &cli.Command{
		Name:  "init",
		Usage: "create a store, its keys and one-time recovery codes",
		Flags: []cli.Flag{
			&cli.UintFlag{Name: "argon2-memory", Usage: fmt.Sprintf("MiB of memory for argon2id passphrase hashing (%d or more; default: calibrated to about %s on this PC)", image.Argon2MinMemoryKiB>>10, argon2Target), Destination: &argonMiB},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageError{withHint(fmt.Errorf("init takes no arguments"), "name the store with --store DIR")}
			}
			var p image.Argon2Params
			if c.IsSet("argon2-memory") {
				p = image.DefaultArgon2
				p.MemoryKiB = uint32(min(argonMiB, 1<<20) << 10)
			}
			return runInit(c.Context, g, p)
		},
	}
}

// argon2Target is how long init's passphrase hashing should take on the
// PC that runs it: once per session, with the unlock agent.
const argon2Target = 500 * time.Millisecond

// runInit makes a store; p zero means calibrate argon2id on this PC.
func runInit(ctx context.Context, g *globals, p image.Argon2Params) error {
	pass, err := readNewPassphrase(g.stderr, "DVPC_PASSPHRASE_FILE", "DVPC_PASSPHRASE")
	if err != nil {
		return err
	}
	if p == (image.Argon2Params{}) {
		p = image.CalibrateArgon2(argon2Target, runtime.NumCPU(), nil)
	}
	if err := p.ValidateNew(); err != nil {
		return usageError{err}
	}
	warnWeakPassphrase(g, pass)
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
