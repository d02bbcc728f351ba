//go:build !linux && !windows

package main

import (
	"net"
	"syscall"
)

// peerCred is not asked here: the agent's 0700 directory keeps other users
// from connecting.
func peerCred(*net.UnixConn) (uid, pid int, ok bool) { return 0, 0, false }

// hardenAgent keeps the agent's memory out of core dumps.
func hardenAgent() {
	syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{})
}
