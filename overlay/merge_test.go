package overlay

import (
	"context"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dvpc/dvpc/image"
)

// An edit or an expected entry: a path and what it holds. "" is nothing
// (an edit deletes it), "/" a directory, "->T" a symlink to T, "x:C" an
// executable file holding C, anything else a file holding it.
type entrySpec [2]string

// writeSpecs applies edits to dir in order.
func writeSpecs(t *testing.T, dir string, edits []entrySpec) {
	t.Helper()
	for _, e := range edits {
		p := filepath.Join(dir, filepath.FromSlash(e[0]))
		spec := e[1]
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if spec == "/" {
			if fi, err := os.Lstat(p); err == nil && !fi.IsDir() {
				os.Remove(p)
			}
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case spec == "":
		case strings.HasPrefix(spec, "->"):
			err = os.Symlink(spec[2:], p)
		case strings.HasPrefix(spec, "x:"):
			if err = os.WriteFile(p, []byte(spec[2:]), 0o755); err == nil {
				err = os.Chmod(p, 0o755)
			}
		default:
			err = os.WriteFile(p, []byte(spec), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// readSpecs returns what dir holds, in the form of entrySpec.
func readSpecs(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			out[rel] = "/"
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "->" + target
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = string(b)
			if fi.Mode().Perm()&0o111 != 0 {
				out[rel] = "x:" + string(b)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// expand turns {A} and {B} in the expected paths into the conflict tags of
// the snapshots of side A and side B.
func expand(want map[string]string, tags map[string]*image.Snapshot) map[string]string {
	out := map[string]string{}
	for p, v := range want {
		for side, s := range tags {
			tag := strings.TrimPrefix(ConflictName("x", s.Config.Host, s.Config.Time), "x") // .conflict-HOST-TIME
			p = strings.ReplaceAll(p, "{"+side+"}", tag)
		}
		out[p] = v
	}
	return out
}

func diffSpecs(want, got map[string]string) string {
	var b strings.Builder
	for _, p := range slices.Sorted(maps.Keys(want)) {
		if g, ok := got[p]; !ok {
			b.WriteString("  missing " + p + " (want " + want[p] + ")\n")
		} else if g != want[p] {
			b.WriteString("  " + p + ": " + g + ", want " + want[p] + "\n")
		}
	}
	for _, p := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[p]; !ok {
			b.WriteString("  unexpected " + p + " (" + got[p] + ")\n")
		}
	}
	return b.String()
}

// TestMergeRules: two PCs start from one snapshot, each edits its copy and
// snapshots it; then each side's changes are merged into the other's
// directory (both orders). Every rule of the merge, and after each merge a
// snapshot on both sides has both as parents; the first is the home's only
// head.
func TestMergeRules(t *testing.T) {
	cases := []struct {
		name         string
		base, ea, eb []entrySpec
		intoA, intoB map[string]string // A merged with B's changes; B with A's
	}{
		{
			name: "one side only",
			base: []entrySpec{{"a.txt", "1"}, {"b.txt", "1"}, {"d.txt", "1"}, {"sub/e.txt", "1"}},
			ea:   []entrySpec{{"a.txt", "A"}, {"sub/f.txt", "F"}},
			eb:   []entrySpec{{"b.txt", "B"}, {"d.txt", ""}, {"new.txt", "N"}, {"newdir/x", "X"}, {"newdir/y/z", "Z"}, {"sub/e.txt", ""}},
			intoA: map[string]string{"a.txt": "A", "b.txt": "B", "new.txt": "N", "newdir": "/", "newdir/x": "X",
				"newdir/y": "/", "newdir/y/z": "Z", "sub": "/", "sub/f.txt": "F"},
			intoB: map[string]string{"a.txt": "A", "b.txt": "B", "new.txt": "N", "newdir": "/", "newdir/x": "X",
				"newdir/y": "/", "newdir/y/z": "Z", "sub": "/", "sub/f.txt": "F"},
		},
		{
			name:  "both changed",
			base:  []entrySpec{{"f.txt", "0"}, {"g", "0"}},
			ea:    []entrySpec{{"f.txt", "AA"}, {"g", "A"}},
			eb:    []entrySpec{{"f.txt", "BBB"}, {"g", "x:0"}},
			intoA: map[string]string{"f.txt": "AA", "f{B}.txt": "BBB", "g": "A", "g{B}": "x:0"},
			intoB: map[string]string{"f.txt": "BBB", "f{A}.txt": "AA", "g": "x:0", "g{A}": "A"},
		},
		{
			name:  "both made the same change",
			base:  []entrySpec{{"f", "0"}, {"gone", "0"}},
			ea:    []entrySpec{{"f", "S"}, {"g", "G"}, {"gone", ""}},
			eb:    []entrySpec{{"f", "S"}, {"g", "G"}, {"gone", ""}},
			intoA: map[string]string{"f": "S", "g": "G"},
			intoB: map[string]string{"f": "S", "g": "G"},
		},
		{
			name:  "deleted on one side, changed on the other",
			base:  []entrySpec{{"f.txt", "0"}, {"l", "->a"}},
			ea:    []entrySpec{{"f.txt", ""}, {"l", "->b"}},
			eb:    []entrySpec{{"f.txt", "B"}, {"l", ""}},
			intoA: map[string]string{"f.txt": "B", "l": "->b"},
			intoB: map[string]string{"f.txt": "B", "l": "->b"},
		},
		{
			name: "names of conflict copies",
			base: []entrySpec{{".bashrc", "0"}, {"Makefile", "0"}, {"a.tar.gz", "0"}, {".config.json", "0"}},
			ea:   []entrySpec{{".bashrc", "A"}, {"Makefile", "A"}, {"a.tar.gz", "A"}, {".config.json", "A"}},
			eb:   []entrySpec{{".bashrc", "B"}, {"Makefile", "B"}, {"a.tar.gz", "B"}, {".config.json", "B"}},
			intoA: map[string]string{".bashrc": "A", ".bashrc{B}": "B", "Makefile": "A", "Makefile{B}": "B",
				"a.tar.gz": "A", "a.tar{B}.gz": "B", ".config.json": "A", ".config{B}.json": "B"},
			intoB: map[string]string{".bashrc": "B", ".bashrc{A}": "A", "Makefile": "B", "Makefile{A}": "A",
				"a.tar.gz": "B", "a.tar{A}.gz": "A", ".config.json": "B", ".config{A}.json": "A"},
		},
		{
			name:  "a file on one side, a directory on the other",
			ea:    []entrySpec{{"p", "file"}},
			eb:    []entrySpec{{"p/x", "X"}},
			intoA: map[string]string{"p": "/", "p/x": "X", "p{A}": "file"},
			intoB: map[string]string{"p": "/", "p/x": "X", "p{A}": "file"},
		},
		{
			name:  "a file replaced by a directory on one side",
			base:  []entrySpec{{"p", "0"}, {"q/y", "Y"}},
			ea:    []entrySpec{{"p", ""}, {"p/x", "X"}},
			eb:    []entrySpec{{"q", ""}, {"q", "Q"}},
			intoA: map[string]string{"p": "/", "p/x": "X", "q": "Q"},
			intoB: map[string]string{"p": "/", "p/x": "X", "q": "Q"},
		},
		{
			name:  "symlinks and modes are changes",
			base:  []entrySpec{{"l", "->a"}, {"s.sh", "x"}, {"m", "->a"}},
			ea:    []entrySpec{{"m", "->c"}},
			eb:    []entrySpec{{"l", "->b"}, {"s.sh", "x:x"}, {"m", "->b"}},
			intoA: map[string]string{"l": "->b", "s.sh": "x:x", "m": "->c", "m{B}": "->b"},
			intoB: map[string]string{"l": "->b", "s.sh": "x:x", "m": "->b", "m{A}": "->c"},
		},
		{
			name:  "a directory deleted on one side, changed inside on the other",
			base:  []entrySpec{{"d/a", "1"}, {"d/b", "1"}, {"d/e/f", "1"}, {"k/a", "1"}},
			ea:    []entrySpec{{"d", ""}, {"k", ""}},
			eb:    []entrySpec{{"d/a", "B"}, {"d/e/g", "G"}},
			intoA: map[string]string{"d": "/", "d/a": "B", "d/e": "/", "d/e/g": "G"},
			intoB: map[string]string{"d": "/", "d/a": "B", "d/e": "/", "d/e/g": "G"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			r := mergeRepo(t)
			root := t.TempDir()
			dirA, dirB := filepath.Join(root, "a", "docs"), filepath.Join(root, "b", "docs")
			if err := os.MkdirAll(dirA, 0o755); err != nil {
				t.Fatal(err)
			}
			writeSpecs(t, dirA, tc.base)
			base := snapAs(t, r, dirA, "pcA")
			if err := r.Restore(ctx, base, image.RestoreOptions{Target: dirB}); err != nil {
				t.Fatal(err)
			}
			writeSpecs(t, dirA, tc.ea)
			sa := snapAs(t, r, dirA, "pcA", base)
			writeSpecs(t, dirB, tc.eb)
			sb := snapAs(t, r, dirB, "pcB", base)
			tags := map[string]*image.Snapshot{"A": sa, "B": sb}

			for i, side := range []struct {
				dir          string
				ours, theirs *image.Snapshot
				want         map[string]string
			}{{dirA, sa, sb, tc.intoA}, {dirB, sb, sa, tc.intoB}} {
				hist := history(t, r)
				anc := CommonAncestor(hist, side.ours, side.theirs)
				if anc == nil || anc.Manifest != base.Manifest {
					t.Fatalf("common ancestor %v, want the base %s", snapID(anc), base.ID)
				}
				rep, err := Merge(ctx, r, side.dir, anc, side.ours, side.theirs, MergeOptions{})
				if err != nil {
					t.Fatalf("merge into %s: %v", side.dir, err)
				}
				if d := diffSpecs(expand(side.want, tags), readSpecs(t, side.dir)); d != "" {
					t.Fatalf("merged into %s (report %+v):\n%s", side.dir, rep, d)
				}
				for _, c := range rep.Conflicts {
					if _, err := os.Lstat(filepath.Join(side.dir, c.Copy)); err != nil || c.Path == "" {
						t.Errorf("conflict %+v: the copy is not there: %v", c, err)
					}
				}
				m := snapAs(t, r, side.dir, "pc", side.ours, side.theirs)
				want := []image.Digest{side.ours.Manifest, side.theirs.Manifest}
				slices.SortFunc(want, func(a, b image.Digest) int { return slices.Compare(a[:], b[:]) })
				if !slices.Equal(m.Parents, want) {
					t.Fatalf("the merge snapshot has parents %v, want %v", m.Parents, want)
				}
				if i == 0 {
					heads := history(t, r).Heads(m.Home)
					if len(heads) != 1 || heads[0].Manifest != m.Manifest {
						t.Fatalf("after the merge the home has %d heads, want the merge alone", len(heads))
					}
				}
			}
		})
	}
}

// TestMergeReport: what the report lists for one merge of each rule.
func TestMergeReport(t *testing.T) {
	ctx := context.Background()
	r := mergeRepo(t)
	root := t.TempDir()
	dirA, dirB := filepath.Join(root, "a", "docs"), filepath.Join(root, "b", "docs")
	writeSpecs(t, dirA, []entrySpec{{"same", "0"}, {"theirs", "0"}, {"both", "0"}, {"gone", "0"}, {"kept", "0"}, {"back", "0"}})
	base := snapAs(t, r, dirA, "pcA")
	if err := r.Restore(ctx, base, image.RestoreOptions{Target: dirB}); err != nil {
		t.Fatal(err)
	}
	writeSpecs(t, dirA, []entrySpec{{"both", "A"}, {"kept", "A"}, {"back", ""}, {"p", "file"}})
	sa := snapAs(t, r, dirA, "pcA", base)
	writeSpecs(t, dirB, []entrySpec{{"theirs", "B"}, {"both", "B"}, {"gone", ""}, {"kept", ""}, {"back", "B"}, {"p/x", "X"}, {"new", "N"}})
	sb := snapAs(t, r, dirB, "pcB", base)
	rep, err := Merge(ctx, r, dirA, base, sa, sb, MergeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	copyOf := func(name string, s *image.Snapshot) string { return ConflictName(name, s.Config.Host, s.Config.Time) }
	want := MergeReport{
		Taken:   []string{"back", "new", "theirs"},
		Removed: []string{"gone"},
		Kept:    []string{"kept"},
		Conflicts: []Conflict{
			{Path: "both", Copy: copyOf("both", sb), Kind: ConflictBoth},
			{Path: "p", Copy: copyOf("p", sa), Kind: ConflictType},
		},
	}
	if !slices.Equal(rep.Taken, want.Taken) || !slices.Equal(rep.Removed, want.Removed) ||
		!slices.Equal(rep.Kept, want.Kept) || !slices.Equal(rep.Conflicts, want.Conflicts) {
		t.Fatalf("report\n%+v\nwant\n%+v", rep, want)
	}
}

func TestConflictName(t *testing.T) {
	at, err := time.Parse(time.RFC3339, "2026-12-03T14:05:09+02:00")
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("L", 251) + ".txt"
	for _, tc := range []struct{ name, host, want string }{
		{"report.txt", "pc2", "report.conflict-pc2-20261203-120509.txt"},
		{"archive.tar.gz", "pc2", "archive.tar.conflict-pc2-20261203-120509.gz"},
		{"Makefile", "pc2", "Makefile.conflict-pc2-20261203-120509"},
		{".bashrc", "pc2", ".bashrc.conflict-pc2-20261203-120509"},
		{".config.json", "pc2", ".config.conflict-pc2-20261203-120509.json"},
		{"trailing.", "pc2", "trailing..conflict-pc2-20261203-120509"},
		{"a", "my laptop/home", "a.conflict-my-laptop-home-20261203-120509"},
		{"a", "", "a.conflict-unknown-20261203-120509"},
	} {
		if got := ConflictName(tc.name, tc.host, at); got != tc.want {
			t.Errorf("ConflictName(%q, %q) = %q, want %q", tc.name, tc.host, got, tc.want)
		}
	}
	got := ConflictName(long, "pc2", at)
	if len(got) > 255 || !strings.HasSuffix(got, ".conflict-pc2-20261203-120509.txt") {
		t.Errorf("a conflict name for a 255-byte name: %q (%d bytes)", got, len(got))
	}
	if got := conflictName("f.txt", "pc2", at, 3); got != "f.conflict-pc2-20261203-120509-3.txt" {
		t.Errorf("the third conflict name: %q", got)
	}
}
