package image

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// CacheDirTag is the name of the file that marks a cache directory
// (https://bford.info/cachedir/), and cacheDirSignature how it must begin.
const (
	CacheDirTag       = "CACHEDIR.TAG"
	cacheDirSignature = "Signature: 8a477f597d28d172789f06886806bc55"
)

// maxCacheCount bounds how many entries a snapshot lstats to size the cache
// directories it leaves out; beyond it a size is a lower bound.
const maxCacheCount = 200_000

// LeftOutKind says why a directory was left out of a snapshot.
type LeftOutKind int

const (
	// LeftOutStore is a dvpc store: the one being written to, or another.
	LeftOutStore LeftOutKind = iota + 1
	// LeftOutCache is a directory tagged with CACHEDIR.TAG, or one of
	// [SnapshotOptions.CacheDirs].
	LeftOutCache
)

func (k LeftOutKind) String() string {
	switch k {
	case LeftOutStore:
		return "dvpc store"
	case LeftOutCache:
		return "cache"
	}
	return "unknown"
}

// LeftOut is a directory a snapshot left out by rule rather than by an
// exclude pattern.
type LeftOut struct {
	Path string // absolute
	Kind LeftOutKind
	// ThisStore is set for the store the snapshot is written to.
	ThisStore bool
	// Files and Bytes count the regular files below a cache directory.
	// Exact is false when the count stopped early (see maxCacheCount):
	// then they are lower bounds. Stores are not counted.
	Files int64
	Bytes int64
	Exact bool
}

// UserCacheDirs returns the directories that hold the user's caches: the
// XDG cache directory ($XDG_CACHE_HOME, else ~/.cache) and the platform's
// own (~/Library/Caches on macOS), each once. A snapshot leaves them out
// when they lie inside the snapshotted tree.
func UserCacheDirs() []string {
	var dirs []string
	if x := os.Getenv("XDG_CACHE_HOME"); filepath.IsAbs(x) {
		dirs = append(dirs, filepath.Clean(x))
	} else if h, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(h, ".cache"))
	}
	if d, err := os.UserCacheDir(); err == nil && filepath.IsAbs(d) && !slices.Contains(dirs, filepath.Clean(d)) {
		dirs = append(dirs, filepath.Clean(d))
	}
	return dirs
}

// isCacheDirTag reports whether p is a CACHEDIR.TAG file with the
// standard signature. Only a regular file counts.
func isCacheDirTag(p string) bool {
	if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
		return false
	}
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	buf := make([]byte, len(cacheDirSignature))
	if _, err := io.ReadFull(f, buf); err != nil {
		return false
	}
	return bytes.Equal(buf, []byte(cacheDirSignature))
}

// duCounter sizes left-out cache directories, within a budget of entries
// shared by the whole snapshot.
type duCounter struct {
	budget int
}

// count adds up the regular files below dir without following symlinks.
// It returns false when the budget ran out before the walk finished.
func (c *duCounter) count(dir string, lo *LeftOut) bool {
	f, err := os.Open(dir)
	if err != nil {
		return true // unreadable: nothing to count, nothing left uncounted
	}
	defer f.Close()
	for {
		ents, err := f.ReadDir(1024)
		for _, e := range ents {
			if c.budget <= 0 {
				return false
			}
			c.budget--
			switch {
			case e.Type().IsRegular():
				if fi, err := e.Info(); err == nil {
					lo.Files++
					lo.Bytes += fi.Size()
				}
			case e.IsDir():
				if !c.count(filepath.Join(dir, e.Name()), lo) {
					return false
				}
			}
		}
		if err != nil {
			return true // io.EOF, or an unreadable rest
		}
	}
}
