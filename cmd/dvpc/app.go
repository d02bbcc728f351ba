package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/urfave/cli/v2"

	"github.com/dvpc/dvpc/delta"
	"github.com/dvpc/dvpc/image"
	"github.com/dvpc/dvpc/overlay"
	"github.com/dvpc/dvpc/profiles"
)

// appsDirName is where a store directory keeps installed apps: beside its
// index.json, so that snapshots (which leave out every store) never hold
// app bytes.
const appsDirName = "apps"

func appCommand(g *globals) *cli.Command {
	var bins, settings, from cli.StringSlice
	var platform string
	return &cli.Command{
		Name:  "app",
		Usage: "the apps that follow you: OCI images pinned by digest in your profile, installed for this PC's platform",
		Subcommands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "pin REF (a tag or digest on a registry, or oci:DIR[:TAG]) for every platform it offers, and add it to the profile",
				ArgsUsage: "NAME REF",
				Flags: []cli.Flag{
					&cli.StringSliceFlag{Name: "bin", Usage: "link `NAME=PATH` (a path inside the image) into ~/.local/bin; default: the app's name for its entrypoint", Destination: &bins},
					&cli.StringSliceFlag{Name: "settings", Usage: "the app keeps its settings at `OS=PATH` on OS (linux, darwin, windows)", Destination: &settings},
				},
				Action: func(c *cli.Context) error {
					if c.NArg() != 2 {
						return usageError{errors.New("app add takes NAME and REF")}
					}
					b, err := keyValues("--bin", bins.Value())
					if err != nil {
						return err
					}
					s, err := keyValues("--settings", settings.Value())
					if err != nil {
						return err
					}
					return runAppAdd(c.Context, g, c.Args().Get(0), c.Args().Get(1), b, s)
				},
			},
			{
				Name:  "list",
				Usage: "list the profile's apps: reference, pinned digest, platforms, and whether each is installed here",
				Action: func(c *cli.Context) error {
					if c.NArg() != 0 {
						return usageError{errors.New("app list takes no arguments")}
					}
					return runAppList(c.Context, g)
				},
			},
			{
				Name:      "update",
				Usage:     "resolve the apps' references again and pin what they name now (all apps, or those named)",
				ArgsUsage: "[NAME...]",
				Action: func(c *cli.Context) error {
					return runAppUpdate(c.Context, g, c.Args().Slice())
				},
			},
			{
				Name:      "remove",
				Usage:     "drop an app from the profile and from this PC",
				ArgsUsage: "NAME",
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return usageError{errors.New("app remove takes one NAME")}
					}
					return runAppRemove(c.Context, g, c.Args().First())
				},
			},
			{
				Name:      "install",
				Usage:     "install the apps (all, or those named) for this PC's platform and link their binaries into ~/.local/bin",
				ArgsUsage: "[NAME...]",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "platform", Usage: "install for `OS/ARCH` instead of this PC's platform", Destination: &platform},
					&cli.StringSliceFlag{Name: "from", Usage: "also read the apps' blobs from `MEDIUM` (a disc or key made --with-apps), before their registries", Destination: &from},
				},
				Action: func(c *cli.Context) error {
					return runAppInstall(c.Context, g, c.Args().Slice(), platform, from.Value())
				},
			},
			{
				Name:      "run",
				Usage:     "run an installed app's entrypoint, with ARGS after --; it needs no network",
				ArgsUsage: "NAME [-- ARGS...]",
				Action: func(c *cli.Context) error {
					if c.NArg() < 1 {
						return usageError{errors.New("app run takes NAME, then -- and the app's arguments")}
					}
					args := c.Args().Slice()
					rest := args[1:]
					if len(rest) > 0 && rest[0] == "--" {
						rest = rest[1:]
					}
					return runAppRun(c.Context, g, args[0], rest)
				},
			},
		},
	}
}

// keyValues reads repeated NAME=VALUE flags.
func keyValues(flag string, vs []string) (map[string]string, error) {
	m := map[string]string{}
	for _, v := range vs {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" || val == "" {
			return nil, usageError{fmt.Errorf("%s %q: want NAME=VALUE", flag, v)}
		}
		m[k] = val
	}
	return m, nil
}

// loadProfile reads the store's profile: its current one, else the one
// the newest snapshot carries (a store a login filled), else an empty one.
// openProfile unlocks the store and reads its profile; the caller closes
// the repository.
func (g *globals) openProfile(ctx context.Context) (*image.Repo, *profiles.Profile, error) {
	repo, err := g.openRepo(ctx)
	if err != nil {
		return nil, nil, err
	}
	p, err := loadProfile(ctx, repo)
	if err != nil {
		repo.Close()
		return nil, nil, err
	}
	return repo, p, nil
}

func loadProfile(ctx context.Context, repo *image.Repo) (*profiles.Profile, error) {
	doc, _, err := repo.Profile(ctx)
	if errors.Is(err, image.ErrNotFound) {
		snaps, _, serr := repo.Snapshots(ctx)
		if serr != nil {
			return nil, serr
		}
		for i := len(snaps) - 1; i >= 0 && errors.Is(err, image.ErrNotFound); i-- {
			doc, err = repo.SnapshotProfile(ctx, snaps[i])
		}
		if errors.Is(err, image.ErrNotFound) {
			return &profiles.Profile{Version: profiles.ProfileVersion}, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("read profile: %w", err)
	}
	return profiles.ParseProfile(doc)
}

func saveProfile(ctx context.Context, repo *image.Repo, p *profiles.Profile) error {
	doc, err := p.Marshal()
	if err != nil {
		return err
	}
	_, err = repo.SaveProfile(ctx, doc)
	return err
}

func runAppAdd(ctx context.Context, g *globals, name, ref string, bins, settings map[string]string) error {
	if err := profiles.CheckName(name); err != nil {
		return usageError{err}
	}
	repo, p, err := g.openProfile(ctx)
	if err != nil {
		return err
	}
	defer repo.Close()
	if _, err := p.App(name); err == nil {
		return usageError{fmt.Errorf("app %s is already in the profile; `dvpc app update %[1]s` pins what its reference names now, `dvpc app remove %[1]s` drops it", name)}
	}
	res, err := profiles.Resolve(ctx, ref)
	if err != nil {
		return err
	}
	a, err := profiles.NewApp(name, res, bins, settings, time.Now())
	if err != nil {
		return usageError{err}
	}
	p.Set(a)
	if err := saveProfile(ctx, repo, p); err != nil {
		return err
	}
	if g.json {
		return json.NewEncoder(g.stdout).Encode(a)
	}
	var plats []string
	for _, pi := range a.Platforms {
		plats = append(plats, pi.Platform)
	}
	fmt.Fprintf(g.stdout, "added %s: %s pinned at %s (%s); the next snapshot carries it, `dvpc app install %s` installs it here\n",
		name, ref, a.Digest, strings.Join(plats, ", "), name)
	return nil
}

// appStatus is one line of `app list`.
type appStatus struct {
	profiles.App
	Installed       bool   `json:"installed"`
	InstalledDigest string `json:"installed_digest,omitempty"`
}

func runAppList(ctx context.Context, g *globals) error {
	repo, p, err := g.openProfile(ctx)
	if err != nil {
		return err
	}
	defer repo.Close()
	apps := g.appsDir()
	var rows []appStatus
	for _, a := range p.Apps {
		st := appStatus{App: a}
		if _, h, err := a.For(profiles.Current()); err == nil {
			if _, err := profiles.LoadInstalled(apps, h); err == nil {
				st.Installed, st.InstalledDigest = true, h.String()
			}
		}
		rows = append(rows, st)
	}
	if g.json {
		if rows == nil {
			rows = []appStatus{}
		}
		return json.NewEncoder(g.stdout).Encode(rows)
	}
	if len(rows) == 0 {
		fmt.Fprintln(g.stdout, "no apps; `dvpc app add NAME REF` adds one")
		return nil
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tREF\tDIGEST\tPLATFORMS\tINSTALLED")
	for _, r := range rows {
		var plats []string
		for _, pi := range r.Platforms {
			plats = append(plats, pi.Platform)
		}
		inst := "no"
		if r.Installed {
			inst = "yes (" + profiles.Current().String() + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, r.Ref, shortDigest(r.Digest), strings.Join(plats, ","), inst)
	}
	return tw.Flush()
}

func shortDigest(d string) string {
	if len(d) > len("sha256:")+12 {
		return d[:len("sha256:")+12]
	}
	return d
}

// appChange is one platform's pin before and after an update.
type appChange struct {
	App      string `json:"app"`
	Platform string `json:"platform"`
	Old      string `json:"old,omitempty"`
	New      string `json:"new,omitempty"`
}

func runAppUpdate(ctx context.Context, g *globals, names []string) error {
	repo, p, err := g.openProfile(ctx)
	if err != nil {
		return err
	}
	defer repo.Close()
	todo, err := pickApps(p, names)
	if err != nil {
		return err
	}
	var changes []appChange
	changed := false
	for _, a := range todo {
		res, err := profiles.Resolve(ctx, a.Ref)
		if err != nil {
			return fmt.Errorf("update %s: %w", a.Name, err)
		}
		n, err := profiles.NewApp(a.Name, res, a.Bins, a.Settings, time.Now())
		if err != nil {
			return fmt.Errorf("update %s: %w", a.Name, err)
		}
		old := map[string]string{}
		for _, pi := range a.Platforms {
			old[pi.Platform] = pi.Digest
		}
		for _, pi := range n.Platforms {
			changes = append(changes, appChange{App: a.Name, Platform: pi.Platform, Old: old[pi.Platform], New: pi.Digest})
			delete(old, pi.Platform)
		}
		for plat, d := range old {
			changes = append(changes, appChange{App: a.Name, Platform: plat, Old: d})
		}
		if n.Digest != a.Digest {
			changed = true
			p.Set(n)
		}
	}
	if changed {
		if err := saveProfile(ctx, repo, p); err != nil {
			return err
		}
	}
	if g.json {
		if changes == nil {
			changes = []appChange{}
		}
		return json.NewEncoder(g.stdout).Encode(changes)
	}
	for _, c := range changes {
		switch {
		case c.Old == c.New:
			fmt.Fprintf(g.stdout, "%s %s: unchanged %s\n", c.App, c.Platform, c.New)
		case c.Old == "":
			fmt.Fprintf(g.stdout, "%s %s: new platform %s\n", c.App, c.Platform, c.New)
		case c.New == "":
			fmt.Fprintf(g.stdout, "%s %s: no longer offered (was %s)\n", c.App, c.Platform, c.Old)
		default:
			fmt.Fprintf(g.stdout, "%s %s: %s -> %s\n", c.App, c.Platform, c.Old, c.New)
		}
	}
	if changed {
		fmt.Fprintln(g.stdout, "the profile now pins the new digests; `dvpc app install` installs them here")
	}
	return nil
}

// pickApps returns the apps named, or all of them.
func pickApps(p *profiles.Profile, names []string) ([]profiles.App, error) {
	if len(names) == 0 {
		return p.Apps, nil
	}
	var out []profiles.App
	for _, n := range names {
		a, err := p.App(n)
		if err != nil {
			return nil, err
		}
		out = append(out, *a)
	}
	return out, nil
}

func runAppRemove(ctx context.Context, g *globals, name string) error {
	repo, p, err := g.openProfile(ctx)
	if err != nil {
		return err
	}
	defer repo.Close()
	a, err := p.App(name)
	if err != nil {
		return err
	}
	gone := *a
	if err := p.Remove(name); err != nil {
		return err
	}
	if err := saveProfile(ctx, repo, p); err != nil {
		return err
	}
	// From this PC: its links, then its directories.
	apps := g.appsDir()
	for _, pi := range gone.Platforms {
		d := filepath.Join(apps, strings.TrimPrefix(pi.Digest, "sha256:"))
		profiles.Unlink(profiles.BinDir(), d)
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("remove %s: %w", name, err)
		}
	}
	fmt.Fprintf(g.stdout, "removed %s from the profile and from this PC; earlier snapshots still name it\n", name)
	return nil
}

// installResult is one app's install.
type installResult struct {
	App      string   `json:"app"`
	Platform string   `json:"platform"`
	Digest   string   `json:"digest,omitempty"`
	Bins     []string `json:"bins,omitempty"`
	Skipped  []string `json:"skipped,omitempty"`   // special files left out
	Rewrote  []string `json:"rewritten,omitempty"` // symlinks made to stay inside
	Refused  []string `json:"refused,omitempty"`   // blobs a place offered corrupt, taken elsewhere
	Error    string   `json:"error,omitempty"`
}

func runAppInstall(ctx context.Context, g *globals, names []string, platform string, from []string) error {
	plat := profiles.Current()
	if platform != "" {
		var err error
		if plat, err = profiles.ParsePlatform(platform); err != nil {
			return usageError{err}
		}
	}
	repo, p, err := g.openProfile(ctx)
	if err != nil {
		return err
	}
	defer repo.Close()
	todo, err := pickApps(p, names)
	if err != nil {
		return err
	}
	places, err := g.appInstallPlaces(from)
	if err != nil {
		return err
	}
	var results []installResult
	var errs []error
	for _, a := range todo {
		r, err := installApp(ctx, g.appsDir(), a, plat, plat == profiles.Current(), places)
		if err != nil {
			r.Error = err.Error()
			errs = append(errs, err)
		}
		results = append(results, r)
	}
	if g.json {
		if results == nil {
			results = []installResult{}
		}
		if err := json.NewEncoder(g.stdout).Encode(results); err != nil {
			return err
		}
	} else {
		for _, r := range results {
			for _, s := range r.Refused {
				fmt.Fprintf(g.stderr, "dvpc: %s: refused %s\n", r.App, s)
			}
			switch {
			case r.Error != "":
				fmt.Fprintf(g.stdout, "%s (%s): not installed: %s\n", r.App, r.Platform, r.Error)
			default:
				fmt.Fprintf(g.stdout, "installed %s (%s, %s)", r.App, r.Platform, r.Digest)
				if len(r.Bins) > 0 {
					fmt.Fprintf(g.stdout, "; linked %s", strings.Join(r.Bins, ", "))
				}
				fmt.Fprintln(g.stdout)
				for _, s := range r.Skipped {
					fmt.Fprintf(g.stdout, "  left out %s\n", s)
				}
				for _, s := range r.Rewrote {
					fmt.Fprintf(g.stdout, "  kept inside the app: %s\n", s)
				}
			}
		}
	}
	switch {
	case len(errs) == 0:
		return nil
	case len(errs) < len(todo):
		return partialError{fmt.Errorf("%d of %d apps not installed: %w", len(errs), len(todo), errors.Join(errs...))}
	}
	return errors.Join(errs...)
}

// appInstallPlaces are where `app install` looks for the apps' blobs
// before their registries: the store's own blobs, the media named, then
// the media a session of this store was logged in from that are still
// attached.
func (g *globals) appInstallPlaces(from []string) ([]profiles.BlobPlace, error) {
	var ps []overlay.Place
	if len(from) > 0 {
		named, err := g.loginPlaces(from, nil, false)
		if err != nil {
			return nil, err
		}
		ps = append(ps, named...)
	}
	sessions, _ := overlay.Sessions(g.store)
	for _, s := range sessions {
		for _, u := range s.Places {
			if u.Kind == overlay.KindMirror || u.Kind == overlay.KindCache || !isMediumArg(u.Name) || slices.Contains(from, u.Name) {
				continue
			}
			if m, err := g.loginPlaces([]string{u.Name}, nil, false); err == nil {
				ps = append(ps, m...)
			}
		}
	}
	return appPlaces(g.store, ps), nil
}

// installApp installs one app for plat and, when link, links its
// binaries. Its blobs come from places (nearest first: the store's own
// blobs, attached media), then from its registry.
func installApp(ctx context.Context, apps string, a profiles.App, plat profiles.Platform, link bool, places []profiles.BlobPlace) (installResult, error) {
	r := installResult{App: a.Name, Platform: plat.String()}
	bins := ""
	if link {
		bins = profiles.BinDir()
	}
	f := &profiles.Fetcher{Places: places, OnRefused: func(x profiles.Refusal) { r.Refused = append(r.Refused, x.String()) }}
	res, err := profiles.InstallApp(ctx, a, plat, apps, bins, f)
	if res != nil {
		r.Digest, r.Bins = res.Digest.String(), res.Links
		if res.Installed != nil {
			r.Skipped, r.Rewrote = res.Installed.Report.Skipped, res.Installed.Report.Rewritten
		}
	}
	return r, err
}

// endpointPlace reads an app's blobs from a place a login reads the
// store from (an attached medium).
type endpointPlace struct{ ep delta.Endpoint }

func (p endpointPlace) String() string { return p.ep.String() }

func (p endpointPlace) OpenBlob(ctx context.Context, h v1.Hash) (io.ReadCloser, error) {
	d, err := image.ParseDigest(h.String())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", fs.ErrNotExist, err)
	}
	b, err := p.ep.OpenBlob(ctx, d)
	if errors.Is(err, image.ErrNotFound) {
		return nil, fmt.Errorf("%w: %w", fs.ErrNotExist, err)
	}
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(b, 0, b.Size()), b}, nil
}

// appsDir is where this store keeps installed apps.
func (g *globals) appsDir() string { return filepath.Join(g.store, appsDirName) }

// appExitError is an app that ran and exited non-zero: dvpc exits with
// its code.
type appExitError struct {
	app  string
	code int
}

func (e *appExitError) Error() string {
	return fmt.Sprintf("app %s exited with status %d", e.app, e.code)
}

func runAppRun(ctx context.Context, g *globals, name string, args []string) error {
	repo, err := g.openRepo(ctx)
	if err != nil {
		return err
	}
	p, err := loadProfile(ctx, repo)
	repo.Close()
	if err != nil {
		return err
	}
	a, err := p.App(name)
	if err != nil {
		return err
	}
	pi, h, err := a.For(profiles.Current())
	if err != nil {
		return err
	}
	in, err := profiles.LoadInstalled(g.appsDir(), h)
	if err != nil {
		return withHint(fmt.Errorf("app %s is not installed on this PC: %w", name, err), "`dvpc app install "+name+"` installs it")
	}
	if len(pi.Entrypoint) == 0 {
		return fmt.Errorf("app %s names no entrypoint", name)
	}
	exe, err := in.Path(pi.Entrypoint[0])
	if err != nil {
		return fmt.Errorf("run %s: %w", name, err)
	}
	cmd := exec.CommandContext(ctx, exe, append(pi.Entrypoint[1:len(pi.Entrypoint):len(pi.Entrypoint)], args...)...)
	ownRoot := needsOwnRoot(exe)
	if ownRoot {
		env := append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}, in.Env...)
		if cmd = ownRootCommand(ctx, in.Root, pi.Entrypoint, args, env, in.WorkingDir); cmd == nil {
			return withHint(fmt.Errorf("run %s: %s needs the app's own root file system", name, pi.Entrypoint[0]), ownRootHint)
		}
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = g.stdin, g.stdout, g.stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Exited() {
		return &appExitError{app: name, code: ee.ExitCode()}
	}
	if err != nil && ownRoot {
		return withHint(fmt.Errorf("run %s in its own root file system: %w", name, err), ownRootHint)
	}
	if err != nil {
		return fmt.Errorf("run %s: %w", name, err)
	}
	return nil
}
