package delta

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dvpc/dvpc/image"
)

// MirrorsFile is the file, next to a local store's index.json, that lists
// its mirrors and what the last pushes did. It is not part of the OCI layout.
const MirrorsFile = "dvpc-mirrors.json"

// Mirror is one configured mirror.
type Mirror struct {
	Name      string    `json:"name"`
	URL       string    `json:"url"` // host[:port]/path
	Insecure  bool      `json:"insecure,omitempty"`
	LastPush  time.Time `json:"last_push,omitempty"`
	LastError string    `json:"last_error,omitempty"`
	// BadData records the last time the mirror served bytes that did not
	// match their digest, or a snapshot with a bad signature.
	BadData string `json:"bad_data,omitempty"`
	// PullRate and PushRate are the throughputs, in bytes/s, last measured
	// reading from and writing to the mirror; 0 when not known.
	PullRate float64 `json:"pull_rate,omitempty"`
	PushRate float64 `json:"push_rate,omitempty"`
	// Pushed is the newest snapshot tag the mirror had after the last
	// push that completed: snapshots newer than it wait for the next push.
	Pushed string `json:"pushed,omitempty"`
}

// Waits reports whether the snapshot tagged tag waits for a push to the
// mirror: it is newer than the newest one the last completed push left
// there. The store's tags were rebuilt from verified manifests, so the
// sequence numbers they carry are the signed ones.
func (m Mirror) Waits(tag string) bool {
	if _, _, ok := image.ParseSnapshotRef(tag); !ok {
		return false
	}
	return m.Pushed == "" || compareSnapshotRefs(tag, m.Pushed) > 0
}

// Rate is the mirror's best-known read throughput in bytes/s: what the
// last pull measured, else what the last push did, else 0.
func (m Mirror) Rate() float64 {
	if m.PullRate > 0 {
		return m.PullRate
	}
	return m.PushRate
}

// Mirrors is the mirror list of a store.
type Mirrors struct {
	Mirrors []Mirror `json:"mirrors"`
}

// maxMirrorsFile bounds how much of the mirror list is read.
const maxMirrorsFile = 16 << 20

// LoadMirrors reads the mirror list of the store in dir; none is empty.
func LoadMirrors(dir string) (*Mirrors, error) {
	f, err := os.Open(filepath.Join(dir, MirrorsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return &Mirrors{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMirrorsFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", MirrorsFile, err)
	}
	if len(b) > maxMirrorsFile {
		return nil, fmt.Errorf("%s is over %d bytes: not a mirror list", MirrorsFile, maxMirrorsFile)
	}
	var m Mirrors
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", MirrorsFile, err)
	}
	return &m, nil
}

// Save writes the list atomically.
func (m *Mirrors) Save(dir string) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return image.WriteFileAtomic(dir, MirrorsFile, b)
}

// Find returns the mirror with a name or URL.
func (m *Mirrors) Find(nameOrURL string) *Mirror {
	for i := range m.Mirrors {
		if m.Mirrors[i].Name == nameOrURL || m.Mirrors[i].URL == nameOrURL {
			return &m.Mirrors[i]
		}
	}
	return nil
}

// Add appends a mirror; names and URLs are unique.
func (m *Mirrors) Add(mr Mirror) error {
	if p, ok := strings.CutPrefix(mr.URL, LocalPrefix); ok {
		abs, err := filepath.Abs(p)
		if err != nil || p == "" {
			return fmt.Errorf("mirror %q: want oci:DIR", mr.URL)
		}
		mr.URL = LocalPrefix + abs
	} else if _, err := NewRegistry(mr.URL, RegistryOptions{Insecure: mr.Insecure}); err != nil {
		return err
	}
	if mr.Name == "" {
		mr.Name = fmt.Sprintf("mirror%d", len(m.Mirrors)+1)
	}
	if m.Find(mr.Name) != nil || m.Find(mr.URL) != nil {
		return fmt.Errorf("mirror %s (%s) is already configured", mr.Name, mr.URL)
	}
	m.Mirrors = append(m.Mirrors, mr)
	return nil
}

// Remove drops a mirror by name or URL.
func (m *Mirrors) Remove(nameOrURL string) error {
	for i := range m.Mirrors {
		if m.Mirrors[i].Name == nameOrURL || m.Mirrors[i].URL == nameOrURL {
			m.Mirrors = append(m.Mirrors[:i], m.Mirrors[i+1:]...)
			return nil
		}
	}
	return fmt.Errorf("no mirror %q: %w", nameOrURL, image.ErrNotFound)
}

// Endpoints opens every mirror; a registry fails a request that makes no
// progress for timeout (0: [DefaultTimeout]).
func (m *Mirrors) Endpoints(timeout time.Duration) ([]Endpoint, error) {
	var out []Endpoint
	for _, mr := range m.Mirrors {
		r, err := OpenEndpoint(mr.URL, RegistryOptions{Insecure: mr.Insecure, Timeout: timeout})
		if err != nil {
			return nil, fmt.Errorf("mirror %s: %w", mr.Name, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// URLs lists the mirrors' URLs, as recorded in snapshots.
func (m *Mirrors) URLs() []string {
	var out []string
	for _, mr := range m.Mirrors {
		out = append(out, mr.URL)
	}
	return out
}
