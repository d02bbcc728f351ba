package image

import (
	"io"
	"os"
	"path/filepath"
)

// maxIndexJSON bounds how much of an index.json [IsStoreDir] reads.
const maxIndexJSON = 64 << 20

// IsStoreDir reports whether dir is a dvpc store: an OCI layout whose
// index.json names a "keys" manifest of the dvpc keys artifact type.
// Snapshots leave such directories out, and restores never write into them
// (docs/design.md §5). Anything unreadable is not a store; an OCI layout
// whose index.json is too large to read counts as one, so that it is
// protected rather than overwritten.
func IsStoreDir(dir string) bool {
	if _, err := os.Lstat(filepath.Join(dir, "oci-layout")); err != nil {
		return false
	}
	f, err := os.Open(filepath.Join(dir, "index.json"))
	if err != nil {
		return false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxIndexJSON+1))
	if err != nil {
		return false
	}
	if len(b) > maxIndexJSON {
		return true
	}
	refs, err := parseIndex(b)
	if err != nil {
		return false
	}
	k, ok := findRef(refs, KeysRef)
	return ok && k.Desc.ArtifactType == KeysArtifactType
}
