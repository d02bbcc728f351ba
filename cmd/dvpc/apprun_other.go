//go:build !linux

package main

import (
	"context"
	"os/exec"
)

// ownRootCommand is not available: running an app in its own root file
// system needs Linux user namespaces. Static programs still run.
func ownRootCommand(ctx context.Context, root string, entry, args []string, env []string, dir string) *exec.Cmd {
	return nil
}

const ownRootHint = "apps that need their own root file system run on Linux only; a static build of the app runs here"
