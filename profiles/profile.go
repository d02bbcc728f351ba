package profiles

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ProfileVersion is the version of the profile document this dvpc writes.
const ProfileVersion = 1

// ErrProfile means a profile document is malformed or from a newer dvpc.
var ErrProfile = errors.New("bad profile")

// ErrNoApp means the profile has no app of that name.
var ErrNoApp = errors.New("no such app")

// Profile is the list of apps that follows the person.
type Profile struct {
	Version int   `json:"version"`
	Apps    []App `json:"apps"` // sorted by name
}

// App is one app of the profile, pinned.
type App struct {
	Name string `json:"name"`
	// Ref is the reference as the person gave it; Digest what it named
	// when last resolved (an index or a manifest).
	Ref       string          `json:"ref"`
	Digest    string          `json:"digest"`
	Platforms []PlatformImage `json:"platforms"`
	// Bins maps the names linked into ~/.local/bin to paths inside the
	// image; empty means the app's name for its entrypoint.
	Bins map[string]string `json:"bins,omitempty"`
	// Settings maps an OS (linux, darwin, windows) to where the app keeps
	// its settings there.
	Settings map[string]string `json:"settings,omitempty"`
	Pinned   time.Time         `json:"pinned"`
}

// PlatformImage is one platform's pinned image of an app.
type PlatformImage struct {
	Platform   string   `json:"platform"`
	Digest     string   `json:"digest"`
	Entrypoint []string `json:"entrypoint,omitempty"`
}

var appName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)

// CheckName refuses an app or binary name that is not 1–64 letters,
// digits, '.', '_', '+' or '-', starting with a letter or digit.
func CheckName(n string) error {
	if !appName.MatchString(n) {
		return fmt.Errorf("name %q: use 1-64 letters, digits, '.', '_', '+' or '-', starting with a letter or digit: %w", n, ErrProfile)
	}
	return nil
}

// ParseProfile reads and checks a profile document.
func ParseProfile(b []byte) (*Profile, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	var p Profile
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrProfile, err)
	}
	if p.Version < 1 || p.Version > ProfileVersion {
		return nil, fmt.Errorf("profile version %d (this dvpc reads %d): %w", p.Version, ProfileVersion, ErrProfile)
	}
	seen := map[string]bool{}
	for _, a := range p.Apps {
		if err := a.check(); err != nil {
			return nil, err
		}
		if seen[a.Name] {
			return nil, fmt.Errorf("app %q is listed twice: %w", a.Name, ErrProfile)
		}
		seen[a.Name] = true
	}
	return &p, nil
}

func (a *App) check() error {
	if err := CheckName(a.Name); err != nil {
		return err
	}
	if _, err := parseLocation(a.Ref); err != nil {
		return fmt.Errorf("app %s: %w: %w", a.Name, ErrProfile, err)
	}
	if _, err := v1.NewHash(a.Digest); err != nil {
		return fmt.Errorf("app %s: digest %q: %w", a.Name, a.Digest, ErrProfile)
	}
	if len(a.Platforms) == 0 {
		return fmt.Errorf("app %s lists no platform: %w", a.Name, ErrProfile)
	}
	for _, pi := range a.Platforms {
		if _, err := ParsePlatform(pi.Platform); err != nil {
			return fmt.Errorf("app %s: %w: %w", a.Name, ErrProfile, err)
		}
		if _, err := v1.NewHash(pi.Digest); err != nil {
			return fmt.Errorf("app %s (%s): digest %q: %w", a.Name, pi.Platform, pi.Digest, ErrProfile)
		}
	}
	for b, p := range a.Bins {
		if err := CheckName(b); err != nil {
			return fmt.Errorf("app %s: binary: %w", a.Name, err)
		}
		if p == "" || strings.ContainsRune(p, 0) {
			return fmt.Errorf("app %s: binary %s has no path: %w", a.Name, b, ErrProfile)
		}
	}
	for os, p := range a.Settings {
		if !settingsOS[os] || p == "" || strings.ContainsRune(p, 0) {
			return fmt.Errorf("app %s: settings %s=%q: want linux, darwin or windows and a path: %w", a.Name, os, p, ErrProfile)
		}
	}
	return nil
}

var settingsOS = map[string]bool{"linux": true, "darwin": true, "windows": true}

// Marshal renders the document, apps sorted by name.
func (p *Profile) Marshal() ([]byte, error) {
	p.Version = ProfileVersion
	if p.Apps == nil {
		p.Apps = []App{}
	}
	slices.SortFunc(p.Apps, func(a, b App) int { return strings.Compare(a.Name, b.Name) })
	return json.Marshal(p)
}

// App returns the app of that name.
func (p *Profile) App(name string) (*App, error) {
	for i := range p.Apps {
		if p.Apps[i].Name == name {
			return &p.Apps[i], nil
		}
	}
	return nil, fmt.Errorf("app %q: %w", name, ErrNoApp)
}

// Set adds a or replaces the app of its name.
func (p *Profile) Set(a App) {
	for i := range p.Apps {
		if p.Apps[i].Name == a.Name {
			p.Apps[i] = a
			return
		}
	}
	p.Apps = append(p.Apps, a)
}

// Remove drops the app of that name.
func (p *Profile) Remove(name string) error {
	for i := range p.Apps {
		if p.Apps[i].Name == name {
			p.Apps = slices.Delete(p.Apps, i, i+1)
			return nil
		}
	}
	return fmt.Errorf("app %q: %w", name, ErrNoApp)
}

// NewApp makes the profile entry for what a reference resolved to. Bins
// and settings given by the person win over those the image declares
// (labels or annotations dev.dvpc.bin.NAME and dev.dvpc.settings.OS).
func NewApp(name string, r *Resolved, bins, settings map[string]string, now time.Time) (App, error) {
	a := App{Name: name, Ref: r.Ref, Digest: r.Digest.String(), Pinned: now.UTC()}
	for _, im := range r.Images {
		a.Platforms = append(a.Platforms, PlatformImage{Platform: im.Platform.String(), Digest: im.Digest.String(), Entrypoint: im.Entrypoint})
		for k, v := range im.Meta {
			if b, ok := strings.CutPrefix(k, AnnotationBin); ok {
				a.Bins = setDefault(a.Bins, b, v)
			}
			if os, ok := strings.CutPrefix(k, AnnotationSettings); ok {
				a.Settings = setDefault(a.Settings, os, v)
			}
		}
	}
	for k, v := range bins {
		a.Bins = setDefault(a.Bins, k, "")
		a.Bins[k] = v
	}
	for k, v := range settings {
		a.Settings = setDefault(a.Settings, k, "")
		a.Settings[k] = v
	}
	return a, a.check()
}

func setDefault(m map[string]string, k, v string) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	if _, ok := m[k]; !ok {
		m[k] = v
	}
	return m
}

// For returns the app's image for platform p.
func (a *App) For(p Platform) (PlatformImage, v1.Hash, error) {
	var offered []string
	for _, pi := range a.Platforms {
		pp, err := ParsePlatform(pi.Platform)
		if err != nil {
			return PlatformImage{}, v1.Hash{}, err
		}
		if pp.Matches(p) {
			h, err := v1.NewHash(pi.Digest)
			return pi, h, err
		}
		offered = append(offered, pi.Platform)
	}
	return PlatformImage{}, v1.Hash{}, fmt.Errorf("app %s offers %s, not %s: %w", a.Name, strings.Join(offered, ", "), p, ErrNoPlatform)
}

// BinsFor returns the binaries to link for an image: the app's Bins, or
// the app's name for the entrypoint.
func (a *App) BinsFor(pi PlatformImage) map[string]string {
	if len(a.Bins) > 0 {
		return a.Bins
	}
	if len(pi.Entrypoint) == 0 {
		return nil
	}
	return map[string]string{a.Name: pi.Entrypoint[0]}
}
