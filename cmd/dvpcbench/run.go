//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// result is one measured command.
type result struct {
	Seconds   float64         `json:"seconds"`
	UserS     float64         `json:"user_seconds"`
	SysS      float64         `json:"system_seconds"`
	MaxRSSKiB int64           `json:"max_rss_kib"`
	ExitCode  int             `json:"exit_code"`
	Error     string          `json:"error,omitempty"`
	Warning   string          `json:"warning,omitempty"`
	Check     string          `json:"check,omitempty"`     // outcome of the untimed check after the step
	Report    json.RawMessage `json:"report,omitempty"`    // dvpc's --json output (snapshot, push, pull)
	OutBytes  int64           `json:"out_bytes,omitempty"` // size of the file the command wrote, such as an ISO image
	NetBytes  int64           `json:"net_bytes,omitempty"` // bytes of the responses the bench's counting proxy passed on (see login.go)
	OtherCPU  float64         `json:"other_cpu_seconds"`   // busy CPU time of the machine not spent by the command nor the registries it pushed to
	// RegistriesCPU is the CPU time of the registries the step pushed
	// to, taken just before and just after the command; nil for the
	// steps without registries and when it could not be read.
	RegistriesCPU *float64 `json:"registries_cpu_seconds,omitempty"`
	Log           string   `json:"log"`
	stdout        []byte
}

func (r *result) ok() bool { return r != nil && r.Error == "" }

// tool is one program under measurement. cmds maps a step name to the
// command that performs it; a tool without a command for a step shows
// "-" in that step's cells.
type tool struct {
	name    string
	bin     string
	repo    string
	env     []string
	okExit  func(code int) bool
	version []string // arguments that print the version
	cmds    map[string]func(b *bench, out string) (*exec.Cmd, error)
	// restoredRoot is where a full restore into out puts the home.
	restoredRoot func(b *bench, out string) string
	// fileCandidates are where a one-file restore into out may put the file.
	fileCandidates func(b *bench, out, rel string) []string
}

// step is one measured action of every tool. steps lists them; stages
// says when each runs. To add a measurement, add a step here, a command for it to the tools that have one, a stage,
// a row to rows, an aim to aims and, for a reference figure, a limit to
// limits (with the stage that runs it).
type step struct {
	name  string
	label string
	needs []string // steps that must have succeeded first
	bins  []string // programs it runs besides the tool; it is skipped when one is missing
	// registries are the local registries (see mirror.go) whose CPU time
	// is recorded with the command's: the ones it pushes to.
	registries []int
	// proxied steps talk to the login's registry through the bench's
	// counting proxy (see login.go): for dvpc, the CPU time of both is
	// recorded as the registries'.
	proxied bool
	// drive, if set, runs beside the command and ends it (see execDriven).
	drive func(b *bench, c *proc) (json.RawMessage, error)
	// after runs untimed after a successful command, to measure the
	// repository or check the output; it returns a check outcome.
	after func(b *bench, s *step, t *tool, tr *toolRun, out string) string
}

var steps = []step{
	{name: "init", label: "init"},
	// dvpc only: the unlock of a session (see unlockCmd); no other step
	// pays it.
	{name: "unlock", label: "unlock", needs: []string{"init"}, after: afterUnlock},
	{name: "initial", label: "initial snapshot", needs: []string{"init"}, after: afterSnapshot},
	{name: "incremental", label: "incremental snapshot", needs: []string{"initial"}, after: afterSnapshot},
	{name: "restore", label: "full restore", needs: []string{"incremental"}, after: checkRestore},
	{name: "restore-file", label: "one-file restore", needs: []string{"incremental"}, after: checkRestoreFile},
	// Only dvpc writes ISO images; the store then holds both snapshots.
	{name: "iso", label: "ISO build", needs: []string{"incremental"}, after: afterISO},
	// dvpc's mirrors, on local registries (see mirror.go). pull-initial
	// only sets up pull-week; it is in no row.
	{name: "pull-initial", label: "pull of the initial snapshot", needs: []string{"initial"}, bins: []string{"docker-registry"}, after: afterPull},
	{name: "push-1", label: "push to 1 mirror", needs: []string{"incremental"}, bins: []string{"docker-registry"}, registries: []int{push1Registry}, after: afterPush(1)},
	{name: "push-4", label: "push to 4 mirrors", needs: []string{"incremental"}, bins: []string{"docker-registry"}, registries: push4Registries(), after: afterPush(registryMirrors)},
	{name: "pull-week", label: "pull of the week", needs: []string{"incremental", "pull-initial"}, bins: []string{"docker-registry"}, after: afterPull},
	// dvpc's login on a strange PC (see login.go). login-iso only sets
	// up the login; it is in no row.
	{name: "login-iso", label: "ISO of the initial snapshot", needs: []string{"initial"}},
	{name: "login-restore", label: "restore of the login's snapshot", needs: []string{"incremental"}, after: checkRestore},
	{name: "login", label: "login from the ISO and a mirror", needs: []string{"incremental", "login-iso"}, bins: []string{"docker-registry"}, proxied: true, after: afterLogin},
	// The login's session kept in sync (see sync.go); sync-one also of
	// the peers, whose needs include no login.
	{name: "sync-watch", label: "sync --watch after one-file changes", needs: []string{"login"}, proxied: true, drive: driveWatch},
	{name: "sync-one", label: "sync after a one-file change", needs: []string{"incremental", "login"}, proxied: true, after: afterSyncOne},
}

// driver is the step's drive for execDriven, or nil.
func (s *step) driver(b *bench) func(*proc) (json.RawMessage, error) {
	if s.drive == nil {
		return nil
	}
	return func(c *proc) (json.RawMessage, error) { return s.drive(b, c) }
}

func stepByName(name string) *step {
	for i := range steps {
		if steps[i].name == name {
			return &steps[i]
		}
	}
	panic("dvpcbench: no step " + name)
}

// stage is one entry of the run order: either a global action or a step
// run for every tool in turn.
type stage struct {
	name   string
	global func(b *bench) error
	step   string
}

var stages = []stage{
	{name: "generate", global: (*bench).generate},
	{name: "limits", global: runLimits("limits")},
	{name: "init", step: "init"},
	{name: "unlock", step: "unlock"},
	{name: "initial", step: "initial"},
	// Untimed for the table; dvpc only, so the peers' order is unchanged.
	{name: "pull-initial", step: "pull-initial"},
	{name: "login-iso", step: "login-iso"},
	{name: "mutate", global: (*bench).mutate},
	{name: "incremental", step: "incremental"},
	{name: "restore", step: "restore"},
	{name: "restore-file", step: "restore-file"},
	// Last, so that the steps before run as they did without it.
	{name: "iso", step: "iso"},
	{name: "xorriso", global: runLimits("xorriso")},
	// After the ISO stage, so that the steps before run as they did.
	{name: "push-1", step: "push-1"},
	{name: "push-4", step: "push-4"},
	{name: "pull-week", step: "pull-week"},
	// Last: the restore and the login, one right after the other.
	{name: "login-restore", step: "login-restore"},
	{name: "login", step: "login"},
	{name: "sync-watch", step: "sync-watch"},
	{name: "sync-one", step: "sync-one"},
	// dvpc's apps (see apps.go), on a PC of their own.
	{name: "apps", global: (*bench).runApps},
	{name: "apps-limits", global: runLimits("apps-limits")},
}

// limit is a reference command that bounds what any tool can do on this
// machine, or that does what a step of dvpc does with a common tool. The
// stage named stage runs it. A limit with a figure instead is computed
// from dvpc's steps and runs nothing.
type limit struct {
	name  string
	label string
	stage string
	bins  []string // programs it runs; it is not run when one is missing
	needs string   // a step of dvpc that must have succeeded first
	// prepare runs untimed before the command, after runs untimed after
	// it succeeded and returns its check, and cleanup runs at the end,
	// whatever happened.
	prepare func(b *bench) error
	cmd     func(b *bench) *exec.Cmd
	after   func(b *bench, r *result) string
	cleanup func(b *bench)
	// bytes is what its MiB/s figure is of (nil: the home); detail, if
	// set, prints a second line under it.
	bytes  func(b *bench) int64
	detail func(b *bench) string
	// figure is the text printed after the label of a computed limit.
	figure func(b *bench) string
}

var limits = []limit{
	{
		name:  "tar-read",
		label: "tar -cf - home | cat >/dev/null (read limit)",
		stage: "limits",
		bins:  []string{"tar"},
		cmd: func(b *bench) *exec.Cmd {
			c := exec.Command("tar", "-cf", "-", "-C", b.work, "home")
			c.Stdout = io.Discard // copied through a pipe, like cat >/dev/null
			return c
		},
	},
	{
		name:  "tar-write",
		label: "tar -xf home.tar (write limit)",
		stage: "limits",
		bins:  []string{"tar"},
		prepare: func(b *bench) error {
			_, err := b.exec("tar-write-prepare", exec.Command("tar", "-cf", b.path("home.tar"), "-C", b.work, "home"), nil)
			if err != nil {
				return err
			}
			return os.MkdirAll(b.path("out", "tar-x"), 0o755)
		},
		cmd: func(b *bench) *exec.Cmd {
			return exec.Command("tar", "-xf", b.path("home.tar"), "-C", b.path("out", "tar-x"))
		},
		cleanup: func(b *bench) {
			if !b.cfg.keep {
				os.Remove(b.path("home.tar"))
				os.RemoveAll(b.path("out", "tar-x"))
			}
		},
	},
	{
		// The same files as dvpc's image, taken out of it (see iso.go).
		name:    "xorriso",
		label:   "xorriso -as mkisofs -R -J of the same files",
		stage:   "xorriso",
		bins:    []string{"xorriso", "osirrox"},
		needs:   "iso",
		prepare: prepareXorriso,
		cmd: func(b *bench) *exec.Cmd {
			return exec.Command("xorriso", "-as", "mkisofs", "-R", "-J", "-o", b.xorrisoISO(), b.isoTree())
		},
		after:   afterXorriso,
		cleanup: cleanupISO,
		bytes:   func(b *bench) int64 { return b.iso.FileBytes },
		detail:  (*bench).isoDetail,
	},
	{
		// The same images as dvpc's apps install (see apps.go).
		name:    "skopeo-apps",
		label:   "skopeo copy of the 3 apps' images",
		stage:   "apps-limits",
		bins:    []string{"skopeo"},
		prepare: appsInstalled,
		cmd:     skopeoApps,
		cleanup: func(b *bench) {
			if !b.cfg.keep {
				os.RemoveAll(b.path("apps", "skopeo"))
			}
		},
		bytes: func(b *bench) int64 { return b.apps.Bytes },
	},
	{
		// What the registries of the push-4 step leave of the CPUs (see
		// mirror.go).
		name:   "push-4-cpu-floor",
		label:  "push to 4 mirrors: machine CPU floor",
		figure: (*bench).push4FloorText,
	},
	{
		// Every latency of the watch, whose median is its row (see
		// sync.go).
		name:   "sync-watch-latencies",
		label:  "sync --watch: change → local snapshot",
		figure: (*bench).watchText,
	},
}

// runLimits returns the global action of a stage: it runs the limits of
// that stage.
func runLimits(stage string) func(b *bench) error {
	return func(b *bench) error {
		for i := range limits {
			if limits[i].stage == stage {
				b.runLimit(&limits[i])
			}
		}
		return nil
	}
}

func (b *bench) runLimit(l *limit) {
	tr := b.toolRun("dvpc")
	if l.needs != "" && tr == nil {
		return // dvpc is not measured: not run
	}
	if l.cleanup != nil {
		defer l.cleanup(b)
	}
	if l.needs != "" && !tr.Steps[l.needs].ok() {
		b.limitResults[l.name] = &result{Error: "skipped: dvpc " + l.needs + " failed"}
		b.logf("%-12s %-7s skipped (dvpc %s failed)", l.name, "", l.needs)
		return
	}
	for _, bin := range l.bins {
		if _, err := exec.LookPath(bin); err != nil {
			b.limitResults[l.name] = &result{Error: "skipped: " + bin + " is not installed"}
			b.logf("%-12s %-7s skipped (%s is not installed)", l.name, "", bin)
			return
		}
	}
	if l.prepare != nil {
		if err := l.prepare(b); err != nil {
			b.limitResults[l.name] = &result{Error: "prepare: " + err.Error()}
			b.logf("%-12s %-7s failed: prepare: %v", l.name, "", err)
			return
		}
	}
	r, _ := b.exec(l.name, l.cmd(b), nil)
	b.limitResults[l.name] = r
	if r.ok() && l.after != nil {
		r.Check = l.after(b, r)
	}
	msg := fmt.Sprintf("%.2f s", r.Seconds)
	if !r.ok() {
		msg = "failed: " + r.Error
	}
	if r.Check != "" {
		msg += ", check: " + r.Check
	}
	b.logf("%-12s %-7s %s", l.name, "", msg)
}

func exitOK0(code int) bool { return code == 0 }

func (b *bench) newDvpc() *tool {
	t := &tool{name: "dvpc", bin: b.cfg.dvpc, repo: b.path("repo", "dvpc"), okExit: exitOK0, version: []string{"--version"}}
	// A session: the unlock agent, private to the run (its socket in
	// b.runtime), keeps the store unlocked between commands, even while
	// restic and borg run, and is ended at the end of the run (lockAgent).
	t.env = []string{"DVPC_PASSPHRASE_FILE=" + b.path("passphrase"), "XDG_RUNTIME_DIR=" + b.runtime,
		"DVPC_NO_AGENT=0", "DVPC_AGENT_TIMEOUT=" + agentIdle}
	cmd := func(args ...string) *exec.Cmd {
		return exec.Command(t.bin, append([]string{"--store", t.repo}, args...)...)
	}
	t.cmds = map[string]func(*bench, string) (*exec.Cmd, error){
		// The default key derivation, whose cost the unlock row shows.
		"init":        func(*bench, string) (*exec.Cmd, error) { return cmd("init"), nil },
		"unlock":      func(b *bench, _ string) (*exec.Cmd, error) { return unlockCmd(b, t) },
		"initial":     func(b *bench, _ string) (*exec.Cmd, error) { return cmd("snapshot", "--json", b.home), nil },
		"incremental": func(b *bench, _ string) (*exec.Cmd, error) { return cmd("snapshot", "--json", b.home), nil },
		"restore":     func(b *bench, out string) (*exec.Cmd, error) { return cmd("restore", "latest", "--to", out), nil },
		"restore-file": func(b *bench, out string) (*exec.Cmd, error) {
			return cmd("restore", "latest", b.plan.BigDoc, "--to", out), nil
		},
		// bd-dl so that the store fits one disc; no clients, so that the
		// image holds the files xorriso is given.
		"iso": func(b *bench, _ string) (*exec.Cmd, error) {
			if err := os.Remove(b.dvpcISO()); err != nil && !os.IsNotExist(err) {
				return nil, err // dvpc never overwrites its --out
			}
			return cmd("media", "iso", "--out", b.dvpcISO(), "--capacity", "bd-dl", "--no-clients"), nil
		},
	}
	for name, mk := range dvpcMirrorCmds(t) {
		t.cmds[name] = mk
	}
	for name, mk := range dvpcLoginCmds(t) {
		t.cmds[name] = mk
	}
	for name, mk := range dvpcSyncCmds(t) {
		t.cmds[name] = mk
	}
	t.restoredRoot = func(_ *bench, out string) string { return out }
	t.fileCandidates = func(_ *bench, out, rel string) []string {
		return []string{filepath.Join(out, filepath.FromSlash(rel)), filepath.Join(out, filepath.Base(rel)), out}
	}
	return t
}

// agentIdle is how long the bench's unlock agent keeps the keys without
// use: longer than any run, which ends it with lockAgent.
const agentIdle = "48h"

// unlockCmd is the unlock of a session: with the agent emptied first
// (untimed), a command that does nothing but unlock the store with the
// passphrase, with the default argon2id parameters, and hand the keys to
// the agent. Every later dvpc command takes them from the agent, as the
// commands of a session do, so none of their figures includes the unlock.
func unlockCmd(b *bench, t *tool) (*exec.Cmd, error) {
	if r, err := b.dvpcPrep(t, "unlock-lock", "lock"); err != nil {
		return nil, fmt.Errorf("dvpc lock: %w (see %s)", err, r.Log)
	}
	return exec.Command(t.bin, "--store", t.repo, "--json", "log"), nil
}

// afterUnlock checks that the agent now holds the keys: a command with a
// wrong passphrase still opens the store.
func afterUnlock(b *bench, _ *step, t *tool, _ *toolRun, _ string) string {
	c := exec.Command(t.bin, "--store", t.repo, "--json", "log")
	c.Env = append(os.Environ(), t.env...)
	c.Env = append(c.Env, "DVPC_PASSPHRASE_FILE=", "DVPC_PASSPHRASE=not the passphrase")
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Sprintf("the unlock agent does not keep the store unlocked, so every figure includes an unlock: %v: %s", err, bytes.TrimSpace(out))
	}
	return ""
}

// lockAgent ends the run's unlock agent, if dvpc is measured, and removes
// the directory of its socket.
func (b *bench) lockAgent() {
	for _, t := range b.tools {
		if t.name == "dvpc" {
			if r, err := b.dvpcPrep(t, "lock", "lock"); err != nil {
				b.logf("dvpc lock: %v (see %s)", err, r.Log)
			}
		}
	}
	if err := os.RemoveAll(b.runtime); err != nil {
		b.logf("removing the agent's directory: %v", err)
	}
}

func (b *bench) newRestic() *tool {
	t := &tool{name: "restic", bin: "restic", repo: b.path("repo", "restic"), okExit: exitOK0, version: []string{"version"}}
	t.env = []string{"RESTIC_PASSWORD=" + passphrase, "RESTIC_CACHE_DIR=" + b.path("cache", "restic")}
	cmd := func(args ...string) *exec.Cmd {
		return exec.Command(t.bin, append([]string{"-r", t.repo}, args...)...)
	}
	t.cmds = map[string]func(*bench, string) (*exec.Cmd, error){
		"init": func(*bench, string) (*exec.Cmd, error) { return cmd("init", "--repository-version", "2"), nil },
		// The same absolute path both times, so that restic finds the
		// parent snapshot and skips unchanged files.
		"initial":     func(b *bench, _ string) (*exec.Cmd, error) { return cmd("backup", b.home), nil },
		"incremental": func(b *bench, _ string) (*exec.Cmd, error) { return cmd("backup", b.home), nil },
		"restore":     func(b *bench, out string) (*exec.Cmd, error) { return cmd("restore", "latest", "--target", out), nil },
		"restore-file": func(b *bench, out string) (*exec.Cmd, error) {
			return cmd("restore", "latest", "--target", out, "--include", filepath.Join(b.home, filepath.FromSlash(b.plan.BigDoc))), nil
		},
		// The one-file change of dvpc's sync, made to the home.
		"sync-one": func(b *bench, _ string) (*exec.Cmd, error) {
			if err := editTarget(b, b.home); err != nil {
				return nil, err
			}
			return cmd("backup", b.home), nil
		},
	}
	// restic restores the absolute path of the home below the target.
	t.restoredRoot = func(b *bench, out string) string { return filepath.Join(out, b.home) }
	t.fileCandidates = func(b *bench, out, rel string) []string {
		return []string{filepath.Join(out, b.home, filepath.FromSlash(rel))}
	}
	return t
}

func (b *bench) newBorg() *tool {
	t := &tool{name: "borg", bin: "borg", repo: b.path("repo", "borg"), version: []string{"--version"}}
	// borg exits with 1 for warnings (say, a file changed while read).
	t.okExit = func(code int) bool { return code == 0 || code == 1 }
	t.env = []string{"BORG_PASSPHRASE=" + passphrase, "BORG_BASE_DIR=" + b.path("cache", "borg"),
		"BORG_DISPLAY_PASSPHRASE=no", "BORG_RELOCATED_REPO_ACCESS_IS_OK=yes"}
	create := func(archive string) func(*bench, string) (*exec.Cmd, error) {
		return func(b *bench, _ string) (*exec.Cmd, error) {
			// Run from inside the home so that archive paths are relative.
			c := exec.Command(t.bin, "create", "--compression", b.cfg.borgCompression, t.repo+"::"+archive, ".")
			c.Dir = b.home
			return c, nil
		}
	}
	extract := func(args ...string) func(*bench, string) (*exec.Cmd, error) {
		return func(b *bench, out string) (*exec.Cmd, error) {
			if err := os.MkdirAll(out, 0o755); err != nil {
				return nil, err
			}
			c := exec.Command(t.bin, append([]string{"extract", t.repo + "::s2"}, args...)...)
			c.Dir = out
			return c, nil
		}
	}
	t.cmds = map[string]func(*bench, string) (*exec.Cmd, error){
		"init": func(b *bench, _ string) (*exec.Cmd, error) {
			return exec.Command(t.bin, "init", "-e", b.cfg.borgEncryption, t.repo), nil
		},
		"initial":      create("s1"),
		"incremental":  create("s2"),
		"restore":      extract(),
		"restore-file": func(b *bench, out string) (*exec.Cmd, error) { return extract(b.plan.BigDoc)(b, out) },
		"sync-one": func(b *bench, out string) (*exec.Cmd, error) {
			if err := editTarget(b, b.home); err != nil {
				return nil, err
			}
			return create("s3")(b, out)
		},
	}
	t.restoredRoot = func(_ *bench, out string) string { return out }
	t.fileCandidates = func(_ *bench, out, rel string) []string {
		return []string{filepath.Join(out, filepath.FromSlash(rel))}
	}
	return t
}

const passphrase = "dvpcbench correct horse battery staple"

// runStep runs one step for one tool, unless the tool lacks it or a step
// it needs failed.
func (b *bench) runStep(s *step, t *tool) {
	tr := b.toolRun(t.name)
	mk := t.cmds[s.name]
	if mk == nil {
		return
	}
	for _, n := range s.needs {
		if t.cmds[n] != nil && !tr.Steps[n].ok() { // of the steps the tool performs
			tr.Steps[s.name] = &result{Error: "skipped: " + n + " failed"}
			b.logf("%-12s %-7s skipped (%s failed)", s.name, t.name, n)
			return
		}
	}
	if tr.Unavailable != "" {
		tr.Steps[s.name] = &result{Error: tr.Unavailable}
		return
	}
	for _, bin := range s.bins {
		if _, err := exec.LookPath(bin); err != nil {
			tr.Steps[s.name] = &result{Error: "skipped: " + bin + " is not installed"}
			b.logf("%-12s %-7s skipped (%s is not installed)", s.name, t.name, bin)
			return
		}
	}
	out := b.path("out", s.name+"-"+t.name)
	os.RemoveAll(out)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		tr.Steps[s.name] = &result{Error: err.Error()}
		return
	}
	c, err := mk(b, out)
	if err != nil {
		tr.Steps[s.name] = &result{Error: err.Error()}
		return
	}
	c.Env = append(c.Env, t.env...)
	var pids []int // started by mk
	for _, i := range s.registries {
		pids = append(pids, b.registries[i].cmd.Process.Pid)
	}
	if s.proxied && t.name == "dvpc" && b.proxy != nil {
		pids = append(pids, b.registries[loginRegistry].cmd.Process.Pid, os.Getpid())
	}
	r, _ := b.execDriven(s.name+"-"+t.name, c, t.okExit, pids, s.driver(b))
	tr.Steps[s.name] = r
	if r.ok() && t.name == "dvpc" && (s.name == "initial" || s.name == "incremental") {
		var rep struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(bytes.TrimSpace(r.stdout), &rep); err != nil || rep.ID == "" {
			r.Warning = "snapshot --json printed no JSON object with an id"
		} else {
			r.Report = json.RawMessage(bytes.TrimSpace(r.stdout))
		}
	}
	if r.ok() && s.after != nil {
		r.Check = s.after(b, s, t, tr, out)
	}
	msg := fmt.Sprintf("%.2f s, peak RSS %.0f MiB", r.Seconds, float64(r.MaxRSSKiB)/kib)
	if !r.ok() {
		msg = "failed: " + r.Error
	}
	if r.Check != "" {
		msg += ", check: " + r.Check
	}
	b.logf("%-12s %-7s %s", s.name, t.name, msg)
}

// exec runs c under the wrapper (see wrap.go), timed, with the page cache
// flushed to disk first (untimed), and logs its output to logs/NAME.log.
// okExit nil means only 0 is a success.
func (b *bench) exec(name string, c *exec.Cmd, okExit func(int) bool) (*result, error) {
	return b.execWatching(name, c, okExit, nil)
}

// execWatching is exec that also records, as RegistriesCPU, the CPU time
// that the processes registryPIDs (the registries a push talks to) spend
// during the command, and leaves it out of OtherCPU.
func (b *bench) execWatching(name string, c *exec.Cmd, okExit func(int) bool, registryPIDs []int) (*result, error) {
	return b.execDriven(name, c, okExit, registryPIDs, nil)
}

// execDriven is execWatching that, when drive is set, runs drive beside
// the command once it started: drive reads what the command prints, and
// must end it. What drive returns becomes the result's Report; its error,
// the result's.
func (b *bench) execDriven(name string, c *exec.Cmd, okExit func(int) bool, registryPIDs []int, drive func(*proc) (json.RawMessage, error)) (*result, error) {
	logName := b.path("logs", name+".log")
	r := &result{Log: logName}
	fail := func(err error) (*result, error) {
		r.Error = err.Error()
		return r, err
	}
	lf, err := os.Create(logName)
	if err != nil {
		return fail(err)
	}
	defer lf.Close()
	rep, repW, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	defer rep.Close()
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.timeout)
	defer cancel()
	cc := exec.CommandContext(ctx, b.self, append([]string{c.Path}, c.Args[1:]...)...)
	cc.Dir, cc.Stdin = c.Dir, nil
	cc.Env = append(append(os.Environ(), wrapEnv+"=1", "XDG_CACHE_HOME="+b.path("cache", "xdg")), c.Env...)
	cc.ExtraFiles = []*os.File{repW}
	fmt.Fprintf(lf, "$ (cd %s && %s)\n", cmpOr(c.Dir, "."), strings.Join(c.Args, " "))
	var stdout bytes.Buffer
	if c.Stdout != nil {
		cc.Stdout = c.Stdout
	} else {
		cc.Stdout = io.MultiWriter(lf, &limitedBuffer{buf: &stdout, max: 1 << 20})
	}
	stderr := limitedBuffer{buf: &bytes.Buffer{}, max: 64 * kib}
	cc.Stderr = io.MultiWriter(lf, &stderr)
	var live lockedBuffer // what drive reads
	if drive != nil {
		cc.Stdout, cc.Stderr = io.MultiWriter(cc.Stdout, &live), io.MultiWriter(cc.Stderr, &live)
	}
	syscall.Sync()
	busy0 := busyCPU()
	reg0, regErr := procsCPU(registryPIDs)
	err = cc.Start()
	repW.Close()
	if err != nil {
		return fail(err)
	}
	type driven struct {
		report json.RawMessage
		err    error
	}
	drove := make(chan driven, 1)
	exited := make(chan struct{})
	if drive != nil {
		go func() {
			rep, err := drive(&proc{p: cc.Process, exited: exited, output: live.String})
			drove <- driven{rep, err}
		}()
	}
	var w wrapped
	derr := json.NewDecoder(rep).Decode(&w)
	err = cc.Wait()
	close(exited)
	var d driven
	if drive != nil {
		d = <-drove
		r.Report = d.report
	}
	var regCPU float64
	if registryPIDs != nil {
		reg1, rerr := procsCPU(registryPIDs)
		if regErr == nil {
			regErr = rerr
		}
		if regErr == nil {
			regCPU = reg1 - reg0
			r.RegistriesCPU = &regCPU
		} else {
			r.Warning = "registries' CPU time: " + regErr.Error()
		}
	}
	if busy0 >= 0 {
		r.OtherCPU = max(0, busyCPU()-busy0-w.UserS-w.SysS-regCPU)
	}
	r.stdout = stdout.Bytes()
	r.Seconds, r.UserS, r.SysS, r.MaxRSSKiB, r.ExitCode = w.Seconds, w.UserS, w.SysS, w.MaxRSSKiB, w.ExitCode
	if okExit == nil {
		okExit = exitOK0
	}
	switch {
	case ctx.Err() != nil:
		r.Error = "timed out after " + b.cfg.timeout.String()
	case derr != nil:
		r.Error = fmt.Sprintf("wrapper: %v (%v)", derr, err)
	case d.err != nil:
		r.Error = d.err.Error()
	case w.Error != "":
		r.Error = w.Error
	case w.ExitCode == 0:
	case okExit(w.ExitCode):
		r.Warning = fmt.Sprintf("exit code %d: %s", w.ExitCode, lastLine(stderr.buf.String()))
	default:
		r.Error = fmt.Sprintf("exit code %d: %s", w.ExitCode, lastLine(stderr.buf.String()))
	}
	fmt.Fprintf(lf, "\n# %.3f s, exit %d, max RSS %d KiB, error %q\n", r.Seconds, r.ExitCode, r.MaxRSSKiB, r.Error)
	if r.Error != "" {
		return r, errors.New(r.Error)
	}
	return r, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	l := strings.TrimSpace(lines[len(lines)-1])
	if len(l) > 200 {
		l = l[:200] + "…"
	}
	return l
}

type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// afterSnapshot records the repository size after a snapshot.
func afterSnapshot(b *bench, s *step, t *tool, tr *toolRun, _ string) string {
	n, err := dirSize(t.repo)
	if err != nil {
		return "repository size: " + err.Error()
	}
	tr.RepoBytes[s.name] = n
	return ""
}

// checkRestore compares the restored tree with the home (type, size,
// content, mode, link target).
func checkRestore(b *bench, _ *step, t *tool, _ *toolRun, out string) string {
	if !b.cfg.verify {
		return ""
	}
	root := t.restoredRoot(b, out)
	got, err := manifest(root)
	if err != nil {
		return "MISMATCH: " + err.Error()
	}
	if err := compareManifests(b.homeManifest, got, manifestOpts{mode: true}); err != nil {
		return "MISMATCH: " + err.Error()
	}
	return "ok"
}

// checkRestoreFile looks for the restored file and compares its content.
func checkRestoreFile(b *bench, _ *step, t *tool, _ *toolRun, out string) string {
	if !b.cfg.verify {
		return ""
	}
	want := b.homeManifest[b.plan.BigDoc]
	for _, p := range t.fileCandidates(b, out, b.plan.BigDoc) {
		if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		sum, err := hashFile(p, make([]byte, mib))
		if err != nil {
			return "MISMATCH: " + err.Error()
		}
		if sum != want.Sum {
			return "MISMATCH: content of " + p
		}
		return "ok"
	}
	return "MISMATCH: restored file not found"
}

// dirSize sums the sizes of the regular files below root.
func dirSize(root string) (int64, error) {
	var n int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	return n, err
}

// debianPackages are the Debian packages of the programs dvpcbench runs
// besides dvpc (tar is always there).
var debianPackages = map[string]string{
	"restic":          "restic",
	"borg":            "borgbackup",
	"xorriso":         "xorriso",
	"osirrox":         "xorriso",
	"docker-registry": "docker-registry",
	"skopeo":          "skopeo",
}

// ensureTools installs from Debian the programs that the selected tools
// and the limits they need run, when missing.
func (b *bench) ensureTools() {
	var bins []string
	for _, t := range b.tools {
		if t.name != "dvpc" {
			bins = append(bins, t.bin)
		}
	}
	for _, l := range limits {
		if l.needs == "" || b.toolRun("dvpc") != nil {
			bins = append(bins, l.bins...)
		}
	}
	for _, s := range steps {
		for _, t := range b.tools {
			if t.cmds[s.name] != nil {
				bins = append(bins, s.bins...)
			}
		}
	}
	var missing, pkgs []string
	for _, bin := range bins {
		pkg := debianPackages[bin]
		if _, err := exec.LookPath(bin); err == nil || pkg == "" || slices.Contains(missing, bin) {
			continue
		}
		missing = append(missing, bin)
		if !slices.Contains(pkgs, pkg) {
			pkgs = append(pkgs, pkg)
		}
	}
	if len(pkgs) == 0 || !b.cfg.install {
		return
	}
	b.logf("installing %s (missing: %s)", strings.Join(pkgs, ", "), strings.Join(missing, ", "))
	install := func(name string) error {
		c := exec.Command("apt-get", append([]string{"install", "-y"}, pkgs...)...)
		c.Env = []string{"DEBIAN_FRONTEND=noninteractive"}
		_, err := b.exec(name, c, nil)
		return err
	}
	if err := install("apt-install"); err != nil {
		if _, err := b.exec("apt-update", exec.Command("apt-get", "update"), nil); err == nil {
			install("apt-install-2")
		}
	}
}

// toolVersion runs the tool's version command; it returns "" on failure.
func (b *bench) toolVersion(t *tool) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, t.bin, t.version...)
	c.Env = append(os.Environ(), t.env...)
	out, err := c.Output()
	if err != nil {
		return ""
	}
	return lastLine(strings.SplitN(string(out), "\n", 2)[0])
}

// busyCPU is the CPU time, in seconds, that all CPUs of the machine spent
// busy since boot (from /proc/stat), or -1.
func busyCPU() float64 {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return -1
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return -1
	}
	var busy float64
	for i, v := range f[1:] {
		var n float64
		fmt.Sscan(v, &n)
		if i != 3 && i != 4 { // idle and iowait
			busy += n
		}
	}
	return busy / userHZ
}

// userHZ is the unit of the clock ticks in /proc: sysconf(_SC_CLK_TCK),
// which Linux fixes at 100 on every architecture Go runs on.
const userHZ = 100

// procCPU is the CPU time, in seconds, that process pid has spent in user
// and system mode, all its threads together (utime and stime, fields 14
// and 15 of /proc/PID/stat).
func procCPU(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	ticks, err := parseProcStat(data)
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return float64(ticks) / userHZ, nil
}

// parseProcStat is utime+stime, in clock ticks, of the content of a
// /proc/PID/stat file.
func parseProcStat(data []byte) (uint64, error) {
	// Field 2, the command name, is in parentheses and may hold spaces
	// and parentheses itself; no other field does.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, errors.New("no command name")
	}
	f := strings.Fields(string(data[i+1:])) // from field 3, the state
	if len(f) < 15-2 {
		return 0, fmt.Errorf("%d fields, want at least 15", len(f)+2)
	}
	var ticks uint64
	for _, field := range f[14-3 : 15-2] {
		n, err := strconv.ParseUint(field, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("utime or stime: %w", err)
		}
		ticks += n
	}
	return ticks, nil
}

// procsCPU is the sum of procCPU of pids.
func procsCPU(pids []int) (float64, error) {
	var sum float64
	for _, pid := range pids {
		s, err := procCPU(pid)
		if err != nil {
			return 0, err
		}
		sum += s
	}
	return sum, nil
}

// Peak RSS comes from the rusage of wait4, but on Linux a child's
// ru_maxrss is never below the peak RSS of the process that spawned it:
// exec folds the high-water mark of the address space it leaves into the
// process (exec_mmap, setmax_mm_hiwater_rss), and Go starts children with
// vfork semantics, so that address space is the spawner's. dvpcbench's own
// peak (generation buffers, manifests) would be every tool's floor. So
// each measured command runs under a fresh, small dvpcbench process in
// wrapper mode, which starts the command, waits for it and writes the
// figures to file descriptor 3; the floor is then the wrapper's small RSS,
// which rssFloor measures.

const wrapEnv = "DVPCBENCH_WRAPPED"

// wrapped is what the wrapper reports.
type wrapped struct {
	Seconds   float64 `json:"seconds"`
	UserS     float64 `json:"user_seconds"`
	SysS      float64 `json:"system_seconds"`
	MaxRSSKiB int64   `json:"max_rss_kib"`
	ExitCode  int     `json:"exit_code"`
	Error     string  `json:"error,omitempty"`
}

// isWrapper says whether this process is a wrapper.
func isWrapper() bool { return os.Getenv(wrapEnv) == "1" }

// wrapMain runs os.Args[1:] and reports it on file descriptor 3. It exits
// with the command's exit code.
func wrapMain() int {
	report := os.NewFile(3, "report")
	var w wrapped
	defer func() {
		json.NewEncoder(report).Encode(&w)
		report.Close()
	}()
	if len(os.Args) < 2 {
		w.Error, w.ExitCode = "wrapper: no command", 127
		return w.ExitCode
	}
	// Pdeathsig is bound to the thread that starts the child.
	runtime.LockOSThread()
	c := exec.Command(os.Args[1], os.Args[2:]...)
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	c.Env = slices.DeleteFunc(os.Environ(), func(s string) bool { return strings.HasPrefix(s, wrapEnv+"=") })
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	start := time.Now()
	if err := c.Start(); err != nil {
		w.Error, w.ExitCode = err.Error(), 127
		return w.ExitCode
	}
	go func() {
		for s := range sigs {
			if s != syscall.SIGINT { // the terminal sends SIGINT to the command itself
				c.Process.Signal(s)
			}
		}
	}()
	err := c.Wait()
	w.Seconds = time.Since(start).Seconds()
	ps := c.ProcessState
	w.ExitCode = ps.ExitCode()
	w.UserS, w.SysS = ps.UserTime().Seconds(), ps.SystemTime().Seconds()
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		w.MaxRSSKiB = ru.Maxrss // KiB on Linux
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		w.Error = err.Error()
	}
	if st, ok := ps.Sys().(syscall.WaitStatus); ok && st.Signaled() {
		w.Error = "killed by " + st.Signal().String()
		w.ExitCode = 128 + int(st.Signal())
	}
	return w.ExitCode
}
