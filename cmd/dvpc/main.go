// Command dvpc keeps a person's home directory as versioned, deduplicated,
// compressed, encrypted and signed snapshots in a portable OCI store.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dvpc/dvpc/delta"
	"github.com/dvpc/dvpc/image"
	"github.com/dvpc/dvpc/media"
	"github.com/dvpc/dvpc/overlay"
	"github.com/dvpc/dvpc/profiles"
)

// registryPrefix marks a --store that is a registry repository.
const registryPrefix = "docker://"

// Exit codes. They are documented in the README; change both together.
const (
	exitOK         = 0
	exitError      = 1
	exitUsage      = 2
	exitPassphrase = 3
	exitNotFound   = 4
	exitPartial    = 5
	exitIntegrity  = 6
	exitInterrupt  = 130
)

// globals are the flags every command shares.
type globals struct {
	store   string
	json    bool
	timeout time.Duration // of a mirror that makes no progress
	stdout  io.Writer
	stderr  io.Writer
	stdin   io.Reader
	// closers release opened media when the command ends.
	closers []func()
	// media are the media --store names, once opened.
	media []*media.Medium
	// noAgent keeps the keys out of the unlock agent; agentIdle is how long
	// the agent keeps them unused.
	noAgent   bool
	agentIdle time.Duration
	// secret is a passphrase or recovery code this command already read
	// (to settle which key to trust), used by the next unlock.
	secret []byte
	// host is the host name the snapshots of a login session record.
	host string
}

// gcPercent is the collector's target unless GOGC says otherwise. dvpc's
// large buffers are reused, so little garbage is made and collecting at a
// quarter more than what is in use costs little CPU, while the default
// (twice what is in use) lets the heap grow by the whole metadata of a run.
const gcPercent = 25

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr))
}

// run executes the CLI and returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globals{stdout: stdout, stderr: stderr, stdin: stdin}
	app := &cli.App{
		Name:      "dvpc",
		Version:   version(),
		Usage:     "your home directory as versioned, encrypted, signed snapshots you can carry",
		Writer:    stdout,
		ErrWriter: stderr,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "store", EnvVars: []string{"DVPC_STORE"}, Value: defaultStore(), Usage: "the store: a directory (OCI layout)", Destination: &g.store},
			&cli.BoolFlag{Name: "json", Usage: "print machine-readable JSON", Destination: &g.json},
			&cli.DurationFlag{Name: "timeout", EnvVars: []string{"DVPC_MIRROR_TIMEOUT"}, Value: delta.DefaultTimeout,
				Usage: "how long a mirror may make no progress before it counts as failed and the next one is asked", Destination: &g.timeout},
			&cli.BoolFlag{Name: "no-agent", EnvVars: []string{"DVPC_NO_AGENT"}, Usage: "neither use nor start the unlock agent that keeps a store unlocked for the session", Destination: &g.noAgent},
			&cli.DurationFlag{Name: "agent-timeout", EnvVars: []string{"DVPC_AGENT_TIMEOUT"}, Value: defaultAgentIdle,
				Usage: "how long the unlock agent keeps keys nobody uses", Destination: &g.agentIdle},
		},
		Commands: []*cli.Command{
			initCommand(g), snapshotCommand(g), logCommand(g), lsCommand(g), diffCommand(g),
			restoreCommand(g), verifyCommand(g), keyCommand(g), catCommand(g), mediaCommand(g), attachCommand(g),
			mirrorCommand(g), pushCommand(g), pullCommand(g), forgetCommand(g), pruneCommand(g),
			lockCommand(g), agentCommand(), repairCommand(g),
			loginCommand(g), syncCommand(g), logoutCommand(g), sessionCommand(g), appCommand(g),
		},
		ExitErrHandler:       func(*cli.Context, error) {},
		EnableBashCompletion: true,
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return flagError{unknownCommand(c.App.Commands, "", c.Args().First())}
			}
			return cli.ShowAppHelp(c)
		},
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return flagError{errors.New(twoDashes(err.Error()))}
		},
	}
	app.Commands = append(app.Commands, completionCommand(app))
	setUsage(app.Commands, app.OnUsageError)
	guardWrites(g, app.Commands, "")
	argv, err := args, error(nil)
	if !completing(args) {
		argv, err = flagsFirst(app, withAppsFlag(args))
	}
	if err == nil {
		err = app.RunContext(ctx, argv)
	}
	for _, c := range g.closers {
		c()
	}
	if err == nil {
		return exitOK
	}
	code, hint := classify(ctx, err, commandPath(app, args))
	if g.json || jsonRequested(args) {
		// One JSON object, on stderr: stdout keeps only the command's result.
		json.NewEncoder(stderr).Encode(struct {
			Error string `json:"error"`
			Hint  string `json:"hint"`
			Exit  int    `json:"exit"`
		}{err.Error(), hint, code})
		return code
	}
	fmt.Fprintf(stderr, "dvpc: %v\n", err)
	if hint != "" {
		fmt.Fprintf(stderr, "hint: %s\n", hint)
	}
	return code
}

// usageError is a command's own refusal of its arguments; its message says
// what the command takes.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// flagError is a command line that names no command or flag dvpc has, or
// that the flag parser refused.
type flagError struct{ error }

func (e flagError) Unwrap() error { return e.error }

// hintedError carries the hint for the person that replaces the general
// hint of its exit code's class: an error has one hint, never two.
type hintedError struct {
	error
	hint string
}

func (e hintedError) Unwrap() error { return e.error }

// withHint gives err its own hint.
func withHint(err error, hint string) error { return hintedError{err, hint} }

// partialError means the command finished but skipped some entries.
type partialError struct{ error }

func (e partialError) Unwrap() error { return e.error }

// integrityError means the store failed a check.
type integrityError struct{ error }

func (e integrityError) Unwrap() error { return e.error }

// classify maps an error of the command cmd ("mirror add") to its exit
// code and one hint for the person, in one place. An error that carries
// its own hint ([withHint]) keeps it instead of its class's.
func classify(ctx context.Context, err error, cmd string) (int, string) {
	code, hint := classifyCode(ctx, err, cmd)
	var he hintedError
	if errors.As(err, &he) {
		hint = he.hint
	}
	return code, hint
}

func classifyCode(ctx context.Context, err error, cmd string) (int, string) {
	var ue usageError
	var fe flagError
	var ro *readOnlyError
	var pe partialError
	var ie integrityError
	var de *image.DigestError
	var ce *image.ChunkError
	var rp *image.PartialError
	var codeErr *image.CodeError
	var appExit *appExitError
	var le *profiles.LayerError
	help := "`dvpc help` lists the commands"
	if cmd != "" {
		help = "`dvpc " + cmd + " --help` shows its arguments and flags"
	}
	switch {
	case ctx.Err() != nil || errors.Is(err, context.Canceled):
		return exitInterrupt, "interrupted; the snapshots already made are intact"
	case errors.As(err, &fe):
		return exitUsage, help
	case errors.As(err, &ue):
		return exitUsage, help
	case errors.As(err, &ro):
		return exitUsage, ro.hint()
	case errors.Is(err, image.ErrReadOnly):
		return exitUsage, "name a store directory with --store"
	case errors.Is(err, errNoPassphrase):
		return exitPassphrase, ""
	case errors.As(err, &codeErr):
		return exitPassphrase, codeHints[codeErr.Reason]
	case errors.Is(err, image.ErrWrongPassphrase):
		return exitPassphrase, "check DVPC_PASSPHRASE_FILE / DVPC_PASSPHRASE, or type one of your recovery codes instead of the passphrase"
	case errors.Is(err, media.ErrNotRegular):
		return exitIntegrity, "a dvpc medium holds only regular files and directories, so this one was altered; read the disc, image or key itself rather than this copy"
	case errors.Is(err, media.ErrDamaged):
		return exitIntegrity, "the medium is damaged or cut short; `dvpc attach MEDIUM` lists the snapshots that restore whole"
	case errors.Is(err, syscall.ENOSPC) && !errors.Is(err, overlay.ErrWatchLimit):
		return exitError, "the disk named above is full: free space there (`df -h` shows it), then run the same command again; it goes on from where it stopped"
	case errors.As(err, &pe), errors.As(err, &rp):
		return exitPartial, "the entries above were skipped; everything else completed"
	case errors.Is(err, image.ErrIndexBehind):
		return exitIntegrity, "run `dvpc pull` to bring the missing snapshots back from the mirrors, or `dvpc repair`"
	case errors.Is(err, image.ErrAmbiguousHome), errors.Is(err, image.ErrHomeName):
		return exitUsage, "name the home with --home NAME (snapshot: --name NAME); `dvpc log` lists the homes"
	case errors.As(err, &ie), errors.As(err, &de), errors.As(err, &ce), errors.Is(err, image.ErrBadSignature), errors.Is(err, image.ErrSeal):
		return exitIntegrity, "the store holds damaged or foreign data; run `dvpc verify --read-data` for a full report"
	case errors.Is(err, image.ErrNoSnapshot):
		return exitNotFound, "`dvpc log` lists the snapshots"
	case errors.Is(err, image.ErrNotFound), errors.Is(err, fs.ErrNotExist):
		return exitNotFound, ""
	case errors.Is(err, image.ErrTargetNotEmpty):
		return exitError, ""
	case errors.Is(err, overlay.ErrWatchLimit):
		return exitError, "raise the limit (Linux: `sysctl fs.inotify.max_user_watches`; macOS: `ulimit -n`), or leave large directories out with .dvpcignore"
	case errors.Is(err, overlay.ErrNewerSession):
		return exitUsage, "this session was started by a newer dvpc: use that one, or log in to another directory with --to DIR"
	case errors.Is(err, overlay.ErrNoSession):
		return exitNotFound, ""
	case errors.As(err, &appExit):
		return appExit.code, ""
	case errors.As(err, &le), errors.Is(err, profiles.ErrHostile):
		return exitIntegrity, "the app's image is damaged or hostile on its registry; nothing of it was installed"
	case errors.Is(err, profiles.ErrNoApp):
		return exitNotFound, "`dvpc app list` lists the apps"
	}
	return exitError, ""
}

// codeHints say what to do about a recovery code that did not unlock.
var codeHints = map[image.CodeReason]string{
	image.CodeMistyped: "type the code as it was printed: its number, then groups of letters and the digits 2-7",
	image.CodeUsed:     "each recovery code unlocks once: use your passphrase or another code",
	image.CodeForeign:  "check that the code is this store's; use your passphrase or another code",
}

func defaultStore() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "dvpc", "store")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "dvpc", "store")
	}
	return "dvpc-store"
}

// openRepo opens and unlocks the store.
func (g *globals) openRepo(ctx context.Context) (*image.Repo, error) {
	src, err := g.openSource()
	if err != nil {
		return nil, err
	}
	repo, err := g.unlock(ctx, src)
	if err != nil {
		return nil, err
	}
	// The passphrase hash used tens of MiB that are garbage now: give them
	// back before the real work, so they do not add to its peak.
	debug.FreeOSMemory()
	return repo, nil
}

// openSource opens the store named by --store: a store directory, or media
// (ISO or USB images, block devices, mounted or extracted media; several,
// comma-separated, for the discs of a set), or a mirror (docker://HOST/PATH,
// read through the registry API), which are read-only.
func (g *globals) openSource() (image.Source, error) {
	switch storeKind(g.store) {
	case kindRegistry:
		return delta.NewRegistry(strings.TrimPrefix(g.store, registryPrefix), delta.RegistryOptions{Timeout: g.timeout})
	case kindDir:
		lay, err := image.OpenLayout(g.store) // when it is none, it says what is missing and what to do
		if err != nil {
			return nil, err
		}
		return g.withSessionPlaces(lay), nil
	}
	src, ms, err := media.OpenSet(strings.Split(g.store, ","))
	if err != nil {
		return nil, err
	}
	g.media = ms
	g.closers = append(g.closers, func() {
		for _, m := range ms {
			m.Close()
		}
	})
	return src, nil
}

// What --store names.
const (
	kindDir      = iota // a store directory (or nothing yet)
	kindMedia           // image files, devices, mounted or extracted media
	kindRegistry        // a mirror, docker://HOST/PATH
)

// storeKind tells what --store names: a mirror, media (several are
// comma-separated; a directory is a medium when it holds store/oci-layout),
// or else a store directory.
func storeKind(store string) int {
	if strings.HasPrefix(store, registryPrefix) {
		return kindRegistry
	}
	if strings.Contains(store, ",") {
		return kindMedia
	}
	fi, err := os.Stat(store)
	if err != nil {
		return kindDir
	}
	if fi.IsDir() {
		if _, err := os.Stat(filepath.Join(store, media.StoreDir, "oci-layout")); err != nil {
			return kindDir
		}
	}
	return kindMedia
}

// writesStore tells whether the command at path ("mirror add") changes the
// store --store names, or the state kept next to it (the mirror list).
// Such a command needs a store directory: media and mirrors are read-only.
// `media iso|usb` only read the store, so a disc can be copied.
func writesStore(path string) bool {
	switch path {
	case "init", "snapshot", "forget", "prune", "key passwd",
		"mirror add", "mirror remove", "mirror adopt", "mirror heal", "push", "pull", "repair",
		"login", "sync", "logout", "app add", "app update", "app remove", "app install":
		return true
	}
	return false
}

// guardWrites makes every command that writes the store refuse, before it
// starts, a --store that is read-only.
func guardWrites(g *globals, cs []*cli.Command, parent string) {
	for _, c := range cs {
		path := strings.TrimSpace(parent + " " + c.Name)
		if writesStore(path) {
			before := c.Before
			c.Before = func(cc *cli.Context) error {
				if k := storeKind(g.store); k != kindDir {
					return &readOnlyError{cmd: path, store: g.store, kind: k}
				}
				if before != nil {
					return before(cc)
				}
				return nil
			}
		}
		guardWrites(g, c.Subcommands, path)
	}
}

// readOnlyError refuses a command that writes the store on a --store that
// is a medium or a mirror.
type readOnlyError struct {
	cmd, store string
	kind       int
}

func (e *readOnlyError) Error() string {
	what := "a medium (a disc or USB image, a device, or a mounted or extracted medium), which is read-only"
	if e.kind == kindRegistry {
		what = "a mirror, which --store reads but never writes"
	}
	return fmt.Sprintf("`dvpc %s` writes to the store, and %s is %s", e.cmd, e.store, what)
}

func (e *readOnlyError) Is(target error) bool { return target == image.ErrReadOnly }

func (e *readOnlyError) hint() string {
	h := "run it on a store directory: --store DIR, or the default " + defaultStore()
	if e.kind == kindRegistry {
		return h + "; `dvpc push` sends a store's snapshots to its mirrors"
	}
	return h + "; log, ls, diff, restore and verify read media"
}

// completing tells whether the shell asks for completions: the scripts of
// `dvpc completion` end the words typed so far with this flag.
func completing(args []string) bool {
	return len(args) > 1 && args[len(args)-1] == "--generate-bash-completion"
}

// jsonRequested tells whether --json was given, also when the command line
// failed before the flags were read.
func jsonRequested(args []string) bool {
	for _, a := range args[1:] {
		if a == "--" {
			return false
		}
		if a == "--json" || a == "-json" || a == "--json=true" {
			return true
		}
	}
	return false
}

// commandPath is the command the arguments name, such as "mirror add",
// or "" when they name none.
func commandPath(app *cli.App, args []string) string {
	var path []string
	cmds := app.Commands
	for i := 1; i < len(args) && len(cmds) > 0; i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			if takesValue(app.Flags, a) && !strings.Contains(a, "=") {
				i++
			}
			continue
		}
		var found *cli.Command
		for _, c := range cmds {
			if c.HasName(a) {
				found = c
			}
		}
		if found == nil {
			break
		}
		path = append(path, found.Name)
		cmds = found.Subcommands
	}
	return strings.Join(path, " ")
}

// twoDashes rewrites the flag parser's "-name" as "--name", the way dvpc's
// help and messages show long flags.
func twoDashes(msg string) string {
	return singleDashFlag.ReplaceAllString(msg, "$1--$2")
}

var singleDashFlag = regexp.MustCompile(`(^|[\s:])-([a-z][a-z0-9-]+)`)

// flagsFirst moves a command's flags before its arguments, so that
// `dvpc restore latest --to DIR` works as people type it (the CLI library
// stops reading flags at the first argument). "--" ends the flags.
func flagsFirst(app *cli.App, args []string) ([]string, error) {
	if len(args) < 2 {
		return args, nil
	}
	out := []string{args[0]}
	i := 1
	// global flags, then the command (and subcommand) names
	cmds := app.Commands
	var flags []cli.Flag
	var cmd *cli.Command
	var path string
	for i < len(args) {
		a := args[i]
		if a == "--" {
			break
		}
		if strings.HasPrefix(a, "-") {
			if !hasFlag(app.Flags, a) && !isHelpFlag(a) && !isVersionFlag(a) {
				return nil, unknownFlag(app.Flags, "", a)
			}
			out = append(out, a)
			if takesValue(app.Flags, a) && !strings.Contains(a, "=") {
				if i+1 >= len(args) {
					return nil, flagError{fmt.Errorf("flag %s needs a value", dashed(a))}
				}
				out = append(out, args[i+1])
				i++
			}
			i++
			continue
		}
		var found *cli.Command
		for _, c := range cmds {
			if c.HasName(a) {
				found = c
			}
		}
		if found == nil {
			if a == "help" || a == "h" {
				// `dvpc help snapshto` gets a suggestion too.
				if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") && !slices.ContainsFunc(cmds, func(c *cli.Command) bool { return c.HasName(args[i+1]) }) {
					return nil, flagError{unknownCommand(cmds, path, args[i+1])}
				}
			} else if cmd == nil || cmd.Action == nil {
				return nil, flagError{unknownCommand(cmds, path, a)}
			}
			break
		}
		out = append(out, a)
		i++
		cmd, path = found, strings.TrimSpace(path+" "+found.Name)
		flags, cmds = found.Flags, found.Subcommands
		if len(cmds) == 0 {
			break
		}
	}
	var global, fl, pos []string
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			dst, set := &fl, flags
			if !hasFlag(flags, a) && hasFlag(app.Flags, a) {
				dst, set = &global, app.Flags // `dvpc log --json` works too
			} else if cmd != nil && !hasFlag(flags, a) && !isHelpFlag(a) {
				return nil, unknownFlag(flags, path, a)
			}
			*dst = append(*dst, a)
			if takesValue(set, a) && !strings.Contains(a, "=") {
				if i+1 >= len(args) {
					return nil, flagError{fmt.Errorf("flag %s needs a value", dashed(a))}
				}
				*dst = append(*dst, args[i+1])
				i++
			}
			continue
		}
		pos = append(pos, a)
	}
	if err := requiredFlags(cmd, path, fl); err != nil {
		return nil, err
	}
	out = append(append([]string{out[0]}, global...), out[1:]...)
	out = append(out, fl...)
	if len(pos) > 0 {
		out = append(out, "--")
		out = append(out, pos...)
	}
	return out, nil
}

// requiredFlags refuses a command line that lacks a flag the command
// requires, unless it asks for help.
func requiredFlags(cmd *cli.Command, path string, given []string) error {
	if cmd == nil || slices.ContainsFunc(given, isHelpFlag) {
		return nil
	}
	for _, f := range cmd.Flags {
		rf, ok := f.(cli.RequiredFlag)
		if !ok || !rf.IsRequired() || slices.ContainsFunc(given, func(a string) bool { return hasFlag([]cli.Flag{f}, a) }) {
			continue
		}
		if ev, ok := f.(interface{ GetEnvVars() []string }); ok && slices.ContainsFunc(ev.GetEnvVars(), func(v string) bool { return os.Getenv(v) != "" }) {
			continue
		}
		return flagError{fmt.Errorf("dvpc %s needs %s", path, dashed(f.Names()[0]))}
	}
	return nil
}

// setUsage gives every command the app's usage-error handler, so a bad flag
// anywhere exits with the usage code.
func setUsage(cs []*cli.Command, f cli.OnUsageErrorFunc) {
	for _, c := range cs {
		c.OnUsageError = f
		setUsage(c.Subcommands, f)
	}
}

func hasFlag(flags []cli.Flag, arg string) bool {
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

func takesValue(flags []cli.Flag, arg string) bool {
	name := strings.TrimLeft(arg, "-")
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				_, isBool := f.(*cli.BoolFlag)
				return !isBool
			}
		}
	}
	return false
}

// version is the module version dvpc was built as, or the VCS revision.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " (" + s.Value[:12] + ")"
		}
	}
	return v
}
