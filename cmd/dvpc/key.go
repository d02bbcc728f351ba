package main

import (
	"context"
	"fmt"

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
				Usage: "change the passphrase (new one from DVPC_NEW_PASSPHRASE_FILE, DVPC_NEW_PASSPHRASE or the terminal); data is not re-encrypted",
				Action: func(c *cli.Context) error {
					return runKeyPasswd(c.Context, g)
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
	if err := repo.SetPassphrase(ctx, pass); err != nil {
		return err
	}
	fmt.Fprintln(g.stderr, "passphrase changed; the old one no longer unlocks the store")
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
	if _, err = fmt.Fprintln(g.stdout, image.AllowedSigners(principal, kf.SigningPublic)); err != nil {
		return err
	}
	fmt.Fprintf(g.stderr, "signer %s (a new PC can trust it with `dvpc pull --signer %[1]s URL...`)\n", kf.Signer())
	return nil
}
