package image

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/zeebo/blake3"
	"golang.org/x/crypto/hkdf"
)

// Homes (docs/design.md §1): every snapshot belongs to one home, a named
// lineage of one directory's states. The name is sealed in the config; the
// signed manifest carries the home's ID, a keyed hash of the name, so that
// a mirror or a pull without the key can tell which snapshots share a
// lineage but never learns the name.

// DefaultHome is the name of the home that holds $HOME.
const DefaultHome = "home"

// maxHomeName is the longest home name, in bytes.
const maxHomeName = 64

// ErrHomeName means a home name breaks the naming rule.
var ErrHomeName = errors.New("a home name is 1-64 letters, digits, '.', '_' or '-'")

// CheckHomeName reports whether name is a valid home name.
func CheckHomeName(name string) error {
	if len(name) == 0 || len(name) > maxHomeName {
		return fmt.Errorf("home name %q: %w", name, ErrHomeName)
	}
	for i := 0; i < len(name); i++ {
		if !homeNameByte(name[i]) {
			return fmt.Errorf("home name %q: %w", name, ErrHomeName)
		}
	}
	return nil
}

func homeNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// HomeNameFor returns the home name derived from a directory's path: its
// last element, with every byte a name may not hold replaced by '-' and cut
// to 64 bytes; "root" for the file system's root.
func HomeNameFor(path string) string {
	base := filepath.Base(filepath.Clean(path))
	if base == string(filepath.Separator) || base == "." || base == "" {
		return "root"
	}
	b := []byte(base)
	for i, c := range b {
		if !homeNameByte(c) {
			b[i] = '-'
		}
	}
	if len(b) > maxHomeName {
		b = b[:maxHomeName]
	}
	return string(b)
}

// DefaultHomeName is the home a snapshot of dir belongs to when none is
// named: [DefaultHome] for the user's home directory, else the name derived
// from the path.
func DefaultHomeName(dir string) string {
	if h, err := os.UserHomeDir(); err == nil && h != "" && filepath.Clean(h) == filepath.Clean(dir) {
		return DefaultHome
	}
	return HomeNameFor(dir)
}

// legacyHomeName is the home of a snapshot written before homes existed:
// derived from its path, and [DefaultHome] for a path whose last element is
// the name of the user who took it, or /root.
func legacyHomeName(cfg *SnapshotConfig) string {
	p := filepath.Clean(cfg.Path)
	if p == "/root" || cfg.User != "" && filepath.Base(p) == cfg.User {
		return DefaultHome
	}
	return HomeNameFor(p)
}

// HomeID identifies a home in signed manifests without naming it: the
// first 16 bytes of keyed BLAKE3 of the name. It is a comparable value.
type HomeID [16]byte

// String returns the ID as 32 hexadecimal digits.
func (h HomeID) String() string { return hex.EncodeToString(h[:]) }

// IsZero reports whether h is the zero ID, which stands for snapshots
// written before homes existed.
func (h HomeID) IsZero() bool { return h == HomeID{} }

// ParseHomeID parses 32 hexadecimal digits.
func ParseHomeID(s string) (HomeID, error) {
	var h HomeID
	if len(s) != 2*len(h) {
		return h, fmt.Errorf("parse home id %q: want 32 hex digits: %w", s, ErrFormat)
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil || strings.ToLower(s) != s {
		return h, fmt.Errorf("parse home id %q: want 32 lowercase hex digits: %w", s, ErrFormat)
	}
	return h, nil
}

// MarshalText implements encoding.TextMarshaler.
func (h HomeID) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (h *HomeID) UnmarshalText(b []byte) error {
	v, err := ParseHomeID(string(b))
	*h = v
	return err
}

// HomeID returns the ID of the home called name in this store.
func (k *Keys) HomeID(name string) HomeID {
	key := make([]byte, 32)
	r := hkdf.New(sha256.New, k.secrets.storeMaster(), []byte(k.storeID), []byte("dvpc v1 home id"))
	if _, err := io.ReadFull(r, key); err != nil {
		panic(err) // hkdf cannot fail for 32 bytes
	}
	h, err := blake3.NewKeyed(key)
	if err != nil {
		panic(err) // the key length is fixed
	}
	h.Write([]byte(name))
	var sum [32]byte
	h.Sum(sum[:0])
	var id HomeID
	copy(id[:], sum[:])
	return id
}

// Signed is what a snapshot's signed manifest says of its place in the
// history; it is readable without the key, so pull orders and checks
// snapshots with it alone.
type Signed struct {
	Manifest Digest   `json:"manifest"`
	Seq      uint64   `json:"seq"`
	Home     HomeID   `json:"home"`              // zero: written before homes existed
	Parents  []Digest `json:"parents,omitempty"` // sorted
}

// Ref returns the tag the snapshot is named by: snap-<seq>-<12 hex>.
func (s Signed) Ref() string { return SnapshotRef(s.Seq, s.Manifest) }

// ParseSigned reads the ordering annotations of a snapshot manifest whose
// signature the caller has verified.
func ParseSigned(md Digest, m *v1.Manifest) (Signed, error) {
	s := Signed{Manifest: md}
	if m.ArtifactType != SnapshotArtifactType {
		return s, fmt.Errorf("manifest %s is not a dvpc snapshot: %w", md.Short(), ErrFormat)
	}
	seq, err := strconv.ParseUint(m.Annotations[AnnotationSeq], 10, 64)
	if err != nil || strconv.FormatUint(seq, 10) != m.Annotations[AnnotationSeq] {
		return s, fmt.Errorf("manifest %s: sequence %q: %w", md.Short(), m.Annotations[AnnotationSeq], ErrFormat)
	}
	s.Seq = seq
	if h, ok := m.Annotations[AnnotationHome]; ok {
		if s.Home, err = ParseHomeID(h); err != nil {
			return s, fmt.Errorf("manifest %s: %w", md.Short(), err)
		}
		if s.Home.IsZero() {
			return s, fmt.Errorf("manifest %s: zero home id: %w", md.Short(), ErrFormat)
		}
	}
	if ps, ok := m.Annotations[AnnotationParents]; ok {
		if s.Parents, err = parseParents(ps); err != nil {
			return s, fmt.Errorf("manifest %s: %w", md.Short(), err)
		}
	}
	return s, nil
}

// parseParents parses the comma-separated, sorted, distinct manifest
// digests of dev.dvpc.parents.
func parseParents(s string) ([]Digest, error) {
	if s == "" {
		return nil, nil
	}
	var out []Digest
	for _, p := range strings.Split(s, ",") {
		d, err := ParseDigest(p)
		if err != nil {
			return nil, fmt.Errorf("parents: %w: %w", ErrFormat, err)
		}
		if d.String() != p {
			return nil, fmt.Errorf("parents: %q is not in lowercase: %w", p, ErrFormat)
		}
		if len(out) > 0 && slices.Compare(out[len(out)-1][:], d[:]) >= 0 {
			return nil, fmt.Errorf("parents %q: not sorted and distinct: %w", s, ErrFormat)
		}
		out = append(out, d)
	}
	return out, nil
}

// formatParents is the inverse of parseParents.
func formatParents(ps []Digest) string {
	ps = sortedParents(ps)
	ss := make([]string, len(ps))
	for i, p := range ps {
		ss[i] = p.String()
	}
	return strings.Join(ss, ",")
}

func sortedParents(ps []Digest) []Digest {
	ps = slices.Clone(ps)
	slices.SortFunc(ps, func(a, b Digest) int { return slices.Compare(a[:], b[:]) })
	return slices.Compact(ps)
}

// Lineage is a set of snapshots with their parents, by manifest digest:
// the graph that heads, ancestry and rollback are decided on
// (docs/design.md §2).
type Lineage map[Digest]Signed

// Add puts s into the graph.
func (l Lineage) Add(s Signed) { l[s.Manifest] = s }

// IsAncestor reports whether a is reachable from d through parents (a != d).
// Sequence numbers grow along parents, so the walk stops below seq(a).
func (l Lineage) IsAncestor(a Signed, d Digest) bool {
	seen := map[Digest]bool{}
	stack := []Digest{d}
	for len(stack) > 0 {
		cur := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		s, ok := l[cur]
		if !ok {
			continue
		}
		for _, p := range s.Parents {
			if p == a.Manifest {
				return true
			}
			if seen[p] {
				continue
			}
			seen[p] = true
			if ps, ok := l[p]; ok && ps.Seq > a.Seq {
				stack = append(stack, p)
			}
		}
	}
	return false
}

// Heads returns the snapshots of a home among members that no member names
// as an ancestor (through the whole graph), oldest first by seq.
func (l Lineage) Heads(home HomeID, members []Digest) []Signed {
	anc := map[Digest]bool{}
	var stack []Digest
	for _, m := range members {
		stack = append(stack, l[m].Parents...)
	}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if anc[p] {
			continue
		}
		anc[p] = true
		stack = append(stack, l[p].Parents...)
	}
	var heads []Signed
	for _, m := range members {
		if s, ok := l[m]; ok && s.Home == home && !anc[m] {
			heads = append(heads, s)
		}
	}
	sortSigned(heads)
	return slices.CompactFunc(heads, func(a, b Signed) bool { return a.Manifest == b.Manifest })
}

func sortSigned(ss []Signed) {
	slices.SortFunc(ss, func(a, b Signed) int {
		if a.Seq != b.Seq {
			return cmpU64(a.Seq, b.Seq)
		}
		return slices.Compare(a.Manifest[:], b.Manifest[:])
	})
}

// Relation is how an offered snapshot stands to the heads of its home.
type Relation int

const (
	// Known: equal to a head, or an ancestor of one: accepting it as newer
	// would be a rollback.
	Known Relation = iota
	// Descendant: it descends from a head, which may move to it.
	Descendant
	// Diverged: neither; the home gets another head.
	Diverged
)

// Relate says how s stands to heads, the verified heads of its home, in l.
func (l Lineage) Relate(s Signed, heads []Signed) Relation {
	rel := Diverged
	for _, h := range heads {
		if h.Manifest == s.Manifest || l.IsAncestor(s, h.Manifest) {
			return Known
		}
		if s.Seq > h.Seq && l.IsAncestor(h, s.Manifest) {
			rel = Descendant
		}
	}
	return rel
}
