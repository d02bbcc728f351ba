package main

import (
	"context"
	"os"
	"os/exec"
	"syscall"
)

// ownRootCommand runs an app's entrypoint inside its root file system,
// through an unprivileged user namespace: the person's own user ID is root
// in it, and only there. No privilege is needed where the kernel allows
// user namespaces (Debian 12 and most distributions do; some lock them
// with kernel.unprivileged_userns_clone=0 or an AppArmor policy).
func ownRootCommand(ctx context.Context, root string, entry, args []string, env []string, dir string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, entry[0])
	cmd.Path = entry[0] // a path inside the root, not looked up on this PC
	cmd.Args = append(append([]string{entry[0]}, entry[1:]...), args...)
	cmd.Env = env
	if dir == "" {
		dir = "/"
	}
	cmd.Dir = dir
	uid, gid := os.Getuid(), os.Getgid()
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:      root,
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: 1}},
	}
	return cmd
}

// ownRootHint says what to do when an app could not start in its root.
const ownRootHint = "this app runs in its own root file system through a user namespace; if this PC forbids them " +
	"(sysctl kernel.unprivileged_userns_clone, or an AppArmor restriction), allow them or run dvpc as root"
