package media

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/dvpc/dvpc/image"
	"github.com/dvpc/dvpc/internal/treecmp"
)

var isoTestTime = time.Date(2026, 11, 25, 18, 30, 15, 0, time.UTC)

// isoTools maps each external program the ISO tests run to its Debian
// package.
var isoTools = map[string]string{
	"xorriso": "xorriso",
	"osirrox": "xorriso",
	"isoinfo": "genisoimage",
	"isovfy":  "genisoimage",
}

func requireISOTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is not installed; install the Debian package %s (apt-get install %s)", name, isoTools[name], isoTools[name])
	}
}

func runISOTool(t testing.TB, name string, args ...string) string {
	t.Helper()
	requireISOTool(t, name)
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	for _, bad := range []string{"FAILURE", "SORRY", "FATAL"} {
		if strings.Contains(stderr.String(), bad) {
			t.Errorf("%s %s complains:\n%s", name, strings.Join(args, " "), stderr.String())
		}
	}
	return stdout.String()
}

func isoMemEntry(p string, b []byte) Entry {
	return Entry{Path: p, Size: int64(len(b)), Open: func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}}
}

func isoContent(label string, files map[string][]byte) Content {
	c := Content{Label: label, ModTime: isoTestTime}
	for p, b := range files {
		c.Entries = append(c.Entries, isoMemEntry(p, b))
	}
	return c
}

func isoRandom(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// isoSampleFiles has every awkward case: nested and deep directories, an
// empty file, a 3 MiB random file, a file of exactly one block, names with
// spaces and UTF-8, 8.3 collisions, a 64-character name and a directory
// spanning many blocks.
func isoSampleFiles() map[string][]byte {
	files := map[string][]byte{
		"a.txt":                       []byte("hello\n"),
		"empty":                       nil,
		"dir one/random.bin":          isoRandom(1, 3<<20),
		"dir one/block":               isoRandom(2, 2048),
		"dir one/two blocks":          isoRandom(3, 4096),
		"Müsli – café.txt":            []byte("Grüße\n"),
		"docs/notes from meeting.txt": []byte("notes\n"),
		"docs/résumé ÄÖÜ.md":          []byte("# CV\n"),
		"d1/d2/d3/d4/d5/d6/d7/d8/d9/d10/d11/deep.txt": []byte("deep\n"),
		strings.Repeat("n", 64):                       []byte("sixty-four\n"),
		"store/oci-layout":                            []byte(`{"imageLayoutVersion":"1.0.0"}`),
	}
	for i := range 12 {
		files[fmt.Sprintf("collide/report-2026-%02d.txt", i+1)] = []byte(strconv.Itoa(i))
	}
	for i := range 300 {
		b := isoRandom(uint64(100+i), 100+i)
		files["store/blobs/sha256/"+hex.EncodeToString(isoRandom(uint64(1000+i), 32))] = b
	}
	return files
}

func writeTestISO(t testing.TB, files map[string][]byte) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "dvpc.iso")
	if err := WriteISO(context.Background(), out, isoContent("dvpc_20261125", files)); err != nil {
		t.Fatal(err)
	}
	return out
}

func isoSizes(files map[string][]byte) map[string]int64 {
	m := map[string]int64{}
	for p, b := range files {
		m[p] = int64(len(b))
	}
	return m
}

func diffSizes(t *testing.T, what string, want, got map[string]int64) {
	t.Helper()
	for p, n := range want {
		if g, ok := got[p]; !ok {
			t.Errorf("%s: %q missing", what, p)
		} else if g != n {
			t.Errorf("%s: %q is %d bytes, want %d", what, p, g, n)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: unexpected %q", what, p)
		}
	}
}

var (
	xorrisoLine = regexp.MustCompile(`^-\S+\s+\d+\s+\S+\s+\S+\s+(\d+)\s.*?'(.*)'$`)
	isoinfoLine = regexp.MustCompile(`^([-d])\S+\s+\d+\s+\d+\s+\d+\s+(\d+)\s+\w+\s+\d+\s+\d+\s+\[\s*\d+\s+\d+\]\s\s(.*) $`)
)

func xorrisoFiles(t *testing.T, iso string) map[string]int64 {
	m := map[string]int64{}
	for _, line := range strings.Split(runISOTool(t, "xorriso", "-indev", iso, "-find", "/", "-type", "f", "-exec", "lsdl", "--"), "\n") {
		if s := xorrisoLine.FindStringSubmatch(line); s != nil {
			n, _ := strconv.ParseInt(s[1], 10, 64)
			m[strings.TrimPrefix(s[2], "/")] = n
		}
	}
	return m
}

func isoinfoFiles(t *testing.T, args ...string) map[string]int64 {
	m := map[string]int64{}
	dir := ""
	for _, line := range strings.Split(runISOTool(t, "isoinfo", args...), "\n") {
		if d, ok := strings.CutPrefix(line, "Directory listing of "); ok {
			dir = strings.TrimPrefix(d, "/")
			continue
		}
		if s := isoinfoLine.FindStringSubmatch(line); s != nil && s[1] == "-" {
			n, _ := strconv.ParseInt(s[2], 10, 64)
			m[dir+s[3]] = n
		}
	}
	return m
}

func isASCII(s string) bool {
	for _, r := range s {
		if r > 0x7e {
			return false
		}
	}
	return true
}

// TestWriteISOIsReadByOtherTools checks the image with xorriso, osirrox,
// isoinfo (Rock Ridge and Joliet) and isovfy.
func TestWriteISOIsReadByOtherTools(t *testing.T) {
	files := isoSampleFiles()
	iso := writeTestISO(t, files)
	want := isoSizes(files)

	diffSizes(t, "xorriso -find", want, xorrisoFiles(t, iso))
	diffSizes(t, "isoinfo -R -l", want, isoinfoFiles(t, "-R", "-l", "-i", iso))

	// isoinfo prints Joliet names in a single-byte charset, so compare the
	// ASCII ones by name and count the rest.
	joliet := isoinfoFiles(t, "-J", "-l", "-i", iso)
	if len(joliet) != len(want) {
		t.Errorf("isoinfo -J -l lists %d files, want %d", len(joliet), len(want))
	}
	for p, n := range want {
		if isASCII(p) && joliet[p] != n {
			t.Errorf("isoinfo -J -l: %q is %d bytes, want %d", p, joliet[p], n)
		}
	}
	if v := runISOTool(t, "isovfy", "-i", iso); !strings.Contains(v, "No errors found") {
		t.Errorf("isovfy:\n%s", v)
	}
	d := runISOTool(t, "isoinfo", "-d", "-i", iso)
	for _, s := range []string{"Volume id: DVPC_20261125\n", "Joliet with UCS level 3 found", "Rock Ridge signatures version 1 found"} {
		if !strings.Contains(d, s) {
			t.Errorf("isoinfo -d lacks %q:\n%s", s, d)
		}
	}

	dir := filepath.Join(t.TempDir(), "x")
	runISOTool(t, "osirrox", "-indev", iso, "-extract", "/", dir)
	got := map[string]int64{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		got[rel] = int64(len(b))
		if w, ok := files[rel]; ok && !bytes.Equal(b, w) {
			t.Errorf("osirrox extracted %s with other bytes", rel)
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if !fi.ModTime().Equal(isoTestTime) || fi.Mode().Perm() != 0o644 {
			t.Errorf("osirrox extracted %s with mtime %v mode %v, want %v 0644", rel, fi.ModTime(), fi.Mode(), isoTestTime)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	diffSizes(t, "osirrox -extract", want, got)
}

func TestOpenISOReadsEveryFile(t *testing.T) {
	files := isoSampleFiles()
	x, err := OpenISO(writeTestISO(t, files))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if x.Label() != "DVPC_20261125" {
		t.Errorf("label %q", x.Label())
	}
	fsys := x.FS()
	for p, want := range files {
		got, err := fs.ReadFile(fsys, p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: read %d bytes that differ from the %d written", p, len(got), len(want))
		}
		fi, err := fs.Stat(fsys, p)
		if err != nil || fi.Size() != int64(len(want)) || !fi.Mode().IsRegular() || !fi.ModTime().Equal(isoTestTime) {
			t.Errorf("stat %s: %v %v", p, fi, err)
		}
	}
	// fstest reads every file a byte at a time: leave out the big one.
	small := maps.Clone(files)
	delete(small, "dir one/random.bin")
	xs, err := OpenISO(writeTestISO(t, small))
	if err != nil {
		t.Fatal(err)
	}
	defer xs.Close()
	if err := fstest.TestFS(xs.FS(), slices.Sorted(maps.Keys(small))...); err != nil {
		t.Fatal(err)
	}

	// ReadAt never goes past the file, Seek works.
	f, err := fsys.Open("dir one/block")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	n, err := f.(io.ReaderAt).ReadAt(buf, 2000)
	if n != 48 || err != io.EOF || !bytes.Equal(buf[:n], files["dir one/block"][2000:]) {
		t.Errorf("ReadAt past the end: %d %v", n, err)
	}
	if off, err := f.(io.Seeker).Seek(-8, io.SeekEnd); off != 2040 || err != nil {
		t.Errorf("Seek: %d %v", off, err)
	}
	if b, err := io.ReadAll(f); err != nil || !bytes.Equal(b, files["dir one/block"][2040:]) {
		t.Errorf("read after Seek: %d bytes, %v", len(b), err)
	}
	if _, err := fsys.Open("missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("open missing: %v", err)
	}
	if _, err := fs.ReadDir(fsys, "a.txt"); err == nil {
		t.Error("ReadDir of a file works")
	}
}

// TestISOCarriesAStore writes a real store to an ISO, opens it through
// the ISO reader and restores the snapshot from it.
func TestISOCarriesAStore(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	for p, b := range map[string][]byte{
		"notes.txt":             []byte("remember the milk\n"),
		"photos/holiday.raw":    isoRandom(7, 2<<20+123),
		"docs/Müsli – café.txt": []byte("Grüße\n"),
		"empty":                 nil,
	} {
		full := filepath.Join(home, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	storeDir := filepath.Join(t.TempDir(), "store")
	lay, err := image.InitLayout(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	pass := []byte("correct horse")
	if _, _, err := image.Init(ctx, lay, pass, image.Argon2Params{Time: 1, MemoryKiB: 8 << 10, Threads: 1}); err != nil {
		t.Fatal(err)
	}
	repo, _, err := image.Open(ctx, lay, pass)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := repo.Snapshot(ctx, home, image.SnapshotOptions{}); err != nil {
		t.Fatal(err)
	}
	repo.Close()

	c := Content{Label: "DVPC_20261125", ModTime: isoTestTime}
	err = filepath.WalkDir(storeDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".dvpc-tmp") { // the store's lock and scratch space
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(storeDir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		c.Entries = append(c.Entries, Entry{Path: "store/" + filepath.ToSlash(rel), Size: fi.Size(),
			Open: func() (io.ReadCloser, error) { return os.Open(p) }})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	iso := filepath.Join(t.TempDir(), "store.iso")
	if err := WriteISO(ctx, iso, c); err != nil {
		t.Fatal(err)
	}

	x, err := OpenISO(iso)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	src, err := image.OpenFSSource(x.FS(), "store")
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := image.Open(ctx, src, pass)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	snaps, probs, err := r.Snapshots(ctx)
	if err != nil || len(probs) > 0 || len(snaps) != 1 {
		t.Fatalf("snapshots on the ISO: %v %v %v", snaps, probs, err)
	}
	target := filepath.Join(t.TempDir(), "restored")
	if err := r.Restore(ctx, snaps[0], image.RestoreOptions{Target: target}); err != nil {
		t.Fatal(err)
	}
	diffs, err := treecmp.Compare(home, target, treecmp.IgnoreRootMtime())
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) > 0 {
		t.Fatalf("the restore from the ISO differs:\n%s", treecmp.Format(diffs))
	}
}

// TestWriteISOIsReproducible writes the same content twice, the second
// time with the entries shuffled, another umask, another temporary
// directory and the time in another zone.
func TestWriteISOIsReproducible(t *testing.T) {
	files := isoSampleFiles()
	a := writeTestISO(t, files)

	c := isoContent("DVPC_20261125", files)
	rand.Shuffle(len(c.Entries), func(i, j int) { c.Entries[i], c.Entries[j] = c.Entries[j], c.Entries[i] })
	c.ModTime = isoTestTime.In(time.FixedZone("UTC-7", -7*3600))
	t.Setenv("TMPDIR", t.TempDir())
	old := syscall.Umask(0o077)
	b := filepath.Join(t.TempDir(), "again.iso")
	err := WriteISO(context.Background(), b, c)
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	requireSameFile(t, a, b)
}

func requireSameFile(t *testing.T, a, b string) {
	t.Helper()
	ba, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	bb, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ba, bb) {
		for i := range min(len(ba), len(bb)) {
			if ba[i] != bb[i] {
				t.Fatalf("%s and %s differ at byte %d (block %d, offset %d); sizes %d and %d", a, b, i, i/2048, i%2048, len(ba), len(bb))
			}
		}
		t.Fatalf("%s is %d bytes, %s %d", a, len(ba), b, len(bb))
	}
}

// TestWriteISOShortNameCollisions uses two groups of files whose 8.3
// names compete for the same numbered names, so go-diskfs's names depend
// on map order: the images must still be identical.
func TestWriteISOShortNameCollisions(t *testing.T) {
	files := map[string][]byte{
		"c/abcdefgh1.txt": []byte("1"), "c/abcdefgh2.txt": []byte("2"),
		"c/abcdefg0x.txt": []byte("3"), "c/abcdefg0y.txt": []byte("4"),
		"c/ABCDEFG0.TXT": []byte("5"),
	}
	c := isoContent("X", files)
	if !isoShortNamesOrderDependent(c.Entries) {
		t.Fatal("the collision is not detected")
	}
	first := writeTestISO(t, files)
	for range 5 {
		requireSameFile(t, first, writeTestISO(t, files))
	}
	diffSizes(t, "isoinfo -R -l", isoSizes(files), isoinfoFiles(t, "-R", "-l", "-i", first))
	plain := isoinfoFiles(t, "-l", "-i", first)
	want := isoCanonicalShortNames(c.Entries)
	var got, wantNames []string
	for p := range plain {
		got = append(got, p)
	}
	for p, n := range want {
		if !strings.HasSuffix(n, ";1") {
			n += "/"
		}
		if path.Dir(p) != "." {
			wantNames = append(wantNames, "C/"+n)
		}
	}
	slices.Sort(got)
	slices.Sort(wantNames)
	if !slices.Equal(got, wantNames) {
		t.Errorf("ISO 9660 names %q, want %q", got, wantNames)
	}

	// A directory's name cannot be rewritten (it orders the image): a
	// mismatch asks WriteISO for another go-diskfs run.
	entries, _, err := checkISOContent(&c)
	if err != nil {
		t.Fatal(err)
	}
	canon := isoCanonicalShortNames(entries)
	canon["c"] = "D"
	if _, err := layOutISO(isoTempFile(t), entries, "X", isoTestTime, canon); !errors.Is(err, errISOShortNames) {
		t.Errorf("a directory named otherwise: %v", err)
	}
	dirs := isoContent("X", map[string][]byte{"abcdefgh1/a": nil, "abcdefgh2/a": nil, "abcdefg0x/a": nil, "abcdefg0y/a": nil})
	if !isoShortNamesOrderDependent(dirs.Entries) {
		t.Error("the collision of directories is not detected")
	}
}

// TestShortNamesMatchGoDiskfs checks dvpc's copy of go-diskfs's 8.3 naming
// on many random trees, and that the order-dependence check finds nothing
// in a store's names.
func TestShortNamesMatchGoDiskfs(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	parts := []string{"report", "report-2026", "Report 2026", "a", "a.b.c", "long name with spaces", "ÄÖÜ", "x_y", "data.tar.gz", "data.tar.xz", "12345678", "1234567890", "café", "abcdefgh", "abcdefg0"}
	compared, dependent, retries := 0, 0, 0
	for i := range 60 {
		files := map[string][]byte{}
		for range 1 + r.IntN(80) {
			name := parts[r.IntN(len(parts))] + strconv.Itoa(r.IntN(12))
			switch r.IntN(3) {
			case 0:
				files[name] = nil
			case 1:
				files["dir-"+parts[r.IntN(len(parts))]+"/"+name] = nil
			default:
				files["dir-"+parts[r.IntN(len(parts))]+strconv.Itoa(r.IntN(3))+"/"+name] = nil
			}
		}
		c := isoContent("X", files)
		entries, _, err := checkISOContent(&c)
		if err != nil {
			continue // a file named like a directory
		}
		want := isoCanonicalShortNames(entries)
		if isoShortNamesOrderDependent(entries) {
			// WriteISO's way: files get the canonical names written over
			// go-diskfs's; directories are retried.
			dependent++
			for attempt := 0; ; attempt++ {
				lay, err := layOutISO(isoTempFile(t), entries, "X", isoTestTime, want)
				if errors.Is(err, errISOShortNames) && attempt < isoLayoutAttempts {
					retries++
					continue
				}
				if err != nil {
					t.Fatalf("tree %d: %v", i, err)
				}
				if !maps.Equal(lay.shortNames, want) {
					t.Errorf("tree %d: names %v, want %v", i, lay.shortNames, want)
				}
				break
			}
			continue
		}
		if _, groups := isoShortDirs(entries); !slices.ContainsFunc(slices.Collect(maps.Values(groups)), func(gs []*isoShortGroup) bool { return len(gs) > 0 }) {
			continue
		}
		compared++
		lay, err := layOutISO(isoTempFile(t), entries, "X", isoTestTime, nil)
		if err != nil {
			t.Fatal(err)
		}
		for p, n := range want {
			if lay.shortNames[p] != n {
				t.Errorf("tree %d: %s: go-diskfs names it %q, dvpc expects %q", i, p, lay.shortNames[p], n)
			}
		}
	}
	if compared < 20 || dependent == 0 {
		t.Errorf("%d trees with collisions compared, %d order-dependent: make the test's names collide more", compared, dependent)
	}
	t.Logf("%d trees with collisions compared, %d order-dependent (%d retries for directories)", compared, dependent, retries)

	var store []Entry
	for i := range 5000 {
		store = append(store, Entry{Path: "store/blobs/sha256/" + hex.EncodeToString(isoRandom(uint64(i), 32))})
	}
	if isoShortNamesOrderDependent(store) {
		t.Error("5000 blob names are taken for order-dependent")
	}
}

func isoTempFile(t *testing.T) *os.File {
	f, err := os.Create(filepath.Join(t.TempDir(), "t.iso"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestWriteISORefusesBeforeWriting checks every limit before a byte is
// written.
func TestWriteISORefusesBeforeWriting(t *testing.T) {
	never := func() (io.ReadCloser, error) {
		t.Error("Open was called")
		return nil, errors.New("not to be opened")
	}
	ok := isoMemEntry("ok.txt", []byte("ok"))
	for _, tc := range []struct {
		name string
		c    Content
		want string
	}{
		{"file of 5 GiB", Content{Label: "X", ModTime: isoTestTime, Entries: []Entry{ok, {Path: "big", Size: 5 << 30, Open: never}}}, "4 GiB"},
		{"file of 4 GiB", Content{Label: "X", ModTime: isoTestTime, Entries: []Entry{{Path: "big", Size: 4 << 30, Open: never}}}, "4 GiB"},
		{"name of 200 bytes", Content{Label: "X", ModTime: isoTestTime, Entries: []Entry{ok, {Path: "d/" + strings.Repeat("x", 200), Size: 1, Open: never}}}, "over 100 bytes"},
		{"name of 65 characters", Content{Label: "X", ModTime: isoTestTime, Entries: []Entry{{Path: strings.Repeat("x", 65), Size: 1, Open: never}}}, "Joliet"},
		{"name with a colon", Content{Label: "X", ModTime: isoTestTime, Entries: []Entry{{Path: "a:b", Size: 1, Open: never}}}, "Joliet"},
		{"name beyond UCS-2", Content{Label: "X", ModTime: isoTestTime, Entries: []Entry{{Path: "😀", Size: 1, Open: never}}}, "UCS-2"},
		{"dot file", Content{Label: "X", ModTime: isoTestTime, Entries: []Entry{{Path: "d/.hidden", Size: 1, Open: never}}}, "dot"},
		{"dot directory", Content{Label: "X", ModTime: isoTestTime, Entries: []Entry{{Path: ".config/x", Size: 1, Open: never}}}, "dot"},
		{"control character", Content{Label: "X", ModTime: isoTestTime, Entries: []Entry{{Path: "a\nb", Size: 1, Open: never}}}, "control"},
		{"file and directory", Content{Label: "X", ModTime: isoTestTime, Entries: []Entry{{Path: "a", Size: 1, Open: never}, {Path: "a/b", Size: 1, Open: never}}}, "both"},
		{"unclean path", Content{Label: "X", ModTime: isoTestTime, Entries: []Entry{{Path: "a/../b", Size: 1, Open: never}}}, "clean"},
		{"label too long", Content{Label: strings.Repeat("L", 33), ModTime: isoTestTime, Entries: []Entry{ok}}, "32"},
		{"no label", Content{ModTime: isoTestTime, Entries: []Entry{ok}}, "label"},
		{"no time", Content{Label: "X", Entries: []Entry{ok}}, "time"},
		{"time past 2155", Content{Label: "X", ModTime: time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC), Entries: []Entry{ok}}, "time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Setenv("TMPDIR", dir)
			out := filepath.Join(dir, "x.iso")
			err := WriteISO(context.Background(), out, tc.c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			}
			if ents, _ := os.ReadDir(dir); len(ents) > 0 {
				t.Errorf("%s holds %v", dir, ents)
			}
		})
	}
}

func TestISOVolumeID(t *testing.T) {
	for in, want := range map[string]string{
		"DVPC_20261125":   "DVPC_20261125",
		"dvpc-2026.11.25": "DVPC_2026_11_25",
		"Müsli":           "M_SLI",
		"DVPC_20261125_3": "DVPC_20261125_3",
	} {
		if got, err := ISOVolumeID(in); got != want || err != nil {
			t.Errorf("ISOVolumeID(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestWriteISOKeepsExistingFile(t *testing.T) {
	out := filepath.Join(t.TempDir(), "x.iso")
	if err := os.WriteFile(out, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := WriteISO(context.Background(), out, isoContent("X", map[string][]byte{"a": []byte("a")}))
	if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "remove it or choose another name") {
		t.Fatalf("got %v", err)
	}
	if b, _ := os.ReadFile(out); string(b) != "precious" {
		t.Fatalf("the existing file now holds %q", b)
	}
	if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 1 {
		t.Errorf("left behind: %v", ents)
	}
}

// TestWriteISOCleansUp checks that the work directory go-diskfs gets is a
// fresh one that is gone afterwards, and that a failing entry leaves no
// image and no temporary file.
func TestWriteISOCleansUp(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	dir := t.TempDir()
	if err := WriteISO(context.Background(), filepath.Join(dir, "ok.iso"), isoContent("X", isoSampleFiles())); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) > 0 {
		t.Errorf("work directories left in %s: %v", tmp, ents)
	}

	for _, e := range []Entry{
		{Path: "short", Size: 10, Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("12345")), nil }},
		{Path: "long", Size: 3, Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("12345")), nil }},
		{Path: "broken", Size: 3, Open: func() (io.ReadCloser, error) { return nil, errors.New("disk on fire") }},
		{Path: "lying", Size: 3, Open: func() (io.ReadCloser, error) {
			return io.NopCloser(io.MultiReader(strings.NewReader("123"), iotestErrReader{errors.New("digest mismatch")})), nil
		}},
	} {
		out := filepath.Join(dir, e.Path+".iso")
		c := Content{Label: "X", ModTime: isoTestTime, Entries: []Entry{isoMemEntry("a", []byte("a")), e}}
		if err := WriteISO(context.Background(), out, c); err == nil {
			t.Errorf("%s: no error", e.Path)
		}
		if _, err := os.Lstat(out); err == nil {
			t.Errorf("%s: the image was left", e.Path)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := WriteISO(ctx, filepath.Join(dir, "cancelled.iso"), isoContent("X", map[string][]byte{"a": nil})); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("left behind: %v", ents)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) > 0 {
		t.Errorf("work directories left in %s: %v", tmp, ents)
	}
}

type iotestErrReader struct{ err error }

func (r iotestErrReader) Read([]byte) (int, error) { return 0, r.err }

// TestOpenISORefusesDamagedImages feeds truncated and random images.
func TestOpenISORefusesDamagedImages(t *testing.T) {
	good, err := os.ReadFile(writeTestISO(t, isoSampleFiles()))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, b := range map[string][]byte{
		"first 40 KiB": good[:40<<10], // cut inside the directories
		"1 MiB random": isoRandom(42, 1<<20),
		"empty":        nil,
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		x, err := OpenISO(p)
		if err == nil {
			x.Close()
			t.Errorf("%s: opened", name)
			continue
		}
		if !errors.Is(err, ErrNotISO) || !strings.Contains(err.Error(), "not an ISO 9660 image: ") {
			t.Errorf("%s: %v", name, err)
		}
		if cut := name == "first 40 KiB"; errors.Is(err, ErrDamaged) != cut {
			t.Errorf("%s: the error wraps ErrDamaged: %v, want %v: %v", name, !cut, cut, err)
		}
	}
	// Cut after its directories, an image opens, and the files past the
	// cut say so.
	for name, n := range map[string]int{"half": len(good) / 2, "all but one block": len(good) - isoBlock} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, good[:n], 0o644); err != nil {
			t.Fatal(err)
		}
		x, err := OpenISO(p)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if have, want := x.Size(); have != int64(n) || want != int64(len(good)) {
			t.Errorf("%s: size %d of %d, want %d of %d", name, have, want, n, len(good))
		}
		var cut int
		fs.WalkDir(x.FS(), ".", func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if _, err := fs.ReadFile(x.FS(), p); errors.Is(err, ErrDamaged) {
					cut++
				} else if err != nil {
					t.Errorf("%s: read %s: %v", name, p, err)
				}
			}
			return nil
		})
		if cut == 0 {
			t.Errorf("%s: no file is cut off", name)
		}
		x.Close()
	}
}

// isoRootCE returns the offset in img of the SUSP CE entry in the root
// directory's first record (go-diskfs puts the Rock Ridge ER entry in a
// continuation area).
func isoRootCE(t *testing.T, img []byte) int {
	t.Helper()
	root := int(binary.LittleEndian.Uint32(img[16*2048+156+2:])) * 2048
	rec := img[root : root+int(img[root])]
	for i := 34; i+4 <= len(rec); i += int(rec[i+2]) {
		if string(rec[i:i+2]) == "CE" {
			return root + i
		}
		if rec[i+2] == 0 {
			break
		}
	}
	t.Fatal("no CE entry in the root directory's first record")
	return 0
}

// TestOpenISORefusesHostileContinuations patches a continuation entry to
// ask for 4 GiB, and one to point at itself: go-diskfs would allocate the
// 4 GiB, or loop forever.
func TestOpenISORefusesHostileContinuations(t *testing.T) {
	good, err := os.ReadFile(writeTestISO(t, map[string][]byte{"a": []byte("a")}))
	if err != nil {
		t.Fatal(err)
	}
	ce := isoRootCE(t, good)
	huge := bytes.Clone(good)
	binary.LittleEndian.PutUint32(huge[ce+20:], 0xf0000000)
	binary.BigEndian.PutUint32(huge[ce+24:], 0xf0000000)
	loop := bytes.Clone(good)
	for _, f := range [][3]int{{4, ce / 2048}, {12, ce % 2048}, {20, 28}} {
		binary.LittleEndian.PutUint32(loop[ce+f[0]:], uint32(f[1]))
		binary.BigEndian.PutUint32(loop[ce+f[0]+4:], uint32(f[1]))
	}
	for name, b := range map[string][]byte{"huge": huge, "loop": loop} {
		start := time.Now()
		_, err := newISO(bytes.NewReader(b), int64(len(b)))
		if !errors.Is(err, ErrNotISO) || !strings.Contains(err.Error(), "continuation") {
			t.Errorf("%s: %v", name, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: took %v", name, d)
		}
	}
}

// TestOpenISOReadsXorrisoImages reads images made by xorriso: with Rock
// Ridge and Joliet every file; with Joliet alone the files down to the
// first directory level, and an error, not a panic, below it (go-diskfs's
// path table lookup is off by one; dvpc's images always carry Rock Ridge).
func TestOpenISOReadsXorrisoImages(t *testing.T) {
	files := isoSampleFiles()
	shallow := map[string][]byte{}
	for p, b := range files {
		if strings.Count(p, "/") <= 1 {
			shallow[p] = b
		}
	}
	for _, tc := range []struct {
		name    string
		files   map[string][]byte
		opts    []string
		wantErr string
	}{
		{"Rock Ridge and Joliet", files, []string{"-as", "mkisofs", "-quiet", "-V", "XORRISO", "-R", "-J", "-o", "ISO", "SRC"}, ""},
		{"Joliet alone", shallow, []string{"-rockridge", "off", "-joliet", "on", "-volid", "XORRISO", "-outdev", "ISO", "-map", "SRC", "/"}, ""},
		{"Joliet alone, deep", files, []string{"-rockridge", "off", "-joliet", "on", "-volid", "XORRISO", "-outdev", "ISO", "-map", "SRC", "/"}, "could not find Joliet directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := t.TempDir()
			for p, b := range tc.files {
				full := filepath.Join(src, filepath.FromSlash(p))
				if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(full, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			iso := filepath.Join(t.TempDir(), "x.iso")
			opts := slices.Clone(tc.opts)
			opts[slices.Index(opts, "ISO")] = iso
			opts[slices.Index(opts, "SRC")] = src
			runISOTool(t, "xorriso", opts...)
			x, err := OpenISO(iso)
			if err != nil {
				t.Fatal(err)
			}
			defer x.Close()
			if x.Label() != "XORRISO" {
				t.Errorf("label %q", x.Label())
			}
			got := map[string]int64{}
			err = fs.WalkDir(x.FS(), ".", func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				b, err := fs.ReadFile(x.FS(), p)
				if err != nil {
					return err
				}
				got[p] = int64(len(b))
				if !bytes.Equal(b, tc.files[p]) {
					t.Errorf("%s differs", p)
				}
				return nil
			})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			diffSizes(t, tc.name, isoSizes(tc.files), got)
		})
	}
}

// FuzzOpenISO reads hostile images: it must fail cleanly, never panic,
// hang or read past a file.
func FuzzOpenISO(f *testing.F) {
	out := filepath.Join(f.TempDir(), "seed.iso")
	err := WriteISO(context.Background(), out, isoContent("SEED", map[string][]byte{
		"a.txt": []byte("alpha"), "d/b": bytes.Repeat([]byte("b"), 3000), "d/e/empty": nil,
		"c/abcdefgh1.txt": nil, "c/abcdefgh2.txt": nil,
	}))
	if err != nil {
		f.Fatal(err)
	}
	seed, err := os.ReadFile(out)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	for _, n := range []int{32 << 10, 34 << 10, 36 << 10, 40 << 10, len(seed) / 2, len(seed) - 2048} {
		f.Add(seed[:n])
	}
	f.Add(isoRandom(5, 64<<10))
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := newISO(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if !errors.Is(err, ErrNotISO) {
				t.Fatalf("error without ErrNotISO: %v", err)
			}
			return
		}
		fsys := x.FS()
		queue, seen := []string{"."}, 0
		for len(queue) > 0 && seen < 1000 {
			dir := queue[0]
			queue = queue[1:]
			ents, err := fs.ReadDir(fsys, dir)
			if err != nil {
				continue
			}
			for _, e := range ents {
				seen++
				p := path.Join(dir, e.Name())
				if e.IsDir() {
					queue = append(queue, p)
					continue
				}
				fl, err := fsys.Open(p)
				if err != nil {
					continue
				}
				fi, _ := fl.Stat()
				got, _ := io.Copy(io.Discard, io.LimitReader(fl, 1<<20))
				if got > fi.Size() {
					t.Fatalf("%s: read %d bytes of a %d-byte file", p, got, fi.Size())
				}
				fl.Close()
			}
		}
	})
}

// BenchmarkWriteISO writes 64 MiB of local files.
func BenchmarkWriteISO(b *testing.B) {
	src := b.TempDir()
	c := Content{Label: "BENCH", ModTime: isoTestTime}
	for i := range 32 {
		p := filepath.Join(src, fmt.Sprintf("pack%02d", i))
		if err := os.WriteFile(p, isoRandom(uint64(i), 2<<20), 0o644); err != nil {
			b.Fatal(err)
		}
		e, err := FileEntry("store/"+filepath.Base(p), p)
		if err != nil {
			b.Fatal(err)
		}
		c.Entries = append(c.Entries, e)
	}
	b.SetBytes(c.Size())
	dir := b.TempDir()
	for i := 0; b.Loop(); i++ {
		out := filepath.Join(dir, fmt.Sprintf("%d.iso", i))
		if err := WriteISO(context.Background(), out, c); err != nil {
			b.Fatal(err)
		}
		os.Remove(out)
	}
}
