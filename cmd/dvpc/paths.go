package main

import (
	"path/filepath"
	"strings"

	"github.com/dvpc/dvpc/image"
)

// snapshotRel turns a path given by the person into a path inside the
// snapshots: an absolute path under the snapshotted directory is made
// relative to it; anything else is taken as relative already.
func snapshotRel(snaps []*image.Snapshot, p string) (string, error) {
	if filepath.IsAbs(p) {
		for i := len(snaps) - 1; i >= 0; i-- {
			root := snaps[i].Config.Path
			if p == root {
				return "", nil
			}
			if rest, ok := strings.CutPrefix(p, strings.TrimSuffix(root, "/")+"/"); ok {
				return image.CleanPath(rest)
			}
		}
	}
	return image.CleanPath(p)
}
