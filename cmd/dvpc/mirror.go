package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dvpc/dvpc/delta"
	"github.com/dvpc/dvpc/image"
	"github.com/dvpc/dvpc/media"
)

func mirrorCommand(g *globals) *cli.Command {
	var name string
	var insecure bool
	return &cli.Command{
		Name:  "mirror",
		Usage: "the OCI registry repositories that keep copies of the store",
		Subcommands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "add a mirror: a registry repository host[:port]/path (plain HTTP only for loopback, or with --insecure)",
				ArgsUsage: "URL",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "name", Usage: "a short name for the mirror", Destination: &name},
					&cli.BoolFlag{Name: "insecure", Usage: "allow plain HTTP to a non-loopback registry", Destination: &insecure},
				},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return usageError{errors.New("mirror add takes one URL")}
					}
					if isMediumArg(c.Args().First()) {
						return usageError{fmt.Errorf("%s is a medium: it is read-only and never a mirror; read from it with `dvpc pull %[1]s`", c.Args().First())}
					}
					var added delta.Mirror
					err := g.editMirrors(func(m *delta.Mirrors) error {
						err := m.Add(delta.Mirror{Name: name, URL: strings.TrimPrefix(c.Args().First(), registryPrefix), Insecure: insecure})
						if err == nil {
							added = m.Mirrors[len(m.Mirrors)-1]
						}
						return err
					})
					if err == nil && g.json {
						return json.NewEncoder(g.stdout).Encode(map[string]any{"name": added.Name, "url": added.URL})
					}
					if err == nil {
						fmt.Fprintf(g.stdout, "added mirror %s (%s); next, `dvpc push` sends it the store's snapshots, and `dvpc mirror status` checks it\n", added.Name, added.URL)
					}
					return err
				},
			},
			{
				Name:      "remove",
				Usage:     "remove a mirror by name or URL",
				ArgsUsage: "NAME",
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return usageError{errors.New("mirror remove takes one NAME")}
					}
					return g.editMirrors(func(m *delta.Mirrors) error { return m.Remove(c.Args().First()) })
				},
			},
			{
				Name:  "list",
				Usage: "list the mirrors and the snapshots each still waits for (no network needed); on a medium, the mirrors its newest snapshot records",
				Action: func(c *cli.Context) error {
					if isMedium(g.store) {
						return listRecordedMirrors(c.Context, g)
					}
					return runMirrorStatus(c.Context, g, false)
				},
			},
			{
				Name:  "adopt",
				Usage: "add the mirrors recorded in the newest snapshot to the store's list (asks for the passphrase)",
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return usageError{errors.New("mirror adopt takes no arguments")}
					}
					added, err := adoptMirrors(c.Context, g)
					if err != nil {
						return err
					}
					if len(added) == 0 {
						fmt.Fprintln(g.stdout, "the store already lists every mirror its newest snapshot records")
					}
					for _, u := range added {
						fmt.Fprintf(g.stdout, "added %s\n", u)
					}
					return nil
				},
			},
			{
				Name:  "heal",
				Usage: "copy between mirrors until each holds every snapshot: verified pull from all of them, then push to all",
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return usageError{errors.New("mirror heal takes no arguments")}
					}
					if err := runPull(c.Context, g, nil, nil, false, delta.WantAll, ""); err != nil {
						return fmt.Errorf("heal: gather from the mirrors: %w", err)
					}
					return runPush(c.Context, g)
				},
			},
			{
				Name:   "status",
				Usage:  "per mirror: reachable, newest snapshot, snapshots missing, last push and last error",
				Action: func(c *cli.Context) error { return runMirrorStatus(c.Context, g, true) },
			},
		},
	}
}

// isMedium reports whether the store named is read-only: media or a
// mirror rather than a store directory.
func isMedium(store string) bool { return storeKind(store) != kindDir }

// listRecordedMirrors prints the mirrors recorded in a medium's newest
// snapshot: where a PC that has only the medium finds the newer state.
func listRecordedMirrors(ctx context.Context, g *globals) error {
	urls, snap, err := recordedMirrors(ctx, g)
	if err != nil {
		return err
	}
	if g.json {
		if urls == nil {
			urls = []string{}
		}
		return json.NewEncoder(g.stdout).Encode(map[string]any{"snapshot": snap.ID, "mirrors": urls})
	}
	if len(urls) == 0 {
		fmt.Fprintf(g.stdout, "snapshot %s records no mirrors\n", snap.ID)
		return nil
	}
	fmt.Fprintf(g.stdout, "mirrors recorded in snapshot %s (`dvpc pull --store DIR URL...` makes a store from them):\n", snap.ID)
	for _, u := range urls {
		fmt.Fprintf(g.stdout, "  %s\n", u)
	}
	return nil
}

func (g *globals) editMirrors(fn func(*delta.Mirrors) error) error {
	if _, err := image.OpenLayout(g.store); err != nil {
		return err
	}
	m, err := delta.LoadMirrors(g.store)
	if err != nil {
		return err
	}
	if err := fn(m); err != nil {
		return usageError{err}
	}
	return m.Save(g.store)
}

func runMirrorStatus(ctx context.Context, g *globals, probe bool) error {
	lay, err := image.OpenLayout(g.store)
	if err != nil {
		return err
	}
	ms, err := delta.LoadMirrors(g.store)
	if err != nil {
		return err
	}
	local, err := lay.Refs(ctx)
	if err != nil {
		return err
	}
	type row struct {
		Name      string    `json:"name"`
		URL       string    `json:"url"`
		Reachable *bool     `json:"reachable,omitempty"`
		Newest    string    `json:"newest_snapshot,omitempty"`
		Missing   *int      `json:"snapshots_missing,omitempty"` // nil: not reached, unknown
		Pending   int       `json:"snapshots_pending"`           // newer than the last completed push
		Pushed    string    `json:"pushed,omitempty"`
		PullRate  float64   `json:"pull_rate,omitempty"`
		PushRate  float64   `json:"push_rate,omitempty"`
		BlobsMiss int       `json:"blobs_missing"`
		BytesMiss int64     `json:"bytes_missing"`
		LastPush  time.Time `json:"last_push,omitempty"`
		LastError string    `json:"last_error,omitempty"`
		BadData   string    `json:"bad_data,omitempty"`
		// Unverified lists the snapshot tags newer than Newest whose
		// signature does not verify.
		Unverified []string `json:"unverified,omitempty"`
	}
	var localBlobs []image.BlobRef
	var kf *image.KeyFile
	if probe {
		if localBlobs, err = image.BlobsOf(ctx, lay, local); err != nil {
			return err
		}
		// The public signing key, in the clear: no passphrase needed.
		if kf, err = image.ReadKeyFile(ctx, lay); err != nil {
			return err
		}
	}
	var rows []row
	for _, m := range ms.Mirrors {
		r := row{Name: m.Name, URL: m.URL, LastPush: m.LastPush, LastError: m.LastError, BadData: m.BadData,
			Pending: pendingFor(local, m), Pushed: m.Pushed, PullRate: m.PullRate, PushRate: m.PushRate}
		if probe {
			reg, err := delta.OpenEndpoint(m.URL, delta.RegistryOptions{Insecure: m.Insecure, Timeout: g.timeout})
			ok := err == nil
			var refs []image.Ref
			if ok {
				refs, err = reg.Refs(ctx)
				ok = err == nil
			}
			r.Reachable = &ok
			if ok {
				// A snapshot is there when its tag names its manifest:
				// a push sends it otherwise.
				have := map[string]bool{}
				for _, ref := range refs {
					have[ref.Name+" "+ref.Desc.Digest.String()] = true
				}
				newest, probs, err := delta.NewestVerified(ctx, reg, refs, kf)
				if err != nil {
					r.LastError = err.Error()
				}
				r.Newest = newest
				for _, p := range probs {
					r.Unverified = append(r.Unverified, p.Error())
				}
				missing := 0
				for _, l := range local {
					if image.IsSnapshotRef(l.Name) && !have[l.Name+" "+l.Desc.Digest.String()] {
						missing++
					}
				}
				r.Missing = &missing
				var blobs []image.BlobRef
				for _, b := range localBlobs {
					if b.MediaType != image.ManifestType { // named by tags, counted as snapshots above
						blobs = append(blobs, b)
					}
				}
				lack, err := delta.Lacks(ctx, reg, blobs, delta.LackOptions{})
				if err != nil {
					return err
				}
				for _, b := range lack {
					r.BlobsMiss++
					r.BytesMiss += b.Size
				}
			} else if err != nil {
				r.LastError = err.Error()
			}
		}
		rows = append(rows, r)
	}
	if g.json {
		if rows == nil {
			rows = []row{}
		}
		return json.NewEncoder(g.stdout).Encode(rows)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	if probe {
		fmt.Fprintln(tw, "NAME\tURL\tREACHABLE\tNEWEST VERIFIED\tMISSING SNAPSHOTS\tMISSING BLOBS\tSPEED\tLAST PUSH\tLAST ERROR")
	} else {
		fmt.Fprintln(tw, "NAME\tURL\tPENDING\tLAST PUSH")
	}
	for _, r := range rows {
		last := "never"
		if !r.LastPush.IsZero() {
			last = r.LastPush.Local().Format("2006-01-02 15:04:05")
		}
		if probe {
			reach := "no"
			if r.Reachable != nil && *r.Reachable {
				reach = "yes"
			}
			errText := r.LastError
			if r.BadData != "" {
				errText = strings.TrimSpace(errText + " " + r.BadData)
			}
			if len(r.Unverified) > 0 {
				errText = strings.TrimSpace(fmt.Sprintf("%s %s that do not verify: %s", errText, plural(len(r.Unverified), "newer snapshot"), r.Unverified[0]))
			}
			blobs := fmt.Sprintf("%d (%s)", r.BlobsMiss, humanBytes(r.BytesMiss))
			if r.Missing == nil {
				blobs = "?" // not reached: unknown
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.URL, reach, tagID(r.Newest), known(r.Missing), blobs,
				speeds(r.PullRate, r.PushRate), last, errText)
		} else {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, r.URL, plural(r.Pending, "snapshot"), last)
		}
	}
	return tw.Flush()
}

// rateText is ", at RATE/s", or nothing when the rate is not known.
func rateText(r float64) string {
	if r <= 0 {
		return ""
	}
	return fmt.Sprintf(", at %s/s", humanBytes(int64(r)))
}

// speeds shows the measured read and write rates of a mirror.
func speeds(pull, push float64) string {
	show := func(r float64) string {
		if r <= 0 {
			return "?"
		}
		return humanBytes(int64(r)) + "/s"
	}
	return "↓" + show(pull) + " ↑" + show(push)
}

// pendingFor counts the store's snapshots newer than the newest one the
// mirror held after its last completed push: the ones a push still has
// to deliver. It needs no network.
func pendingFor(local []image.Ref, m delta.Mirror) int {
	n := 0
	for _, r := range local {
		if m.Waits(r.Name) {
			n++
		}
	}
	return n
}

func pushCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:  "push",
		Usage: "send every mirror what it lacks (blobs, then manifests, then signatures); needs no passphrase",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageError{withHint(errors.New("push takes no arguments"), "add mirrors with `dvpc mirror add HOST/PATH`")}
			}
			return runPush(c.Context, g)
		},
	}
}

func runPush(ctx context.Context, g *globals) error {
	lay, err := image.OpenLayout(g.store)
	if err != nil {
		return err
	}
	ms, err := delta.LoadMirrors(g.store)
	if err != nil {
		return err
	}
	if len(ms.Mirrors) == 0 {
		return usageError{withHint(errors.New("push: the store has no mirrors"), "add one with `dvpc mirror add HOST/PATH`")}
	}
	return pushStore(ctx, g, g.store, lay)
}

// pushStore sends the store in dir to its mirrors, reading blobs from src
// (the store itself, or a login's stack of cache and media), and records
// in the mirror list what each received.
func pushStore(ctx context.Context, g *globals, dir string, src image.Source) error {
	ms, err := delta.LoadMirrors(dir)
	if err != nil {
		return err
	}
	regs, err := ms.Endpoints(g.timeout)
	if err != nil {
		return err
	}
	refs, err := src.Refs(ctx)
	if err != nil {
		return err
	}
	// What the mirrors hold after the push, by what is signed: a tag in
	// the store that misnames its snapshot is neither sent nor counted.
	kf, err := image.ReadKeyFile(ctx, src)
	if err != nil {
		return err
	}
	newest, _, err := delta.NewestVerified(ctx, src, refs, kf)
	if err != nil {
		return err
	}
	var prog image.Progress
	stop := startProgressOf(g.stderr, "push:", "blobs", "sent", &prog)
	results := delta.PushTo(ctx, src, regs, delta.PushOptions{Progress: &prog})
	stop()
	var failed []string
	out := []map[string]any{}
	for i, r := range results {
		m := &ms.Mirrors[i]
		e := map[string]any{"mirror": m.Name, "url": m.URL, "blobs_uploaded": r.Report.BlobsUploaded, "bytes_uploaded": r.Report.BytesUploaded,
			"blobs_skipped": r.Report.BlobsSkipped, "manifests": r.Report.Manifests, "snapshots_refused": r.Report.Refused}
		if r.Err != nil {
			m.LastError = r.Err.Error()
			failed = append(failed, m.Name)
			e["error"] = r.Err.Error()
			if !g.json {
				fmt.Fprintf(g.stderr, "dvpc: push to %s (%s) failed: %v; it is caught up on the next push\n", m.Name, m.URL, r.Err)
			}
		} else {
			m.LastPush, m.LastError, m.Pushed = time.Now().UTC(), "", newest
			if rate := r.Rate(); rate > 0 {
				m.PushRate = rate
			}
			if !g.json {
				fmt.Fprintf(g.stdout, "%s: %s (%s) sent, %d already there, %s\n", m.Name, plural(r.Report.BlobsUploaded, "blob"),
					humanBytes(r.Report.BytesUploaded), r.Report.BlobsSkipped, plural(r.Report.Manifests, "tag"))
			}
		}
		out = append(out, e)
	}
	if err := ms.Save(dir); err != nil {
		return err
	}
	refused := 0
	for _, r := range results {
		refused = max(refused, r.Report.Refused)
	}
	if refused > 0 {
		fmt.Fprintf(g.stderr, "dvpc: not sent: %s in the store that do not verify, or whose tag misnames them; `dvpc verify` names them\n", plural(refused, "snapshot"))
	}
	if g.json {
		json.NewEncoder(g.stdout).Encode(out)
	}
	if len(failed) > 0 {
		return partialError{withHint(fmt.Errorf("push failed for %d of %s: %s", len(failed), plural(len(results), "mirror"), strings.Join(failed, ", ")),
			"the other mirrors have everything; the next `dvpc push` catches these up")}
	}
	return nil
}

// mirrorHealth orders mirrors for reading: 0 healthy, 1 failed last time,
// 2 served bad data.
func mirrorHealth(m delta.Mirror) int {
	switch {
	case m.BadData != "":
		return 2
	case m.LastError != "":
		return 1
	}
	return 0
}

func pullCommand(g *globals) *cli.Command {
	var insecure, all bool
	var signer string
	return &cli.Command{
		Name: "pull",
		Usage: "bring into the store every snapshot of each home newer than its heads (or SNAP, or --all the store lacks), " +
			"fetching only the blobs it lacks; on a new PC, name the mirrors",
		ArgsUsage: "[SNAP|latest] [URL|MEDIUM...]   (a MEDIUM, such as weekly.iso, a USB image or device, or a mounted disc, is read once and never added to the mirrors)",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "insecure", Usage: "allow plain HTTP to non-loopback registries", Destination: &insecure},
			&cli.BoolFlag{Name: "all", Usage: "every snapshot the mirrors hold and the store lacks, older history too", Destination: &all},
			&cli.StringFlag{Name: "signer", Usage: "on a new PC, trust the key blob of this signer (SHA256:..., as `dvpc key signer` shows it) without asking for the passphrase", Destination: &signer},
		},
		Action: func(c *cli.Context) error {
			want := delta.WantLatest
			if all {
				want = delta.WantAll
			}
			urls, media, rest := sourceArgs(c.Args().Slice())
			if len(rest) > 1 || len(rest) == 1 && all {
				return notASource("pull takes one SNAP (or --all)", rest[len(rest)-1])
			}
			if len(rest) == 1 {
				want = rest[0]
			}
			if signer != "" && !strings.HasPrefix(signer, "SHA256:") {
				return usageError{fmt.Errorf("--signer takes a key fingerprint, SHA256:..., not %q", signer)}
			}
			return runPull(c.Context, g, urls, media, insecure, want, signer)
		},
	}
}

// runPull pulls the snapshots want names (see [delta.PullOptions.Want])
// from the store's mirrors and those named by urls, which it adds, and
// from media, which it does not. A store without a key (a new PC) first
// settles which key to trust: signer's, or the one the passphrase opens.
func runPull(ctx context.Context, g *globals, urls, media []string, insecure bool, want, signer string) error {
	var lay *image.Layout
	var err error
	_, serr := os.Stat(filepath.Join(g.store, "oci-layout"))
	created := serr != nil
	if !created {
		if lay, err = image.OpenLayout(g.store); err != nil {
			return err
		}
	}
	defer func() { clear(g.secret); g.secret = nil }()
	ms, err := delta.LoadMirrors(g.store)
	if err != nil {
		return err
	}
	for _, u := range urls {
		u = strings.TrimPrefix(u, registryPrefix)
		if p, ok := strings.CutPrefix(u, delta.LocalPrefix); ok {
			if abs, err := filepath.Abs(p); err == nil {
				u = delta.LocalPrefix + abs
			}
		}
		if ms.Find(u) == nil {
			if err := ms.Add(delta.Mirror{URL: u, Insecure: insecure}); err != nil {
				return usageError{err}
			}
		}
	}
	if len(ms.Mirrors) == 0 && len(media) == 0 {
		return usageError{withHint(errors.New("pull: the store has no mirrors"), "name them (`dvpc pull HOST/PATH...`) or add them with `dvpc mirror add`")}
	}
	// Media first: no blob a medium holds is fetched over the network.
	// Then healthy mirrors: the ones that last failed or served bad data
	// are asked only when the others lack a blob. Among equals, the
	// fastest as last measured. Media come after the mirrors in the list.
	regs, err := ms.Endpoints(g.timeout)
	if err != nil {
		return err
	}
	for _, m := range media {
		ep, err := g.openMediumSource(m)
		if err != nil {
			return err
		}
		regs = append(regs, ep)
	}
	opts := delta.PullOptions{Want: want, Heal: want == delta.WantAll}
	if lay == nil || !hasKeys(ctx, lay) {
		// Nothing is written before the key is settled.
		if opts.Key, err = g.settlePullKey(ctx, regs, signer); err != nil {
			return err
		}
	}
	if lay == nil {
		if lay, err = image.InitLayout(g.store); err != nil { // a new PC: the store comes from the mirrors
			return err
		}
	}
	for _, m := range ms.Mirrors {
		opts.Health = append(opts.Health, 1+mirrorHealth(m))
		opts.Speed = append(opts.Speed, m.Rate())
	}
	for range media {
		opts.Health = append(opts.Health, 0)
	}
	// Rollback protection is the pull's own: a head only moves to a
	// descendant of itself, decided on the signed manifests.
	var prog image.Progress
	opts.Progress = &prog
	stop := startProgressOf(g.stderr, "pull:", "blobs", "fetched", &prog)
	rep, err := delta.PullFrom(ctx, regs, lay, opts)
	stop()
	bad := map[string]bool{}
	for _, b := range rep.BadMirrors() {
		bad[b] = true
	}
	for i := range ms.Mirrors {
		if bad[regs[i].String()] {
			ms.Mirrors[i].BadData = "served corrupt data or a bad signature on " + time.Now().UTC().Format(time.RFC3339)
		}
		if i < len(rep.Mirrors) && rep.Mirrors[i].Rate > 0 {
			ms.Mirrors[i].PullRate = rep.Mirrors[i].Rate
		}
	}
	if serr := ms.Save(g.store); serr != nil && err == nil {
		err = serr
	}
	printFailures(g, rep.Failures)
	for _, p := range rep.Refused {
		fmt.Fprintf(g.stderr, "dvpc: refused %v\n", p)
	}
	for _, d := range rep.Dropped {
		fmt.Fprintf(g.stderr, "dvpc: dropped the store's tag %s: it misnamed a snapshot the store holds under its signed name\n", d)
	}
	if err != nil {
		return err
	}
	// On a new PC, the passphrase unlocks what arrived, and the mirror list
	// comes from the newest snapshot.
	var adopted []string
	if created && len(rep.Snapshots) > 0 {
		if adopted, err = adoptMirrors(ctx, g); err != nil {
			return fmt.Errorf("the snapshots are in %s, but: %w", g.store, err)
		}
	}
	var unhealed error
	if len(rep.Unhealed) > 0 {
		unhealed = integrityError{fmt.Errorf("%d blobs of snapshots already here are missing or damaged, and no mirror holds them intact (first: %v); `dvpc repair --from MEDIUM` can fetch them from a disc",
			len(rep.Unhealed), rep.Unhealed[0].Digest)}
	}
	if g.json {
		type use struct {
			Mirror    string  `json:"mirror"`
			Reachable bool    `json:"reachable"`
			Blobs     int     `json:"blobs"`
			Bytes     int64   `json:"bytes"`
			Rate      float64 `json:"rate,omitempty"`
			LatencyMS float64 `json:"latency_ms"`
		}
		uses := []use{}
		for _, u := range rep.Mirrors {
			uses = append(uses, use{u.Mirror, u.Reachable, u.Blobs, u.Bytes, u.Rate, float64(u.Latency.Microseconds()) / 1000})
		}
		if err := json.NewEncoder(g.stdout).Encode(map[string]any{"snapshots": rep.Snapshots, "blobs_fetched": rep.BlobsFetched,
			"bytes_fetched": rep.BytesFetched, "blobs_present": rep.BlobsPresent, "blobs_replaced": rep.BlobsReplaced, "blobs_unhealed": len(rep.Unhealed), "bad_mirrors": rep.BadMirrors(),
			"behind": rep.Behind, "dropped": rep.Dropped, "mirrors": uses, "mirrors_adopted": adopted, "diverged": rep.Diverged}); err != nil {
			return err
		}
		return unhealed
	}
	// What each mirror served adds up to what was fetched: the blobs and
	// the manifests read to check the snapshots.
	fetched, fetchedBytes := 0, int64(0)
	for _, u := range rep.Mirrors {
		fetched, fetchedBytes = fetched+u.Blobs, fetchedBytes+u.Bytes
	}
	fmt.Fprintf(g.stdout, "pulled %s: %s (%s) fetched, %d already here\n", plural(len(rep.Snapshots), "snapshot"),
		plural(fetched, "blob"), humanBytes(fetchedBytes), rep.BlobsPresent)
	for _, u := range rep.Mirrors {
		if u.Blobs > 0 {
			fmt.Fprintf(g.stdout, "  from %s: %s (%s)%s\n", u.Mirror, plural(u.Blobs, "blob"), humanBytes(u.Bytes), rateText(u.Rate))
		}
	}
	if rep.BlobsReplaced > 0 {
		fmt.Fprintf(g.stdout, "%s of snapshots already here were missing or damaged, and were fetched again\n", plural(rep.BlobsReplaced, "blob"))
	}
	if len(rep.BadMirrors()) > 0 {
		fmt.Fprintf(g.stdout, "mirrors that served bad data or bad signatures: %s\n", strings.Join(rep.BadMirrors(), ", "))
	}
	for _, d := range rep.Diverged {
		fmt.Fprintf(g.stdout, "a home diverged on two PCs: it now has %d heads (%s), all kept; `dvpc sync` merges them\n",
			len(d.Heads), strings.Join(d.Heads, ", "))
	}
	if len(rep.Behind) > 0 {
		fmt.Fprintf(g.stdout, "mirrors behind this store (`dvpc push` catches them up): %s\n", strings.Join(rep.Behind, ", "))
	}
	if len(adopted) > 0 {
		fmt.Fprintf(g.stdout, "mirrors recorded in the newest snapshot, now this store's too: %s\n", strings.Join(adopted, ", "))
	}
	return unhealed
}

// recordedMirrors unlocks the store and returns the mirror list recorded
// in its newest snapshot, and that snapshot.
func recordedMirrors(ctx context.Context, g *globals) ([]string, *image.Snapshot, error) {
	repo, hist, err := g.loadHistory(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer repo.Close()
	snaps := hist.Snapshots()
	if len(snaps) == 0 {
		return nil, nil, fmt.Errorf("the store has no snapshot: %w", image.ErrNoSnapshot)
	}
	newest := snaps[len(snaps)-1]
	return newest.Config.Mirrors, newest, nil
}

// adoptMirrors adds to the store's mirror list the mirrors recorded in its
// newest snapshot, and returns the URLs it added.
func adoptMirrors(ctx context.Context, g *globals) ([]string, error) {
	urls, _, err := recordedMirrors(ctx, g)
	if err != nil {
		return nil, err
	}
	ms, err := delta.LoadMirrors(g.store)
	if err != nil {
		return nil, err
	}
	var added []string
	for _, u := range urls {
		if ms.Find(u) != nil {
			continue
		}
		if err := ms.Add(delta.Mirror{URL: u}); err != nil {
			fmt.Fprintf(g.stderr, "dvpc: not adding the recorded mirror %s: %v\n", u, err)
			continue
		}
		added = append(added, u)
	}
	if len(added) == 0 {
		return nil, nil
	}
	return added, ms.Save(g.store)
}

// sourceArgs sorts command-line sources: media (isMediumArg), mirror URLs
// (host[:port]/path, docker://…, oci:DIR), and the rest, which are not
// sources (a snapshot name, or a mistake the caller names).
func sourceArgs(args []string) (urls, media, rest []string) {
	for _, a := range args {
		switch {
		case isMediumArg(a):
			media = append(media, a)
		case strings.Contains(a, "/") || strings.HasPrefix(a, delta.LocalPrefix):
			urls = append(urls, a)
		default:
			rest = append(rest, a)
		}
	}
	return urls, media, rest
}

// notASource is the error for an argument that is neither a mirror nor a
// medium.
func notASource(cmd, a string) error {
	return usageError{fmt.Errorf("%s: %q is neither a mirror URL (host[:port]/path or oci:DIR) nor a medium that exists", cmd, a)}
}

// isMediumArg reports whether a pull or repair argument names a medium: an
// image file or device, a mounted or extracted medium, several discs of a
// set (comma-separated), or oci:DIR where DIR is a medium or its store.
// Media are read, never written, and never become mirrors.
func isMediumArg(a string) bool {
	if strings.HasPrefix(a, registryPrefix) {
		return false
	}
	if p, ok := strings.CutPrefix(a, delta.LocalPrefix); ok {
		p = filepath.Clean(p)
		return p != "" && (storeKind(p) == kindMedia && !strings.Contains(p, ",") ||
			filepath.Base(p) == media.StoreDir && storeKind(filepath.Dir(p)) == kindMedia)
	}
	for _, p := range strings.Split(a, ",") {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}

// openMediumSource opens a medium named as isMediumArg accepts it, to be
// read like a mirror; it is closed when the command ends.
func (g *globals) openMediumSource(a string) (delta.Endpoint, error) {
	p := strings.TrimPrefix(a, delta.LocalPrefix)
	src, ms, err := media.OpenSet(strings.Split(p, ","))
	if err != nil {
		return nil, fmt.Errorf("open medium %s: %w", p, err)
	}
	g.closers = append(g.closers, func() {
		for _, m := range ms {
			m.Close()
		}
	})
	return delta.NewSourceEndpoint(p, src), nil
}

// printFailures reports what the mirrors and media could not serve: one
// line per source for the blobs it lacks or failed on, one for each
// failure of a source as a whole.
func printFailures(g *globals, fs []delta.MirrorFailure) {
	type count struct {
		missing, bad, other int
		first               error
	}
	var order []string
	per := map[string]*count{}
	for _, f := range fs {
		if f.Digest.IsZero() {
			fmt.Fprintf(g.stderr, "dvpc: %v\n", f)
			continue
		}
		c := per[f.Mirror]
		if c == nil {
			c = &count{}
			per[f.Mirror] = c
			order = append(order, f.Mirror)
		}
		var de *image.DigestError
		switch {
		case errors.Is(f.Err, image.ErrNotFound):
			c.missing++
		case errors.As(f.Err, &de), errors.Is(f.Err, image.ErrBadSignature):
			c.bad++
			if c.first == nil {
				c.first = f
			}
		default:
			c.other++
			if c.first == nil {
				c.first = f
			}
		}
	}
	for _, m := range order {
		c := per[m]
		var parts []string
		if c.missing > 0 {
			parts = append(parts, fmt.Sprintf("lacks %s", blobCount(c.missing)))
		}
		if c.bad > 0 {
			parts = append(parts, fmt.Sprintf("served %s that did not verify", blobCount(c.bad)))
		}
		if c.other > 0 {
			parts = append(parts, fmt.Sprintf("failed on %s", blobCount(c.other)))
		}
		line := fmt.Sprintf("dvpc: %s %s", m, strings.Join(parts, ", "))
		if c.first != nil {
			line += fmt.Sprintf(" (first: %v)", c.first)
		}
		fmt.Fprintln(g.stderr, line)
	}
}

// blobCount is "1 blob" or "N blobs".
func blobCount(n int) string {
	if n == 1 {
		return "1 blob"
	}
	return fmt.Sprintf("%d blobs", n)
}

// hasKeys reports whether the store names a key blob.
func hasKeys(ctx context.Context, lay *image.Layout) bool {
	refs, err := lay.Refs(ctx)
	if err != nil {
		return true // the pull reports what is wrong
	}
	for _, r := range refs {
		if r.Name == image.KeysRef {
			return true
		}
	}
	return false
}
