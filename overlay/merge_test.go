//go:build linux

package overlay

import (
	"context"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dvpc/dvpc/image"
	"github.com/dvpc/dvpc/internal/treecmp"
	"golang.org/x/sys/unix"
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
	writeSpecs(t, dirA, []entrySpec{{"same", "0"}, {"theirs", "0"}, {"both", "0"}, {"gone", "0"}, {"gone2", "0"}, {"kept", "0"}, {"back", "0"}})
	base := snapAs(t, r, dirA, "pcA")
	if err := r.Restore(ctx, base, image.RestoreOptions{Target: dirB}); err != nil {
		t.Fatal(err)
	}
	writeSpecs(t, dirA, []entrySpec{{"both", "A"}, {"kept", "A"}, {"back", ""}, {"p", "file"}})
	sa := snapAs(t, r, dirA, "pcA", base)
	writeSpecs(t, dirB, []entrySpec{{"theirs", "B"}, {"both", "B"}, {"gone", ""}, {"gone2", ""}, {"kept", ""}, {"back", "B"}, {"p/x", "X"}, {"new", "N"}})
	sb := snapAs(t, r, dirB, "pcB", base)
	writeSpecs(t, dirA, []entrySpec{{"gone2", "edited since"}})
	rep, err := Merge(ctx, r, dirA, base, sa, sb, MergeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	copyOf := func(name string, s *image.Snapshot) string { return ConflictName(name, s.Config.Host, s.Config.Time) }
	want := MergeReport{
		Taken:   []string{"back", "new", "theirs"},
		Removed: []string{"gone"},
		Kept:    []string{"gone2", "kept"},
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

// mergeHome builds the sample home with every awkward entry.
func mergeHome(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "home")
	out, err := exec.Command("bash", "../testdata/mkhome.sh", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("mkhome.sh: %v\n%s", err, out)
	}
	return dir
}

// restoreTo restores s into a new directory called name.
func restoreTo(t *testing.T, r *image.Repo, s *image.Snapshot, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := r.Restore(context.Background(), s, image.RestoreOptions{Target: dir}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func run(t *testing.T, dir string, script string) {
	t.Helper()
	cmd := exec.Command("bash", "-euc", script)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
}

// TestMergeFastForward: the update in place of a second login. The
// directory holds the base; the other side made changes of every kind on
// the sample home. After the merge the directory equals the other side
// exactly (types, modes, ns mtimes, xattrs, hard links), and what did not
// change was not rewritten.
func TestMergeFastForward(t *testing.T) {
	ctx := context.Background()
	r := mergeRepo(t)
	base := snapAs(t, r, mergeHome(t), "pcA")
	work := restoreTo(t, r, base, "home")
	other := restoreTo(t, r, base, "home")
	long := strings.Repeat("L", 251) + ".txt"
	run(t, other, `
		printf 'more\n' >>hardlinks/original.txt
		rm 'notes from meeting.txt'
		rm -r logs
		mkdir -p newdir/sub && printf 'new\n' >newdir/sub/a
		chmod 0600 .bashrc
		rm photos-link && ln -s docs photos-link
		printf 'changed\n' >`+long+`
		printf 'changed\n' >deep/level01/level02/level03/level04/level05/level06/level07/level08/level09/level10/level11/level12/level13/level14/level15/level16/level17/level18/level19/level20/bottom.txt
		head -c 200000 /dev/zero | tr '\0' x >src/project/main.go
		printf 'x\n' >docs/notes.md
		rm docs/report.csv && mkdir docs/report.csv && printf 'now a dir\n' >docs/report.csv/a
	`)
	theirs := snapAs(t, r, other, "pcB", base)
	unchanged := filepath.Join(work, ".config", "app", "settings.json")
	before := inode(t, unchanged)

	rep, err := Merge(ctx, r, work, base, base, theirs, MergeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	diffs, err := treecmp.Compare(other, work)
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) > 0 {
		t.Fatalf("after the fast-forward the directory differs from the other side:\n%s", treecmp.Format(diffs))
	}
	if len(rep.Conflicts) > 0 || len(rep.Kept) > 0 {
		t.Fatalf("a fast-forward reported conflicts %v, kept %v", rep.Conflicts, rep.Kept)
	}
	if inode(t, unchanged) != before {
		t.Error("an unchanged file was rewritten")
	}
	for _, p := range []string{"hardlinks/original.txt", "docs/third-name.txt", "newdir", "src/project/main.go", "docs/report.csv"} {
		if !slices.Contains(rep.Taken, p) {
			t.Errorf("%s is not reported as taken: %v", p, rep.Taken)
		}
	}
	for _, p := range []string{"notes from meeting.txt", "logs"} {
		if !slices.Contains(rep.Removed, p) {
			t.Errorf("%s is not reported as removed: %v", p, rep.Removed)
		}
	}
}

// TestMergeEditedSince: the directory was edited after ours was taken.
// Nothing edited is replaced or removed; theirs goes to conflict copies.
func TestMergeEditedSince(t *testing.T) {
	ctx := context.Background()
	r := mergeRepo(t)
	dir := filepath.Join(t.TempDir(), "a", "docs")
	big := strings.Repeat("b", 100<<10)
	writeSpecs(t, dir, []entrySpec{{"f.txt", "0"}, {"g.txt", "0"}, {"h.txt", "0000"}, {"d/x", "1"}, {"s", "0"}, {"big", big}, {"l", "->a"}})
	base := snapAs(t, r, dir, "pcA")
	other := restoreTo(t, r, base, "docs")
	writeSpecs(t, other, []entrySpec{{"f.txt", "T"}, {"g.txt", ""}, {"h.txt", "TTTT"}, {"d", ""}, {"s", ""}, {"s/y", "Y"}, {"big", "T"}, {"l", "->b"}})
	theirs := snapAs(t, r, other, "pcB", base)

	// Edits after ours (the base) was taken. h.txt keeps its size and
	// mtime: only its content tells.
	fi, err := os.Stat(filepath.Join(dir, "h.txt"))
	if err != nil {
		t.Fatal(err)
	}
	writeSpecs(t, dir, []entrySpec{{"f.txt", "local"}, {"g.txt", "local g"}, {"h.txt", "LLLL"}, {"d/x", "local x"}, {"s", "S2"}, {"big", big[1:] + "c"}, {"l", "->c"}})
	if err := os.Chtimes(filepath.Join(dir, "h.txt"), time.Time{}, fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	rep, err := Merge(ctx, r, dir, base, base, theirs, MergeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := expand(map[string]string{
		"f.txt": "local", "f{B}.txt": "T", "g.txt": "local g", "h.txt": "LLLL", "h{B}.txt": "TTTT",
		"d": "/", "d/x": "local x", "s": "S2", "s{B}": "/", "s{B}/y": "Y",
		"big": big[1:] + "c", "big{B}": "T", "l": "->c", "l{B}": "->b",
	}, map[string]*image.Snapshot{"B": theirs})
	if d := diffSpecs(want, readSpecs(t, dir)); d != "" {
		t.Fatalf("after the merge (report %+v):\n%s", rep, d)
	}
	for _, c := range rep.Conflicts {
		if c.Kind != ConflictEdited {
			t.Errorf("conflict %+v: kind %s, want %s", c, c.Kind, ConflictEdited)
		}
	}
	if len(rep.Conflicts) != 5 || !slices.Equal(rep.Kept, []string{"d/x", "g.txt"}) || len(rep.Taken)+len(rep.Removed) != 0 {
		t.Fatalf("report %+v", rep)
	}
}

// TestMergeStaysInside: a directory of ours replaced by a symlink to
// elsewhere, and a file replaced by a symlink, after ours was taken. The
// merge writes nothing through them.
func TestMergeStaysInside(t *testing.T) {
	ctx := context.Background()
	r := mergeRepo(t)
	dir := filepath.Join(t.TempDir(), "a", "docs")
	writeSpecs(t, dir, []entrySpec{{"sub/f", "0"}, {"t.txt", "0"}})
	base := snapAs(t, r, dir, "pcA")
	other := restoreTo(t, r, base, "docs")
	writeSpecs(t, other, []entrySpec{{"sub/f", "T"}, {"sub/new", "N"}, {"t.txt", "T"}})
	theirs := snapAs(t, r, other, "pcB", base)

	outside := t.TempDir()
	writeSpecs(t, outside, []entrySpec{{"f", "outside"}, {"target.txt", "outside"}})
	writeSpecs(t, dir, []entrySpec{{"sub", "->" + outside}, {"t.txt", "->" + filepath.Join(outside, "target.txt")}})
	rep, err := Merge(ctx, r, dir, base, base, theirs, MergeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d := diffSpecs(map[string]string{"f": "outside", "target.txt": "outside"}, readSpecs(t, outside)); d != "" {
		t.Fatalf("the merge wrote outside the directory:\n%s", d)
	}
	want := expand(map[string]string{
		"sub": "->" + outside, "sub{B}": "/", "sub{B}/f": "T", "sub{B}/new": "N",
		"t.txt": "->" + filepath.Join(outside, "target.txt"), "t{B}.txt": "T",
	}, map[string]*image.Snapshot{"B": theirs})
	if d := diffSpecs(want, readSpecs(t, dir)); d != "" {
		t.Fatalf("after the merge (report %+v):\n%s", rep, d)
	}
}

// TestMergeLeavesStoresAlone: a store made in the directory after ours was
// taken, where theirs has a directory of the same name, whether named in
// Protect or found.
func TestMergeLeavesStoresAlone(t *testing.T) {
	for _, named := range []bool{false, true} {
		ctx := context.Background()
		r := mergeRepo(t)
		dir := filepath.Join(t.TempDir(), "a", "docs")
		writeSpecs(t, dir, []entrySpec{{"a", "0"}})
		base := snapAs(t, r, dir, "pcA")
		other := restoreTo(t, r, base, "docs")
		writeSpecs(t, other, []entrySpec{{"a", "T"}, {"store/x", "T"}, {"store/index.json", "{}"}})
		theirs := snapAs(t, r, other, "pcB", base)

		store := filepath.Join(dir, "store")
		lay, err := image.InitLayout(store)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := image.Init(ctx, lay, []byte("other"), image.Argon2Params{Time: 1, MemoryKiB: 8 << 10, Threads: 1}); err != nil {
			t.Fatal(err)
		}
		inStore := readSpecs(t, store)
		var opts MergeOptions
		if named {
			opts.Protect = []string{store}
		}
		rep, err := Merge(ctx, r, dir, base, base, theirs, opts)
		if err != nil {
			t.Fatal(err)
		}
		if d := diffSpecs(inStore, readSpecs(t, store)); d != "" {
			t.Fatalf("the merge changed the store (named %v):\n%s", named, d)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "a")); string(b) != "T" {
			t.Fatalf("a holds %q, want theirs", b)
		}
		if !slices.Equal(rep.Conflicts, []Conflict{{Path: "store", Kind: ConflictProtected}}) {
			t.Fatalf("conflicts %+v", rep.Conflicts)
		}
	}
}

// TestMergeReadOnlyDirectories: theirs added files to read-only
// directories and made one read-only. The merge writes into them and
// leaves them as theirs has them.
func TestMergeReadOnlyDirectories(t *testing.T) {
	ctx := context.Background()
	r := mergeRepo(t)
	dir := filepath.Join(t.TempDir(), "a", "docs")
	writeSpecs(t, dir, []entrySpec{{"ro/a", "1"}, {"rw/a", "1"}})
	run(t, dir, "chmod 0555 ro")
	t.Cleanup(func() { exec.Command("chmod", "-R", "u+w", filepath.Dir(dir)).Run() })
	base := snapAs(t, r, dir, "pcA")
	other := restoreTo(t, r, base, "docs")
	t.Cleanup(func() { exec.Command("chmod", "-R", "u+w", other).Run() })
	run(t, other, "chmod u+w ro && printf N >ro/new && mkdir ro/sub && printf S >ro/sub/s && chmod 0555 ro/sub ro && printf N >rw/new && chmod 0555 rw")
	theirs := snapAs(t, r, other, "pcB", base)
	if _, err := Merge(ctx, r, dir, base, base, theirs, MergeOptions{}); err != nil {
		t.Fatal(err)
	}
	diffs, err := treecmp.Compare(other, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) > 0 {
		t.Fatalf("after the merge the directory differs from the other side:\n%s", treecmp.Format(diffs))
	}
}

// TestMergeNoBase: two sides with no common ancestor merge against an
// empty tree: what one side alone holds is taken, what both hold
// differently is kept twice.
func TestMergeNoBase(t *testing.T) {
	ctx := context.Background()
	r := mergeRepo(t)
	dirA, dirB := filepath.Join(t.TempDir(), "docs"), filepath.Join(t.TempDir(), "other") // two homes: two lineages
	writeSpecs(t, dirA, []entrySpec{{"a", "A"}, {"same", "S"}, {"both", "A"}, {"d/x", "X"}})
	writeSpecs(t, dirB, []entrySpec{{"b", "B"}, {"same", "S"}, {"both", "B"}, {"d/y", "Y"}})
	sa := snapAs(t, r, dirA, "pcA")
	sb := snapAs(t, r, dirB, "pcB")
	if anc := CommonAncestor(history(t, r), sa, sb); anc != nil {
		t.Fatalf("common ancestor %s of unrelated snapshots", anc.ID)
	}
	rep, err := Merge(ctx, r, dirA, nil, sa, sb, MergeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := expand(map[string]string{"a": "A", "b": "B", "same": "S", "both": "A", "both{B}": "B", "d": "/", "d/x": "X", "d/y": "Y"},
		map[string]*image.Snapshot{"B": sb})
	if d := diffSpecs(want, readSpecs(t, dirA)); d != "" {
		t.Fatalf("after the merge (report %+v):\n%s", rep, d)
	}
}

// FuzzConflictName: a conflict name is one file name, never the original,
// and no longer than the longest name a file system takes.
func FuzzConflictName(f *testing.F) {
	for _, s := range []string{"report.txt", ".bashrc", "a.tar.gz", "trailing.", strings.Repeat("L", 251) + ".txt", "x." + strings.Repeat("e", 250)} {
		f.Add(s, "pc2", int64(1764768000))
	}
	f.Fuzz(func(t *testing.T, name, host string, sec int64) {
		if name == "" || name == "." || name == ".." || len(name) > 255 || strings.ContainsAny(name, "/\x00") {
			return
		}
		got := ConflictName(name, host, time.Unix(sec%(1<<40), 0))
		if got == name || got == "" || got == "." || got == ".." || len(got) > 255 || strings.ContainsAny(got, "/\x00") {
			t.Fatalf("ConflictName(%q, %q) = %q", name, host, got)
		}
	})
}
