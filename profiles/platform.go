package profiles

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
)

// ErrNoPlatform means an app offers no image for a platform.
var ErrNoPlatform = errors.New("no image for this platform")

// Platform is an OS and CPU architecture, with an optional variant
// ("linux/arm/v7").
type Platform struct {
	OS      string `json:"os"`
	Arch    string `json:"architecture"`
	Variant string `json:"variant,omitempty"`
}

// Current is the platform dvpc runs on.
func Current() Platform {
	return Platform{OS: runtime.GOOS, Arch: runtime.GOARCH}
}

// String renders "os/arch[/variant]".
func (p Platform) String() string {
	s := p.OS + "/" + p.Arch
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// ParsePlatform reads "os/arch[/variant]".
func ParsePlatform(s string) (Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return Platform{}, fmt.Errorf("platform %q: want OS/ARCH or OS/ARCH/VARIANT", s)
	}
	p := Platform{OS: parts[0], Arch: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	for _, x := range parts {
		if x == "" || strings.ContainsAny(x, " \t\n") {
			return Platform{}, fmt.Errorf("platform %q: want OS/ARCH or OS/ARCH/VARIANT", s)
		}
	}
	return p, nil
}

// Matches reports whether an image for p runs on want: same OS and
// architecture, and the same variant unless either leaves it out (arm64
// images say v8 or nothing).
func (p Platform) Matches(want Platform) bool {
	if p.OS != want.OS || p.Arch != want.Arch {
		return false
	}
	return p.Variant == "" || want.Variant == "" || p.Variant == want.Variant
}
