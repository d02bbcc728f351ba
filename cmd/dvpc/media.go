package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dvpc/dvpc/cmd/internal/timespec"
	"github.com/dvpc/dvpc/image"
	"github.com/dvpc/dvpc/media"
)

type mediaOpts struct {
	out       string
	device    string
	capacity  string
	size      string
	snapshots string
	clients   string
	span      bool
	yes       bool
	noClients bool
	details   bool
}

func mediaCommand(g *globals) *cli.Command {
	var o mediaOpts
	common := []cli.Flag{
		&cli.StringFlag{Name: "snapshots", Value: "all", Usage: "which snapshots to carry: latest, all, or since DATE", Destination: &o.snapshots},
		&cli.StringFlag{Name: "clients", Usage: "also carry the dvpc-* client binaries in `DIR` (see make clients)", Destination: &o.clients},
		&cli.BoolFlag{Name: "no-clients", Usage: "carry no dvpc programs, only the store and its pages", Destination: &o.noClients},
		&cli.BoolFlag{Name: "public-details", Usage: "list the snapshots (times, host, file counts, sizes) on the medium's pages, for anyone who finds it to read", Destination: &o.details},
	}
	return &cli.Command{
		Name:  "media",
		Usage: "write the store to a DVD image or a USB key",
		Subcommands: []*cli.Command{
			{
				Name:  "iso",
				Usage: "write an ISO 9660 image (Rock Ridge, Joliet) for a DVD or BD",
				Flags: append([]cli.Flag{
					&cli.StringFlag{Name: "out", Usage: "the image `FILE` to write (not overwritten)", Destination: &o.out, Required: true},
					&cli.StringFlag{Name: "capacity", Value: "dvd", Usage: "dvd, dvd-dl, bd, bd-dl or a SIZE such as 700M", Destination: &o.capacity},
					&cli.BoolFlag{Name: "span", Usage: "when it does not fit, write a numbered set of discs FILE-1.iso, FILE-2.iso, …", Destination: &o.span},
				}, common...),
				Action: func(c *cli.Context) error { return runMediaISO(c.Context, g, o) },
			},
			{
				Name:  "usb",
				Usage: "write a GPT disk image (EFI partition + FAT32 data partition DVPC) to a file or a USB key",
				Flags: append([]cli.Flag{
					&cli.StringFlag{Name: "out", Usage: "the image `FILE` to write (not overwritten)", Destination: &o.out},
					&cli.StringFlag{Name: "device", Usage: "write to the block device `DEV` (erases it; needs --yes)", Destination: &o.device},
					&cli.StringFlag{Name: "size", Usage: "image size, such as 8G (default: what the content needs)", Destination: &o.size},
					&cli.BoolFlag{Name: "yes", Usage: "confirm erasing --device", Destination: &o.yes},
				}, common...),
				Action: func(c *cli.Context) error { return runMediaUSB(c.Context, g, o) },
			},
		},
	}
}

// chooseSnapshots applies --snapshots.
func chooseSnapshots(h *image.History, which string) ([]*image.Snapshot, error) {
	snaps := h.Snapshots()
	switch {
	case which == "" || which == "all":
		return snaps, nil
	case which == "latest":
		if len(snaps) == 0 {
			return nil, image.ErrNoSnapshot
		}
		// The newest state of every home: each head, so a disc made after
		// a snapshot of ~/Music still carries the home.
		var out []*image.Snapshot
		for _, home := range h.Homes() {
			out = append(out, h.Heads(home)...)
		}
		slices.SortFunc(out, func(a, b *image.Snapshot) int { return cmp.Compare(a.Config.Seq, b.Config.Seq) })
		return out, nil
	case strings.HasPrefix(which, "since "):
		t, err := timespec.Parse(strings.TrimPrefix(which, "since "), time.Now())
		if err != nil {
			return nil, usageError{err}
		}
		var out []*image.Snapshot
		for _, s := range snaps {
			if !s.Time().Before(t) {
				out = append(out, s)
			}
		}
		return out, nil
	}
	return nil, usageError{fmt.Errorf("--snapshots %q: want latest, all, or \"since DATE\"", which)}
}

func (g *globals) mediaPlan(ctx context.Context, o mediaOpts, medium string) (*image.Repo, *media.Plan, error) {
	repo, hist, err := g.loadHistory(ctx)
	if err != nil {
		return nil, nil, err
	}
	chosen, err := chooseSnapshots(hist, o.snapshots)
	if err != nil {
		repo.Close()
		return nil, nil, err
	}
	popts := media.PlanOptions{ClientsDir: o.clients, Medium: medium, PublicDetails: o.details}
	if !o.noClients {
		if popts.Self, err = os.Executable(); err != nil {
			repo.Close()
			return nil, nil, err
		}
	} else {
		popts.ClientsDir = ""
	}
	plan, err := media.NewPlan(ctx, repo, chosen, popts)
	if err != nil {
		repo.Close()
		return nil, nil, err
	}
	if len(plan.Page.Clients) == 1 && !o.noClients {
		fmt.Fprintf(g.stderr, "the %s carries only the dvpc program for %s/%s; `make clients` and --clients DIR add the others (its pages say how to get them)\n",
			medium, runtime.GOOS, runtime.GOARCH)
	}
	return repo, plan, nil
}

func runMediaISO(ctx context.Context, g *globals, o mediaOpts) error {
	capacity, err := media.ParseCapacity(o.capacity)
	if err != nil {
		return usageError{err}
	}
	repo, plan, err := g.mediaPlan(ctx, o, media.MediumDVD)
	if err != nil {
		return err
	}
	defer repo.Close()
	discs, err := plan.ISOSet(capacity, o.span)
	var tl *media.ErrTooLarge
	if errors.As(err, &tl) {
		return usageError{withHint(err, "")} // it says what to do
	}
	if err != nil {
		return err
	}
	outs := []string{o.out}
	if len(discs) > 1 {
		base := strings.TrimSuffix(o.out, ".iso")
		outs = nil
		for i := range discs {
			outs = append(outs, fmt.Sprintf("%s-%d.iso", base, i+1))
		}
	}
	for _, p := range outs {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s already exists; remove it or choose another --out", p)
		}
	}
	for i, d := range discs {
		start := time.Now()
		if err := media.WriteISO(ctx, outs[i], d); err != nil {
			return err
		}
		fmt.Fprintf(g.stderr, "wrote %s (%s, %s of files) in %.1fs\n", outs[i], d.Label, humanBytes(d.Size()), time.Since(start).Seconds())
		fmt.Fprintln(g.stdout, outs[i])
	}
	return nil
}

func runMediaUSB(ctx context.Context, g *globals, o mediaOpts) error {
	if (o.out == "") == (o.device == "") {
		return usageError{fmt.Errorf("media usb needs exactly one of --out FILE and --device DEV")}
	}
	var size int64
	if o.size != "" {
		var err error
		if size, err = media.ParseSize(o.size); err != nil {
			return usageError{err}
		}
	}
	repo, plan, err := g.mediaPlan(ctx, o, media.MediumUSB)
	if err != nil {
		return err
	}
	defer repo.Close()
	esp, data, err := plan.USBContent()
	if err != nil {
		return err
	}
	start := time.Now()
	if o.device != "" {
		err = media.WriteUSBDevice(ctx, o.device, esp, data, o.yes, g.stderr)
	} else {
		err = media.WriteUSB(ctx, o.out, esp, data, size)
	}
	if err != nil {
		return err
	}
	target := o.out + o.device
	fmt.Fprintf(g.stderr, "wrote %s (%s of store, %s on the EFI partition) in %.1fs\n", target, humanBytes(data.Size()), humanBytes(esp.Size()), time.Since(start).Seconds())
	fmt.Fprintln(g.stdout, target)
	return nil
}
