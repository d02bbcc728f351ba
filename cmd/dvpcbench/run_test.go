//go:build linux

package main

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	// Fields 3 to 13, then utime 7 and stime 5, then the rest.
	const mid = " S 1 10 10 0 -1 4194560 300 0 0 0 "
	for _, c := range []struct {
		stat  string
		ticks uint64
		why   string
	}{
		{"4242 (docker-registry)" + mid + "7 5 0 0 20 0 9 0 100 0\n", 12, ""},
		{"4242 (a) (b) c)" + mid + "7 5 0 0 20 0 9 0 100 0\n", 12, ""},
		{"4242 (x)" + mid + "7 5", 12, ""},
		{"4242 (x)" + mid + "7", 0, "14 fields"},
		{"4242 (x)" + mid + "7 -5 0", 0, "utime or stime"},
		{"4242 x S 1", 0, "no command name"},
	} {
		got, err := parseProcStat([]byte(c.stat))
		if c.why != "" {
			if err == nil || !strings.Contains(err.Error(), c.why) {
				t.Errorf("parseProcStat(%q) = %d, %v, want error %q", c.stat, got, err, c.why)
			}
			continue
		}
		if err != nil || got != c.ticks {
			t.Errorf("parseProcStat(%q) = %d, %v, want %d", c.stat, got, err, c.ticks)
		}
	}
}

func TestProcCPU(t *testing.T) {
	// This process: about what getrusage says, and it grows while busy.
	before, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var ru syscall.Rusage
	for n := 0; ; n++ {
		now, err := procCPU(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if now-before >= 0.05 {
			break
		}
		if n > 1e9 {
			t.Fatalf("procCPU of this process stayed at %.2f s", now)
		}
	}
	after, _ := procCPU(os.Getpid())
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	rusage := time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	if d := rusage - after; d < -0.05 || d > 0.5 {
		t.Errorf("procCPU of this process = %.2f s, getrusage %.2f s", after, rusage)
	}

	// A sleeping child spends next to nothing; one that is gone has no figure.
	c := exec.Command("sleep", "30")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	pid := c.Process.Pid
	sleep, err := procsCPU([]int{pid, os.Getpid()})
	self, _ := procCPU(os.Getpid())
	if err != nil || sleep-self > 0.05 || sleep < self-0.05 {
		t.Errorf("procsCPU(sleep, self) = %.2f s, %v; self %.2f s", sleep, err, self)
	}
	c.Process.Kill()
	c.Wait()
	if _, err := procsCPU([]int{os.Getpid(), pid}); err == nil {
		t.Errorf("procsCPU of a reaped process: no error")
	}
	if s, err := procsCPU(nil); s != 0 || err != nil {
		t.Errorf("procsCPU(nil) = %v, %v", s, err)
	}
}
