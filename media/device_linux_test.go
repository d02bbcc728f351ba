package media

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func mknod(t *testing.T, p string, mode uint32, major, minor uint32) {
	t.Helper()
	os.Remove(p)
	if err := unix.Mknod(p, mode|0o600, int(unix.Mkdev(major, minor))); err != nil {
		t.Fatalf("mknod %s: %v (this test makes device nodes: run it as root)", p, err)
	}
}

// TestDeviceNodeIsTheCheckedDevice checks that the device written is the
// one whose sysfs entries were checked: a node named after a disk but with
// another device's numbers is refused, and so is a node replaced between
// the checks and the open.
func TestDeviceNodeIsTheCheckedDevice(t *testing.T) {
	env := fakeSys(t, fakeDisk("sdz", "65:0", "sdz1")...)
	node := filepath.Join(t.TempDir(), "sdz")

	// Named sdz, but device 7:200: sdz's checks say nothing about it.
	mknod(t, node, unix.S_IFBLK, 7, 200)
	_, err := env.inspect(node)
	if err == nil || !strings.Contains(err.Error(), "is device 7:200, but sysfs's sdz is 65:0") {
		t.Fatalf("a node of another device passed sdz's checks: %v", err)
	}

	mknod(t, node, unix.S_IFBLK, 65, 0)
	d, err := env.inspect(node)
	if err != nil {
		t.Fatal(err)
	}
	if d.dev != "65:0" {
		t.Fatalf("checked device %q, want 65:0", d.dev)
	}

	// Replaced after the checks: by another device's node, and by a
	// symbolic link to one. Both open (they are /dev/null), and both are
	// refused before anything is written.
	mknod(t, node, unix.S_IFCHR, 1, 3)
	if f, err := d.open(); err == nil || !strings.Contains(err.Error(), "changed after it was checked") {
		f.Close()
		t.Errorf("a node replaced by /dev/null's: %v", err)
	}
	os.Remove(node)
	if err := os.Symlink("/dev/null", node); err != nil {
		t.Fatal(err)
	}
	if f, err := d.open(); err == nil || !strings.Contains(err.Error(), "changed after it was checked") {
		f.Close()
		t.Errorf("a node replaced by a link to /dev/null: %v", err)
	}
}
