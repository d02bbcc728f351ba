package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/dvpc/dvpc/image"
)

func keyCommand(g *globals) *cli.Command {
	var principal string
	return &cli.Command{
		Name:  "key",
		Usage: "manage the store's keys",
		Subcommands: []*cli.Command{
			{
				Name:  "passwd",
				Usage: "set a new passphrase (from DVPC_NEW_PASSPHRASE_FILE, DVPC_NEW_PASSPHRASE or the terminal) and start a new key epoch the old one cannot open",
				Action: func(c *cli.Context) error {
					return runKeyPasswd(c.Context, g)
				},
			},
			{
				Name:  "rotate",
				Usage: "start a new key epoch: new signing and sealing keys for everything written from now on",
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return usageError{errors.New("key rotate takes no arguments")}
					}
					return runKeyRotate(c.Context, g, nil)
				},
			},
			{
				Name:      "burn",
				Usage:     "retire recovery codes (lost or exposed) and start a new key epoch they cannot open",
				ArgsUsage: "N [N...]",
				Action: func(c *cli.Context) error {
					if c.NArg() == 0 {
						return usageError{errors.New("key burn needs the number of each recovery code to retire")}
					}
					var ids []string
					for _, a := range c.Args().Slice() {
						n, err := strconv.Atoi(a)
						if err != nil || n < 1 || n > 99 {
							return usageError{fmt.Errorf("key burn: %q is not a recovery code number", a)}
						}
						ids = append(ids, strconv.Itoa(n))
					}
					return runKeyRotate(c.Context, g, ids)
				},
			},
			{
				Name:  "signer",
				Usage: "print the snapshot signing key as an OpenSSH allowed-signers line, for ssh-keygen -Y verify",
				Flags: []cli.Flag{&cli.StringFlag{Name: "principal", Usage: "identity to name in the line (default: dvpc-<store id>)", Destination: &principal}},
				Action: func(c *cli.Context) error {
					return runKeySigner(c.Context, g, principal)
				},
			},
		},
	}
}

func runKeyPasswd(ctx context.Context, g *globals) error {
	repo, err := g.openRepo(ctx)
	if err != nil {
		return err
	}
	defer repo.Close()
	pass, err := readNewPassphrase(g.stderr, "DVPC_NEW_PASSPHRASE_FILE", "DVPC_NEW_PASSPHRASE")
	if err != nil {
		return err
	}
	warnWeakPassphrase(g, pass)
	// A passphrase key below today's floor is raised to it.
	var p image.Argon2Params
	if repo.KeyFile().Argon2.Weak() && image.Argon2FloorEnforced() {
		p = image.DefaultArgon2
	}
	codes, err := repo.SetPassphrase(ctx, pass, p)
	clear(pass)
	if err != nil {
		return err
	}
	keepRotated(g, repo)
	fmt.Fprintf(g.stderr, "passphrase changed; key epoch %d started: the old passphrase opens no copy of the new key blob, and nothing written from now on\n", repo.Keys().Epoch())
	return printNewCodes(g, codes)
}

func runKeyRotate(ctx context.Context, g *globals, burn []string) error {
	repo, err := g.openRepo(ctx)
	if err != nil {
		return err
	}
	defer repo.Close()
	for _, id := range burn {
		if !repo.KeyFile().HasRecovery(id) {
			return usageError{fmt.Errorf("key burn: recovery code %s does not open this store (already used or retired)", id)}
		}
	}
	codes, err := repo.Rotate(ctx, image.RotateOptions{Burn: burn})
	if errors.Is(err, image.ErrLegacyKeys) {
		return withHint(err, "run `dvpc key passwd`: it starts the first key epoch and gives new recovery codes")
	}
	if err != nil {
		return err
	}
	keepRotated(g, repo)
	if g.json {
		return json.NewEncoder(g.stdout).Encode(map[string]any{"epoch": repo.Keys().Epoch(), "burnt": burn,
			"recovery_codes_left": repo.KeyFile().RecoveryLeft(), "signing_key": repo.KeyFile().SigningPublic})
	}
	for _, id := range burn {
		fmt.Fprintf(g.stderr, "recovery code %s retired\n", id)
	}
	fmt.Fprintf(g.stderr, "key epoch %d started; %s left. Sync your mirrors and media so that they carry it.\n",
		repo.Keys().Epoch(), plural(repo.KeyFile().RecoveryLeft(), "recovery code"))
	return printNewCodes(g, codes)
}

// keepRotated hands the new epoch's keys to the unlock agent, which held
// the old ones.
func keepRotated(g *globals, repo *image.Repo) {
	if ag := g.agent(); ag != nil && agentListening(ag.sock) {
		ag.keep(repo.Keys())
	}
}

func printNewCodes(g *globals, codes []string) error {
	if len(codes) == 0 {
		return nil
	}
	fmt.Fprintf(g.stdout, "New recovery codes: the old ones open nothing written from now on.\nWrite them down now; they are shown only this once.\n\n")
	for _, c := range codes {
		fmt.Fprintf(g.stdout, "  %s\n", c)
	}
	return nil
}

func runKeySigner(ctx context.Context, g *globals, principal string) error {
	src, err := g.openSource()
	if err != nil {
		return err
	}
	kf, err := image.ReadKeyFile(ctx, src)
	if err != nil {
		return err
	}
	if principal == "" {
		principal = "dvpc-" + kf.StoreID
	}
	// Every epoch's key, the current one first: each signed the snapshots
	// of its epoch. Which key may sign which sequence numbers is dvpc's
	// rule (`dvpc verify`); ssh-keygen checks each signature alone.
	epochs := kf.Epochs()
	for i := len(epochs) - 1; i >= 0; i-- {
		if _, err := fmt.Fprintln(g.stdout, image.AllowedSigners(principal, epochs[i].Key)); err != nil {
			return err
		}
	}
	fmt.Fprintf(g.stderr, "signer %s (a new PC can trust it with `dvpc pull --signer %[1]s URL...`)\n", kf.Signer())
	return nil
}
