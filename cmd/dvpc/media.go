package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/urfave/cli/v2"

	"github.com/dvpc/dvpc/cmd/internal/timespec"
	"github.com/dvpc/dvpc/image"
	"github.com/dvpc/dvpc/media"
	"github.com/dvpc/dvpc/profiles"
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
	withApps  string // "", "all" or a list of platforms
}

func mediaCommand(g *globals) *cli.Command {
	var o mediaOpts
	common := []cli.Flag{
		&cli.StringFlag{Name: "snapshots", Value: "all", Usage: "which snapshots to carry: latest, all, or since DATE", Destination: &o.snapshots},
		&cli.StringFlag{Name: "clients", Usage: "also carry the dvpc-* client binaries in `DIR` (see make clients)", Destination: &o.clients},
		&cli.BoolFlag{Name: "no-clients", Usage: "carry no dvpc programs, only the store and its pages", Destination: &o.noClients},
		&cli.StringFlag{Name: "with-apps", Usage: "also carry the images of the profile's apps, for every platform it pins or for `PLATFORM,...` (such as linux/amd64), so a login with no network installs them; the page then shows which apps the medium carries", Destination: &o.withApps},
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
	if o.withApps != "" {
		if err := g.addApps(ctx, repo, plan, o.withApps); err != nil {
			repo.Close()
			return nil, nil, err
		}
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

// withAppsFlag lets --with-apps go without a value: given none (the next
// argument is a flag, a name that is no platform, or nothing), it takes
// "all".
func withAppsFlag(args []string) []string {
	out := make([]string, 0, len(args)+1)
	for i := 0; i < len(args); i++ {
		a := args[i]
		out = append(out, a)
		if a == "--" {
			return append(out, args[i+1:]...)
		}
		if a != "--with-apps" && a != "-with-apps" {
			continue
		}
		if i+1 < len(args) && platformList(args[i+1]) {
			continue
		}
		out[len(out)-1] = a + "=all"
	}
	return out
}

// platformList reports whether s is "all" or a list of OS/ARCH platforms.
func platformList(s string) bool {
	if s == "all" {
		return true
	}
	for _, p := range strings.Split(s, ",") {
		if _, err := profiles.ParsePlatform(p); err != nil {
			return false
		}
	}
	return true
}

// addApps puts the images of the profile's apps (manifests, configs,
// layers, by digest) into the medium's store beside its own blobs, for
// the platforms which names ("all": every one the profile pins), and
// lists the apps on the medium's page. The blobs come from the store's
// own blobs, else the apps' registries, each checked against its digest.
func (g *globals) addApps(ctx context.Context, repo *image.Repo, plan *media.Plan, which string) error {
	var want []profiles.Platform
	if which != "all" {
		for _, s := range strings.Split(which, ",") {
			p, err := profiles.ParsePlatform(s)
			if err != nil {
				return usageError{fmt.Errorf("--with-apps: %w", err)}
			}
			want = append(want, p)
		}
	}
	p, err := loadProfile(ctx, repo)
	if err != nil {
		return err
	}
	if len(p.Apps) == 0 {
		return usageError{withHint(errors.New("--with-apps: the profile has no apps"), "`dvpc app add NAME REF` adds one")}
	}
	have := map[string]bool{}
	for _, e := range plan.Store {
		have[e.Path] = true
	}
	f := &profiles.Fetcher{Places: []profiles.BlobPlace{profiles.DirPlace(g.store)},
		OnRefused: func(r profiles.Refusal) { fmt.Fprintf(g.stderr, "dvpc: refused %s\n", r) }}
	matched := make([]bool, len(want))
	for _, a := range p.Apps {
		pa := media.PageApp{Name: a.Name, Ref: a.Ref}
		for _, pi := range a.Platforms {
			plat, err := profiles.ParsePlatform(pi.Platform)
			if err != nil {
				return fmt.Errorf("--with-apps: app %s: %w", a.Name, err)
			}
			take := want == nil
			for i, w := range want {
				if plat.Matches(w) {
					take, matched[i] = true, true
				}
			}
			if !take {
				continue
			}
			d, err := v1.NewHash(pi.Digest)
			if err != nil {
				return fmt.Errorf("--with-apps: app %s: %w", a.Name, err)
			}
			blobs, err := f.ImageBlobs(ctx, a.Ref, d)
			if err != nil {
				return fmt.Errorf("--with-apps: app %s (%s): %w", a.Name, pi.Platform, err)
			}
			for _, b := range blobs {
				e := appBlobEntry(ctx, f, a.Ref, b)
				if !have[e.Path] {
					have[e.Path] = true
					plan.Store = append(plan.Store, e)
				}
			}
			pa.Platforms = append(pa.Platforms, pi.Platform)
		}
		if len(pa.Platforms) > 0 {
			plan.Page.Apps = append(plan.Page.Apps, pa)
		}
	}
	for i, m := range matched {
		if !m {
			return usageError{fmt.Errorf("--with-apps: no app of the profile is pinned for %s", want[i])}
		}
	}
	return nil
}

// appBlobEntry is one of an app's blobs in the medium's store. It is
// fetched, and checked, into a temporary file when the medium is written.
func appBlobEntry(ctx context.Context, f *profiles.Fetcher, ref string, b v1.Descriptor) media.Entry {
	return media.Entry{
		Path: path.Join(media.StoreDir, "blobs", "sha256", b.Digest.Hex),
		Size: b.Size,
		Open: func() (io.ReadCloser, error) {
			tmp, err := os.CreateTemp("", "dvpc-app-blob-")
			if err != nil {
				return nil, err
			}
			if err := f.ToFile(ctx, ref, b, "blob", tmp); err != nil {
				tmp.Close()
				os.Remove(tmp.Name())
				return nil, fmt.Errorf("app blob %s: %w", b.Digest, err)
			}
			return &tempBlob{tmp}, nil
		},
	}
}

// tempBlob is a fetched blob that goes away once read.
type tempBlob struct{ *os.File }

func (t *tempBlob) Close() error {
	err := t.File.Close()
	os.Remove(t.Name())
	return err
}
