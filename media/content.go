package media

import (
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/dvpc/dvpc/image"
)

// Entry is one file to put on a medium.
type Entry struct {
	// Path is slash-separated and relative, such as "store/index.json".
	Path string
	Size int64
	// MediaType is the OCI media type of a store blob; empty for others.
	MediaType string
	// Open returns the file's bytes; exactly Size of them.
	Open func() (io.ReadCloser, error)
	// Exec marks a program: media that record modes give it 0755.
	Exec bool
}

// Content is what one medium (or one partition of it) carries.
type Content struct {
	// Label is the volume label, such as "DVPC_20261125".
	Label string
	// ModTime is every timestamp written on the medium, so the same content
	// gives the same bytes.
	ModTime time.Time
	Entries []Entry
}

// Size returns the total size of the files.
func (c *Content) Size() int64 {
	var n int64
	for _, e := range c.Entries {
		n += e.Size
	}
	return n
}

// Sorted returns the entries ordered by path, after checking that every
// path is relative, clean and unique.
func (c *Content) Sorted() ([]Entry, error) {
	es := slices.Clone(c.Entries)
	slices.SortFunc(es, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
	for i, e := range es {
		if e.Path == "" || path.Clean(e.Path) != e.Path || strings.HasPrefix(e.Path, "/") || strings.HasPrefix(e.Path, "../") || e.Path == ".." {
			return nil, fmt.Errorf("medium entry %q: want a clean relative path", e.Path)
		}
		if i > 0 && es[i-1].Path == e.Path {
			return nil, fmt.Errorf("medium entry %q appears twice", e.Path)
		}
		if e.Size < 0 {
			return nil, fmt.Errorf("medium entry %q: negative size", e.Path)
		}
	}
	return es, nil
}

// Placed returns entries (sorted by path) in the order their bytes are laid
// on a medium: first what is needed to read the rest (the pages, the
// store's index, keys, manifests, signatures, configs and indexes), then
// the programs, then the packs. A medium cut short (a burn, copy or
// download that stopped) then still lists its snapshots and restores
// those whose packs lie before the cut.
func Placed(entries []Entry) []Entry {
	rank := func(e Entry) int {
		switch {
		case e.MediaType == image.PackType:
			return 2
		case e.Exec:
			return 1
		}
		return 0
	}
	es := slices.Clone(entries)
	slices.SortStableFunc(es, func(a, b Entry) int { return rank(a) - rank(b) })
	return es
}

// MaxFileSize is the largest file any medium may hold: ISO 9660 level 3 and
// FAT32 both break at 4 GiB, and go-diskfs truncates or wraps silently, so
// dvpc refuses such files itself. Packs are far smaller.
const MaxFileSize = 4<<30 - 1

// MaxNameLen is the longest name component written: Rock Ridge names over
// about 135 bytes break go-diskfs images, and dvpc's own names are short.
const MaxNameLen = 100

// Check applies the limits every medium shares.
func (c *Content) Check() error {
	for _, e := range c.Entries {
		if e.Size > MaxFileSize {
			return fmt.Errorf("%s is %d bytes; a medium holds files under 4 GiB", e.Path, e.Size)
		}
		for _, part := range strings.Split(e.Path, "/") {
			if len(part) > MaxNameLen {
				return fmt.Errorf("%s: name %q is over %d bytes", e.Path, part, MaxNameLen)
			}
		}
	}
	return nil
}
