//go:build linux

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// After the login, the session it made is kept in sync (see login.go):
//
//   - "sync-watch": dvpc sync --watch --debounce 10ms on the login's
//     directory, on the strange PC, under the wrapper (its peak RSS is
//     the watch's). Once it has synced and watched (its first two pushes
//     to the mirror are done), one file of the directory is changed
//     watchRuns times; each time, the latency is the time from the end of
//     the write to the session record naming a new snapshot, which the
//     sync saves once that snapshot is in the local cache, durably. The
//     bench polls the record every 2 ms, and waits for the push that
//     follows before the next change. The row is the median.
//   - "sync-one": the same file changed once more, then dvpc sync (no
//     --watch: a scan of the directory, the snapshot, the look for newer
//     snapshots on the mirror, the push), against restic backup and borg
//     create of the home after the same change to the same file.
//
// Both name the login's disc with --from, as the person leaves it in the
// drive: the session reads there the blobs the login left on it. The
// disc is removed after sync-one unless -keep.
//
// The file is a small one, as a person saves: the first document of the
// plan of 4 KiB to 1 MiB with one link, that the week of work left in
// place (see syncTarget). Each change overwrites 4 KiB in its middle.

// watchRuns is how many changes the watch's latency is the median of.
const watchRuns = 5

// watchDebounce is the --debounce of the watch: short, so that the
// latency is the work after the notification, not a wait.
const watchDebounce = 10 * time.Millisecond

// editBytes is what one change overwrites.
const editBytes = 4096

// syncTarget is the file the sync steps change, relative to the home, or
// "" when the plan has none that fits.
func (b *bench) syncTarget() string {
	if b.plan == nil {
		return ""
	}
	prot := b.plan.protected()
	var best string
	for _, f := range b.plan.Files {
		if prot[f.Path] || f.Size < editBytes || f.Size > mib {
			continue
		}
		fi, err := os.Lstat(filepath.Join(b.home, filepath.FromSlash(f.Path)))
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || st.Nlink != 1 {
			continue
		}
		if f.Kind == kindDoc {
			return f.Path
		}
		if best == "" {
			best = f.Path
		}
	}
	return best
}

// editFile overwrites editBytes in the middle of a file with bytes that
// depend on n, in place.
func editFile(name string, n int) error {
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	buf := make([]byte, editBytes)
	for i := range buf {
		buf[i] = byte(uint64(n)*0x9e3779b97f4a7c15>>(8*(i%8)) + uint64(i))
	}
	if _, err := f.WriteAt(buf, max(0, fi.Size()/2-editBytes/2)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// sessionSnapshot is the snapshot the session record of dir in the store
// directory store names.
func sessionSnapshot(store, dir string) (string, error) {
	ents, err := os.ReadDir(filepath.Join(store, "sessions"))
	if err != nil {
		return "", err
	}
	for _, e := range ents {
		if filepath.Ext(e.Name()) != ".json" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(store, "sessions", e.Name()))
		if err != nil {
			continue // being replaced
		}
		var rec struct {
			Dir      string `json:"dir"`
			Snapshot string `json:"snapshot"`
		}
		if json.Unmarshal(data, &rec) == nil && rec.Dir == dir {
			return rec.Snapshot, nil
		}
	}
	return "", fmt.Errorf("no session record of %s in %s", dir, store)
}

// syncRounds counts the pushes a sync's output reports: each sync of a
// session with one mirror ends with one, sent or failed.
func syncRounds(out string) int {
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, " already there, ") || strings.Contains(l, "push to ") && strings.Contains(l, " failed") {
			n++
		}
	}
	return n
}

// watchReport is what the sync-watch step measured.
type watchReport struct {
	DebounceS  float64   `json:"debounce_seconds"`
	File       string    `json:"file"`
	LatenciesS []float64 `json:"latencies_seconds"`
	MedianS    float64   `json:"median_seconds"`
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// proc is a command a driver runs beside: it can read what the command
// printed so far, signal it, and see it end.
type proc struct {
	p      *os.Process
	exited <-chan struct{}
	output func() string
}

// waitFor polls cond until it holds, the command ends or limit passes.
func (c *proc) waitFor(what string, limit time.Duration, every time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		select {
		case <-c.exited:
			return fmt.Errorf("the command ended while waiting for %s: %s", what, lastLine(c.output()))
		case <-time.After(every):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %s within %s", what, limit)
		}
	}
	return nil
}

// quiet waits until the command printed nothing for d.
func (c *proc) quiet(d time.Duration) {
	last, since := c.output(), time.Now()
	for time.Since(since) < d {
		select {
		case <-c.exited:
			return
		case <-time.After(d / 10):
		}
		if now := c.output(); now != last {
			last, since = now, time.Now()
		}
	}
}

// stop ends the command with SIGTERM (the wrapper passes it on), or kills
// it after a minute.
func (c *proc) stop() {
	c.p.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(time.Minute):
		c.p.Kill()
	}
}

// driveWatch changes the target file watchRuns times while sync --watch
// runs, and measures each time until a durable local snapshot.
func driveWatch(b *bench, c *proc) (json.RawMessage, error) {
	defer c.stop()
	rel := b.syncTarget()
	if rel == "" {
		return nil, errors.New("no file of 4 KiB to 1 MiB to change")
	}
	dir, store := b.loginDir(), b.strangeStore()
	// The sync before watching, then the one of the whole directory once
	// watched.
	if err := c.waitFor("first two syncs", 10*time.Minute, 20*time.Millisecond, func() bool { return syncRounds(c.output()) >= 2 }); err != nil {
		return nil, err
	}
	c.quiet(300 * time.Millisecond)
	rep := watchReport{DebounceS: watchDebounce.Seconds(), File: rel}
	name := filepath.Join(dir, filepath.FromSlash(rel))
	for i := range watchRuns {
		before, err := sessionSnapshot(store, dir)
		if err != nil {
			return nil, err
		}
		rounds := syncRounds(c.output())
		if err := editFile(name, 1000+i); err != nil {
			return nil, err
		}
		start := time.Now()
		var now string
		if err := c.waitFor("new snapshot in the session record", 2*time.Minute, 2*time.Millisecond, func() bool {
			now, _ = sessionSnapshot(store, dir)
			return now != "" && now != before
		}); err != nil {
			return nil, err
		}
		rep.LatenciesS = append(rep.LatenciesS, time.Since(start).Seconds())
		if err := c.waitFor("push after the snapshot", 10*time.Minute, 20*time.Millisecond, func() bool { return syncRounds(c.output()) > rounds }); err != nil {
			return nil, err
		}
		c.quiet(300 * time.Millisecond)
	}
	rep.MedianS = median(rep.LatenciesS)
	data, err := json.Marshal(rep)
	return data, err
}

// dvpcSyncCmds are dvpc's commands of the sync steps.
func dvpcSyncCmds(t *tool) map[string]func(*bench, string) (*exec.Cmd, error) {
	return map[string]func(*bench, string) (*exec.Cmd, error){
		// The disc stays in the drive: the session's blobs that only
		// it holds are read there.
		"sync-watch": func(b *bench, _ string) (*exec.Cmd, error) {
			return b.strangeCmd(t, "sync", "--watch", "--debounce", watchDebounce.String(), "--from", b.loginISO(), b.loginDir()), nil
		},
		"sync-one": func(b *bench, _ string) (*exec.Cmd, error) {
			if err := editTarget(b, b.loginDir()); err != nil {
				return nil, err
			}
			return b.strangeCmd(t, "sync", "--from", b.loginISO(), b.loginDir()), nil
		},
	}
}

// afterSyncOne removes the login's disc, unless -keep.
func afterSyncOne(b *bench, _ *step, t *tool, _ *toolRun, _ string) string {
	if t.name == "dvpc" && !b.cfg.keep {
		os.Remove(b.loginISO())
	}
	return ""
}

// editTarget changes the sync steps' file once more below root.
func editTarget(b *bench, root string) error {
	rel := b.syncTarget()
	if rel == "" {
		return errors.New("no file of 4 KiB to 1 MiB to change")
	}
	return editFile(filepath.Join(root, filepath.FromSlash(rel)), 2000)
}

// watchMedian is the median latency of the watch.
var watchMedian = reportCell("sync-watch", func(raw json.RawMessage) (float64, bool) {
	var rep watchReport
	if json.Unmarshal(raw, &rep) != nil || len(rep.LatenciesS) == 0 {
		return 0, false
	}
	return rep.MedianS, true
})

// watchText is the limit line of the watch's latencies.
func (b *bench) watchText() string {
	tr := b.toolRun("dvpc")
	switch c := watchMedian(b, tr); c.why {
	case "":
	case "-":
		return "not run"
	default:
		return "failed"
	}
	var rep watchReport
	json.Unmarshal(tr.Steps["sync-watch"].Report, &rep)
	var ls []string
	for _, l := range rep.LatenciesS {
		ls = append(ls, fmt.Sprintf("%.3f", l))
	}
	return fmt.Sprintf("%s s (--debounce %s; %s changed)", strings.Join(ls, ", "), watchDebounce, rep.File)
}

// lockedBuffer collects a running command's output for reading meanwhile.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
