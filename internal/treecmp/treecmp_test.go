//go:build linux

package treecmp_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/dvpc/dvpc/internal/treecmp"
)

const mkhome = "../../testdata/mkhome.sh"

var (
	homeOnce sync.Once
	homeDir  string
	homeErr  error
)

// requireTools fails the test (never skips) if a tool that mkhome.sh or the
// tests need is missing.
func requireTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"bash", "cp", "mkfifo", "truncate", "dd", "touch", "find", "cksum"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required: %v", tool, err)
		}
	}
	if _, err := exec.LookPath("setfattr"); err != nil {
		if _, err := exec.LookPath("python3"); err != nil {
			t.Fatalf("setfattr or python3 is required to set xattrs: %v", err)
		}
	}
}

func runMkhome(t *testing.T, dest string) {
	t.Helper()
	out, err := exec.Command("bash", mkhome, dest).CombinedOutput()
	if err != nil {
		t.Fatalf("bash %s %s: %v\n%s", mkhome, dest, err, out)
	}
}

// home returns a tree built by mkhome.sh, shared by all tests; tests must
// not modify it.
func home(t *testing.T) string {
	t.Helper()
	requireTools(t)
	homeOnce.Do(func() {
		var dir string
		dir, homeErr = os.MkdirTemp("", "treecmp-home-")
		if homeErr != nil {
			return
		}
		homeDir = filepath.Join(dir, "home")
		out, err := exec.Command("bash", mkhome, homeDir).CombinedOutput()
		if err != nil {
			homeErr = fmt.Errorf("bash %s: %v\n%s", mkhome, err, out)
		}
	})
	if homeErr != nil {
		t.Fatal(homeErr)
	}
	return homeDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if homeDir != "" {
		os.RemoveAll(filepath.Dir(homeDir))
	}
	os.Exit(code)
}

// copyTree returns a fresh `cp -a` copy of src.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v\n%s", err, out)
	}
	return dst
}

func mustCompare(t *testing.T, want, got string, opts ...treecmp.Option) []treecmp.Difference {
	t.Helper()
	diffs, err := treecmp.Compare(want, got, opts...)
	if err != nil {
		t.Fatalf("Compare: %v\n%s", err, treecmp.Format(diffs))
	}
	return diffs
}

// TestHomeHasAwkwardCases checks that mkhome.sh really built the cases the
// other tests rely on, so that "no differences" means something.
func TestHomeHasAwkwardCases(t *testing.T) {
	h := home(t)
	long := strings.Repeat("L", 251) + ".txt"
	deep := "deep"
	for i := 1; i <= 20; i++ {
		deep += fmt.Sprintf("/level%02d", i)
	}
	types := map[string]uint32{
		"empty.txt":               unix.S_IFREG,
		"empty-dir":               unix.S_IFDIR,
		"sparse.img":              unix.S_IFREG,
		"dangling-link":           unix.S_IFLNK,
		"absolute-link":           unix.S_IFLNK,
		"photos-link":             unix.S_IFLNK,
		"link-to-src":             unix.S_IFLNK,
		"docs/latest":             unix.S_IFLNK,
		"pipe.fifo":               unix.S_IFIFO,
		"new\nline.txt":           unix.S_IFREG,
		"latin1-\xff\xfe.bin":     unix.S_IFREG,
		"Müsli – café.txt":        unix.S_IFREG,
		"notes from meeting.txt":  unix.S_IFREG,
		long:                      unix.S_IFREG,
		deep + "/bottom.txt":      unix.S_IFREG,
		"photos/sensor-noise.bin": unix.S_IFREG,
		"logs/app.log":            unix.S_IFREG,
	}
	for rel, typ := range types {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(h, rel), &st); err != nil {
			t.Errorf("%q: %v", rel, err)
			continue
		}
		if st.Mode&unix.S_IFMT != typ {
			t.Errorf("%q: type %#o, want %#o", rel, st.Mode&unix.S_IFMT, typ)
		}
	}
	modes := map[string]uint32{
		".": 0755, "shared": 02775, "private": 0700, "private/secret.txt": 0600,
		"bin/tool.sh": 0755, "docs/readonly.txt": 0444, "docs/notes.md": 0644,
	}
	for rel, mode := range modes {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(h, rel), &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode&07777 != mode {
			t.Errorf("%s: mode %04o, want %04o", rel, st.Mode&07777, mode)
		}
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(h, "sparse.img"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != 8<<20 {
		t.Errorf("sparse.img: size %d, want %d", st.Size, 8<<20)
	}
	if err := unix.Lstat(filepath.Join(h, "hardlinks/original.txt"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Nlink != 3 {
		t.Errorf("hardlinks/original.txt: %d links, want 3", st.Nlink)
	}
	if err := unix.Lstat(filepath.Join(h, "docs/notes.md"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mtim.Nsec != 123456789 {
		t.Errorf("docs/notes.md: mtime nanoseconds %d, want 123456789", st.Mtim.Nsec)
	}
	for _, x := range []struct{ rel, name, value string }{
		{"docs/notes.md", "user.comment", "weekly notes"},
		{"docs/notes.md", "user.checksum", "\x00\xff\x10\xfe"},
		{"docs/notes.md", "user.empty", ""},
		{"docs", "user.tag", "important"},
	} {
		buf := make([]byte, 256)
		n, err := unix.Lgetxattr(filepath.Join(h, x.rel), x.name, buf)
		if err != nil {
			t.Errorf("%s: xattr %s: %v", x.rel, x.name, err)
		} else if string(buf[:n]) != x.value {
			t.Errorf("%s: xattr %s = %q, want %q", x.rel, x.name, buf[:n], x.value)
		}
	}
}

func TestCopyHasNoDifferences(t *testing.T) {
	h := home(t)
	if diffs := mustCompare(t, h, copyTree(t, h)); len(diffs) > 0 {
		t.Fatal(treecmp.Format(diffs))
	}
}

func TestMkhomeIsDeterministic(t *testing.T) {
	requireTools(t)
	// DEST may also be an existing empty directory.
	dest := t.TempDir()
	runMkhome(t, dest)
	if diffs := mustCompare(t, home(t), dest); len(diffs) > 0 {
		t.Fatal(treecmp.Format(diffs))
	}
}

func TestMkhomeRefusesNonEmptyDest(t *testing.T) {
	requireTools(t)
	dest := t.TempDir()
	if err := os.WriteFile(filepath.Join(dest, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("bash", mkhome, dest).CombinedOutput(); err == nil {
		t.Fatalf("mkhome.sh into a non-empty directory succeeded:\n%s", out)
	}
}

// Helpers for mutations. All take the copy's root and a relative path.

func lstatT(t *testing.T, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// setMtime sets the mtime of p, not following a symlink, keeping its atime.
func setMtime(t *testing.T, p string, mtime unix.Timespec) {
	t.Helper()
	st := lstatT(t, p)
	ts := []unix.Timespec{st.Atim, mtime}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Fatal(err)
	}
}

func bumpMtime(t *testing.T, root, rel string) {
	t.Helper()
	p := filepath.Join(root, rel)
	m := lstatT(t, p).Mtim
	m.Nsec++
	if m.Nsec == 1e9 {
		m.Sec, m.Nsec = m.Sec+1, 0
	}
	setMtime(t, p, m)
}

// keepMtime runs f and then restores the mtime p had before.
func keepMtime(t *testing.T, p string, f func()) {
	t.Helper()
	m := lstatT(t, p).Mtim
	f()
	setMtime(t, p, m)
}

func flipByte(t *testing.T, root, rel string, off int64) {
	t.Helper()
	p := filepath.Join(root, rel)
	keepMtime(t, p, func() {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if off < 0 {
			fi, err := f.Stat()
			if err != nil {
				t.Fatal(err)
			}
			off += fi.Size()
		}
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, off); err != nil {
			t.Fatal(err)
		}
		b[0] ^= 0x01
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	})
}

func chmod(t *testing.T, root, rel string, mode uint32) {
	t.Helper()
	if err := unix.Chmod(filepath.Join(root, rel), mode); err != nil {
		t.Fatal(err)
	}
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestMutationsAreReported(t *testing.T) {
	h := home(t)
	hardlinks := []string{"hardlinks/original.txt", "hardlinks/second-name.txt", "docs/third-name.txt"}
	tests := []struct {
		name string
		path string // a difference at this path must mention what
		what string
		// also lists other paths that may be reported; any difference
		// elsewhere fails the test.
		also   []string
		mutate func(t *testing.T, root string)
	}{
		{"flip a byte", "docs/notes.md", "content differs at byte 10", nil, func(t *testing.T, root string) {
			flipByte(t, root, "docs/notes.md", 10)
		}},
		{"flip the last byte of a binary", "photos/sensor-noise.bin", "content differs at byte 307199", nil, func(t *testing.T, root string) {
			flipByte(t, root, "photos/sensor-noise.bin", -1)
		}},
		{"flip a byte deep in a sparse file", "sparse.img", "content differs at byte 5242881", nil, func(t *testing.T, root string) {
			flipByte(t, root, "sparse.img", 5<<20+1)
		}},
		{"flip a byte in a hole", "sparse.img", "content differs at byte 7340032", nil, func(t *testing.T, root string) {
			flipByte(t, root, "sparse.img", 7<<20)
		}},
		{"flip a byte in an odd name", "latin1-\xff\xfe.bin", "content", nil, func(t *testing.T, root string) {
			flipByte(t, root, "latin1-\xff\xfe.bin", 0)
		}},
		{"grow a file", "empty.txt", "size: want 0, got 1", nil, func(t *testing.T, root string) {
			p := filepath.Join(root, "empty.txt")
			keepMtime(t, p, func() { check(t, os.WriteFile(p, []byte("x"), 0)) })
		}},
		{"chmod a file", "private/secret.txt", "mode: want 0600, got 0640", nil, func(t *testing.T, root string) {
			chmod(t, root, "private/secret.txt", 0o640)
		}},
		{"chmod a directory", "private", "mode: want 0700, got 0755", nil, func(t *testing.T, root string) {
			chmod(t, root, "private", 0o755)
		}},
		{"drop setgid", "shared", "mode: want 2775, got 0775", nil, func(t *testing.T, root string) {
			chmod(t, root, "shared", 0o775)
		}},
		{"add sticky", "empty-dir", "mode: want 0755, got 1755", nil, func(t *testing.T, root string) {
			chmod(t, root, "empty-dir", 0o1755)
		}},
		{"mtime of a file", "docs/report.csv", "mtime", nil, func(t *testing.T, root string) {
			bumpMtime(t, root, "docs/report.csv")
		}},
		{"mtime of a directory", "docs", "mtime", nil, func(t *testing.T, root string) {
			bumpMtime(t, root, "docs")
		}},
		{"mtime of a deep directory", "deep/level01/level02/level03/level04/level05/level06/level07/level08/level09/level10/level11/level12/level13/level14/level15/level16/level17/level18/level19/level20", "mtime", nil, func(t *testing.T, root string) {
			bumpMtime(t, root, "deep/level01/level02/level03/level04/level05/level06/level07/level08/level09/level10/level11/level12/level13/level14/level15/level16/level17/level18/level19/level20")
		}},
		{"mtime of the root", ".", "mtime", nil, func(t *testing.T, root string) {
			bumpMtime(t, root, ".")
		}},
		{"mtime of a symlink", "docs/latest", "mtime: want 2024-03-01T10:11:13.987654321Z, got 2024-03-01T10:11:13.987654322Z", nil, func(t *testing.T, root string) {
			bumpMtime(t, root, "docs/latest")
		}},
		{"mtime of a dangling symlink", "dangling-link", "mtime", nil, func(t *testing.T, root string) {
			bumpMtime(t, root, "dangling-link")
		}},
		{"mtime of a fifo", "pipe.fifo", "mtime", nil, func(t *testing.T, root string) {
			bumpMtime(t, root, "pipe.fifo")
		}},
		{"mtime of a name with a newline", "new\nline.txt", "mtime", nil, func(t *testing.T, root string) {
			bumpMtime(t, root, "new\nline.txt")
		}},
		{"retarget a symlink", "docs/latest", `symlink target: want "notes.md", got "report.csv"`, nil, func(t *testing.T, root string) {
			p := filepath.Join(root, "docs/latest")
			keepMtime(t, filepath.Dir(p), func() {
				keepMtime(t, p, func() {
					check(t, os.Remove(p))
					check(t, os.Symlink("report.csv", p))
				})
			})
		}},
		{"break a hard link", "hardlinks/second-name.txt", "hard links: want linked with {docs/third-name.txt, hardlinks/original.txt}, got linked with nothing", hardlinks, func(t *testing.T, root string) {
			p := filepath.Join(root, "hardlinks/second-name.txt")
			st := lstatT(t, p)
			keepMtime(t, filepath.Dir(p), func() {
				data, err := os.ReadFile(p)
				check(t, err)
				check(t, os.Remove(p))
				check(t, os.WriteFile(p, data, 0o644))
				setMtime(t, p, st.Mtim)
			})
		}},
		{"join a hard-link group", "docs/report.csv", "hard links: want linked with nothing, got linked with {docs/notes.md}", []string{"docs/notes.md"}, func(t *testing.T, root string) {
			// Both names of docs/notes.md's inode, so content, mode,
			// mtime and xattrs of the second name all change; only
			// the link check is asserted here.
			p := filepath.Join(root, "docs/report.csv")
			keepMtime(t, filepath.Dir(p), func() {
				check(t, os.Remove(p))
				check(t, os.Link(filepath.Join(root, "docs/notes.md"), p))
			})
		}},
		{"drop a file xattr", "docs/notes.md", `xattr user.comment: missing (want "weekly notes")`, nil, func(t *testing.T, root string) {
			check(t, unix.Removexattr(filepath.Join(root, "docs/notes.md"), "user.comment"))
		}},
		{"drop an empty xattr", "docs/notes.md", "xattr user.empty: missing", nil, func(t *testing.T, root string) {
			check(t, unix.Removexattr(filepath.Join(root, "docs/notes.md"), "user.empty"))
		}},
		{"change a binary xattr", "docs/notes.md", `xattr user.checksum: want "\x00\xff\x10\xfe", got "\x00\xff\x10\xff"`, nil, func(t *testing.T, root string) {
			check(t, unix.Setxattr(filepath.Join(root, "docs/notes.md"), "user.checksum", []byte("\x00\xff\x10\xff"), 0))
		}},
		{"drop a directory xattr", "docs", "xattr user.tag: missing", nil, func(t *testing.T, root string) {
			check(t, unix.Removexattr(filepath.Join(root, "docs"), "user.tag"))
		}},
		{"add an xattr", "src/project/main.go", "xattr user.new: extra", nil, func(t *testing.T, root string) {
			check(t, unix.Setxattr(filepath.Join(root, "src/project/main.go"), "user.new", []byte("v"), 0))
		}},
		{"remove a file", "docs/report.csv", "missing (regular file)", nil, func(t *testing.T, root string) {
			p := filepath.Join(root, "docs/report.csv")
			keepMtime(t, filepath.Dir(p), func() { check(t, os.Remove(p)) })
		}},
		{"remove a hard link", "docs/third-name.txt", "missing (regular file)", hardlinks, func(t *testing.T, root string) {
			p := filepath.Join(root, "docs/third-name.txt")
			keepMtime(t, filepath.Dir(p), func() { check(t, os.Remove(p)) })
		}},
		{"remove the long name", strings.Repeat("L", 251) + ".txt", "missing (regular file)", []string{"."}, func(t *testing.T, root string) {
			check(t, os.Remove(filepath.Join(root, strings.Repeat("L", 251)+".txt")))
		}},
		{"remove an empty directory", "empty-dir", "missing (directory)", nil, func(t *testing.T, root string) {
			keepMtime(t, root, func() { check(t, os.Remove(filepath.Join(root, "empty-dir"))) })
		}},
		{"add a file", "docs/new.txt", "extra (regular file)", nil, func(t *testing.T, root string) {
			p := filepath.Join(root, "docs/new.txt")
			keepMtime(t, filepath.Dir(p), func() { check(t, os.WriteFile(p, []byte("new\n"), 0o644)) })
		}},
		{"add a file to an empty directory", "empty-dir/new", "extra (regular file)", []string{"empty-dir"}, func(t *testing.T, root string) {
			check(t, os.WriteFile(filepath.Join(root, "empty-dir/new"), nil, 0o644))
		}},
		{"replace a file by a fifo", "empty.txt", "type: want regular file, got fifo", nil, func(t *testing.T, root string) {
			p := filepath.Join(root, "empty.txt")
			keepMtime(t, root, func() {
				check(t, os.Remove(p))
				check(t, unix.Mkfifo(p, 0o644))
			})
		}},
		{"replace a fifo by a file", "pipe.fifo", "type: want fifo, got regular file", nil, func(t *testing.T, root string) {
			p := filepath.Join(root, "pipe.fifo")
			st := lstatT(t, p)
			keepMtime(t, root, func() {
				check(t, os.Remove(p))
				check(t, os.WriteFile(p, nil, 0o644))
				setMtime(t, p, st.Mtim)
			})
		}},
		{"replace a symlink to a directory by the directory", "link-to-src", "type: want symlink, got directory", nil, func(t *testing.T, root string) {
			p := filepath.Join(root, "link-to-src")
			keepMtime(t, root, func() {
				check(t, os.Remove(p))
				check(t, os.Mkdir(p, 0o755))
			})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := copyTree(t, h)
			tt.mutate(t, got)
			diffs := mustCompare(t, h, got)
			allowed := append([]string{tt.path}, tt.also...)
			found := false
			for _, d := range diffs {
				if d.Path == tt.path && strings.Contains(d.What, tt.what) {
					found = true
				}
				if !slices.Contains(allowed, d.Path) {
					t.Errorf("unexpected difference %s", d)
				}
			}
			if !found {
				t.Errorf("no difference at %q mentioning %q; got %s", tt.path, tt.what, treecmp.Format(diffs))
			}
		})
	}
}

func TestHardLinkGroupsAreReportedOnEveryMember(t *testing.T) {
	h := home(t)
	got := copyTree(t, h)
	p := filepath.Join(got, "hardlinks/second-name.txt")
	st := lstatT(t, p)
	keepMtime(t, filepath.Dir(p), func() {
		data, err := os.ReadFile(p)
		check(t, err)
		check(t, os.Remove(p))
		check(t, os.WriteFile(p, data, 0o644))
		setMtime(t, p, st.Mtim)
	})
	diffs := mustCompare(t, h, got)
	want := []treecmp.Difference{
		{"docs/third-name.txt", "hard links: want linked with {hardlinks/original.txt, hardlinks/second-name.txt}, got linked with {hardlinks/original.txt}"},
		{"hardlinks/original.txt", "hard links: want linked with {docs/third-name.txt, hardlinks/second-name.txt}, got linked with {docs/third-name.txt}"},
		{"hardlinks/second-name.txt", "hard links: want linked with {docs/third-name.txt, hardlinks/original.txt}, got linked with nothing"},
	}
	if !slices.Equal(diffs, want) {
		t.Errorf("got %s\nwant %s", treecmp.Format(diffs), treecmp.Format(want))
	}
}

func TestManyDifferencesInOneTree(t *testing.T) {
	h := home(t)
	got := copyTree(t, h)
	flipByte(t, got, "docs/notes.md", 0)
	chmod(t, got, "bin/tool.sh", 0o700)
	bumpMtime(t, got, "pipe.fifo")
	check(t, os.Remove(filepath.Join(got, "absolute-link")))
	check(t, os.RemoveAll(filepath.Join(got, "deep")))
	diffs := mustCompare(t, h, got, treecmp.IgnoreRootMtime())
	var paths []string
	for _, d := range diffs {
		paths = append(paths, d.Path)
	}
	// Walk order: names sorted bytewise in each directory; a removed
	// subtree is reported once.
	want := []string{"absolute-link", "bin/tool.sh", "deep", "docs/notes.md", "pipe.fifo"}
	if !slices.Equal(paths, want) {
		t.Errorf("paths %q, want %q\n%s", paths, want, treecmp.Format(diffs))
	}
}

func TestIgnoreRootMtime(t *testing.T) {
	h := home(t)
	got := copyTree(t, h)
	bumpMtime(t, got, ".")
	if diffs := mustCompare(t, h, got, treecmp.IgnoreRootMtime()); len(diffs) > 0 {
		t.Errorf("with IgnoreRootMtime: %s", treecmp.Format(diffs))
	}
	bumpMtime(t, got, "docs")
	diffs := mustCompare(t, h, got, treecmp.IgnoreRootMtime())
	if len(diffs) != 1 || diffs[0].Path != "docs" {
		t.Errorf("IgnoreRootMtime hid a subdirectory's mtime: %s", treecmp.Format(diffs))
	}
}

func TestIgnorePaths(t *testing.T) {
	h := home(t)
	got := copyTree(t, h)
	flipByte(t, got, "logs/app.log", 100)
	check(t, os.Remove(filepath.Join(got, "docs/third-name.txt")))
	check(t, os.WriteFile(filepath.Join(got, "docs/extra.txt"), nil, 0o644))
	var seen []string
	ignore := func(rel string) bool {
		seen = append(seen, rel)
		return rel == "logs/app.log" || strings.HasPrefix(rel, "docs/") || rel == "hardlinks"
	}
	diffs := mustCompare(t, h, got, treecmp.IgnorePaths(ignore))
	// docs's own mtime changed; everything else is ignored, including
	// the hard-link group whose other members are all ignored.
	if len(diffs) != 1 || diffs[0].Path != "docs" || !strings.HasPrefix(diffs[0].What, "mtime") {
		t.Errorf("got %s", treecmp.Format(diffs))
	}
	if slices.Contains(seen, ".") {
		t.Error("ignore was called for the root")
	}
	if slices.Contains(seen, "hardlinks/original.txt") {
		t.Error("ignore was called below an ignored directory")
	}
	if !slices.Contains(seen, "new\nline.txt") {
		t.Errorf("ignore was not called for %q", "new\nline.txt")
	}
}

func TestRootsAreNotFollowed(t *testing.T) {
	h := home(t)
	link := filepath.Join(t.TempDir(), "link")
	check(t, os.Symlink(h, link))
	diffs := mustCompare(t, h, link)
	if len(diffs) == 0 || diffs[0].Path != "." || !strings.HasPrefix(diffs[0].What, "type: want directory, got symlink") {
		t.Errorf("got %s", treecmp.Format(diffs))
	}
}

func TestMissingRootIsAnError(t *testing.T) {
	h := home(t)
	if _, err := treecmp.Compare(h, filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Error("no error for a missing root")
	}
	if _, err := treecmp.Compare(filepath.Join(t.TempDir(), "nope"), h); err == nil {
		t.Error("no error for a missing root")
	}
}

func TestDeviceNumbers(t *testing.T) {
	// Making device nodes needs CAP_MKNOD; without it there is nothing to
	// compare.
	a, b := t.TempDir(), t.TempDir()
	mk := func(dir string, minor uint32) {
		err := unix.Mknod(filepath.Join(dir, "dev"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, minor)))
		if err != nil {
			t.Logf("mknod: %v", err)
		}
	}
	mk(a, 3)
	mk(b, 5)
	if _, err := os.Lstat(filepath.Join(a, "dev")); err != nil {
		return // no permission to make device nodes
	}
	for _, d := range []string{a, b} {
		setMtime(t, filepath.Join(d, "dev"), unix.Timespec{Sec: 1})
		setMtime(t, d, unix.Timespec{Sec: 1})
	}
	diffs := mustCompare(t, a, b)
	if len(diffs) != 1 || diffs[0].What != "device: want 1:3, got 1:5" {
		t.Errorf("got %s", treecmp.Format(diffs))
	}
}

func TestFormat(t *testing.T) {
	if got := treecmp.Format(nil); got != "no differences" {
		t.Errorf("Format(nil) = %q", got)
	}
	var diffs []treecmp.Difference
	for i := range 60 {
		diffs = append(diffs, treecmp.Difference{Path: fmt.Sprintf("f%02d", i), What: "missing (regular file)"})
	}
	out := treecmp.Format(diffs)
	lines := strings.Split(out, "\n")
	if len(lines) != 52 || lines[0] != "60 differences:" || lines[50] != "  f49: missing (regular file)" || lines[51] != "  ... and 10 more" {
		t.Errorf("Format(60 diffs) =\n%s", out)
	}
	if got := treecmp.Format(diffs[:1]); got != "1 difference:\n  f00: missing (regular file)" {
		t.Errorf("Format(1 diff) = %q", got)
	}
}

func TestDifferenceString(t *testing.T) {
	for _, tt := range []struct {
		path, want string
	}{
		{"docs/notes.md", "docs/notes.md: x"},
		{"Müsli – café.txt", "Müsli – café.txt: x"},
		{"notes from meeting.txt", "notes from meeting.txt: x"},
		{"new\nline.txt", `"new\nline.txt": x`},
		{"latin1-\xff\xfe.bin", `"latin1-\xff\xfe.bin": x`},
	} {
		if got := (treecmp.Difference{Path: tt.path, What: "x"}).String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

// TestLargeIdenticalFiles checks the streaming comparison across buffer
// boundaries with files larger than any buffer.
func TestLargeIdenticalFiles(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	data := bytes.Repeat([]byte("0123456789abcdef"), 100_000) // 1.6 MB
	for _, d := range []string{a, b} {
		check(t, os.WriteFile(filepath.Join(d, "f"), data, 0o644))
		setMtime(t, filepath.Join(d, "f"), unix.Timespec{Sec: 1})
		setMtime(t, d, unix.Timespec{Sec: 1})
	}
	if diffs := mustCompare(t, a, b); len(diffs) > 0 {
		t.Fatal(treecmp.Format(diffs))
	}
	data[len(data)-1] = 'X'
	check(t, os.WriteFile(filepath.Join(b, "f"), data, 0o644))
	setMtime(t, filepath.Join(b, "f"), unix.Timespec{Sec: 1})
	diffs := mustCompare(t, a, b)
	if len(diffs) != 1 || diffs[0].What != fmt.Sprintf("content differs at byte %d", len(data)-1) {
		t.Errorf("got %s", treecmp.Format(diffs))
	}
}
