package profiles

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestMergeDocs: the apps of two PCs' profiles are merged by name against
// their common ancestor's.
func TestMergeDocs(t *testing.T) {
	app := func(name, ref string, pinned int64) App {
		a, err := NewApp(name, testResolved(), nil, nil, time.Unix(pinned, 0))
		if err != nil {
			t.Fatal(err)
		}
		a.Ref = ref
		return a
	}
	doc := func(apps ...App) []byte {
		p := &Profile{Apps: apps}
		b, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	keep, drop, edit := app("keep", "r/keep:1", 1), app("drop", "r/drop:1", 1), app("edit", "r/edit:1", 1)
	for _, c := range []struct {
		name              string
		base, ours, their []byte
		want              []string // name=ref
	}{
		{"each adds one", doc(keep), doc(keep, app("one", "r/one:1", 2)), doc(keep, app("two", "r/two:1", 3)),
			[]string{"keep=r/keep:1", "one=r/one:1", "two=r/two:1"}},
		{"removed by theirs, unchanged by ours", doc(keep, drop), doc(keep, drop), doc(keep),
			[]string{"keep=r/keep:1"}},
		{"removed by ours, unchanged by theirs", doc(keep, drop), doc(keep), doc(keep, drop),
			[]string{"keep=r/keep:1"}},
		{"removed by ours, updated by theirs", doc(edit), doc(), doc(app("edit", "r/edit:2", 5)),
			[]string{"edit=r/edit:2"}},
		{"updated by theirs alone, pinned earlier", doc(edit), doc(edit), doc(app("edit", "r/edit:0", 0)),
			[]string{"edit=r/edit:0"}},
		{"updated by ours alone", doc(edit), doc(app("edit", "r/edit:2", 5)), doc(edit),
			[]string{"edit=r/edit:2"}},
		{"updated by both, theirs newer", doc(edit), doc(app("edit", "r/edit:2", 5)), doc(app("edit", "r/edit:3", 6)),
			[]string{"edit=r/edit:3"}},
		{"updated by both, ours newer", doc(edit), doc(app("edit", "r/edit:2", 7)), doc(app("edit", "r/edit:3", 6)),
			[]string{"edit=r/edit:2"}},
		{"added by both, newer wins", nil, doc(app("x", "r/x:1", 1)), doc(app("x", "r/x:2", 2)),
			[]string{"x=r/x:2"}},
		{"no base profile", nil, doc(keep), nil, []string{"keep=r/keep:1"}},
		{"theirs has none", doc(keep), doc(keep), nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := MergeDocs(c.base, c.ours, c.their)
			if err != nil {
				t.Fatal(err)
			}
			p, err := ParseProfile(got)
			if err != nil {
				t.Fatalf("the merged profile does not parse: %v\n%s", err, got)
			}
			var apps []string
			for _, a := range p.Apps {
				apps = append(apps, a.Name+"="+a.Ref)
			}
			if strings.Join(apps, " ") != strings.Join(c.want, " ") {
				t.Errorf("merged apps %v, want %v", apps, c.want)
			}
		})
	}
	if got, err := MergeDocs(doc(keep), nil, nil); got != nil || err != nil {
		t.Errorf("no profile on either side: %s, %v", got, err)
	}
	if _, err := MergeDocs(nil, doc(keep), []byte(`{"version":99,"apps":[]}`)); !errors.Is(err, ErrProfile) {
		t.Errorf("a profile from a newer dvpc: %v", err)
	}
}

// FuzzMergeDocs: any three documents merge without a panic, and a merge
// that succeeds is a profile that parses, holding no app twice.
func FuzzMergeDocs(f *testing.F) {
	a, err := NewApp("hello", testResolved(), nil, nil, time.Unix(1, 0))
	if err != nil {
		f.Fatal(err)
	}
	p := &Profile{Apps: []App{a}}
	doc, err := p.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(nil), doc, []byte(`{"version":1,"apps":[]}`))
	f.Add(doc, doc, []byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, base, ours, theirs []byte) {
		got, err := MergeDocs(base, ours, theirs)
		if err != nil || got == nil {
			return
		}
		if _, err := ParseProfile(got); err != nil {
			t.Fatalf("the merge of parsed profiles does not parse: %v\n%s", err, got)
		}
	})
}
