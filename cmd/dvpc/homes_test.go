package main

// Homes, heads and the trust state, end to end: snapshots of several
// directories stay in their own homes on every PC, forgetting and an old
// index.json cannot lose or bring back history, and pull decides on signed
// lineage, never on tag names.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const homesPass = "homes passphrase"

// homeEntry is one snapshot as `dvpc --json log` lists it.
type homeEntry struct {
	ID      string   `json:"id"`
	Ref     string   `json:"ref"`
	Seq     uint64   `json:"seq"`
	Home    string   `json:"home"`
	Head    bool     `json:"head"`
	Parents []string `json:"parents"`
}

func homeLog(d *dvpcCLI) []homeEntry {
	d.t.Helper()
	r := d.must("--json", "log")
	var out []homeEntry
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		d.t.Fatalf("log printed no JSON list: %v\n%s", err, r)
	}
	return out
}

func entryOf(t *testing.T, es []homeEntry, id string) homeEntry {
	t.Helper()
	for _, e := range es {
		if e.ID == id {
			return e
		}
	}
	t.Fatalf("log lacks snapshot %s: %+v", id, es)
	return homeEntry{}
}

func entryIDs(es []homeEntry) []string {
	var ids []string
	for _, e := range es {
		ids = append(ids, e.ID)
	}
	return ids
}

// inDir returns a copy of d that runs in dir.
func (d *dvpcCLI) inDir(dir string) *dvpcCLI {
	c := *d
	c.dir = dir
	return &c
}

func writeText(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func countBlobs(t *testing.T, store string) int {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(store, "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestHomesOnANewPC: a snapshot of ~/Music after two of the home does not
// take the home's place. A new PC's pull brings both homes; `restore
// latest` gives the whole home and `--at` finds Documents/todo.md in it;
// `log todo.md` inside ~/Documents lists the file's versions; log groups
// snapshots by home.
func TestHomesOnANewPC(t *testing.T) {
	dir := t.TempDir()
	alice := filepath.Join(dir, "alice") // $HOME on the first PC
	writeText(t, filepath.Join(alice, "Documents", "todo.md"), "- buy milk\n")
	writeText(t, filepath.Join(alice, ".bashrc"), "export EDITOR=vi\n")
	writeText(t, filepath.Join(alice, "Music", "list.m3u"), "song.bin\n")
	randomFile(t, filepath.Join(alice, "Music", "song.bin"), 1, 200<<10)
	pc1 := newCLI(t, filepath.Join(dir, "store"), homesPass).with("HOME", alice)
	pc1.must("init", "--argon2-memory", "8")
	mirror := filepath.Join(dir, "mirror")
	pc1.must("mirror", "add", "oci:"+mirror)

	h1 := pc1.snapshot(alice)
	writeText(t, filepath.Join(alice, "Documents", "todo.md"), "- buy milk\n- call mum\n")
	h2 := pc1.snapshot(alice)
	want := filepath.Join(dir, "want")
	copyTree(t, alice, want)
	randomFile(t, filepath.Join(alice, "Music", "new.bin"), 2, 100<<10)
	music := pc1.snapshot(filepath.Join(alice, "Music"))
	pc1.must("push")

	// log groups by home: the home's two snapshots, then Music's.
	es := homeLog(pc1)
	if got := entryIDs(es); !slices.Equal(got, []string{h1, h2, music}) {
		t.Fatalf("log lists %v, want the home's %s %s then Music's %s", got, h1, h2, music)
	}
	for id, home := range map[string]string{h1: "home", h2: "home", music: "Music"} {
		if e := entryOf(t, es, id); e.Home != home {
			t.Errorf("snapshot %s is in the home %q, want %q", id, e.Home, home)
		}
	}
	if e := entryOf(t, es, h2); len(e.Parents) != 1 || !strings.Contains(e.Parents[0], h1) {
		t.Errorf("snapshot %s has parents %v, want %s", h2, e.Parents, h1)
	}
	if e := entryOf(t, es, music); len(e.Parents) != 0 || !e.Head {
		t.Errorf("the first Music snapshot has parents %v (head %v); want none, a head", e.Parents, e.Head)
	}
	r := pc1.must("log")
	iHome, iMusic := strings.Index(r.stdout, "home home ("+alice+")"), strings.Index(r.stdout, "home Music ("+filepath.Join(alice, "Music")+")")
	if iHome < 0 || iMusic < iHome || strings.Index(r.stdout, h2) > iMusic || strings.Index(r.stdout, music) < iMusic {
		t.Errorf("log does not group the snapshots by home:\n%s", r)
	}

	// A path relative to the current directory, inside the home.
	r = pc1.inDir(filepath.Join(alice, "Documents")).must("log", "todo.md")
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 3 ||
		!strings.HasPrefix(lines[1], h1) || !strings.HasPrefix(lines[2], h2) {
		t.Errorf("log todo.md in %s/Documents: want the versions of %s and %s:\n%s", alice, h1, h2, r)
	}
	// Inside ~/Music, latest is Music's.
	r = pc1.inDir(filepath.Join(alice, "Music")).must("ls", "latest")
	if !strings.Contains(r.stdout, "new.bin") || strings.Contains(r.stdout, "todo.md") {
		t.Errorf("ls latest inside ~/Music should list the Music snapshot:\n%s", r)
	}

	// A new PC: its working directory is in no home.
	pc2 := newCLI(t, filepath.Join(dir, "pc2", "store"), homesPass)
	pc2.must("pull", "oci:"+mirror)
	got := filepath.Join(t.TempDir(), "home")
	pc2.must("restore", "latest", "--to", got)
	requireSameTree(t, want, got)
	r = pc2.must("restore", "--at", "2100-01-01", "Documents/todo.md", "--stdout")
	if r.stdout != "- buy milk\n- call mum\n" {
		t.Errorf("restore --at ... Documents/todo.md printed %q:\n%s", r.stdout, r)
	}
	gotMusic := filepath.Join(t.TempDir(), "Music")
	pc2.must("restore", "latest", "--home", "Music", "--to", gotMusic)
	requireSameTree(t, filepath.Join(alice, "Music"), gotMusic)
	pc2.expect(exitNotFound, "restore", "latest", "--home", "Pictures", "--to", filepath.Join(t.TempDir(), "x"))
}

// TestForgetNewest: the newest snapshot can be forgotten (as latest); the next one's
// seq is still higher, its parent is the snapshot before, and neither a
// pull nor a pull --all brings the forgotten one back from the mirror
// that still holds it. Named, it comes back.
func TestForgetNewest(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	writeText(t, filepath.Join(home, "a.txt"), "one\n")
	cli := newCLI(t, filepath.Join(dir, "store"), homesPass)
	cli.must("init", "--argon2-memory", "8")
	mirror := filepath.Join(dir, "mirror")
	cli.must("mirror", "add", "oci:"+mirror)
	s1 := cli.snapshot(home)
	randomFile(t, filepath.Join(home, "oops.bin"), 3, 300<<10)
	s2 := cli.snapshot(home)
	cli.must("push")
	seq2 := entryOf(t, homeLog(cli), s2).Seq

	// An accidental snapshot: `forget latest` undoes it.
	r := cli.must("forget", "latest")
	if !strings.Contains(r.stdout, "remove "+s2) {
		t.Fatalf("forget latest should remove %s:\n%s", s2, r)
	}
	if got := entryIDs(homeLog(cli)); !slices.Equal(got, []string{s1}) {
		t.Fatalf("after forgetting %s the log lists %v", s2, got)
	}
	if err := os.Remove(filepath.Join(home, "oops.bin")); err != nil {
		t.Fatal(err)
	}
	s3 := cli.snapshot(home)
	es := homeLog(cli)
	e3 := entryOf(t, es, s3)
	if e3.Seq <= seq2 {
		t.Errorf("the snapshot after the forgotten one has seq %d, not above its %d", e3.Seq, seq2)
	}
	if len(e3.Parents) != 1 || !strings.Contains(e3.Parents[0], s1) {
		t.Errorf("snapshot %s has parents %v, want %s", s3, e3.Parents, s1)
	}
	for _, args := range [][]string{{"pull"}, {"pull", "--all"}} {
		cli.must(args...)
		if got := entryIDs(homeLog(cli)); !slices.Equal(got, []string{s1, s3}) {
			t.Fatalf("after %v the log lists %v; the forgotten %s came back", args, got, s2)
		}
	}
	cli.must("pull", s2)
	if got := entryIDs(homeLog(cli)); !slices.Contains(got, s2) {
		t.Fatalf("pull %s by name did not bring it back: %v", s2, got)
	}
}

// TestPruneRefusesOldIndex: an older copy of index.json (restored from a
// snapshot, copied back from a disc) makes prune refuse, naming the
// snapshot it lacks, and delete nothing.
func TestPruneRefusesOldIndex(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	writeText(t, filepath.Join(home, "a.txt"), "one\n")
	store := filepath.Join(dir, "store")
	cli := newCLI(t, store, homesPass)
	cli.must("init", "--argon2-memory", "8")
	mirror := filepath.Join(dir, "mirror")
	cli.must("mirror", "add", "oci:"+mirror)
	cli.snapshot(home)
	old, err := os.ReadFile(filepath.Join(store, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	randomFile(t, filepath.Join(home, "new.bin"), 4, 500<<10)
	s2 := cli.snapshot(home)
	ref2 := entryOf(t, homeLog(cli), s2).Ref
	cli.must("push")
	if err := os.WriteFile(filepath.Join(store, "index.json"), old, 0o600); err != nil {
		t.Fatal(err)
	}
	before := countBlobs(t, store)
	for _, args := range [][]string{{"prune", "--dry-run"}, {"prune"}, {"forget", "--keep-last", "1", "--prune"}} {
		r := cli.expect(exitIntegrity, args...)
		if !strings.Contains(r.stderr, ref2) || !strings.Contains(r.stderr, "dvpc pull") {
			t.Errorf("%v should name %s and say to run `dvpc pull`:\n%s", args, ref2, r)
		}
		if n := countBlobs(t, store); n != before {
			t.Fatalf("%v deleted %d blobs", args, before-n)
		}
	}
	// As the hint says: pull brings the lost snapshot back from the
	// mirror, and prune works again.
	cli.must("pull")
	if got := entryIDs(homeLog(cli)); !slices.Contains(got, s2) {
		t.Fatalf("pull did not bring back %s: %v", s2, got)
	}
	cli.must("prune")
	cli.requireRestores(s2, home)
}

// TestPullDiverged: two PCs snapshot the same home from one base. Pull
// keeps both heads, says the home diverged and that `dvpc sync` merges
// them; latest is the newest head, with a warning.
func TestPullDiverged(t *testing.T) {
	dir := t.TempDir()
	homeA := filepath.Join(dir, "a", "home")
	writeText(t, filepath.Join(homeA, "shared.txt"), "base\n")
	pc1 := newCLI(t, filepath.Join(dir, "a", "store"), homesPass)
	pc1.must("init", "--argon2-memory", "8")
	mirror := filepath.Join(dir, "mirror")
	pc1.must("mirror", "add", "oci:"+mirror)
	base := pc1.snapshot(homeA)
	pc1.must("push")

	pc2 := newCLI(t, filepath.Join(dir, "b", "store"), homesPass)
	pc2.must("pull", "oci:"+mirror)
	homeB := filepath.Join(dir, "b", "home")
	pc2.must("restore", base, "--to", homeB)
	writeText(t, filepath.Join(homeB, "from-b.txt"), "written on PC2\n")
	b2 := pc2.snapshot(homeB)
	pc2.must("push")

	writeText(t, filepath.Join(homeA, "from-a.txt"), "written on PC1\n")
	a2 := pc1.snapshot(homeA)
	r := pc1.must("pull")
	if !strings.Contains(r.stdout, "diverged on two PCs") || !strings.Contains(r.stdout, "dvpc sync") ||
		!strings.Contains(r.stdout, a2) || !strings.Contains(r.stdout, b2) {
		t.Errorf("pull should say the home diverged, name both heads and `dvpc sync`:\n%s", r)
	}
	es := homeLog(pc1)
	for _, id := range []string{a2, b2} {
		if e := entryOf(t, es, id); !e.Head || len(e.Parents) != 1 || !strings.Contains(e.Parents[0], base) {
			t.Errorf("snapshot %s: head %v, parents %v; want a head on %s", id, e.Head, e.Parents, base)
		}
	}
	if e := entryOf(t, es, base); e.Head {
		t.Errorf("the base %s is still a head", base)
	}
	pc1.requireRestores(b2, homeB)
	r = pc1.must("ls", "latest")
	if !strings.Contains(r.stderr, "diverged") {
		t.Errorf("latest of a diverged home should say so:\n%s", r)
	}
	// A second pull brings nothing and still reports it.
	r = pc1.must("pull")
	if !strings.Contains(r.stdout, "pulled 0 snapshots") || !strings.Contains(r.stdout, "diverged") {
		t.Errorf("second pull:\n%s", r)
	}
}

// TestPullHostileTag: a mirror tags snapshot 1's signed manifest
// snap-99999999-…. The tag is refused and never kept; a new PC's latest is
// still snapshot 2, and a later real snapshot still arrives.
func TestPullHostileTag(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	writeText(t, filepath.Join(home, "a.txt"), "one\n")
	pc1 := newCLI(t, filepath.Join(dir, "store"), homesPass)
	pc1.must("init", "--argon2-memory", "8")
	mirror := filepath.Join(dir, "mirror")
	pc1.must("mirror", "add", "oci:"+mirror)
	s1 := pc1.snapshot(home)
	writeText(t, filepath.Join(home, "a.txt"), "two\n")
	pc1.snapshot(home)
	want2 := filepath.Join(dir, "want2")
	copyTree(t, home, want2)
	pc1.must("push")

	idx, refs := readStoreIndex(t, mirror)
	fake := findRef(t, refs, s1).Desc
	fake.Annotations = map[string]string{"org.opencontainers.image.ref.name": "snap-99999999-" + s1}
	idx.Manifests = append(idx.Manifests, fake)
	writeStoreIndex(t, mirror, idx)

	pc2 := newCLI(t, filepath.Join(dir, "pc2", "store"), homesPass)
	r := pc2.must("pull", "oci:"+mirror)
	if !strings.Contains(r.stderr, "snap-99999999-"+s1) || !strings.Contains(r.stdout, "served bad data") {
		t.Errorf("pull should refuse the tag snap-99999999-%s and name the mirror:\n%s", s1, r)
	}
	pc2.requireRestores("latest", want2)
	pc1.must("pull")
	for _, store := range []string{pc1.store, pc2.store} {
		_, refs := readStoreIndex(t, store)
		for _, ref := range refs {
			if strings.HasPrefix(ref.Name, "snap-99999999") {
				t.Errorf("%s keeps the mirror's tag %s", store, ref.Name)
			}
		}
	}

	writeText(t, filepath.Join(home, "a.txt"), "three\n")
	if err := os.Chtimes(filepath.Join(home, "a.txt"), time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	s3 := pc1.snapshot(home)
	pc1.must("push")
	r = pc2.must("pull")
	if !strings.Contains(r.stdout, "pulled 1 snapshot") {
		t.Errorf("a real snapshot after the fake tag should arrive:\n%s", r)
	}
	pc2.requireRestores("latest", home)
	if es := homeLog(pc2); es[len(es)-1].ID != s3 {
		t.Errorf("latest on the new PC is %s, want %s", es[len(es)-1].ID, s3)
	}
}
