package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dvpc/dvpc/delta"
	"github.com/dvpc/dvpc/image"
	"github.com/dvpc/dvpc/media"
	"github.com/dvpc/dvpc/overlay"
	"github.com/dvpc/dvpc/profiles"
)

// recordedOnMedia lists the mirrors recorded in the newest snapshot each
// medium among the places holds.
func recordedOnMedia(ctx context.Context, places []overlay.Place, unl *sessionUnlock) ([]string, error) {
	var out []string
	for _, p := range places {
		if p.Kind == overlay.KindMirror {
			continue
		}
		repo, err := unl.open(ctx, p.Endpoint)
		if err != nil {
			return nil, fmt.Errorf("medium %s: %w", p.Endpoint, err)
		}
		hist, _, err := repo.History(ctx)
		repo.Close()
		if err != nil {
			return nil, fmt.Errorf("medium %s: %w", p.Endpoint, err)
		}
		snaps := hist.Snapshots()
		if len(snaps) == 0 {
			continue
		}
		for _, u := range snaps[len(snaps)-1].Config.Mirrors {
			if !slices.Contains(out, u) {
				out = append(out, u)
			}
		}
	}
	return out, nil
}

// ramDir is the RAM-backed directory an ephemeral login puts the home in,
// "" when there is none: in $XDG_RUNTIME_DIR (the user's own), else in
// /dev/shm under a directory of the user's that nobody else may enter.
func ramDir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" && inRAM(d) {
		return filepath.Join(d, "dvpc", "homes")
	}
	if inRAM("/dev/shm") {
		own := filepath.Join("/dev/shm", fmt.Sprintf("dvpc-%d", os.Getuid()))
		if ownPrivateDir(own) {
			return filepath.Join(own, "homes")
		}
	}
	return ""
}

// sessionSnapshotOptions is the template of the snapshots a session takes.
func (g *globals) sessionSnapshotOptions(cacheDir string) image.SnapshotOptions {
	var urls []string
	if ms, err := delta.LoadMirrors(cacheDir); err == nil {
		urls = ms.URLs()
	}
	// A merge interrupted by a crash may leave its temporary directory.
	excl := []string{"/" + overlay.MergeTempPrefix + "*"}
	return image.SnapshotOptions{Host: g.host, Mirrors: urls, CacheDirs: image.UserCacheDirs(), Excludes: excl,
		OnError:       func(p string, err error) { fmt.Fprintf(g.stderr, "dvpc: skipped %s: %v\n", p, err) },
		OnWarning:     func(p string, msg string) { fmt.Fprintf(g.stderr, "dvpc: %s: %s\n", p, msg) },
		MergeProfiles: profiles.MergeDocs,
	}
}

// placesJSON is what --json says of each place.
func placesJSON(us []overlay.PlaceUse) []map[string]any {
	out := []map[string]any{}
	for _, u := range us {
		e := map[string]any{"place": u.Name, "kind": u.Kind, "blobs": u.Blobs, "bytes": u.Bytes, "seconds": u.Duration.Seconds()}
		if u.Error != "" {
			e["error"] = u.Error
		}
		out = append(out, e)
	}
	return out
}

func mergesJSON(ms []overlay.MergeReport) []map[string]any {
	out := []map[string]any{}
	for _, m := range ms {
		cs := []map[string]string{}
		for _, c := range m.Conflicts {
			cs = append(cs, map[string]string{"path": c.Path, "copy": c.Copy, "kind": c.Kind})
		}
		out = append(out, map[string]any{"taken": len(m.Taken), "kept": m.Kept, "conflicts": cs})
	}
	return out
}

func printMerges(g *globals, ms []overlay.MergeReport) {
	for _, m := range ms {
		if len(m.Taken) > 0 {
			fmt.Fprintf(g.stdout, "merged %s from the other side\n", plural(len(m.Taken), "change"))
		}
		for _, k := range m.Kept {
			fmt.Fprintf(g.stdout, "kept %s: deleted on one side, changed on the other\n", k)
		}
		for _, c := range m.Conflicts {
			fmt.Fprintf(g.stdout, "conflict: %s changed on both sides; the other side's version is %s\n", c.Path, c.Copy)
		}
	}
}

func printLogin(g *globals, rep *overlay.LoginReport, cacheDir string, apps []appInstalled) error {
	s := rep.Snapshot
	if g.json {
		aj := []map[string]any{}
		for _, a := range apps {
			e := map[string]any{"app": a.res.App, "platform": a.res.Platform, "digest": a.res.Digest, "bins": a.res.Bins}
			if a.err != nil {
				e["error"] = a.err.Error()
			}
			aj = append(aj, e)
		}
		res := map[string]any{"snapshot": s.ID, "ref": s.Ref, "home": s.Home, "dir": rep.Session.Dir, "cache": cacheDir,
			"ephemeral": rep.Session.Ephemeral, "updated": rep.Updated, "places": placesJSON(rep.Places), "apps": aj,
			"merges": mergesJSON(rep.Merges), "seconds": rep.Elapsed.Seconds(), "bad_places": rep.Pull.BadMirrors()}
		if rep.Local != nil {
			res["local_snapshot"] = rep.Local.ID
		}
		return json.NewEncoder(g.stdout).Encode(res)
	}
	verb := "logged in"
	if rep.Updated {
		verb = "brought up to date"
	}
	fmt.Fprintf(g.stdout, "%s: %s holds snapshot %s of home %s (%s)\n", verb, rep.Session.Dir, s.ID, s.Home, s.Time().Local().Format(time.DateTime))
	if rep.Local != nil {
		fmt.Fprintf(g.stdout, "your edits since the last sync were kept, as snapshot %s\n", rep.Local.ID)
	}
	for _, u := range rep.Places {
		line := fmt.Sprintf("  %-6s %s: %s (%s) in %.1fs", u.Kind, u.Name, plural(u.Blobs, "blob"), humanBytes(u.Bytes), u.Duration.Seconds())
		if u.Error != "" {
			line += "; " + u.Error
		}
		fmt.Fprintln(g.stdout, line)
	}
	printMerges(g, rep.Merges)
	for _, a := range apps {
		if a.err == nil {
			fmt.Fprintf(g.stdout, "app %s installed for %s (%s)\n", a.res.App, a.res.Platform, strings.Join(a.res.Bins, ", "))
		}
	}
	if bad := rep.Pull.BadMirrors(); len(bad) > 0 {
		fmt.Fprintf(g.stdout, "places that served bad data or bad signatures: %s\n", strings.Join(bad, ", "))
	}
	fmt.Fprintf(g.stdout, "done in %.1fs; `dvpc sync` keeps it in sync, `dvpc logout` ends the session\n", rep.Elapsed.Seconds())
	return nil
}

// findSession finds the session of dir ("" for the one the current
// directory is in, or the only one) in the person's store or in this PC's
// caches of other stores.
func (g *globals) findSession(dir string) (string, *overlay.Session, error) {
	var stores []string
	if storeKind(g.store) == kindDir {
		stores = append(stores, g.store)
	}
	base := cachesDir()
	if ents, err := os.ReadDir(base); err == nil {
		for _, e := range ents {
			stores = append(stores, filepath.Join(base, e.Name()))
		}
	}
	type found struct {
		store string
		s     *overlay.Session
	}
	var all []found
	for _, st := range stores {
		ss, err := overlay.Sessions(st)
		if err != nil {
			return "", nil, err
		}
		for _, s := range ss {
			all = append(all, found{st, s})
		}
	}
	want := dir
	if want == "" {
		want = workDir()
	}
	abs, err := filepath.Abs(want)
	if err != nil {
		return "", nil, err
	}
	var best *found
	for i, f := range all {
		if f.s.Dir == abs || dir == "" && within(abs, f.s.Dir) {
			if best == nil || len(f.s.Dir) > len(best.s.Dir) {
				best = &all[i]
			}
		}
	}
	if best == nil && dir == "" && len(all) == 1 {
		best = &all[0]
	}
	if best == nil {
		return "", nil, fmt.Errorf("%s: %w", abs, overlay.ErrNoSession)
	}
	return best.store, best.s, nil
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

func sessionCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:      "session",
		Usage:     "where a login session stands: its snapshot, edits not yet synced, the places it used, what waits for delivery",
		ArgsUsage: "[DIR]",
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return usageError{errors.New("session takes at most one directory")}
			}
			return runSession(c.Context, g, c.Args().First())
		},
	}
}

func runSession(ctx context.Context, g *globals, dir string) error {
	store, s, err := g.findSession(dir)
	if err != nil {
		return withHint(err, "`dvpc login` starts one")
	}
	edited, err := editedSince(s.Dir, s.Updated, store)
	if err != nil {
		return err
	}
	ms, err := delta.LoadMirrors(store)
	if err != nil {
		return err
	}
	var waiting []map[string]any
	for _, m := range ms.Mirrors {
		n := 0
		for _, made := range s.Made {
			if m.Waits(made) {
				n++
			}
		}
		e := map[string]any{"mirror": m.Name, "url": m.URL, "waiting": n}
		if m.LastError != "" {
			e["last_error"] = m.LastError
		}
		waiting = append(waiting, e)
	}
	if g.json {
		return json.NewEncoder(g.stdout).Encode(map[string]any{"dir": s.Dir, "store": store, "snapshot": s.Snapshot, "home": s.Home,
			"complete": s.Complete, "ephemeral": s.Ephemeral, "edited": edited, "made": s.Made, "places": placesJSON(s.Places),
			"queue": waiting, "updated": s.Updated})
	}
	state := "complete"
	if !s.Complete {
		state = "NOT complete: a login was stopped while writing it; `dvpc login` finishes it"
	}
	fmt.Fprintf(g.stdout, "session %s (store %s%s)\n", s.Dir, store, map[bool]string{true: ", ephemeral", false: ""}[s.Ephemeral])
	fmt.Fprintf(g.stdout, "  snapshot %s of home %s, %s\n", s.Snapshot, s.Home, state)
	fmt.Fprintf(g.stdout, "  %s changed since the last login or sync\n", plural(edited, "entry"))
	fmt.Fprintf(g.stdout, "  %s made in this session\n", plural(len(s.Made), "snapshot"))
	for _, u := range s.Places {
		fmt.Fprintf(g.stdout, "  place %s (%s): %s\n", u.Name, u.Kind, humanBytes(u.Bytes))
	}
	for _, w := range waiting {
		fmt.Fprintf(g.stdout, "  mirror %s: %d waiting\n", w["url"], w["waiting"])
	}
	return nil
}

// editedSince counts the entries of dir changed after t (by their change
// time), leaving out the store.
func editedSince(dir string, t time.Time, store string) (int, error) {
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() && (p == store || image.IsStoreDir(p)) {
			return filepath.SkipDir
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if changeTime(fi).After(t) {
			n++
		}
		return nil
	})
	return n, err
}

type syncOpts struct {
	watch    bool
	from     []string
	debounce time.Duration
	maxDelay time.Duration
}

func syncCommand(g *globals) *cli.Command {
	var o syncOpts
	var from cli.StringSlice
	return &cli.Command{
		Name: "sync",
		Usage: "snapshot a login session's directory with the session's snapshot as parent, merge what other PCs made, " +
			"and deliver it to the USB key and every reachable mirror (what cannot be delivered waits in the queue)",
		ArgsUsage: "[DIR]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "watch", Usage: "stay running: a snapshot after every burst of changes", Destination: &o.watch},
			&cli.DurationFlag{Name: "debounce", Value: 2 * time.Second, Usage: "with --watch, snapshot this long after the last change", Destination: &o.debounce},
			&cli.DurationFlag{Name: "max-delay", Value: 60 * time.Second, Usage: "with --watch, snapshot at least this often while changes go on", Destination: &o.maxDelay},
			&cli.StringSliceFlag{Name: "from", Usage: "also read `MEDIUM` (the USB key); repeatable", Destination: &from},
			hostFlag(g),
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return usageError{errors.New("sync takes at most one directory")}
			}
			o.from = from.Value()
			return runSync(c.Context, g, o, c.Args().First())
		},
	}
}

// openSession opens the session of dir: its cache, the places it reads,
// and the store read through the cache and the media.
type openedSession struct {
	store  string
	cache  *image.Layout
	sess   *overlay.Session
	places []overlay.Place
	stack  *image.StackStore
	repo   *image.Repo
}

func (g *globals) openSession(ctx context.Context, dir string, from []string) (*openedSession, error) {
	store, sess, err := g.findSession(dir)
	if err != nil {
		return nil, withHint(err, "`dvpc login` starts a session")
	}
	cache, err := image.OpenLayout(store)
	if err != nil {
		return nil, err
	}
	ms, err := delta.LoadMirrors(store)
	if err != nil {
		return nil, err
	}
	// The media given, and those the session used that are still there.
	for _, u := range sess.Places {
		if u.Kind != overlay.KindMirror && u.Kind != overlay.KindCache && !slices.Contains(from, u.Name) && isMediumArg(u.Name) {
			from = append(from, u.Name)
		}
	}
	places, err := g.loginPlaces(from, nil, false)
	if err != nil {
		return nil, err
	}
	for _, m := range ms.Mirrors {
		ep, err := delta.OpenEndpoint(m.URL, delta.RegistryOptions{Timeout: g.timeout, Insecure: m.Insecure})
		if err != nil {
			continue
		}
		places = append(places, overlay.Place{Kind: overlay.KindMirror, Endpoint: ep, Health: mirrorHealth(m), Speed: m.Rate()})
	}
	stack := image.NewStack(cache, overlay.Lower(ctx, places)...)
	unl := &sessionUnlock{g: g}
	repo, err := unl.open(ctx, stack)
	if err != nil {
		return nil, err
	}
	return &openedSession{store: store, cache: cache, sess: sess, places: places, stack: stack, repo: repo}, nil
}

func runSync(ctx context.Context, g *globals, o syncOpts, dir string) error {
	s, err := g.openSession(ctx, dir, o.from)
	if err != nil {
		return err
	}
	defer s.repo.Close()
	if o.watch {
		return watchSession(ctx, g, s, o)
	}
	return syncOnce(ctx, g, s, nil)
}

// syncOnce snapshots, merges and delivers once.
func syncOnce(ctx context.Context, g *globals, s *openedSession, changed []string) error {
	if err := syncSnapshot(ctx, g, s, changed); err != nil {
		return err
	}
	return deliver(ctx, g, s)
}

// syncSnapshot snapshots the session and merges what other PCs made.
func syncSnapshot(ctx context.Context, g *globals, s *openedSession, changed []string) error {
	tmpl := g.sessionSnapshotOptions(s.store)
	tmpl.Changed = changed
	rep, err := overlay.Sync(ctx, overlay.SyncOptions{Cache: s.cache, CacheDir: s.store, Session: s.sess, Repo: s.repo,
		Places: s.places, Snapshot: tmpl, Protect: append(g.liveStores(), s.store)})
	if rep != nil {
		printFailures(g, serious(rep.Pull.Failures))
	}
	if err != nil {
		return err
	}
	if rep.PullErr != nil {
		fmt.Fprintf(g.stderr, "dvpc: no place could be read for newer snapshots (%v)\n", rep.PullErr)
	}
	if len(rep.Made) == 0 {
		fmt.Fprintf(g.stderr, "nothing changed in %s since snapshot %s\n", s.sess.Dir, rep.Snapshot.ID)
	}
	for _, m := range rep.Made {
		fmt.Fprintf(g.stderr, "snapshot %s of %s\n", m.ID, s.sess.Dir)
	}
	printMerges(g, rep.Merges)
	return nil
}

// deliver sends the session's snapshots to the USB keys and the mirrors;
// what cannot be delivered waits for the next time.
func deliver(ctx context.Context, g *globals, s *openedSession) error {
	deliverToKeys(ctx, g, s)
	ms, err := delta.LoadMirrors(s.store)
	if err != nil {
		return err
	}
	if len(ms.Mirrors) == 0 {
		fmt.Fprintf(g.stderr, "dvpc: the session has no mirror: its snapshots are only in %s\n", s.store)
		return nil
	}
	if err := pushStore(ctx, g, s.store, s.stack); err != nil {
		var pe partialError
		if errors.As(err, &pe) {
			fmt.Fprintf(g.stderr, "dvpc: %v; queued: `dvpc mirror list` shows what waits, the next sync delivers it\n", err)
			return nil
		}
		return err
	}
	return nil
}

type logoutOpts struct {
	keep, force bool
	require     int
	from        []string
}

func logoutCommand(g *globals) *cli.Command {
	var o logoutOpts
	var from cli.StringSlice
	return &cli.Command{
		Name: "logout",
		Usage: "end a login session: sync, check that every snapshot it made reached enough places, " +
			"then remove the directory's content and, on a PC that is not yours, this PC's cache",
		ArgsUsage: "[DIR]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "keep", Usage: "sync and check, but remove nothing", Destination: &o.keep},
			&cli.IntFlag{Name: "require", Value: 1, Usage: "the `N` places (mirrors, the USB key; not this PC) every snapshot must have reached", Destination: &o.require},
			&cli.BoolFlag{Name: "force", Usage: "remove even when delivery cannot be confirmed: edits not delivered are lost", Destination: &o.force},
			&cli.StringSliceFlag{Name: "from", Usage: "also read and write `MEDIUM` (the USB key); repeatable", Destination: &from},
			hostFlag(g),
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return usageError{errors.New("logout takes at most one directory")}
			}
			o.from = from.Value()
			return runLogout(c.Context, g, o, c.Args().First())
		},
	}
}

// errNotDelivered means logout could not confirm that the session's
// snapshots reached enough places.
var errNotDelivered = errors.New("not every snapshot of the session reached enough places")

func runLogout(ctx context.Context, g *globals, o logoutOpts, dir string) error {
	s, err := g.openSession(ctx, dir, o.from)
	if err != nil {
		return err
	}
	defer s.repo.Close()
	if err := syncOnce(ctx, g, s, nil); err != nil && !o.force {
		return fmt.Errorf("logout: the last sync failed, nothing was removed: %w", err)
	}
	var eps []delta.Endpoint
	for _, p := range s.places {
		eps = append(eps, p.Endpoint)
	}
	dels, errs := overlay.Delivered(ctx, s.sess, eps)
	for _, e := range errs {
		fmt.Fprintf(g.stderr, "dvpc: could not check %v\n", e)
	}
	var short []string
	for _, d := range dels {
		if len(d.Places) < o.require {
			short = append(short, fmt.Sprintf("%s (%d of %d places)", d.Snapshot, len(d.Places), o.require))
		}
	}
	if len(short) > 0 && !o.force {
		return partialError{withHint(fmt.Errorf("logout: %w: %s; nothing was removed", errNotDelivered, strings.Join(short, ", ")),
			"bring a mirror up or attach the USB key and run `dvpc logout` again; --force removes anyway and loses them")}
	}
	if g.json {
		defer json.NewEncoder(g.stdout).Encode(map[string]any{"dir": s.sess.Dir, "delivered": dels, "kept": o.keep})
	}
	if o.keep {
		fmt.Fprintf(g.stderr, "every snapshot of the session was delivered; %s and the cache were kept (--keep)\n", s.sess.Dir)
		return nil
	}
	// The cache is left to the end: only an ephemeral one is removed.
	protect := append(g.liveStores(), s.store)
	kept, err := overlay.Clear(s.sess.Dir, protect)
	if err != nil {
		return err
	}
	if len(kept) > 0 {
		fmt.Fprintf(g.stderr, "dvpc: left the store %s alone\n", strings.Join(kept, ", "))
	}
	if err := s.sess.Remove(s.store); err != nil {
		return err
	}
	// The links to the apps the session installed go with it.
	if err := profiles.Unlink(profiles.BinDir(), filepath.Join(s.store, appsDirName)); err != nil {
		fmt.Fprintf(g.stderr, "dvpc: the app links in %s: %v\n", profiles.BinDir(), err)
	}
	lockAgentQuietly(g)
	if overlay.IsEphemeral(s.store) {
		s.repo.Close()
		if err := os.RemoveAll(s.store); err != nil {
			return fmt.Errorf("remove this PC's cache %s: %w", s.store, err)
		}
		fmt.Fprintf(g.stderr, "removed this PC's cache %s\n", s.store)
	}
	fmt.Fprintf(g.stderr, "logged out: %s is empty; every snapshot of the session is on %s\n", s.sess.Dir, plural(o.require, "place")+" at least")
	return nil
}

// lockAgentQuietly ends the unlock agent's keys, if one runs.
func lockAgentQuietly(g *globals) {
	sock := agentSocketPath()
	if sock == "" || g.noAgent || !agentListening(sock) {
		return
	}
	a := &agentClient{sock: sock, stderr: g.stderr}
	a.call(agentLock)
}

// watchSession syncs after every burst of changes until interrupted.
func watchSession(ctx context.Context, g *globals, s *openedSession, o syncOpts) error {
	if err := syncOnce(ctx, g, s, nil); err != nil {
		return err
	}
	ex, err := s.repo.Excluder(s.sess.Dir, g.sessionSnapshotOptions(s.store))
	if err != nil {
		return err
	}
	// Deliveries run beside the watch: a snapshot never waits for the
	// network, and one delivery at a time catches up with all of them.
	kick := make(chan struct{}, 1)
	delivered := make(chan struct{})
	go func() {
		defer close(delivered)
		for range kick {
			if err := deliver(context.WithoutCancel(ctx), g, s); err != nil {
				fmt.Fprintf(g.stderr, "dvpc: %v; the next change tries again\n", err)
			}
		}
	}()
	defer func() {
		close(kick)
		<-delivered
	}()
	err = overlay.Watch(ctx, s.sess.Dir, overlay.WatchOptions{
		Debounce: o.debounce, MaxDelay: o.maxDelay, Skip: ex.Excluded, Initial: true,
		Started: func(dirs int) {
			fmt.Fprintf(g.stderr, "watching %s (%s): a snapshot %s after the last change, at least every %s while changes go on; Ctrl-C stops\n",
				s.sess.Dir, plural(dirs, "directory"), o.debounce, o.maxDelay)
		},
		Snapshot: func(ctx context.Context, changed []string) error {
			if err := syncSnapshot(ctx, g, s, changed); err != nil {
				return err
			}
			select {
			case kick <- struct{}{}:
			default: // a delivery is already due
			}
			return nil
		},
		OnError: func(err error) { fmt.Fprintf(g.stderr, "dvpc: %v\n", err) },
	})
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// hostFlag is the host name a session's snapshots record, and that names
// the conflict copies other PCs get of this one's files.
func hostFlag(g *globals) cli.Flag {
	return &cli.StringFlag{Name: "host", EnvVars: []string{"DVPC_HOST"}, Usage: "host `NAME` to record (default: this computer's)", Destination: &g.host}
}

// deliverToKeys writes the session's snapshots to every attached USB key
// that can be written: a mounted one through its file system, an image or
// device in place through dvpc's own FAT code. Either way the key's index
// is replaced last, so a key pulled out mid-write still holds its previous
// snapshots intact. A key that cannot be written is named, and the
// snapshots wait for a mirror or a writable key.
func deliverToKeys(ctx context.Context, g *globals, s *openedSession) {
	for _, p := range s.places {
		var dst delta.WritableEndpoint
		switch ep, ok := p.Endpoint.(delta.WritableEndpoint); {
		case p.WriteDir != "":
			lm, err := delta.OpenLocal(p.WriteDir)
			if err != nil {
				fmt.Fprintf(g.stderr, "dvpc: the USB key %s could not be written (%v); the snapshots wait for a mirror or the key\n", p.Endpoint, err)
				continue
			}
			dst = lm
		case p.Kind == overlay.KindUSB && ok:
			dst = ep
		case p.Kind == overlay.KindUSB:
			fmt.Fprintf(g.stderr, "dvpc: the USB key %s is read-only here (%s): the snapshots wait for a mirror or a writable key\n", p.Endpoint, keyReadOnlyReason(p.Endpoint.String()))
			continue
		default:
			continue
		}
		res := delta.PushTo(ctx, s.stack, []delta.Endpoint{dst}, delta.PushOptions{})
		if err := res[0].Err; err != nil {
			fmt.Fprintf(g.stderr, "dvpc: the USB key %s could not be written (%v); the snapshots wait for a mirror or the key\n", p.Endpoint, err)
			continue
		}
		fmt.Fprintf(g.stderr, "the USB key %s: %s (%s) written\n", p.Endpoint, plural(res[0].Report.BlobsUploaded, "blob"), humanBytes(res[0].Report.BytesUploaded))
	}
}

// withSessionPlaces reads a store that holds login sessions through the
// places they used: a login leaves on the disc or key the packs it holds,
// so that ls, restore and diff read them there, or else from the mirrors.
// A store without sessions is read alone.
func (g *globals) withSessionPlaces(lay *image.Layout) image.Source {
	sessions, err := overlay.Sessions(g.store)
	if err != nil || len(sessions) == 0 {
		return lay
	}
	var lower []image.Source
	for _, s := range sessions {
		for _, u := range s.Places {
			if u.Kind == overlay.KindMirror || u.Kind == overlay.KindCache || !isMediumArg(u.Name) {
				continue
			}
			if ps, err := g.loginPlaces([]string{u.Name}, nil, false); err == nil {
				lower = append(lower, ps[0].Endpoint)
			}
		}
	}
	lower = append(lower, image.Named("mirrors", &lazySource{open: func() (image.Source, error) {
		ms, err := delta.LoadMirrors(g.store)
		if err != nil {
			return nil, err
		}
		eps, err := ms.Endpoints(g.timeout)
		if err != nil {
			return nil, err
		}
		var mo delta.MirrorOptions
		for _, m := range ms.Mirrors {
			mo.Health = append(mo.Health, mirrorHealth(m))
			mo.Speed = append(mo.Speed, m.Rate())
		}
		return delta.NewMirrorSource(context.Background(), eps, mo)
	}}))
	return image.NewStack(lay, lower...)
}

// lazySource opens a source the first time a blob is asked of it: the
// mirrors are contacted only when the store and the media lack a blob.
type lazySource struct {
	open func() (image.Source, error)
	once sync.Once
	src  image.Source
	err  error
}

func (l *lazySource) get() (image.Source, error) {
	l.once.Do(func() { l.src, l.err = l.open() })
	if l.err != nil {
		return nil, fmt.Errorf("%w: %w", image.ErrNotFound, l.err)
	}
	return l.src, nil
}

func (l *lazySource) Refs(ctx context.Context) ([]image.Ref, error) {
	src, err := l.get()
	if err != nil {
		return nil, err
	}
	return src.Refs(ctx)
}

func (l *lazySource) OpenBlob(ctx context.Context, d image.Digest) (image.Blob, error) {
	src, err := l.get()
	if err != nil {
		return nil, err
	}
	return src.OpenBlob(ctx, d)
}

func (l *lazySource) StatBlob(ctx context.Context, d image.Digest) (int64, error) {
	src, err := l.get()
	if err != nil {
		return 0, err
	}
	return src.StatBlob(ctx, d)
}

// keyReadOnlyReason says why a USB key cannot be written.
func keyReadOnlyReason(p string) string {
	fi, err := os.Stat(p)
	switch {
	case err != nil || fi.IsDir():
		return "mounted read-only"
	case fi.Mode().IsRegular() && fi.Mode().Perm()&0o222 == 0:
		return fmt.Sprintf("the image is marked read-only, mode %v", fi.Mode().Perm())
	}
	k, err := media.OpenUSBStore(p)
	switch {
	case errors.Is(err, image.ErrReadOnly):
		return "a read-only device or file"
	case err != nil:
		return err.Error()
	}
	k.Close()
	return "it could not be opened for writing"
}
