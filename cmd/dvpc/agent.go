package main

// The unlock agent keeps a store's unlocked keys between commands, so that
// one passphrase or recovery code serves a session: `pull` then `restore`
// cost one recovery code, not two.
//
// It is the dvpc binary itself (`dvpc agent`, hidden), started by the first
// command that unlocks a store, detached in its own session, with an empty
// environment and nothing secret in its arguments. It listens on a Unix
// socket, mode 0600 in a 0700 directory of the user's
// ($XDG_RUNTIME_DIR/dvpc/agent.sock, else /tmp/dvpc-<uid>/agent.sock),
// refuses connections from other users (SO_PEERCRED on Linux; elsewhere
// the directory's mode keeps them out), holds the keys per store ID in
// memory only, and wipes them and ends after an idle time or `dvpc lock`.
//
// One request per connection, one reply. A message is a frame: its length
// (2 bytes, big endian, 1 to agentMaxMsg), an op byte, then fields, each a
// length byte and that many bytes.
//
//	get  store-id                    → key secret | none
//	put  store-id secret idle-secs   → ok
//	lock                             → ok (the agent wipes the keys and ends)
//
// Any request may get `err text` instead.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dvpc/dvpc/image"
)

// Operations and replies.
const (
	agentGet  = 'g'
	agentPut  = 'p'
	agentLock = 'l'

	agentKey  = 'k'
	agentNone = 'n'
	agentOK   = 'o'
	agentErr  = 'e'
)

const (
	agentMaxMsg       = 1024
	agentMaxFields    = 4
	defaultAgentIdle  = 15 * time.Minute
	agentReplyTimeout = 10 * time.Second // of one request and its reply
)

// errAgentNotRunning means no agent listens on the socket.
var errAgentNotRunning = errors.New("no unlock agent is running")

// errNoAgent means the unlock agent is not available on this system.
var errNoAgent = errors.New("the unlock agent is not available on this system; every command unlocks the store itself")

// agentMsg is one message. Its fields point into buf, which wipe clears.
type agentMsg struct {
	op     byte
	fields [][]byte
	buf    []byte
}

func (m *agentMsg) wipe() { clear(m.buf) }

// writeAgentMsg sends one message in a single write.
func writeAgentMsg(w io.Writer, op byte, fields ...[]byte) error {
	n := 1
	for _, f := range fields {
		if len(f) > 255 {
			return fmt.Errorf("agent message: a field of %d bytes is too long", len(f))
		}
		n += 1 + len(f)
	}
	if n > agentMaxMsg || len(fields) > agentMaxFields {
		return errors.New("agent message: too long")
	}
	buf := make([]byte, 0, 2+n)
	buf = binary.BigEndian.AppendUint16(buf, uint16(n))
	buf = append(buf, op)
	for _, f := range fields {
		buf = append(buf, byte(len(f)))
		buf = append(buf, f...)
	}
	_, err := w.Write(buf)
	clear(buf)
	return err
}

// readAgentMsg reads one message. It never reads more than the frame.
func readAgentMsg(r io.Reader) (*agentMsg, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("agent message: %w", err)
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n < 1 || n > agentMaxMsg {
		return nil, fmt.Errorf("agent message: length %d out of range 1-%d", n, agentMaxMsg)
	}
	m := &agentMsg{buf: make([]byte, n)}
	if _, err := io.ReadFull(r, m.buf); err != nil {
		m.wipe()
		return nil, fmt.Errorf("agent message: %w", err)
	}
	m.op = m.buf[0]
	for rest := m.buf[1:]; len(rest) > 0; {
		l := int(rest[0])
		if l+1 > len(rest) || len(m.fields) == agentMaxFields {
			m.wipe()
			return nil, errors.New("agent message: malformed fields")
		}
		m.fields = append(m.fields, rest[1:1+l])
		rest = rest[1+l:]
	}
	return m, nil
}

// agentClient talks to the user's unlock agent.
type agentClient struct {
	sock   string
	idle   time.Duration
	stderr io.Writer
}

// agent returns the client of the unlock agent, or nil when it is off
// (--no-agent, DVPC_NO_AGENT=1) or not available.
func (g *globals) agent() *agentClient {
	if g.noAgent {
		return nil
	}
	sock := agentSocketPath()
	if sock == "" {
		return nil
	}
	return &agentClient{sock: sock, idle: g.agentIdle, stderr: g.stderr}
}

// agentSocketPath is where the user's unlock agent listens, "" where there
// is none.
func agentSocketPath() string {
	if !agentAvailable {
		return ""
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(d) {
		return filepath.Join(d, "dvpc", "agent.sock")
	}
	return filepath.Join("/tmp", fmt.Sprintf("dvpc-%d", os.Getuid()), "agent.sock")
}

// call sends one request and returns the reply; ok is false when no agent
// is listening.
func (a *agentClient) call(op byte, fields ...[]byte) (m *agentMsg, ok bool, err error) {
	c, err := dialAgent(a.sock)
	if errors.Is(err, errAgentNotRunning) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(agentReplyTimeout))
	if err := writeAgentMsg(c, op, fields...); err != nil {
		return nil, true, err
	}
	m, err = readAgentMsg(c)
	if err != nil {
		return nil, true, err
	}
	if m.op == agentErr && len(m.fields) == 1 {
		defer m.wipe()
		return nil, true, fmt.Errorf("unlock agent: %s", m.fields[0])
	}
	return m, true, nil
}

// open opens src with the keys the agent holds for its store, or returns
// nil when it holds none.
func (a *agentClient) open(ctx context.Context, src image.Source) *image.Repo {
	if !agentListening(a.sock) {
		return nil // no agent: do not read the key file twice
	}
	kf, err := image.ReadKeyFile(ctx, src)
	if err != nil {
		return nil // unlocking without the agent says what is wrong
	}
	m, _, err := a.call(agentGet, []byte(kf.StoreID))
	if err != nil {
		fmt.Fprintf(a.stderr, "dvpc: not using the unlock agent: %v\n", err)
		return nil
	}
	if m == nil {
		return nil
	}
	defer m.wipe()
	if m.op != agentKey || len(m.fields) != 1 {
		return nil
	}
	repo, err := image.OpenUnlocked(ctx, src, kf, m.fields[0])
	if err != nil {
		return nil // the store's keys changed since: unlock again
	}
	return repo
}

// keep hands the unlocked keys to the agent, starting it if needed. It only
// says so when it cannot: the command itself has what it needs.
func (a *agentClient) keep(keys *image.Keys) {
	started, err := startAgent(a.sock, a.idle)
	if err == nil {
		secret := keys.Export()
		idle := strconv.FormatInt(int64(a.idle/time.Second), 10)
		var m *agentMsg
		m, _, err = a.call(agentPut, []byte(keys.StoreID()), secret, []byte(idle))
		clear(secret)
		if err == nil && (m == nil || m.op != agentOK) {
			err = errors.New("the agent did not take the keys")
		}
	}
	if err != nil {
		fmt.Fprintf(a.stderr, "dvpc: the store is not kept unlocked for the next commands: %v\n", err)
		return
	}
	if started {
		fmt.Fprintf(a.stderr, "dvpc: the store stays unlocked for this session, until `dvpc lock` or %s without use (DVPC_NO_AGENT=1 turns this off).\n", agentIdleText(a.idle))
	}
}

func agentIdleText(d time.Duration) string {
	if d%time.Minute == 0 {
		n := int(d / time.Minute)
		if n == 1 {
			return "1 minute"
		}
		return fmt.Sprintf("%d minutes", n)
	}
	return d.String()
}

// unlock opens src with the keys the unlock agent holds for its store, or
// else with a passphrase or recovery code, whose keys it then hands to the
// agent.
func (g *globals) unlock(ctx context.Context, src image.Source) (*image.Repo, error) {
	if g.agentIdle <= 0 {
		return nil, usageError{errors.New("--agent-timeout must be positive")}
	}
	ag := g.agent()
	if ag != nil {
		if repo := ag.open(ctx, src); repo != nil {
			return repo, nil
		}
	}
	pass := g.secret
	g.secret = nil
	if pass == nil {
		var err error
		if pass, err = readPassphrase(g.stderr, "Passphrase for "+g.store+": "); err != nil {
			return nil, err
		}
	}
	repo, info, err := image.Open(ctx, src, pass)
	if errors.Is(err, image.ErrWrongPassphrase) {
		// An old disc or mirror copy: a newer key blob of the same store
		// in the default store may open it with today's passphrase.
		if r := openWithNewerKeys(ctx, src, g.store, pass); r != nil {
			clear(pass)
			return r, nil
		}
	}
	clear(pass)
	if err != nil {
		return nil, err
	}
	reportUnlock(g, repo, info)
	if ag != nil {
		ag.keep(repo.Keys())
	}
	return repo, nil
}

// openWithNewerKeys opens a read-only source whose own key blob the
// secret does not open, with the newer key blob of the same store in the
// default store, if there is one; nil otherwise.
func openWithNewerKeys(ctx context.Context, src image.Source, store string, secret []byte) *image.Repo {
	if _, writable := src.(image.Store); writable {
		return nil
	}
	local := defaultStore()
	if filepath.Clean(local) == filepath.Clean(store) {
		return nil
	}
	lay, err := image.OpenLayout(local)
	if err != nil {
		return nil
	}
	kf, err := image.ReadKeyFile(ctx, lay)
	if err != nil {
		return nil
	}
	repo, err := image.OpenWithKeyFile(ctx, src, kf, secret)
	if err != nil {
		return nil
	}
	return repo
}

// reportUnlock tells the person what unlocking with a recovery code did,
// and warns about a passphrase key below today's argon2id floor.
func reportUnlock(g *globals, repo *image.Repo, info image.OpenInfo) {
	if info.WeakArgon2 && !info.RecoveryUsed {
		fmt.Fprintln(g.stderr, "dvpc: this store's passphrase key uses argon2id parameters below today's floor; run `dvpc key passwd` to raise them.")
	}
	if info.Rerotated {
		fmt.Fprintf(g.stderr, "dvpc: the last key epoch was started on a PC where a recovery code was used; started key epoch %d, which that PC never saw.\n", repo.Keys().Epoch())
	}
	if !info.RecoveryUsed {
		return
	}
	remain := "remain"
	if info.RecoveryLeft == 1 {
		remain = "remains"
	}
	left := plural(info.RecoveryLeft, "recovery code") + " " + remain
	switch {
	case !info.Retired:
		fmt.Fprintf(g.stderr, "dvpc: unlocked with recovery code %s. This store cannot be written, so the code is NOT used up: it is retired, with a new key epoch, the next time it unlocks a store that can be written (or run `dvpc key burn %s` on your store).\n", info.RecoveryID, info.RecoveryID)
	case info.Legacy:
		fmt.Fprintf(g.stderr, "dvpc: unlocked with recovery code %s; it is removed from this store, but older copies of this store's key blob (version 1) still open with it. %s. Run `dvpc key passwd` now: it starts a new key epoch that no old code or passphrase opens.\n", info.RecoveryID, left)
	default:
		fmt.Fprintf(g.stderr, "dvpc: unlocked with recovery code %s; it is now used up: key epoch %d started, which it cannot open, and nothing written from now on is readable with it once your mirrors and media are synced. %s. Set a new passphrase with `dvpc key passwd`. If this PC is not yours, it knows the new epoch: the next time your passphrase unlocks your own store after a sync, dvpc starts another epoch that this PC never sees.\n", info.RecoveryID, repo.Keys().Epoch(), left)
	}
}

func lockCommand(g *globals) *cli.Command {
	return &cli.Command{
		Name:  "lock",
		Usage: "end the unlock agent: every store it kept unlocked needs the passphrase again",
		Action: func(c *cli.Context) error {
			return runLock(g)
		},
	}
}

func runLock(g *globals) error {
	sock := agentSocketPath()
	if sock == "" {
		return errNoAgent
	}
	a := &agentClient{sock: sock, stderr: g.stderr}
	m, ok, err := a.call(agentLock)
	if err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	if !ok {
		fmt.Fprintln(g.stderr, "no unlock agent was running; nothing was unlocked")
		return nil
	}
	defer m.wipe()
	if m.op != agentOK {
		return errors.New("lock: the unlock agent gave an unexpected reply")
	}
	fmt.Fprintln(g.stderr, "locked: the unlock agent forgot every key and ended")
	return nil
}

func agentCommand() *cli.Command {
	var sock string
	var idle time.Duration
	var notify bool
	return &cli.Command{
		Name:   "agent",
		Usage:  "the unlock agent (started by dvpc itself)",
		Hidden: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "socket", Required: true, Destination: &sock},
			&cli.DurationFlag{Name: "idle", Value: defaultAgentIdle, Destination: &idle},
			&cli.BoolFlag{Name: "notify", Usage: "say on file descriptor 3 when listening", Destination: &notify},
		},
		Action: func(c *cli.Context) error {
			if idle <= 0 {
				return usageError{errors.New("agent: --idle must be positive")}
			}
			return serveAgent(c.Context, sock, idle, notify)
		},
	}
}
