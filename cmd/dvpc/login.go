package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dvpc/dvpc/cmd/internal/timespec"
	"github.com/dvpc/dvpc/delta"
	"github.com/dvpc/dvpc/image"
	"github.com/dvpc/dvpc/media"
	"github.com/dvpc/dvpc/overlay"
	"github.com/dvpc/dvpc/profiles"
)

type loginOpts struct {
	from, mirrors []string
	to, at, home  string
	insecure      bool
	ephemeral     bool
	ephemeralSet  bool
	signer        string
	noApps        bool
	goos          string
}

func loginCommand(g *globals) *cli.Command {
	var o loginOpts
	var from, mirrors cli.StringSlice
	return &cli.Command{
		Name: "login",
		Usage: "log in on this PC: the newest snapshot of your home from the attached media and the mirrors, " +
			"fetching only what no medium holds, materialised in a directory that `dvpc sync` keeps in sync",
		ArgsUsage: "[SNAPSHOT]",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "from", Usage: "read `MEDIUM` (a DVD or USB image, a device, a mounted disc; discs of a set comma-separated); repeatable. Without it, attached media are looked for", Destination: &from},
			&cli.StringSliceFlag{Name: "mirror", Usage: "also read the mirror `URL` (HOST/PATH or oci:DIR), beside those recorded on the media; repeatable", Destination: &mirrors},
			&cli.StringFlag{Name: "to", Usage: "materialise the home in `DIR` (default: the snapshotted path when it is empty or an earlier session)", Destination: &o.to},
			&cli.StringFlag{Name: "at", Usage: "the snapshot current at `TIME`", Destination: &o.at},
			homeFlag(&o.home),
			&cli.BoolFlag{Name: "ephemeral", Usage: "a PC that is not yours: put the home in RAM when it fits (the default when this PC has no store of yours)", Destination: &o.ephemeral},
			&cli.BoolFlag{Name: "insecure", Usage: "allow plain HTTP to non-loopback registries", Destination: &o.insecure},
			&cli.StringFlag{Name: "signer", Usage: "trust the key of `SHA256:FINGERPRINT` without unlocking first", Destination: &o.signer},
			&cli.BoolFlag{Name: "no-apps", Usage: "do not install the profile's apps", Destination: &o.noApps},
			&cli.StringFlag{Name: "os", Value: runtime.GOOS, Usage: "the system (linux, darwin, windows) whose apps read the home: their settings are put where it keeps them", Destination: &o.goos},
			hostFlag(g),
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return usageError{errors.New("login takes at most one snapshot")}
			}
			o.from, o.mirrors = from.Value(), mirrors.Value()
			o.ephemeralSet = c.IsSet("ephemeral")
			for _, m := range o.from {
				if !isMediumArg(m) {
					return usageError{fmt.Errorf("login --from %s: no such medium", m)}
				}
			}
			if o.at != "" && c.NArg() > 0 {
				return usageError{errors.New("login: give a snapshot or --at, not both")}
			}
			return runLogin(c.Context, g, o, c.Args().First())
		},
	}
}

// loginPlaces opens the media and the mirrors a login or sync reads,
// media first.
func (g *globals) loginPlaces(from, urls []string, insecure bool) ([]overlay.Place, error) {
	var places []overlay.Place
	for _, m := range from {
		// Named by absolute paths, so that the session finds them again
		// from any directory.
		parts := strings.Split(strings.TrimPrefix(m, delta.LocalPrefix), ",")
		for i, part := range parts {
			if abs, err := filepath.Abs(part); err == nil {
				parts[i] = abs
			}
		}
		p := strings.Join(parts, ",")
		src, ms, err := media.OpenSet(parts)
		if err != nil {
			return nil, fmt.Errorf("open medium %s: %w", p, err)
		}
		g.closers = append(g.closers, func() {
			for _, m := range ms {
				m.Close()
			}
		})
		pl := overlay.Place{Kind: overlay.KindMedium, Endpoint: delta.NewSourceEndpoint(p, src)}
		switch ms[0].Kind {
		case "iso":
			pl.Kind = overlay.KindDVD
		case "usb":
			pl.Kind = overlay.KindUSB
			// An image or device that can be written is read and written
			// in place: sync delivers to it ([deliverToKeys]).
			if len(ms) == 1 {
				if key, err := openUSBStore(p); err == nil {
					g.closers = append(g.closers, func() { key.Close() })
					pl.Endpoint = key
				}
			}
		case "dir":
			// A mounted medium: a USB key when its store can be written.
			if len(ms) == 1 && writableDir(filepath.Join(p, media.StoreDir)) {
				pl.Kind, pl.WriteDir = overlay.KindUSB, filepath.Join(p, media.StoreDir)
			}
		}
		places = append(places, pl)
	}
	// The USB key before the DVD: it is the nearer and newer.
	var usb, rest []overlay.Place
	for _, p := range places {
		if p.Kind == overlay.KindUSB {
			usb = append(usb, p)
		} else {
			rest = append(rest, p)
		}
	}
	places = append(usb, rest...)
	seen := map[string]bool{}
	for _, u := range urls {
		u = strings.TrimPrefix(u, registryPrefix)
		if seen[u] {
			continue
		}
		seen[u] = true
		ep, err := delta.OpenEndpoint(u, delta.RegistryOptions{Timeout: g.timeout, Insecure: insecure})
		if err != nil {
			return nil, usageError{fmt.Errorf("mirror %s: %w", u, err)}
		}
		places = append(places, overlay.Place{Kind: overlay.KindMirror, Endpoint: ep})
	}
	return places, nil
}

// openUSBStore opens the store on a USB image or device for writing in
// place, named by its absolute path so that a later sync finds it again.
func openUSBStore(p string) (*media.USBStore, error) {
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	return media.OpenUSBStore(p)
}

// loginCache finds or makes this PC's store for the store the places hold:
// the person's own store when it is that store or none exists yet, else
// $XDG_DATA_HOME/dvpc/stores/STORE_ID. A store the login creates is marked
// ephemeral.
func (g *globals) loginCache(ctx context.Context, storeID string) (dir string, created bool, err error) {
	own := g.store
	if lay, err := image.OpenLayout(own); err == nil {
		kf, kerr := image.ReadKeyFile(ctx, lay)
		if kerr != nil || kf.StoreID == storeID {
			return own, false, nil
		}
		dir = filepath.Join(cachesDir(), storeID)
	} else {
		dir = own
	}
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err == nil {
		return dir, false, nil
	}
	if _, err := image.InitLayout(dir); err != nil {
		return "", false, fmt.Errorf("create this PC's cache of the store: %w", err)
	}
	if err := overlay.MarkEphemeral(dir); err != nil {
		return "", false, err
	}
	return dir, true, nil
}

// sessionUnlock unlocks once and opens every later source with the same
// keys, so the person types the passphrase once per command.
type sessionUnlock struct {
	g      *globals
	secret []byte
}

func (u *sessionUnlock) open(ctx context.Context, src image.Source) (*image.Repo, error) {
	if u.secret != nil {
		if repo, err := image.OpenUnlocked(ctx, src, nil, u.secret); err == nil {
			return repo, nil
		}
		// Another epoch's key blob: unlock it too.
	}
	repo, err := u.g.unlock(ctx, src)
	if err != nil {
		return nil, err
	}
	if u.secret == nil {
		u.secret = repo.Keys().Export()
		u.g.closers = append(u.g.closers, func() { clear(u.secret) })
	}
	return repo, nil
}

func runLogin(ctx context.Context, g *globals, o loginOpts, spec string) error {
	defer func() { clear(g.secret); g.secret = nil }()
	if isMedium(g.store) {
		return usageError{fmt.Errorf("%s is read-only: login keeps its cache in a store directory (--store names it)", g.store)}
	}
	from := o.from
	if len(from) == 0 {
		from = attachedMedia()
		for _, m := range from {
			fmt.Fprintf(g.stderr, "dvpc: found the attached medium %s\n", m)
		}
	}
	places, err := g.loginPlaces(from, o.mirrors, o.insecure)
	if err != nil {
		return err
	}
	var at time.Time
	if o.at != "" {
		if at, err = timespec.Parse(o.at, time.Now()); err != nil {
			return usageError{err}
		}
	}

	// Which store: the key the places offer, settled before anything is
	// written.
	var eps []delta.Endpoint
	for _, p := range places {
		eps = append(eps, p.Endpoint)
	}
	places, eps = g.dropForeignPlaces(ctx, places, eps, o.to)
	var kf *image.KeyFile
	if len(eps) > 0 {
		if kf, err = g.settleLoginKey(ctx, eps, o.signer); err != nil {
			if errors.Is(err, image.ErrNotFound) {
				return withHint(err, "check the mirror URLs (HOST[:PORT]/PATH) and that the disc or key is attached")
			}
			return err
		}
	}
	var storeID string
	if kf != nil {
		storeID = kf.StoreID
	} else if lay, err := image.OpenLayout(g.store); err == nil {
		k, err := image.ReadKeyFile(ctx, lay)
		if err != nil {
			return err
		}
		storeID = k.StoreID
	} else {
		return usageError{withHint(errors.New("login: no medium is attached and no mirror was named"),
			"give the disc or key with --from MEDIUM, or a mirror with --mirror HOST/PATH")}
	}
	if o.to != "" && !dirUsable(o.to) {
		// A directory that is someone's: nothing is written, not even the
		// cache, unless it is an earlier session of this store.
		if _, _, err := g.findSession(o.to); !errors.Is(err, overlay.ErrNoSession) {
			if err != nil {
				return err
			}
		} else {
			abs, _ := filepath.Abs(o.to)
			return usageError{withHint(fmt.Errorf("login into %s: %w", abs, overlay.ErrDirInUse), "name an empty directory with --to DIR")}
		}
	}
	cacheDir, created, err := g.loginCache(ctx, storeID)
	if err != nil {
		return err
	}
	cache, err := image.OpenLayout(cacheDir)
	if err != nil {
		return err
	}
	if !created && !hasKeys(ctx, cache) && kf == nil {
		return fmt.Errorf("login: the cache %s has no key and no place offers one", cacheDir)
	}
	ephemeral := overlay.IsEphemeral(cacheDir)
	if created && cacheDir != g.store {
		fmt.Fprintf(g.stderr, "dvpc: this PC's cache of the store is %s; give --store %s to other commands\n", cacheDir, cacheDir)
	}

	unl := &sessionUnlock{g: g}
	// The mirrors recorded in the newest snapshot the media hold, and the
	// cache's own.
	if ms, err := delta.LoadMirrors(cacheDir); err == nil {
		for _, m := range ms.Mirrors {
			if !hasPlace(places, m.URL) {
				ep, err := delta.OpenEndpoint(m.URL, delta.RegistryOptions{Timeout: g.timeout, Insecure: m.Insecure})
				if err == nil {
					places = append(places, overlay.Place{Kind: overlay.KindMirror, Endpoint: ep, Health: mirrorHealth(m), Speed: m.Rate()})
				}
			}
		}
	}
	if recorded, err := recordedOnMedia(ctx, places, unl); err != nil {
		return err
	} else {
		for _, u := range recorded {
			if hasPlace(places, u) {
				continue
			}
			ep, err := delta.OpenEndpoint(u, delta.RegistryOptions{Timeout: g.timeout, Insecure: o.insecure})
			if err != nil {
				fmt.Fprintf(g.stderr, "dvpc: not using the recorded mirror %s: %v\n", u, err)
				continue
			}
			places = append(places, overlay.Place{Kind: overlay.KindMirror, Endpoint: ep})
		}
	}

	ram := ""
	if (ephemeral && !o.ephemeralSet) || o.ephemeral {
		ram = ramDir()
	}
	// The profile's apps install for this PC while the home is written.
	var apps appInstalls
	var targetOS string
	var targetProfile []byte
	onTarget := func(snap *image.Snapshot, profile []byte) {
		targetOS, targetProfile = snap.Config.OS, profile
		if !o.noApps && profile != nil {
			apps.start(ctx, profile, filepath.Join(cacheDir, appsDirName), appPlaces(cacheDir, places))
		}
	}
	attached := mediaStates(places)
	var prog image.Progress
	stop := startProgressOf(g.stderr, "login:", "files", "written", &prog)
	rep, err := overlay.Login(ctx, overlay.LoginOptions{
		OnTarget: onTarget,
		Cache:    cache, CacheDir: cacheDir, Ephemeral: ephemeral, Places: places, Key: kf,
		Unlock: unl.open, Home: o.home, Spec: spec, At: at, Dir: o.to, RAMDir: ram,
		Snapshot: g.sessionSnapshotOptions(cacheDir), Protect: append(g.liveStores(), cacheDir), Progress: &prog,
		OnError: func(p string, err error) { fmt.Fprintf(g.stderr, "dvpc: could not restore %s: %v\n", p, err) },
	})
	stop()
	installed := apps.wait()
	printFailures(g, serious(rep.Pull.Failures))
	for _, p := range rep.Pull.Refused {
		fmt.Fprintf(g.stderr, "dvpc: refused %v\n", p)
	}
	if err != nil {
		if errors.Is(err, overlay.ErrDirInUse) {
			return usageError{withHint(err, "name an empty directory with --to DIR")}
		}
		if m := goneMedium(attached); m != "" {
			return withHint(integrityError{fmt.Errorf("login: the medium %s was removed or cut short while it was read: %w", m, err)},
				"attach it again and run the same login: it goes on from where it stopped")
		}
		return err
	}
	if rep.PullErr != nil {
		fmt.Fprintf(g.stderr, "dvpc: no place could be read (%v); logged in from this PC's cache alone\n", rep.PullErr)
	}
	if err := adoptPlaces(cacheDir, places, rep.Pull.Mirrors); err != nil {
		return err
	}
	if targetProfile != nil {
		if p, err := profiles.ParseProfile(targetProfile); err == nil {
			placed, err := placeSettings(p, targetOS, o.goos, rep.Session.Dir)
			for _, l := range placed {
				fmt.Fprintf(g.stderr, "settings for %s\n", l)
			}
			if err != nil {
				fmt.Fprintf(g.stderr, "dvpc: %v\n", err)
			}
		}
	}
	for _, a := range installed {
		for _, r := range a.res.Refused {
			fmt.Fprintf(g.stderr, "dvpc: app %s: refused %s\n", a.res.App, r)
		}
		if a.err != nil {
			fmt.Fprintf(g.stderr, "dvpc: app %s was not installed: %v; the login goes on without it\n", a.res.App, a.err)
		}
	}
	return printLogin(g, rep, cacheDir, installed)
}

// hasPlace reports whether a mirror URL is among the places.
func hasPlace(places []overlay.Place, url string) bool {
	for _, p := range places {
		if p.Endpoint.String() == url || strings.TrimPrefix(p.Endpoint.String(), registryPrefix) == url {
			return true
		}
	}
	return false
}

// adoptPlaces records the mirrors of a login in the cache's mirror list,
// so that sync pushes to them and `mirror list` shows what waits; each
// holds what the login found on it.
func adoptPlaces(cacheDir string, places []overlay.Place, uses []delta.MirrorUse) error {
	ms, err := delta.LoadMirrors(cacheDir)
	if err != nil {
		return err
	}
	changed := false
	for _, p := range places {
		if p.Kind != overlay.KindMirror {
			continue
		}
		url := p.Endpoint.String()
		if ms.Find(url) == nil {
			if err := ms.Add(delta.Mirror{URL: url}); err != nil {
				continue
			}
			changed = true
		}
		m := ms.Find(url)
		for _, u := range uses {
			if u.Mirror == url && u.Reachable && u.Newest != "" && (m.Pushed == "" || m.Waits(u.Newest)) {
				m.Pushed, changed = u.Newest, true
			}
		}
	}
	if !changed {
		return nil
	}
	return ms.Save(cacheDir)
}

// dirUsable reports whether a login may write dir without asking: it does
// not exist, or it is empty.
func dirUsable(dir string) bool {
	ents, err := os.ReadDir(dir)
	return errors.Is(err, os.ErrNotExist) || err == nil && len(ents) == 0
}

// settleLoginKey is the key the places offer, settled as pull settles it:
// the one the passphrase, a recovery code or the unlock agent opens.
func (g *globals) settleLoginKey(ctx context.Context, eps []delta.Endpoint, signer string) (*image.KeyFile, error) {
	return g.settlePullKey(ctx, eps, signer)
}

// dropForeignPlaces leaves out the places that hold another store than the
// one this login continues (the earlier session's in dir, else the
// person's own store), and names them. With no store known yet, the
// passphrase decides, and the pull names the places of other stores.
func (g *globals) dropForeignPlaces(ctx context.Context, places []overlay.Place, eps []delta.Endpoint, dir string) ([]overlay.Place, []delta.Endpoint) {
	want := ""
	stores := []string{g.store}
	if dir != "" {
		if st, _, err := g.findSession(dir); err == nil {
			stores = []string{st}
		}
	}
	for _, st := range stores {
		if lay, err := image.OpenLayout(st); err == nil {
			if kf, err := image.ReadKeyFile(ctx, lay); err == nil {
				want = kf.StoreID
				break
			}
		}
	}
	if want == "" || len(eps) == 0 {
		return places, eps
	}
	cands, _ := delta.KeyCandidates(ctx, eps)
	if !slices.ContainsFunc(cands, func(c delta.KeyCandidate) bool { return c.KeyFile.StoreID == want }) {
		return places, eps
	}
	foreign := map[string]string{}
	for _, c := range cands {
		if c.KeyFile.StoreID != want {
			for _, src := range c.Sources {
				foreign[src] = c.KeyFile.StoreID
			}
		}
	}
	var keptPlaces []overlay.Place
	var keptEps []delta.Endpoint
	for i, p := range places {
		if id, ok := foreign[p.Endpoint.String()]; ok {
			fmt.Fprintf(g.stderr, "dvpc: %s holds another store (%s), not this one (%s): it is not used\n", p.Endpoint, id, want)
			continue
		}
		keptPlaces, keptEps = append(keptPlaces, p), append(keptEps, eps[i])
	}
	return keptPlaces, keptEps
}

// serious leaves out the blobs a place lacked: a disc lacks what came
// after it, and the next place served them.
func serious(fs []delta.MirrorFailure) []delta.MirrorFailure {
	var out []delta.MirrorFailure
	for _, f := range fs {
		if !errors.Is(f.Err, image.ErrNotFound) || f.Digest == (image.Digest{}) {
			out = append(out, f)
		}
	}
	return out
}

// mediumState is how a medium looked when a login opened it: its size
// (an image or a device), or whether it held a store (a mounted medium).
type mediumState struct {
	path  string
	size  int64
	store bool
}

// mediaStates notes how the media among the places look now.
func mediaStates(places []overlay.Place) []mediumState {
	var out []mediumState
	for _, p := range places {
		if p.Kind == overlay.KindMirror {
			continue
		}
		for _, m := range strings.Split(p.Endpoint.String(), ",") {
			out = append(out, mediumStateOf(m))
		}
	}
	return out
}

// appInstalls installs the apps of a login's profile for this PC, each in
// its own goroutine, beside the home's materialisation.
type appInstalls struct {
	wg  sync.WaitGroup
	mu  sync.Mutex
	out []appInstalled
}

type appInstalled struct {
	res installResult
	err error
}

// appPlaces are where a login looks for the apps' blobs before their
// registries: the cache's own blobs, then the attached media.
func appPlaces(cacheDir string, places []overlay.Place) []profiles.BlobPlace {
	out := []profiles.BlobPlace{profiles.DirPlace(cacheDir)}
	for _, p := range places {
		if p.Kind != overlay.KindMirror {
			out = append(out, endpointPlace{p.Endpoint})
		}
	}
	return out
}

func (a *appInstalls) start(ctx context.Context, profile []byte, appsDir string, places []profiles.BlobPlace) {
	p, err := profiles.ParseProfile(profile)
	if err != nil {
		a.out = append(a.out, appInstalled{res: installResult{App: "(profile)"}, err: err})
		return
	}
	plat := profiles.Current()
	for _, app := range p.Apps {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			r, err := installApp(ctx, appsDir, app, plat, true, places)
			a.mu.Lock()
			a.out = append(a.out, appInstalled{res: r, err: err})
			a.mu.Unlock()
		}()
	}
}

func (a *appInstalls) wait() []appInstalled {
	a.wg.Wait()
	slices.SortFunc(a.out, func(x, y appInstalled) int { return strings.Compare(x.res.App, y.res.App) })
	return a.out
}

func mediumStateOf(p string) mediumState {
	st := mediumState{path: p}
	if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
		st.size = fi.Size()
		if f, err := os.Open(p); err == nil {
			// A device's size is where it ends.
			if n, err := f.Seek(0, io.SeekEnd); err == nil {
				st.size = n
			}
			f.Close()
		}
	}
	for _, l := range []string{filepath.Join(p, media.StoreDir, "oci-layout"), filepath.Join(p, "oci-layout")} {
		if _, err := os.Stat(l); err == nil {
			st.store = true
		}
	}
	return st
}

// goneMedium names the first of the media noted that has since gone,
// become shorter or lost its store; "" when none has.
func goneMedium(before []mediumState) string {
	for _, b := range before {
		now := mediumStateOf(b.path)
		if _, err := os.Stat(b.path); err != nil || now.size < b.size || b.store && !now.store {
			return b.path
		}
	}
	return ""
}

// cachesDir holds this PC's caches of stores other than the person's own,
// one per store ID, beside the default store: $XDG_DATA_HOME/dvpc/stores.
func cachesDir() string { return filepath.Join(filepath.Dir(defaultStore()), "stores") }
