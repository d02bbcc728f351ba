package profiles

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tarOf builds a layer from headers; a regular file's content is its name.
func tarOf(t testing.TB, hdrs ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		var body []byte
		if h.Typeflag == tar.TypeReg {
			body = []byte("content of " + h.Name)
			h.Size = int64(len(body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func reg(name string) *tar.Header { return &tar.Header{Name: name, Typeflag: tar.TypeReg} }

// unpackInto unpacks layers into dir/root, with a "victim" file beside
// root that no layer may reach.
func unpackInto(t *testing.T, layers ...[]byte) (string, *UnpackReport, error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "victim"), []byte("untouched"), 0o644); err != nil {
		t.Fatal(err)
	}
	rootDir := filepath.Join(dir, "root")
	if err := os.Mkdir(rootDir, 0o755); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(rootDir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	rep := &UnpackReport{}
	for _, l := range layers {
		if err = Unpack(context.Background(), root, bytes.NewReader(l), rep); err != nil {
			break
		}
	}
	return rootDir, rep, err
}

// assertContained fails when anything beside root changed.
func assertContained(t *testing.T, rootDir string) {
	t.Helper()
	parent := filepath.Dir(rootDir)
	ents, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != "root" && e.Name() != "victim" {
			t.Errorf("unpack wrote %s outside its directory", e.Name())
		}
	}
	b, err := os.ReadFile(filepath.Join(parent, "victim"))
	if err != nil || string(b) != "untouched" {
		t.Errorf("the file beside the directory changed: %q, %v", b, err)
	}
}

func TestUnpackRefusesClimbing(t *testing.T) {
	for _, name := range []string{"../victim", "a/../../victim", "/../victim", ".."} {
		t.Run(name, func(t *testing.T) {
			root, _, err := unpackInto(t, tarOf(t, reg(name)))
			var he *HostileError
			if !errors.As(err, &he) || !errors.Is(err, ErrHostile) {
				t.Fatalf("unpack %q: %v, want a HostileError", name, err)
			}
			assertContained(t, root)
		})
	}
}

func TestUnpackNeutralisesSymlinks(t *testing.T) {
	root, rep, err := unpackInto(t, tarOf(t,
		&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755},
		&tar.Header{Name: "bin/abs", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"},
		&tar.Header{Name: "bin/up", Typeflag: tar.TypeSymlink, Linkname: "../../../../victim"},
		&tar.Header{Name: "bin/ok", Typeflag: tar.TypeSymlink, Linkname: "tool"},
		&tar.Header{Name: "out", Typeflag: tar.TypeSymlink, Linkname: "/"},
		// Writing through a link a layer made is refused, whatever the link.
	))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"bin/abs": "../etc/passwd", "bin/up": "../victim", "bin/ok": "tool", "out": "."} {
		got, err := os.Readlink(filepath.Join(root, name))
		if err != nil || got != want {
			t.Errorf("%s -> %q (%v), want %q", name, got, err, want)
		}
	}
	if len(rep.Rewritten) != 3 {
		t.Errorf("rewritten %q, want the three links that pointed outside or were absolute", rep.Rewritten)
	}
	assertContained(t, root)
}

func TestUnpackRefusesWritingThroughSymlink(t *testing.T) {
	root, _, err := unpackInto(t,
		tarOf(t, &tar.Header{Name: "esc", Typeflag: tar.TypeSymlink, Linkname: "/"}),
		tarOf(t, reg("esc/victim")))
	if !errors.Is(err, ErrHostile) {
		t.Fatalf("unpack: %v, want ErrHostile", err)
	}
	assertContained(t, root)
}

func TestUnpackHardLinks(t *testing.T) {
	root, _, err := unpackInto(t, tarOf(t, reg("a"), &tar.Header{Name: "b", Typeflag: tar.TypeLink, Linkname: "a"}))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := os.Stat(filepath.Join(root, "a"))
	b, _ := os.Stat(filepath.Join(root, "b"))
	if a == nil || b == nil || !os.SameFile(a, b) {
		t.Errorf("b is not a hard link of a")
	}
	for _, target := range []string{"../victim", "/../victim", "missing"} {
		root, _, err := unpackInto(t, tarOf(t, &tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: target}))
		if !errors.Is(err, ErrHostile) {
			t.Errorf("hard link to %q: %v, want ErrHostile", target, err)
		}
		if _, err := os.Lstat(filepath.Join(root, "h")); err == nil {
			t.Errorf("hard link to %q was made", target)
		}
		assertContained(t, root)
	}
}

func TestUnpackSkipsDevicesAndDropsSetID(t *testing.T) {
	root, rep, err := unpackInto(t, tarOf(t,
		&tar.Header{Name: "dev/", Typeflag: tar.TypeDir, Mode: 0o755},
		&tar.Header{Name: "dev/sda", Typeflag: tar.TypeBlock, Devmajor: 8, Devminor: 0},
		&tar.Header{Name: "dev/null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3},
		&tar.Header{Name: "dev/fifo", Typeflag: tar.TypeFifo},
		&tar.Header{Name: "suid", Typeflag: tar.TypeReg, Mode: 0o4755},
	))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"dev/sda", "dev/null", "dev/fifo"} {
		if _, err := os.Lstat(filepath.Join(root, n)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s exists (%v); device nodes and FIFOs must be skipped", n, err)
		}
	}
	if len(rep.Skipped) != 3 {
		t.Errorf("skipped %q, want 3 entries", rep.Skipped)
	}
	fi, err := os.Stat(filepath.Join(root, "suid"))
	if err != nil || fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 || fi.Mode().Perm() != 0o755 {
		t.Errorf("suid: %v %v, want 0755 without set-ID bits", fi.Mode(), err)
	}
}

func TestUnpackWhiteouts(t *testing.T) {
	root, _, err := unpackInto(t,
		tarOf(t, reg("etc/a"), reg("etc/b"), reg("opt/old"), reg("keep")),
		tarOf(t, reg("etc/.wh.a"), reg("opt/.wh..wh..opq"), reg("opt/new")),
	)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			got = append(got, filepath.ToSlash(rel))
		}
		return nil
	})
	if strings.Join(got, " ") != "etc/b keep opt/new" {
		t.Errorf("files after whiteouts: %q, want etc/b keep opt/new", got)
	}
	if _, _, err := unpackInto(t, tarOf(t, reg("../.wh.victim"))); !errors.Is(err, ErrHostile) {
		t.Errorf("whiteout outside: %v, want ErrHostile", err)
	}
}

func TestInstalledPathStaysInside(t *testing.T) {
	root, _, err := unpackInto(t, tarOf(t,
		reg("usr/bin/tool"),
		&tar.Header{Name: "bin", Typeflag: tar.TypeSymlink, Linkname: "/usr/bin"},
		&tar.Header{Name: "usr/bin/t", Typeflag: tar.TypeSymlink, Linkname: "/bin/tool"},
	))
	if err != nil {
		t.Fatal(err)
	}
	in := &Installed{Root: root}
	p, err := in.Path("/usr/bin/t")
	if err != nil {
		t.Fatal(err)
	}
	real, err := filepath.EvalSymlinks(p)
	if want, _ := filepath.EvalSymlinks(filepath.Join(root, "usr", "bin", "tool")); err != nil || real != want {
		t.Errorf("Path = %q (%q, %v), want %q", p, real, err, want)
	}
	if _, err := in.Path("/../victim"); err == nil {
		t.Errorf("Path of a name outside the image: no error")
	}
}

// FuzzUnpack feeds arbitrary layers to the unpacker: whatever it does,
// nothing outside its directory changes and it does not panic.
func FuzzUnpack(f *testing.F) {
	f.Add(tarOf(f, reg("a/b"), &tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/"}))
	f.Add(tarOf(f, &tar.Header{Name: "x", Typeflag: tar.TypeSymlink, Linkname: "../../"}, reg("x/y")))
	f.Add(tarOf(f, reg("a"), &tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "a"}, reg(".wh.a")))
	f.Add(tarOf(f, &tar.Header{Name: "d/", Typeflag: tar.TypeDir}, reg("d/.wh..wh..opq"), &tar.Header{Name: "c", Typeflag: tar.TypeChar}))
	f.Fuzz(func(t *testing.T, layer []byte) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "victim"), []byte("untouched"), 0o644)
		rootDir := filepath.Join(dir, "root")
		os.Mkdir(rootDir, 0o755)
		root, err := os.OpenRoot(rootDir)
		if err != nil {
			t.Fatal(err)
		}
		defer root.Close()
		// Twice: the second pass meets what the first left.
		Unpack(context.Background(), root, bytes.NewReader(layer), &UnpackReport{})
		Unpack(context.Background(), root, bytes.NewReader(layer), &UnpackReport{})
		assertContained(t, rootDir)
		filepath.WalkDir(rootDir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.Type()&fs.ModeSymlink == 0 {
				return nil
			}
			target, _ := os.Readlink(p)
			if filepath.IsAbs(target) {
				t.Errorf("symlink %s -> %s is absolute", p, target)
			}
			return nil
		})
	})
}

// A layer that decompresses to more than MaxLayerBytes (a small gzip of
// zeros) is refused as hostile; one below the bound unpacks.
func TestUnpackRefusesZipBomb(t *testing.T) {
	old := MaxLayerBytes
	MaxLayerBytes = 1 << 20
	t.Cleanup(func() { MaxLayerBytes = old })
	bomb := func(size int) []byte {
		var tb bytes.Buffer
		tw := tar.NewWriter(&tb)
		tw.WriteHeader(&tar.Header{Name: "zeros", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(size)})
		tw.Write(make([]byte, size))
		tw.Close()
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(tb.Bytes())
		zw.Close()
		return gz.Bytes()
	}
	big := bomb(4 << 20)
	if len(big) > 64<<10 {
		t.Fatalf("the test's bomb is %d bytes compressed: not a bomb", len(big))
	}
	_, _, err := unpackInto(t, big)
	if !errors.Is(err, ErrHostile) {
		t.Fatalf("a layer of 4 MiB under a 1 MiB bound: %v, want a hostile layer", err)
	}
	root, _, err := unpackInto(t, bomb(512<<10))
	if err != nil {
		t.Fatalf("a layer under the bound: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(root, "zeros")); err != nil || fi.Size() != 512<<10 {
		t.Fatalf("the file under the bound: %v, %v", fi, err)
	}
}
