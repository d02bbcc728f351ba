package main

import (
	"context"
	"net"
	"time"
)

// The unlock agent is not available on Windows: every command unlocks the
// store itself.
const agentAvailable = false

func agentListening(string) bool { return false }

func dialAgent(string) (net.Conn, error) { return nil, errNoAgent }

func startAgent(string, time.Duration) (bool, error) { return false, errNoAgent }

func serveAgent(context.Context, string, time.Duration, bool) error { return errNoAgent }
