package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

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
