package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"

	"github.com/dvpc/dvpc/media"
)

// attachedMedia looks for dvpc media attached to this PC: a partition
// named DVPC (the USB key), a disc whose volume is DVPC_*, and mounted
// media (a mount point holding a store). It finds nothing on systems
// without /dev/disk and /proc/self/mounts.
func attachedMedia() []string { return findMedia("/dev/disk", "/proc/self/mounts") }

// findMedia looks for media under the device links of disks (by-partlabel,
// by-label) and among the mount points listed in mounts.
func findMedia(disks, mounts string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(p string) {
		real, err := filepath.EvalSymlinks(p)
		if err != nil || seen[real] {
			return
		}
		seen[real] = true
		out = append(out, real)
	}
	if m, _ := filepath.Glob(filepath.Join(disks, "by-partlabel", "DVPC*")); len(m) > 0 {
		for _, p := range m {
			add(p)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(disks, "by-label", "DVPC_*")); len(m) > 0 {
		for _, p := range m {
			add(p)
		}
	}
	f, err := os.Open(mounts)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		dir := strings.ReplaceAll(fields[1], `\040`, " ")
		if _, err := os.Stat(filepath.Join(dir, media.StoreDir, "oci-layout")); err == nil {
			if !seen[fields[0]] {
				add(dir)
			}
		}
	}
	return out
}
