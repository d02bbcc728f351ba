package profiles

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// MergeDocs merges two profiles that grew apart from base, as a merge of
// two PCs' heads does, and returns the merged document. Each app is taken
// by name:
//
//   - on one side only: added there, it stays; removed there and unchanged
//     on the other side since base, it goes; removed on one side and
//     changed on the other, the changed entry stays;
//   - on both sides, differently: the side that changed it since base wins;
//     changed on both, the entry pinned later wins (ours on a tie).
//
// A nil document is a profile with no apps; the result is nil when ours
// and theirs are both nil.
func MergeDocs(base, ours, theirs []byte) ([]byte, error) {
	if ours == nil && theirs == nil {
		return nil, nil
	}
	var ps [3]*Profile
	for i, doc := range [][]byte{base, ours, theirs} {
		ps[i] = &Profile{Version: ProfileVersion}
		if doc == nil {
			continue
		}
		p, err := ParseProfile(doc)
		if err != nil {
			return nil, fmt.Errorf("merge profiles: %w", err)
		}
		ps[i] = p
	}
	m, err := Merge(ps[0], ps[1], ps[2])
	if err != nil {
		return nil, err
	}
	return m.Marshal()
}

// Merge merges the apps of ours and theirs, which grew apart from base, by
// the rules of [MergeDocs].
func Merge(base, ours, theirs *Profile) (*Profile, error) {
	index := func(p *Profile) map[string]*App {
		m := map[string]*App{}
		for i := range p.Apps {
			m[p.Apps[i].Name] = &p.Apps[i]
		}
		return m
	}
	b, o, t := index(base), index(ours), index(theirs)
	names := map[string]bool{}
	for n := range o {
		names[n] = true
	}
	for n := range t {
		names[n] = true
	}
	out := &Profile{Version: ProfileVersion, Apps: []App{}}
	for n := range names {
		a, err := mergeApp(b[n], o[n], t[n])
		if err != nil {
			return nil, fmt.Errorf("merge profiles: app %s: %w", n, err)
		}
		if a != nil {
			out.Apps = append(out.Apps, *a)
		}
	}
	slices.SortFunc(out.Apps, func(x, y App) int { return strings.Compare(x.Name, y.Name) })
	return out, nil
}

// mergeApp merges one app's entries; nil is absent. It returns nil when
// the app is not in the merged profile.
func mergeApp(b, o, t *App) (*App, error) {
	same := func(x, y *App) (bool, error) {
		if x == nil || y == nil {
			return x == y, nil
		}
		xb, err := json.Marshal(x)
		if err != nil {
			return false, err
		}
		yb, err := json.Marshal(y)
		if err != nil {
			return false, err
		}
		return bytes.Equal(xb, yb), nil
	}
	ot, err := same(o, t)
	if err != nil || ot {
		return o, err
	}
	bo, err := same(b, o)
	if err != nil {
		return nil, err
	}
	if bo { // changed or removed by theirs alone
		return t, nil
	}
	bt, err := same(b, t)
	if err != nil {
		return nil, err
	}
	switch {
	case bt: // changed or removed by ours alone
		return o, nil
	case o == nil: // removed by ours, changed by theirs
		return t, nil
	case t == nil: // removed by theirs, changed by ours
		return o, nil
	case t.Pinned.After(o.Pinned):
		return t, nil
	default:
		return o, nil
	}
}
