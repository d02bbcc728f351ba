package overlay

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/dvpc/dvpc/image"
)

// SessionsDir is the folder of a store directory that holds its session
// records, next to index.json (docs/design.md §5).
const SessionsDir = "sessions"

// EphemeralMarker is the file that marks a store directory as a cache a
// login created on a PC that is not the person's own. Only a store with it
// is ever removed by logout.
const EphemeralMarker = "dvpc-ephemeral"

// sessionVersion is the version of the session records this dvpc writes.
const sessionVersion = 1

// maxSessionFile bounds how much of a session record is read.
const maxSessionFile = 4 << 20

// ErrNewerSession means a session record was written by a newer dvpc.
var ErrNewerSession = errors.New("the session record was written by a newer dvpc")

// ErrNoSession means a directory has no session record in the store.
var ErrNoSession = errors.New("no login session for this directory")

// Session is the record of one login: which snapshot its directory holds,
// where the blobs came from, and whether the directory was completely
// written. It lives in the local cache, keyed by the directory.
type Session struct {
	Version int    `json:"version"`
	Dir     string `json:"dir"`
	StoreID string `json:"store_id"`
	Home    string `json:"home"`
	// Snapshot is the tag of the snapshot Dir was materialised from or
	// last synced to: the parent of the next sync.
	Snapshot string       `json:"snapshot"`
	Manifest image.Digest `json:"manifest"`
	// Tree, when set, is Snapshot's content as it lies in Dir (its inodes
	// and change times), computed by a sync that found nothing changed:
	// the next sync compares with it rather than read every file again.
	Tree image.ChunkID `json:"tree,omitzero"`
	// Complete is set once Dir holds all of Snapshot; a login that was
	// stopped before leaves it false, and the next login writes Dir again.
	Complete bool `json:"complete"`
	// Updating is set while a login or sync merges a newer snapshot into
	// Dir (Complete is then false): Dir holds Snapshot, the edits since and
	// part of the newer one. The next login snapshots it as edits and
	// merges again, so nothing in it is lost.
	Updating bool `json:"updating,omitempty"`
	// Ephemeral is set when the cache was created by this login.
	Ephemeral bool `json:"ephemeral,omitempty"`
	// Places are the places the last login or sync used, nearest first.
	Places []PlaceUse `json:"places,omitempty"`
	// Made are the snapshots this session wrote (tags), oldest first:
	// logout checks that each reached enough places.
	Made    []string  `json:"made,omitempty"`
	Host    string    `json:"host,omitempty"`
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
}

// PlaceUse is what one place served.
type PlaceUse struct {
	Name     string        `json:"name"`
	Kind     string        `json:"kind"` // cache, usb, dvd, medium, mirror
	Blobs    int           `json:"blobs"`
	Bytes    int64         `json:"bytes"`
	Duration time.Duration `json:"duration_ns"`
	Error    string        `json:"error,omitempty"`
}

// sessionFile names the record of dir in the store directory store.
func sessionFile(store, dir string) string {
	sum := sha256.Sum256([]byte(filepath.Clean(dir)))
	return filepath.Join(store, SessionsDir, hex.EncodeToString(sum[:12])+".json")
}

// LoadSession reads the record of the session in dir. A directory without
// one gives an error wrapping [ErrNoSession].
func LoadSession(store, dir string) (*Session, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(sessionFile(store, abs))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", abs, ErrNoSession)
	}
	if err != nil {
		return nil, fmt.Errorf("read session record: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSessionFile+1))
	if err != nil {
		return nil, fmt.Errorf("read session record: %w", err)
	}
	return parseSession(b, abs)
}

// parseSession checks a session record's bytes; dir is the directory it
// must name.
func parseSession(b []byte, dir string) (*Session, error) {
	if len(b) > maxSessionFile {
		return nil, fmt.Errorf("session record of %s is larger than %d bytes", dir, maxSessionFile)
	}
	var s Session
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("session record of %s is damaged: %w", dir, err)
	}
	if s.Version > sessionVersion {
		return nil, fmt.Errorf("%s (version %d; this dvpc reads version %d): %w", dir, s.Version, sessionVersion, ErrNewerSession)
	}
	if s.Version < 1 || s.Dir != dir {
		return nil, fmt.Errorf("session record of %s is damaged: it names %q, version %d", dir, s.Dir, s.Version)
	}
	if s.Snapshot != "" && !image.IsSnapshotRef(s.Snapshot) {
		return nil, fmt.Errorf("session record of %s is damaged: %q is not a snapshot tag", dir, s.Snapshot)
	}
	return &s, nil
}

// Save writes the record atomically into the store directory store.
func (s *Session) Save(store string) error {
	s.Version = sessionVersion
	s.Updated = time.Now().UTC()
	if s.Started.IsZero() {
		s.Started = s.Updated
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Join(store, SessionsDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save session record: %w", err)
	}
	if err := image.WriteFileAtomic(dir, filepath.Base(sessionFile(store, s.Dir)), append(b, '\n')); err != nil {
		return fmt.Errorf("save session record: %w", err)
	}
	return nil
}

// Remove deletes the record from the store directory store.
func (s *Session) Remove(store string) error {
	err := os.Remove(sessionFile(store, s.Dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// At records that the session's directory now holds snap.
func (s *Session) At(snap *image.Snapshot) {
	if snap.Manifest != s.Manifest {
		s.Tree = image.ChunkID{}
	}
	s.Snapshot, s.Manifest, s.Home = snap.Ref, snap.Manifest, snap.Home
}

// Wrote records a snapshot the session made.
func (s *Session) Wrote(snap *image.Snapshot) {
	if !slices.Contains(s.Made, snap.Ref) {
		s.Made = append(s.Made, snap.Ref)
	}
}

// Sessions lists the session records of the store directory store.
func Sessions(store string) ([]*Session, error) {
	ents, err := os.ReadDir(filepath.Join(store, SessionsDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Session
	for _, e := range ents {
		if filepath.Ext(e.Name()) != ".json" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(store, SessionsDir, e.Name()))
		if err != nil {
			return nil, err
		}
		var probe struct {
			Dir string `json:"dir"`
		}
		if json.Unmarshal(b, &probe) != nil || probe.Dir == "" {
			continue
		}
		s, err := parseSession(b, probe.Dir)
		if err != nil {
			return nil, err
		}
		if sessionFile(store, s.Dir) != filepath.Join(store, SessionsDir, e.Name()) {
			continue // a record copied under another directory's name
		}
		out = append(out, s)
	}
	return out, nil
}

// IsEphemeral reports whether the store directory store is a cache a
// login created, which logout may remove.
func IsEphemeral(store string) bool {
	_, err := os.Stat(filepath.Join(store, EphemeralMarker))
	return err == nil
}

// MarkEphemeral marks a store directory as a login's cache.
func MarkEphemeral(store string) error {
	return image.WriteFileAtomic(store, EphemeralMarker,
		[]byte("This store is a cache that `dvpc login` made on this PC; `dvpc logout` removes it.\n"))
}
