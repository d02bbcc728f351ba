package image

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func testDigest(name string) Digest { return DigestOf([]byte(name)) }

// TestLineage: heads, ancestry and how an offered snapshot relates to the
// heads, on a graph with a fork: a ← b ← c, and a ← d.
func TestLineage(t *testing.T) {
	home := HomeID{1}
	sg := func(name string, seq uint64, parents ...string) Signed {
		s := Signed{Manifest: testDigest(name), Seq: seq, Home: home}
		for _, p := range parents {
			s.Parents = append(s.Parents, testDigest(p))
		}
		s.Parents = sortedParents(s.Parents)
		return s
	}
	a, b, c, d := sg("a", 1), sg("b", 2, "a"), sg("c", 3, "b"), sg("d", 2, "a")
	l := Lineage{}
	for _, s := range []Signed{a, b, c, d} {
		l.Add(s)
	}
	all := []Digest{a.Manifest, b.Manifest, c.Manifest, d.Manifest}
	heads := l.Heads(home, all)
	if len(heads) != 2 || heads[0].Manifest != d.Manifest || heads[1].Manifest != c.Manifest {
		t.Fatalf("heads %v, want d then c", heads)
	}
	if got := l.Heads(HomeID{2}, all); len(got) != 0 {
		t.Errorf("another home has heads %v", got)
	}
	if !l.IsAncestor(a, c.Manifest) || l.IsAncestor(d, c.Manifest) || l.IsAncestor(c, a.Manifest) {
		t.Error("ancestry is wrong")
	}
	e := sg("e", 4, "c")
	f := sg("f", 9, "d")
	m := sg("m", 5, "c", "f") // a merge
	l.Add(e)
	l.Add(f)
	l.Add(m)
	for _, tc := range []struct {
		s     Signed
		heads []Signed
		want  Relation
	}{
		{a, []Signed{c}, Known},      // an ancestor: a rollback if taken as newer
		{c, []Signed{c}, Known},      // the head itself
		{e, []Signed{c}, Descendant}, // a child
		{d, []Signed{c}, Diverged},   // a fork
		{f, []Signed{c}, Diverged},   // a higher seq does not make a descendant
		{m, []Signed{c, d}, Descendant},
		{b, []Signed{d, c}, Known},
	} {
		if got := l.Relate(tc.s, tc.heads); got != tc.want {
			t.Errorf("relate %x to %v: %v, want %v", tc.s.Manifest[:2], tc.heads, got, tc.want)
		}
	}
	if got := l.Heads(home, []Digest{a.Manifest, c.Manifest, d.Manifest, m.Manifest, f.Manifest}); len(got) != 1 || got[0].Manifest != m.Manifest {
		t.Errorf("after the merge the heads are %v, want m alone", got)
	}
}

// TestState: recording a chain keeps one head; a fork two; forgetting
// keeps the high-water mark and is not counted missing; a lost head is.
func TestState(t *testing.T) {
	home := HomeID{7}
	a := Signed{Manifest: testDigest("a"), Seq: 1, Home: home}
	b := Signed{Manifest: testDigest("b"), Seq: 2, Home: home, Parents: []Digest{a.Manifest}}
	c := Signed{Manifest: testDigest("c"), Seq: 2, Home: home, Parents: []Digest{a.Manifest}}
	st := newState()
	st.Record(a, nil)
	st.Record(b, nil)
	if hs := st.Heads[home]; len(hs) != 1 || hs[0].Manifest != b.Manifest || st.HighSeq != 2 {
		t.Fatalf("after a, b: heads %v, high %d", hs, st.HighSeq)
	}
	st.Record(a, Lineage{a.Manifest: a, b.Manifest: b}) // an old snapshot seen again
	st.Record(c, nil)
	if hs := st.Heads[home]; len(hs) != 2 {
		t.Fatalf("a fork should give two heads: %v", hs)
	}
	present := map[Digest]bool{a.Manifest: true, b.Manifest: true}
	if m := st.Missing(present); len(m) != 1 || m[0].Manifest != c.Manifest {
		t.Fatalf("missing %v, want c", m)
	}
	st.Forget(c)
	if m := st.Missing(present); len(m) != 0 || !st.IsForgotten(c.Manifest) || st.HighSeq != 2 {
		t.Fatalf("after forgetting c: missing %v, high %d", m, st.HighSeq)
	}
	st.Record(c, nil)
	if slices.ContainsFunc(st.Heads[home], func(h StateHead) bool { return h.Manifest == c.Manifest }) {
		t.Fatal("a forgotten snapshot came back as a head")
	}
	st.Unforget(c.Manifest)
	st.Record(c, nil)
	if !slices.ContainsFunc(st.Heads[home], func(h StateHead) bool { return h.Manifest == c.Manifest }) {
		t.Fatal("a snapshot asked for again is no head")
	}
}

// TestSnapshotHomes: snapshots carry their home and parents in the signed
// manifest; each home has its own head; the next seq is above the one of a
// forgotten newest snapshot; the trust state survives index.json going
// back, and prune refuses then.
func TestSnapshotHomes(t *testing.T) {
	ctx := context.Background()
	r, lay := newTestRepo(t)
	root := t.TempDir()
	docs := filepath.Join(root, "My Docs")
	music := filepath.Join(root, "Music")
	writeFile(t, filepath.Join(docs, "todo.md"), []byte("one\n"))
	writeFile(t, filepath.Join(music, "song"), []byte("la\n"))

	d1, _ := mustSnapshot(t, r, docs, SnapshotOptions{})
	m1, _ := mustSnapshot(t, r, music, SnapshotOptions{})
	writeFile(t, filepath.Join(docs, "todo.md"), []byte("two\n"))
	d2, _ := mustSnapshot(t, r, docs, SnapshotOptions{NoParent: true})
	named, _ := mustSnapshot(t, r, music, SnapshotOptions{Home: "tunes"})
	if _, _, err := r.Snapshot(ctx, music, SnapshotOptions{Home: "no/slash"}); err == nil {
		t.Error("a home name with a slash was accepted")
	}
	if d1.Home != "My-Docs" || m1.Home != "Music" || named.Home != "tunes" {
		t.Fatalf("homes %q %q %q", d1.Home, m1.Home, named.Home)
	}
	if !slices.Equal(d2.Parents, []Digest{d1.Manifest}) || len(m1.Parents) != 0 || len(named.Parents) != 0 {
		t.Fatalf("parents: d2 %v (want d1), m1 %v, named %v", d2.Parents, m1.Parents, named.Parents)
	}
	if d2.Config.Seq != 3 || named.Config.Seq != 4 {
		t.Fatalf("seqs %d %d, want 3 4", d2.Config.Seq, named.Config.Seq)
	}
	var m v1.Manifest
	raw := d2.RawManifest()
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m.Annotations[AnnotationHome] != r.keys.HomeID("My-Docs").String() || m.Annotations[AnnotationParents] != d1.Manifest.String() {
		t.Fatalf("annotations %v", m.Annotations)
	}
	if strings.Contains(string(raw), "My-Docs") {
		t.Fatal("the manifest names the home in the clear")
	}

	r2 := reopen(t, lay)
	hist, probs, err := r2.History(ctx)
	if err != nil || len(probs) > 0 {
		t.Fatal(err, probs)
	}
	if got := hist.Homes(); !slices.Equal(got, []string{"Music", "My-Docs", "tunes"}) {
		t.Fatalf("homes %v", got)
	}
	if l, _, err := hist.Latest("My-Docs"); err != nil || l.Manifest != d2.Manifest {
		t.Fatalf("latest of My-Docs: %v %v", l, err)
	}
	if h, err := hist.Choose("", filepath.Join(docs, "x")); err != nil || h != "My-Docs" {
		t.Fatalf("the home of a path in My Docs: %q %v", h, err)
	}
	// Two homes of one directory: the one snapshotted last.
	if h, err := hist.Choose("", music); err != nil || h != "tunes" {
		t.Fatalf("the home of the Music directory: %q %v", h, err)
	}
	if _, err := hist.Choose("", "/elsewhere"); err == nil {
		t.Fatal("several homes and none named or containing the path should be ambiguous")
	}
	for _, tc := range []struct{ p, cwd, want string }{
		{"todo.md", docs, "todo.md"},
		{"todo.md", filepath.Join(docs, "sub"), "sub/todo.md"},
		{"../todo.md", filepath.Join(docs, "sub"), "todo.md"},
		{"sub/todo.md", "/elsewhere", "sub/todo.md"},
		{filepath.Join(docs, "a", "b"), "/elsewhere", "a/b"},
		{"../x", docs, "!"},
	} {
		rel, err := hist.Rel("My-Docs", tc.p, tc.cwd)
		if tc.want == "!" && err == nil || tc.want != "!" && (err != nil || rel != tc.want) {
			t.Errorf("rel %q in %q: %q %v, want %q", tc.p, tc.cwd, rel, err, tc.want)
		}
	}

	// Forget the newest of My-Docs: the next one is above it, on d1.
	old, err := os.ReadFile(filepath.Join(lay.Root(), "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.Forget(ctx, []*Snapshot{d2, named}); err != nil {
		t.Fatal(err)
	}
	d3, _ := mustSnapshot(t, r2, docs, SnapshotOptions{})
	if d3.Config.Seq != 5 || !slices.Equal(d3.Parents, []Digest{d1.Manifest}) {
		t.Fatalf("after forgetting the newest: seq %d parents %v; want 5 on d1", d3.Config.Seq, d3.Parents)
	}

	// index.json goes back to before d3 (with d2 and named, now forgotten):
	// prune refuses, naming d3 alone.
	if err := os.WriteFile(filepath.Join(lay.Root(), "index.json"), old, 0o600); err != nil {
		t.Fatal(err)
	}
	n := len(blobSet(t, lay))
	_, err = Prune(ctx, lay, false)
	var mh *MissingHeadsError
	if !errors.As(err, &mh) || len(mh.Heads) != 1 || mh.Heads[0].Manifest != d3.Manifest {
		t.Fatalf("prune after index.json went back: %v", err)
	}
	if len(blobSet(t, lay)) != n {
		t.Fatal("the refused prune deleted blobs")
	}
	// A snapshot taken now still counts above everything seen.
	d4, _ := mustSnapshot(t, reopen(t, lay), docs, SnapshotOptions{})
	if d4.Config.Seq != 6 {
		t.Fatalf("seq after index.json went back: %d, want 6", d4.Config.Seq)
	}
}

// TestSnapshotMergeParents: a home with two heads b and c (both on a) and a
// merge m of them: m records both parents in the config and the signed
// manifest, its seq is above both, and the home has one head again, in the
// history and in the trust state.
func TestSnapshotMergeParents(t *testing.T) {
	ctx := context.Background()
	r, lay := newTestRepo(t)
	dir := filepath.Join(t.TempDir(), "docs")
	writeFile(t, filepath.Join(dir, "f"), []byte("a\n"))
	a, _ := mustSnapshot(t, r, dir, SnapshotOptions{})
	writeFile(t, filepath.Join(dir, "f"), []byte("b\n"))
	b, _ := mustSnapshot(t, r, dir, SnapshotOptions{Parent: a})
	writeFile(t, filepath.Join(dir, "f"), []byte("c\n"))
	c, _ := mustSnapshot(t, r, dir, SnapshotOptions{Parent: a})
	hist, _, err := r.History(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if heads := hist.Heads("docs"); len(heads) != 2 {
		t.Fatalf("before the merge: %d heads, want 2", len(heads))
	}
	other := filepath.Join(t.TempDir(), "other")
	writeFile(t, filepath.Join(other, "g"), []byte("g\n"))
	o, _ := mustSnapshot(t, r, other, SnapshotOptions{})
	if _, _, err := r.Snapshot(ctx, dir, SnapshotOptions{Parent: b, Parents: []*Snapshot{o}}); err == nil {
		t.Fatal("a merge parent of another home was accepted")
	}

	m, _ := mustSnapshot(t, r, dir, SnapshotOptions{Parent: b, Parents: []*Snapshot{c, b}})
	want := sortedParents([]Digest{b.Manifest, c.Manifest})
	if !slices.Equal(m.Parents, want) || !slices.Equal(m.Config.Parents, want) {
		t.Fatalf("merge parents %v, config %v; want %v", m.Parents, m.Config.Parents, want)
	}
	if m.Config.Seq <= max(b.Config.Seq, c.Config.Seq, o.Config.Seq) {
		t.Fatalf("merge seq %d is not above its parents' %d %d", m.Config.Seq, b.Config.Seq, c.Config.Seq)
	}
	var man v1.Manifest
	if err := json.Unmarshal(m.RawManifest(), &man); err != nil {
		t.Fatal(err)
	}
	if got := man.Annotations[AnnotationParents]; got != formatParents(want) {
		t.Fatalf("signed parents %q, want %q", got, formatParents(want))
	}

	r2 := reopen(t, lay)
	hist, probs, err := r2.History(ctx)
	if err != nil || len(probs) > 0 {
		t.Fatal(err, probs)
	}
	heads := hist.Heads("docs")
	if len(heads) != 1 || heads[0].Manifest != m.Manifest {
		t.Fatalf("after the merge: heads %v, want only %s", heads, m.ID)
	}
	if !slices.Equal(hist.Snapshots()[len(hist.Snapshots())-1].Parents, want) {
		t.Fatal("the reloaded merge lost a parent")
	}
	lin := hist.Lineage()
	for _, p := range []*Snapshot{a, b, c} {
		if !lin.IsAncestor(p.Signed(), m.Manifest) {
			t.Errorf("%s is not an ancestor of the merge", p.ID)
		}
	}
	st, err := lay.LoadState()
	if err != nil {
		t.Fatal(err)
	}
	if hs := st.Heads[m.HomeID]; len(hs) != 1 || hs[0].Manifest != m.Manifest {
		t.Fatalf("trust state heads %v, want only the merge", hs)
	}
	// The next plain snapshot continues from the merge alone.
	n, _ := mustSnapshot(t, r2, dir, SnapshotOptions{})
	if !slices.Equal(n.Parents, []Digest{m.Manifest}) {
		t.Fatalf("the snapshot after the merge has parents %v", n.Parents)
	}
}

// FuzzParseSigned: the ordering annotations of a manifest never panic,
// and what parses formats back to the same text.
func FuzzParseSigned(f *testing.F) {
	d1, d2 := testDigest("1"), testDigest("2")
	ps := sortedParents([]Digest{d1, d2})
	f.Add("7", HomeID{1}.String(), ps[0].String()+","+ps[1].String())
	f.Add("0", "", "")
	f.Add("01", "zz", "sha256:00")
	f.Add("18446744073709551615", strings.Repeat("0", 32), ps[1].String()+","+ps[0].String())
	f.Fuzz(func(t *testing.T, seq, home, parents string) {
		m := &v1.Manifest{ArtifactType: SnapshotArtifactType, Annotations: map[string]string{AnnotationSeq: seq}}
		if home != "" {
			m.Annotations[AnnotationHome] = home
		}
		if parents != "" {
			m.Annotations[AnnotationParents] = parents
		}
		s, err := ParseSigned(d1, m)
		if err != nil {
			return
		}
		if got := formatParents(s.Parents); got != parents {
			t.Fatalf("parents %q formatted back as %q", parents, got)
		}
		if home != "" && s.Home.String() != home {
			t.Fatalf("home %q formatted back as %q", home, s.Home)
		}
		if s.Ref() != SnapshotRef(s.Seq, d1) || !strings.HasPrefix(s.Ref(), "snap-") {
			t.Fatalf("ref %q", s.Ref())
		}
	})
}
