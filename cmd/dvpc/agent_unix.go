//go:build !windows

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const agentAvailable = true

// agentStartWait bounds how long a command waits for the agent it started
// to listen.
const agentStartWait = 10 * time.Second

// privateDir checks that dir is a directory (not a link) of this user that
// no one else may enter, and with create makes it first if it is missing.
func privateDir(dir string, create bool) error {
	if create {
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("unlock agent directory: %w", err)
		}
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("unlock agent directory: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Getuid() || fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("unlock agent directory %s is not private (a directory of uid %d, mode 0700): it is %v of uid %d; remove it", dir, os.Getuid(), fi.Mode(), statUID(st))
	}
	return nil
}

func statUID(st *syscall.Stat_t) int {
	if st == nil {
		return -1
	}
	return int(st.Uid)
}

// agentListening reports whether there is a socket where the agent
// listens, without connecting.
func agentListening(sock string) bool {
	fi, err := os.Lstat(sock)
	return err == nil && fi.Mode().Type() == fs.ModeSocket
}

// dialAgent connects to the agent after checking that its directory is
// private and, where the system says, that it runs as this user: the keys
// a command hands it must not go to someone else's listener.
func dialAgent(sock string) (net.Conn, error) {
	if err := privateDir(filepath.Dir(sock), false); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errAgentNotRunning
		}
		return nil, err
	}
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, errAgentNotRunning
		}
		return nil, fmt.Errorf("connect to the unlock agent: %w", err)
	}
	if uid, _, ok := peerCred(c); ok && uid != os.Getuid() {
		c.Close()
		return nil, fmt.Errorf("the unlock agent socket %s is served by uid %d, not by you; not using it", sock, uid)
	}
	return c, nil
}

// startAgent starts the agent unless one is listening, and waits until it
// listens. started says whether this call started it.
func startAgent(sock string, idle time.Duration) (started bool, err error) {
	if c, err := dialAgent(sock); err == nil {
		c.Close()
		return false, nil
	} else if !errors.Is(err, errAgentNotRunning) {
		return false, err
	}
	if err := privateDir(filepath.Dir(sock), true); err != nil {
		return false, err
	}
	exe, err := os.Executable()
	if err != nil {
		return false, fmt.Errorf("start the unlock agent: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return false, fmt.Errorf("start the unlock agent: %w", err)
	}
	defer r.Close()
	cmd := exec.Command(exe, "agent", "--socket", sock, "--idle", idle.String(), "--notify")
	cmd.Env = []string{} // nothing of this process's environment: no secrets
	cmd.Dir = "/"
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return false, fmt.Errorf("start the unlock agent: %w", err)
	}
	go cmd.Wait() // reap it if it ends before this command does
	r.SetReadDeadline(time.Now().Add(agentStartWait))
	line, err := bufio.NewReader(r).ReadString('\n')
	switch strings.TrimSpace(line) {
	case "ready":
		return true, nil
	case "running":
		return false, nil
	}
	return false, fmt.Errorf("start the unlock agent: it did not start listening: %v", err)
}

// agentServer holds the unlocked keys.
type agentServer struct {
	mu    sync.Mutex
	keys  map[string][]byte // store ID → secret from image.Keys.Export
	idle  time.Duration
	timer *time.Timer
	ln    *net.UnixListener
}

// serveAgent is the agent: it listens on sock until lock, idle time or a
// signal, then wipes the keys and removes the socket.
func serveAgent(ctx context.Context, sock string, idle time.Duration, notify bool) error {
	var ready *os.File
	if notify {
		ready = os.NewFile(3, "ready")
		defer ready.Close()
	}
	tell := func(s string) {
		if ready != nil {
			fmt.Fprintln(ready, s)
		}
	}
	hardenAgent()
	dir := filepath.Dir(sock)
	if err := privateDir(dir, true); err != nil {
		return err
	}
	// One agent per directory: the lock is held for the agent's life.
	lf, err := os.OpenFile(filepath.Join(dir, "agent.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	defer lf.Close()
	for i := 0; ; i++ {
		err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if c, derr := dialAgent(sock); derr == nil {
			c.Close()
			tell("running")
			return nil
		}
		if i == 40 { // another agent holds the lock and does not answer
			return fmt.Errorf("agent: %s is locked by another agent that does not answer: %w", dir, err)
		}
		time.Sleep(50 * time.Millisecond) // it is ending: wait for it
	}
	if err := os.Remove(sock); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("agent: remove stale socket: %w", err)
	}
	old := syscall.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	syscall.Umask(old)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("agent: %w", err)
	}
	a := &agentServer{keys: map[string][]byte{}, idle: idle, ln: ln}
	a.timer = time.AfterFunc(idle, func() { ln.Close() })
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	tell("ready")
	if ready != nil {
		ready.Close()
		ready = nil
	}
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			break // closed: lock, idle time or a signal
		}
		a.handle(c)
	}
	a.timer.Stop()
	a.mu.Lock()
	for id, k := range a.keys {
		clear(k)
		delete(a.keys, id)
	}
	a.mu.Unlock()
	ln.Close() // removes the socket
	return nil
}

// handle answers one request.
func (a *agentServer) handle(c *net.UnixConn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(agentReplyTimeout))
	uid, _, ok := peerCred(c)
	m, err := readAgentMsg(c) // bounded, and read before replying, so the client gets the reply
	if ok && uid != os.Getuid() {
		if m != nil {
			m.wipe()
		}
		writeAgentMsg(c, agentErr, []byte("refused: uid "+strconv.Itoa(uid)+" is not the user of this agent"))
		return
	}
	if err != nil {
		writeAgentMsg(c, agentErr, []byte("bad request"))
		return
	}
	defer m.wipe()
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case m.op == agentGet && len(m.fields) == 1:
		k, ok := a.keys[string(m.fields[0])]
		if !ok {
			writeAgentMsg(c, agentNone)
			return
		}
		a.timer.Reset(a.idle)
		writeAgentMsg(c, agentKey, k)
	case m.op == agentPut && len(m.fields) == 3 && len(m.fields[0]) > 0:
		secs, err := strconv.ParseInt(string(m.fields[2]), 10, 64)
		if err != nil || secs < 1 || secs > int64(365*24*time.Hour/time.Second) {
			writeAgentMsg(c, agentErr, []byte("bad idle time"))
			return
		}
		id := string(m.fields[0])
		if old, ok := a.keys[id]; ok {
			clear(old)
		}
		a.keys[id] = append([]byte(nil), m.fields[1]...)
		a.idle = time.Duration(secs) * time.Second
		a.timer.Reset(a.idle)
		writeAgentMsg(c, agentOK)
	case m.op == agentLock && len(m.fields) == 0:
		writeAgentMsg(c, agentOK)
		a.ln.Close()
	default:
		writeAgentMsg(c, agentErr, []byte("unknown request"))
	}
}
