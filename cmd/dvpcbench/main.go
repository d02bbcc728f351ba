//go:build linux

package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

type config struct {
	dvpc            string
	work            string
	sizeMiB         int
	seed            uint64
	tools           string
	keep            bool
	jsonOut         string
	borgEncryption  string
	borgCompression string
	install         bool
	verify          bool
	timeout         time.Duration
}

// toolRun holds everything measured of one tool.
type toolRun struct {
	Name        string             `json:"name"`
	Version     string             `json:"version,omitempty"`
	Unavailable string             `json:"unavailable,omitempty"`
	Steps       map[string]*result `json:"steps"`
	RepoBytes   map[string]int64   `json:"repo_bytes_after"` // by snapshot step
}

type bench struct {
	cfg          config
	self         string // this executable, run as the wrapper
	rssFloor     *result
	work, home   string
	runtime      string // XDG_RUNTIME_DIR of dvpc: its unlock agent's socket
	tools        []*tool
	runs         []*toolRun
	plan         *plan
	tree         treeStats
	mut          *mutation
	homeManifest map[string]entry // the home after the week of work
	limitResults map[string]*result
	iso          *isoReport     // dvpc's ISO build against xorriso's
	apps         *appsRun       // the apps of the apps stage, once built
	registries   []*registry    // local registries of the mirror steps, once started
	proxy        *countingProxy // in front of the login's registry, once started
	registryErr  error
	order        []string
	cpus         int // runtime.NumCPU()
}

var allTools = []string{"dvpc", "restic", "borg"}

func main() {
	if isWrapper() {
		os.Exit(wrapMain())
	}
	var cfg config
	flag.StringVar(&cfg.dvpc, "dvpc", "./bin/dvpc", "dvpc binary to measure")
	flag.StringVar(&cfg.work, "work", "", "work directory; must be empty, new or an earlier dvpcbench work directory (default: a new temporary directory)")
	flag.IntVar(&cfg.sizeMiB, "size", defaultSizeMiB, "size of the generated home in MiB (at least 16)")
	flag.Uint64Var(&cfg.seed, "seed", 1, "seed of the generated home and of the week of work")
	flag.StringVar(&cfg.tools, "tools", strings.Join(allTools, ","), "comma-separated tools to measure: dvpc, restic, borg")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the work directory (home, repositories, restores, logs)")
	flag.StringVar(&cfg.jsonOut, "json", "", "also write all figures as JSON to this file")
	flag.StringVar(&cfg.borgEncryption, "borg-encryption", "repokey-blake2", "borg init -e mode")
	flag.StringVar(&cfg.borgCompression, "borg-compression", "zstd,3", "borg create --compression")
	flag.BoolVar(&cfg.install, "install", true, "apt-get install restic, borgbackup and xorriso when missing")
	flag.BoolVar(&cfg.verify, "verify", true, "check restored trees against the home (untimed)")
	flag.DurationVar(&cfg.timeout, "timeout", time.Hour, "time limit of one command")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: dvpcbench [flags]\n\nMeasures dvpc against restic and borg on a generated home; see go doc ./cmd/dvpcbench.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 || cfg.sizeMiB < 16 {
		flag.Usage()
		os.Exit(2)
	}
	b, err := newBench(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dvpcbench:", err)
		os.Exit(2)
	}
	err = b.run()
	if err == nil {
		b.print()
		if cfg.jsonOut != "" {
			err = b.writeJSON(cfg.jsonOut)
		}
	}
	if cfg.keep {
		b.logf("work directory kept: %s", b.work)
	} else if rerr := os.RemoveAll(b.work); rerr != nil {
		b.logf("removing the work directory: %v", rerr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dvpcbench:", err)
		os.Exit(1)
	}
}

func newBench(cfg config) (*bench, error) {
	var names []string
	for _, n := range strings.Split(cfg.tools, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if !slices.Contains(allTools, n) {
			return nil, fmt.Errorf("unknown tool %q in -tools (want dvpc, restic, borg)", n)
		}
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("-tools selects nothing")
	}
	if strings.ContainsRune(cfg.dvpc, '/') {
		abs, err := filepath.Abs(cfg.dvpc)
		if err != nil {
			return nil, err
		}
		cfg.dvpc = abs
	} else if p, err := exec.LookPath(cfg.dvpc); err == nil {
		cfg.dvpc = p
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	work, err := prepareWork(cfg.work)
	if err != nil {
		return nil, err
	}
	b := &bench{cfg: cfg, self: self, work: work, home: filepath.Join(work, "home"), limitResults: map[string]*result{}, cpus: runtime.NumCPU()}
	for _, d := range []string{"logs", "out", "repo", "cache"} {
		if err := os.MkdirAll(b.path(d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(b.path("passphrase"), []byte(passphrase), 0o600); err != nil {
		return nil, err
	}
	// Outside the work directory, whose path may be too long for a socket.
	if b.runtime, err = os.MkdirTemp("", "dvpcbench-run-"); err != nil {
		return nil, err
	}
	for _, n := range allTools { // fixed order: dvpc, restic, borg
		if !slices.Contains(names, n) {
			continue
		}
		switch n {
		case "dvpc":
			b.tools = append(b.tools, b.newDvpc())
		case "restic":
			b.tools = append(b.tools, b.newRestic())
		case "borg":
			b.tools = append(b.tools, b.newBorg())
		}
		b.runs = append(b.runs, &toolRun{Name: n, Steps: map[string]*result{}, RepoBytes: map[string]int64{}})
	}
	return b, nil
}

const workMarker = ".dvpcbench-work"

// prepareWork returns the absolute, symlink-free work directory, made
// empty. It refuses a non-empty directory that dvpcbench did not make.
func prepareWork(dir string) (string, error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "dvpcbench-")
		if err != nil {
			return "", err
		}
		dir = d
	} else {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return "", err
		}
		dir = abs
		ents, err := os.ReadDir(dir)
		switch {
		case os.IsNotExist(err):
		case err != nil:
			return "", err
		case len(ents) > 0:
			if _, err := os.Stat(filepath.Join(dir, workMarker)); err != nil {
				return "", fmt.Errorf("work directory %s is not empty and was not made by dvpcbench", dir)
			}
			for _, e := range ents {
				if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
					return "", err
				}
			}
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", err
		}
	}
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", err
	}
	return dir, os.WriteFile(filepath.Join(dir, workMarker), nil, 0o644)
}

func (b *bench) path(elem ...string) string {
	return filepath.Join(append([]string{b.work}, elem...)...)
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "dvpcbench: "+format+"\n", args...)
}

func (b *bench) toolRun(name string) *toolRun {
	for _, r := range b.runs {
		if r.Name == name {
			return r
		}
	}
	return nil
}

func (b *bench) run() error {
	var st syscall.Statfs_t
	if syscall.Statfs(b.work, &st) == nil {
		if free := int64(st.Bavail) * st.Bsize; free < 13*int64(b.cfg.sizeMiB)*mib {
			b.logf("warning: %d MiB free in %s; a run needs about %d MiB", free/mib, b.work, 13*b.cfg.sizeMiB)
		}
	}
	b.ensureTools()
	defer b.stopRegistries()
	defer b.lockAgent()
	// The smallest peak RSS the wrapper can report (see wrap.go).
	b.rssFloor, _ = b.exec("rss-floor", exec.Command("true"), nil)
	for i, t := range b.tools {
		tr := b.runs[i]
		if t.name != "dvpc" {
			if _, err := exec.LookPath(t.bin); err != nil {
				tr.Unavailable = t.bin + " is not installed"
				b.logf("%s", tr.Unavailable)
				continue
			}
		}
		tr.Version = b.toolVersion(t)
	}
	for i := range stages {
		if err := b.runStage(&stages[i]); err != nil {
			return err
		}
	}
	return nil
}

// runStage runs a global action, or a step for every tool in turn.
func (b *bench) runStage(s *stage) error {
	if s.global != nil {
		b.order = append(b.order, s.name)
		if err := s.global(b); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		return nil
	}
	var names []string
	for _, t := range b.tools {
		if t.cmds[s.step] != nil {
			names = append(names, t.name)
		}
		b.runStep(stepByName(s.step), t)
	}
	b.order = append(b.order, s.name+" ("+strings.Join(names, ", ")+")")
	return nil
}

func (b *bench) generate() error {
	b.logf("generating a %d MiB home (seed %d) in %s", b.cfg.sizeMiB, b.cfg.seed, b.home)
	p, st, err := generate(b.home, b.cfg.seed, b.cfg.sizeMiB)
	if err != nil {
		return err
	}
	b.plan, b.tree = p, st
	b.logf("home: %d files, %d dirs, %d symlinks, %d hard links, %d duplicates, %.0f MiB in %.1f s",
		st.Files, st.Dirs, st.Symlinks, st.Hardlinks, st.Dups, float64(st.Bytes)/mib, st.Seconds)
	return nil
}

func (b *bench) mutate() error {
	m, err := mutate(b.home, b.plan, b.cfg.seed)
	if err != nil {
		return err
	}
	b.mut = m
	b.logf("week of work: %d edited, %d appended, %d created, %d deleted, renamed %s, %.1f MiB written",
		len(m.Edited), len(m.Appended), len(m.Created), len(m.Deleted), m.Renamed[0], float64(m.BytesWritten)/mib)
	if b.cfg.verify {
		b.homeManifest, err = manifest(b.home)
	}
	return err
}

// A cell is a figure or, when there is none, why: "-" (not run) or "failed".
type cell struct {
	v   float64
	why string
}

func (c cell) ok() bool { return c.why == "" }

// row is one line of the table.
type row struct {
	key   string
	label string
	value func(b *bench, tr *toolRun) cell
	text  func(b *bench, tr *toolRun) string // for rows of words, not figures
}

func stepCell(name string, f func(r *result) float64) func(b *bench, tr *toolRun) cell {
	return func(b *bench, tr *toolRun) cell {
		if tr == nil {
			return cell{why: "-"}
		}
		r := tr.Steps[name]
		switch {
		case r == nil:
			return cell{why: "-"}
		case !r.ok():
			return cell{why: "failed"}
		}
		return cell{v: f(r)}
	}
}

func seconds(r *result) float64 { return r.Seconds }
func rssMiB(r *result) float64  { return float64(r.MaxRSSKiB) / kib }
func outMiB(r *result) float64  { return float64(r.OutBytes) / mib }

// perLimit is the time of a step of a tool over the time of a limit.
func perLimit(step, limit string) func(b *bench, tr *toolRun) cell {
	return func(b *bench, tr *toolRun) cell {
		c := stepCell(step, seconds)(b, tr)
		l := b.limitResults[limit]
		if !c.ok() || !l.ok() || l.Seconds == 0 {
			if c.ok() {
				c.why = "-"
			}
			return c
		}
		return cell{v: c.v / l.Seconds}
	}
}

// incrementalNew is what dvpc's incremental snapshot stored after dedup
// and compression (bytes_new of snapshot --json); pullWeek is what the
// pull of the week fetched.
var (
	incrementalNew = reportCell("incremental", jsonMiB("bytes_new"))
	pullWeek       = reportCell("pull-week", jsonMiB("bytes_fetched"))
)

var measuredSteps = []string{"initial", "incremental", "restore", "restore-file"}

var rows = []row{
	{key: "unlock_s", label: "unlock (argon2id, default params) s", value: stepCell("unlock", seconds)},
	{key: "initial_s", label: "initial snapshot s", value: stepCell("initial", seconds)},
	{key: "incremental_s", label: "incremental snapshot s", value: stepCell("incremental", seconds)},
	{key: "incremental_mib", label: "incremental bytes MiB", value: func(b *bench, tr *toolRun) cell {
		c := stepCell("incremental", seconds)(b, tr)
		if !c.ok() {
			return c
		}
		before, ok1 := tr.RepoBytes["initial"]
		if n, ok := tr.RepoBytes["pull-initial"]; ok {
			before = n // setting up the mirror wrote to the store
		}
		after, ok2 := tr.RepoBytes["incremental"]
		if !ok1 || !ok2 {
			return cell{why: "failed"}
		}
		return cell{v: float64(after-before) / mib}
	}},
	{key: "incremental_new_mib", label: "incremental new blobs MiB", value: incrementalNew},
	{key: "restore_s", label: "full restore s", value: stepCell("restore", seconds)},
	{key: "restore_file_s", label: "one-file restore s", value: stepCell("restore-file", seconds)},
	{key: "iso_s", label: "ISO build s", value: stepCell("iso", seconds)},
	{key: "peak_rss_mib", label: "peak RSS MiB", value: func(b *bench, tr *toolRun) cell {
		out := cell{why: "-"}
		for _, s := range measuredSteps {
			c := stepCell(s, rssMiB)(b, tr)
			switch {
			case c.ok() && (!out.ok() || c.v > out.v):
				out = c
			case !c.ok() && !out.ok() && c.why == "failed":
				out = c
			}
		}
		return out
	}},
	{key: "repo_initial_mib", label: "repository after initial MiB", value: func(b *bench, tr *toolRun) cell {
		c := stepCell("initial", seconds)(b, tr)
		if !c.ok() {
			return c
		}
		if n, ok := tr.RepoBytes["initial"]; ok {
			return cell{v: float64(n) / mib}
		}
		return cell{why: "failed"}
	}},
	{key: "iso_mib", label: "ISO image MiB", value: stepCell("iso", outMiB)},
	{key: "push_1_s", label: "push to 1 mirror s", value: stepCell("push-1", seconds)},
	{key: "push_4_s", label: "push to 4 mirrors s", value: stepCell("push-4", seconds)},
	{key: "push_4_vs_1", label: "push 4 / push 1", value: quotient(stepCell("push-4", seconds), stepCell("push-1", seconds))},
	{key: "registries_cpu_push_1_s", label: "registries' CPU during push to 1 mirror s", value: registriesCPU("push-1")},
	{key: "registries_cpu_push_4_s", label: "registries' CPU during push to 4 mirrors s", value: registriesCPU("push-4")},
	{key: "push_4_floor_s", label: "push 4 CPU floor s", value: push4Floor},
	{key: "push_4_floor_vs_1", label: "push 4 CPU floor / push 1", value: push4FloorVsPush},
	{key: "pull_week_mib", label: "pull of week MiB", value: pullWeek},
	{key: "pull_vs_new", label: "pull / new blobs", value: quotient(pullWeek, incrementalNew)},
	{key: "rss_initial_mib", label: "  peak RSS initial MiB", value: stepCell("initial", rssMiB)},
	{key: "rss_incremental_mib", label: "  peak RSS incremental MiB", value: stepCell("incremental", rssMiB)},
	{key: "rss_restore_mib", label: "  peak RSS full restore MiB", value: stepCell("restore", rssMiB)},
	{key: "rss_restore_file_mib", label: "  peak RSS one-file MiB", value: stepCell("restore-file", rssMiB)},
	{key: "rss_iso_mib", label: "  peak RSS ISO build MiB", value: stepCell("iso", rssMiB)},
	{key: "restore_vs_tar_x", label: "full restore / tar -x", value: perLimit("restore", "tar-write")},
	{key: "iso_vs_xorriso", label: "ISO build / xorriso", value: perLimit("iso", "xorriso")},
	{key: "login_s", label: "login from ISO + mirror s", value: stepCell("login", seconds)},
	{key: "login_restore_s", label: "restore of the same snapshot s", value: stepCell("login-restore", seconds)},
	{key: "login_vs_restore", label: "login / restore", value: quotient(stepCell("login", seconds), stepCell("login-restore", seconds))},
	{key: "login_net_mib", label: "login net MiB (restic: whole repository)", value: loginNet},
	{key: "login_net_vs_new", label: "login net / incremental new blobs", value: quotient(loginNet, incrementalNew)},
	{key: "sync_watch_s", label: "sync --watch: change → local snapshot s", value: watchMedian},
	{key: "sync_one_s", label: "sync after a one-file change s", value: stepCell("sync-one", seconds)},
	{key: "rss_login_mib", label: "  peak RSS login MiB", value: stepCell("login", rssMiB)},
	{key: "rss_sync_watch_mib", label: "  peak RSS sync --watch MiB", value: stepCell("sync-watch", rssMiB)},
	{key: "apps_install_s", label: "install of 3 apps from a registry s", value: stepCell("apps-install", seconds)},
	{key: "apps_install_vs_skopeo", label: "apps install / skopeo copy", value: appsInstallVsSkopeo},
	{key: "apps_installed_mib", label: "snapshot of a home with 3 apps installed MiB", value: appsInstalledMiB},
	{key: "apps_inside_mib", label: "the same home with the apps' files inside MiB", value: appsInsideMiB},
	{key: "apps_stored_pct", label: "app bytes stored %", value: appsStoredPct},
	{key: "restore_check", label: "full restore check", text: checkText("restore")},
	{key: "restore_file_check", label: "one-file restore check", text: checkText("restore-file")},
	{key: "login_check", label: "login check", text: checkText("login")},
}

func checkText(step string) func(b *bench, tr *toolRun) string {
	return func(b *bench, tr *toolRun) string {
		c := stepCell(step, seconds)(b, tr)
		if !c.ok() {
			return c.why
		}
		if ch := tr.Steps[step].Check; ch != "" {
			if strings.HasPrefix(ch, "MISMATCH") {
				return "MISMATCH"
			}
			return ch
		}
		return "-"
	}
}

func rowByKey(key string) *row {
	for i := range rows {
		if rows[i].key == key {
			return &rows[i]
		}
	}
	panic("dvpcbench: no row " + key)
}

// value is the figure of a row for a tool.
func (b *bench) value(key, tool string) cell {
	return rowByKey(key).value(b, b.toolRun(tool))
}

func fmtCell(c cell) string {
	if !c.ok() {
		return c.why
	}
	switch a := math.Abs(c.v); {
	case a >= 100:
		return fmt.Sprintf("%.0f", c.v)
	case a >= 10:
		return fmt.Sprintf("%.1f", c.v)
	default:
		return fmt.Sprintf("%.2f", c.v)
	}
}

func ratio(a, b cell) string {
	switch {
	case !a.ok():
		return a.why
	case !b.ok():
		return b.why
	case b.v == 0:
		return "-"
	}
	return fmt.Sprintf("%.2f", a.v/b.v)
}

// aim is a goal of dvpc relative to a peer or a limit.
type aim struct {
	label string
	key   string // row of the figure
	// check, if set, says why the aim is missed whatever the figures
	// (say, a restore that does not match), or "".
	check func(b *bench) string
	bound func(b *bench) (cell, string)
	// whyMissed, if set, explains a miss by something other than dvpc
	// (say, a bound the machine cannot reach): a note, or "".
	whyMissed func(b *bench, bound float64) string
}

type aimResult struct {
	Label  string  `json:"label"`
	Dvpc   float64 `json:"dvpc,omitempty"`
	Bound  float64 `json:"bound,omitempty"`
	Status string  `json:"status"` // met, missed, n/a
	Note   string  `json:"note,omitempty"`
}

func times(f float64, key, tool string) func(b *bench) (cell, string) {
	return timesAs(f, key, tool, tool)
}

// timesAs is f times the figure of a row for a tool, named who.
func timesAs(f float64, key, tool, who string) func(b *bench) (cell, string) {
	return func(b *bench) (cell, string) {
		c := b.value(key, tool)
		c.v *= f
		return c, who
	}
}

// limitTimes is f times the time of a limit, named who.
func limitTimes(f float64, limit, who string) func(b *bench) (cell, string) {
	return func(b *bench) (cell, string) {
		switch r := b.limitResults[limit]; {
		case r.ok():
			return cell{v: f * r.Seconds}, who
		case r != nil && !strings.HasPrefix(r.Error, "skipped"):
			return cell{why: "failed"}, who
		}
		return cell{why: "-"}, who
	}
}

// stepCheck is the check of dvpc's output of a step, when -verify.
func stepCheck(step string) func(b *bench) string {
	return func(b *bench) string {
		if ch := b.toolRun("dvpc").Steps[step].Check; b.cfg.verify && ch != "ok" {
			return "restore check: " + ch
		}
		return ""
	}
}

// limitCheck is the check made after a limit.
func limitCheck(limit, what string) func(b *bench) string {
	return func(b *bench) string {
		if ch := b.limitResults[limit].Check; ch != "ok" {
			return what + ": " + ch
		}
		return ""
	}
}

var aims = []aim{
	{label: "initial snapshot ≤ 0.5× borg", key: "initial_s", bound: times(0.5, "initial_s", "borg")},
	{label: "incremental snapshot ≤ 0.5× fastest peer", key: "incremental_s", bound: func(b *bench) (cell, string) {
		best, who := cell{why: "-"}, "peers"
		for _, p := range []string{"restic", "borg"} {
			if c := b.value("incremental_s", p); c.ok() && (!best.ok() || c.v < best.v) {
				best, who = c, p
			}
		}
		best.v *= 0.5
		return best, who
	}},
	{label: "incremental bytes ≤ restic", key: "incremental_mib", bound: times(1, "incremental_mib", "restic")},
	{label: "full restore ≤ 1.1× tar -x", key: "restore_s", check: stepCheck("restore"), bound: limitTimes(1.1, "tar-write", "tar -x")},
	{label: "one-file restore ≤ borg", key: "restore_file_s", check: stepCheck("restore-file"), bound: times(1, "restore_file_s", "borg")},
	{label: "peak RSS ≤ borg", key: "peak_rss_mib", bound: times(1, "peak_rss_mib", "borg")},
	{label: "ISO build ≤ 1.2× xorriso -as mkisofs -R -J", key: "iso_s", check: limitCheck("xorriso", "same files"), bound: limitTimes(1.2, "xorriso", "xorriso")},
	{label: "push to 4 mirrors ≤ 1.3× push to 1", key: "push_4_s", bound: timesAs(1.3, "push_1_s", "dvpc", "push to 1"), whyMissed: (*bench).push4FloorNote},
	{label: "pull of the week ≤ 1.1× its new blobs", key: "pull_week_mib", bound: timesAs(1.1, "incremental_new_mib", "dvpc", "new blobs of the incremental")},
	{label: "login ≤ 1.2× restore of the same snapshot", key: "login_s", check: stepCheck("login"), bound: timesAs(1.2, "login_restore_s", "dvpc", "restore")},
	{label: "sync --watch: change → snapshot ≤ 0.3 s", key: "sync_watch_s", bound: constBound(0.3, "0.3 s")},
	{label: "sync after a one-file change ≤ 0.5× restic", key: "sync_one_s", bound: times(0.5, "sync_one_s", "restic")},
	{label: "peak RSS of login ≤ 100 MiB", key: "rss_login_mib", bound: constBound(100, "100 MiB")},
	{label: "installed apps: ≤ 1% of their bytes stored", key: "apps_stored_pct", bound: constBound(1, "1%")},
}

func (b *bench) evalAims() []aimResult {
	var out []aimResult
	for _, a := range aims {
		r := aimResult{Label: a.label, Status: "n/a"}
		d := b.value(a.key, "dvpc")
		bound, who := a.bound(b)
		switch {
		case !d.ok():
			r.Note = "dvpc " + map[string]string{"-": "not run", "failed": "failed"}[d.why]
		case !bound.ok():
			r.Note = who + " " + map[string]string{"-": "not run", "failed": "failed"}[bound.why]
		default:
			r.Dvpc, r.Bound = d.v, bound.v
			r.Status = "missed"
			if d.v <= bound.v {
				r.Status = "met"
			}
			if a.check != nil {
				if note := a.check(b); note != "" {
					r.Status, r.Note = "missed", note
				}
			}
			if r.Status == "missed" && r.Note == "" && a.whyMissed != nil {
				r.Note = a.whyMissed(b, bound.v)
			}
		}
		out = append(out, r)
	}
	return out
}

func (b *bench) print() {
	w := os.Stdout
	st := b.tree
	fmt.Fprintf(w, "\ndvpcbench: seed %d, %d MiB home at %s: %d files, %d dirs, %d symlinks, %d hard links, %d duplicates, %.0f MiB; generated in %.1f s\n",
		b.cfg.seed, b.cfg.sizeMiB, b.home, st.Files, st.Dirs, st.Symlinks, st.Hardlinks, st.Dups, float64(st.Bytes)/mib, st.Seconds)
	fmt.Fprintf(w, "one-file target: %s (%.1f MiB)\n", st.BigDoc, st.BigDocMiB)
	if m := b.mut; m != nil {
		fmt.Fprintf(w, "week of work: %d edited in place, %d appended, %d created, %d deleted, %s renamed, 1 MiB changed in %s; %.1f MiB written, %.1f MiB deleted\n",
			len(m.Edited), len(m.Appended), len(m.Created), len(m.Deleted), m.Renamed[0], m.Middle, float64(m.BytesWritten)/mib, float64(m.BytesDeleted)/mib)
	}
	fmt.Fprintf(w, "order: %s\n", strings.Join(b.order, "; "))
	fmt.Fprintf(w, "caches: the page cache is not dropped (the home and repositories are warm); every timed command is preceded by an untimed sync\n")
	if b.rssFloor.ok() {
		fmt.Fprintf(w, "peak RSS: ru_maxrss of each command, run under a small wrapper; its floor (peak RSS of true) is %.1f MiB\n", float64(b.rssFloor.MaxRSSKiB)/kib)
	}
	var noisy []string
	for _, tr := range b.runs {
		for _, s := range steps {
			if r := tr.Steps[s.name]; r.ok() && r.OtherCPU > 0.2*r.Seconds+0.1 {
				noisy = append(noisy, fmt.Sprintf("%s %s %.1f s", tr.Name, s.name, r.OtherCPU))
			}
		}
	}
	for _, l := range limits {
		if r := b.limitResults[l.name]; r.ok() && r.OtherCPU > 0.2*r.Seconds+0.1 {
			noisy = append(noisy, fmt.Sprintf("%s %.1f s", l.name, r.OtherCPU))
		}
	}
	if len(noisy) > 0 {
		fmt.Fprintf(w, "warning: other work used the CPUs during: %s (CPU time not the tool's: sync writeback or other processes); figures are noisy\n", strings.Join(noisy, ", "))
	}
	fmt.Fprintf(w, "encryption on for all; restic repo v2 (zstd auto), borg -e %s --compression %s; %d CPUs\n", b.cfg.borgEncryption, b.cfg.borgCompression, b.cpus)
	for _, tr := range b.runs {
		v := tr.Version
		if tr.Unavailable != "" {
			v = tr.Unavailable
		}
		fmt.Fprintf(w, "  %s: %s\n", tr.Name, cmpOr(v, "version unknown"))
	}
	fmt.Fprintln(w)

	// Labels are padded here so that they stay left-aligned.
	width := len("measurement")
	for _, r := range rows {
		width = max(width, len(r.label))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\tdvpc\trestic\tborg\tdvpc/restic\tdvpc/borg\t\n", width, "measurement")
	for _, r := range rows {
		cols := make([]string, 0, 5)
		if r.text != nil {
			for _, n := range allTools {
				tr := b.toolRun(n)
				if tr == nil {
					cols = append(cols, "-")
				} else {
					cols = append(cols, r.text(b, tr))
				}
			}
			cols = append(cols, "", "")
		} else {
			var cs []cell
			for _, n := range allTools {
				cs = append(cs, b.value(r.key, n))
			}
			for _, c := range cs {
				cols = append(cols, fmtCell(c))
			}
			cols = append(cols, ratio(cs[0], cs[1]), ratio(cs[0], cs[2]))
		}
		fmt.Fprintf(tw, "%-*s\t%s\t\n", width, r.label, strings.Join(cols, "\t"))
	}
	tw.Flush()

	fmt.Fprintln(w, "\nlimits:")
	for _, l := range limits {
		if l.figure != nil {
			fmt.Fprintf(w, "  %-48s %s\n", l.label, l.figure(b))
			continue
		}
		r := b.limitResults[l.name]
		switch {
		case r == nil:
			fmt.Fprintf(w, "  %-48s not run\n", l.label)
		case strings.HasPrefix(r.Error, "skipped: "):
			fmt.Fprintf(w, "  %-48s not run (%s)\n", l.label, strings.TrimPrefix(r.Error, "skipped: "))
		case !r.ok():
			fmt.Fprintf(w, "  %-48s failed: %s\n", l.label, r.Error)
		default:
			n := st.Bytes
			if l.bytes != nil {
				n = l.bytes(b)
			}
			fmt.Fprintf(w, "  %-48s %7.2f s  %6.0f MiB/s\n", l.label, r.Seconds, float64(n)/mib/r.Seconds)
		}
		if l.detail != nil && r != nil {
			if d := l.detail(b); d != "" {
				fmt.Fprintf(w, "    %s\n", strings.ReplaceAll(d, "\n", "\n    "))
			}
		}
	}

	fmt.Fprintln(w, "\naims (dvpc):")
	for _, a := range b.evalAims() {
		line := fmt.Sprintf("  %-44s ", a.Label)
		if a.Status == "n/a" {
			line += "n/a (" + a.Note + ")"
		} else {
			line += fmt.Sprintf("%-7s dvpc %s, bound %s", a.Status, fmtCell(cell{v: a.Dvpc}), fmtCell(cell{v: a.Bound}))
			if a.Note != "" {
				line += " (" + a.Note + ")"
			}
		}
		fmt.Fprintln(w, line)
	}

	var fails []string
	for _, tr := range b.runs {
		for _, s := range steps {
			if r := tr.Steps[s.name]; r != nil {
				if r.Error != "" && !strings.HasPrefix(r.Error, "skipped") {
					where := "logs are kept with -keep"
					if b.cfg.keep {
						where = "log " + r.Log
					}
					fails = append(fails, fmt.Sprintf("  %s %s: %s (%s)", tr.Name, s.name, r.Error, where))
				}
				if strings.HasPrefix(r.Check, "MISMATCH") {
					fails = append(fails, fmt.Sprintf("  %s %s check: %s", tr.Name, s.name, r.Check))
				}
				if r.Warning != "" {
					fails = append(fails, fmt.Sprintf("  %s %s warning: %s", tr.Name, s.name, r.Warning))
				}
			}
		}
	}
	for _, l := range limits {
		if r := b.limitResults[l.name]; r != nil && strings.HasPrefix(r.Check, "MISMATCH") {
			fails = append(fails, fmt.Sprintf("  %s check: %s", l.name, r.Check))
		}
	}
	if len(fails) > 0 {
		fmt.Fprintln(w, "\nfailures and warnings:")
		fmt.Fprintln(w, strings.Join(fails, "\n"))
	}
}

func (b *bench) writeJSON(name string) error {
	table := map[string]map[string]any{}
	for _, r := range rows {
		m := map[string]any{}
		for _, n := range allTools {
			if r.text != nil {
				if tr := b.toolRun(n); tr != nil {
					m[n] = r.text(b, tr)
				}
				continue
			}
			if c := b.value(r.key, n); c.ok() {
				m[n] = c.v
			} else if c.why != "-" {
				m[n] = c.why
			}
		}
		table[r.key] = m
	}
	lim := map[string]*result{}
	for k, v := range b.limitResults {
		lim[k] = v
	}
	rep := map[string]any{
		"config": map[string]any{
			"seed": b.cfg.seed, "size_mib": b.cfg.sizeMiB, "work": b.work, "dvpc": b.cfg.dvpc,
			"borg_encryption": b.cfg.borgEncryption, "borg_compression": b.cfg.borgCompression,
			"cpus": b.cpus, "verify": b.cfg.verify, "rss_floor_kib": b.rssFloor.MaxRSSKiB,
		},
		"order":    b.order,
		"caches":   "page cache not dropped; untimed sync before every timed command",
		"tree":     b.tree,
		"mutation": b.mut,
		"limits":   lim,
		"tools":    b.runs,
		"table":    table,
		"aims":     b.evalAims(),
	}
	if b.iso != nil {
		rep["iso"] = b.iso
	}
	if b.apps != nil {
		rep["apps"] = b.apps
	}
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(name, append(data, '\n'), 0o644)
}
