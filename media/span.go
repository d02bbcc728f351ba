package media

import (
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/dvpc/dvpc/image"
)

// Disc capacities in bytes (single-layer DVD±R, dual-layer, Blu-ray).
var Capacities = map[string]int64{
	"dvd":    4_700_372_992,
	"dvd-dl": 8_543_666_176,
	"bd":     25_025_314_816,
	"bd-dl":  50_050_629_632,
}

// ParseCapacity reads "dvd", "dvd-dl", "bd", "bd-dl" or a size such as
// "700M", "4.7G", "100MiB" or a byte count.
func ParseCapacity(s string) (int64, error) {
	if c, ok := Capacities[strings.ToLower(s)]; ok {
		return c, nil
	}
	n, err := ParseSize(s)
	if err != nil {
		return 0, fmt.Errorf("capacity %q: want dvd, dvd-dl, bd, bd-dl or a size such as 700M: %w", s, err)
	}
	return n, nil
}

// ParseSize reads a byte count with an optional K, M, G, T suffix (powers of
// 1024; "KB"/"MB"/"GB" are powers of 1000).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(strings.ToUpper(s))
	mult := 1.0
	units := []struct {
		suffix string
		m      float64
	}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"TIB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"B", 1}}
	for _, u := range units {
		if rest, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(rest), u.m
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f <= 0 || f*mult > 1<<50 {
		return 0, fmt.Errorf("size %q is not a positive size", s)
	}
	return int64(f * mult), nil
}

// SetFile names, on every disc of a spanned set, the listing of the set.
const SetFile = "dvpc-set.json"

// SetListing says which disc holds each pack of a spanned set.
type SetListing struct {
	Label string         `json:"label"`
	Discs int            `json:"discs"`
	Disc  int            `json:"disc"`
	Packs map[string]int `json:"packs"` // blob digest → disc number
}

// DiscLabel names disc n of a set.
func DiscLabel(label string, n int) string { return fmt.Sprintf("%s_%d", label, n) }

// isoOverhead is what ISO 9660 structures may take beyond the files: system
// area, descriptors, path tables and directory records, Joliet's twin, and
// per-file sector padding.
func isoOverhead(entries []Entry) int64 {
	return 1<<20 + int64(len(entries))*(2*2048+512)
}

// ErrTooLarge means the content does not fit the medium.
type ErrTooLarge struct {
	Need, Capacity int64
	Hint           string
}

func (e *ErrTooLarge) Error() string {
	return fmt.Sprintf("the content needs about %s but the medium holds %s; %s",
		HumanBytes(e.Need), HumanBytes(e.Capacity), e.Hint)
}

// ISOSet returns the discs for the plan: one when everything fits, else,
// with span, a numbered set in which every pack is on exactly one disc and
// every disc carries the manifests, indexes, keys and pages. Without span a
// plan that does not fit is an *ErrTooLarge.
func (p *Plan) ISOSet(capacity int64, span bool) ([]Content, error) {
	one, err := p.ISOContent()
	if err != nil {
		return nil, err
	}
	need := one.Size() + isoOverhead(one.Entries)
	if need <= capacity {
		return []Content{one}, nil
	}
	if !span {
		return nil, &ErrTooLarge{Need: need, Capacity: capacity,
			Hint: "add --span to write a numbered set of discs, or --snapshots latest to carry only the newest snapshot"}
	}
	var small, packs []Entry
	for _, e := range p.Store {
		if e.MediaType == image.PackType {
			packs = append(packs, e)
		} else {
			small = append(small, e)
		}
	}
	// Largest first fills discs evenly; ties by path keep it reproducible.
	slices.SortFunc(packs, func(a, b Entry) int {
		if a.Size != b.Size {
			return int(b.Size - a.Size)
		}
		return strings.Compare(a.Path, b.Path)
	})
	var discs [][]Entry
	var used []int64
	fixed := func(n int) int64 {
		var s int64
		for _, e := range small {
			s += e.Size
		}
		if n == 0 {
			for _, c := range p.Clients {
				s += c.Size
			}
		}
		return s + 64<<10 + int64(len(packs))*80 // pages and the set listing
	}
	for _, pk := range packs {
		placed := false
		for i := range discs {
			all := append(append([]Entry{}, small...), discs[i]...)
			if used[i]+pk.Size+fixed(i)+isoOverhead(append(all, pk)) <= capacity {
				discs[i] = append(discs[i], pk)
				used[i] += pk.Size
				placed = true
				break
			}
		}
		if placed {
			continue
		}
		n := len(discs)
		if pk.Size+fixed(n)+isoOverhead(append(append([]Entry{}, small...), pk)) > capacity {
			return nil, &ErrTooLarge{Need: pk.Size + fixed(n), Capacity: capacity,
				Hint: "a single disc cannot hold even one pack with the store's metadata; choose a larger --capacity"}
		}
		discs = append(discs, []Entry{pk})
		used = append(used, pk.Size)
	}
	if len(discs) > maxSetDiscs {
		return nil, fmt.Errorf("the store needs %d discs of this capacity, and a set holds at most %d; choose a larger --capacity", len(discs), maxSetDiscs)
	}
	listing := SetListing{Label: p.Label, Discs: len(discs), Packs: map[string]int{}}
	for i, d := range discs {
		for _, e := range d {
			listing.Packs[path.Base(e.Path)] = i + 1
		}
	}
	out := make([]Content, len(discs))
	for i, d := range discs {
		l := listing
		l.Disc = i + 1
		lj, err := json.MarshalIndent(l, "", "  ")
		if err != nil {
			return nil, err
		}
		pg := p.Page
		pg.Disc, pg.Discs = i+1, len(discs)
		if i > 0 {
			pg.Clients = nil // they are on disc 1
		}
		pg.Label = DiscLabel(p.Label, i+1)
		pages, err := p.pages(pg)
		if err != nil {
			return nil, err
		}
		es := append(append(slices.Clone(small), d...), pages...)
		es = append(es, bytesEntry(SetFile, lj))
		if i == 0 {
			es = append(es, p.Clients...)
		}
		out[i] = Content{Label: DiscLabel(p.Label, i+1), ModTime: p.ModTime, Entries: es}
	}
	return out, nil
}
