package initramfs

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

type entry struct {
	name  string
	mode  fs.FileMode
	data  string // file contents, or a symlink's target
	major uint32
	minor uint32
}

var sample = []entry{
	{name: "dev", mode: fs.ModeDir | 0o755},
	{name: "dev/console", mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, major: 5, minor: 1},
	{name: "etc", mode: fs.ModeDir | 0o755},
	{name: "etc/modules.load", mode: 0o644, data: "virtio_blk\nisofs\n"},
	{name: "init", mode: 0o755, data: strings.Repeat("dvpc-init\x00", 1001)},
	{name: "empty", mode: 0o600},
	{name: "lib", mode: fs.ModeDir | 0o755},
	{name: "lib/odd", mode: 0o640, data: "abc"},
	{name: "sbin", mode: fs.ModeSymlink | 0o777, data: "lib"},
}

func writeSample(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, e := range sample {
		var err error
		switch {
		case e.mode.IsDir():
			err = w.Dir("/"+e.name, e.mode)
		case e.mode&fs.ModeSymlink != 0:
			err = w.Symlink(e.name, e.data)
		case e.mode&fs.ModeCharDevice != 0:
			err = w.CharDevice("/"+e.name, e.mode, e.major, e.minor)
		default:
			err = w.File(e.name, e.mode, int64(len(e.data)), strings.NewReader(e.data))
		}
		if err != nil {
			t.Fatalf("add %s: %v", e.name, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%4 != 0 {
		t.Fatalf("archive length %d not 4-byte aligned", buf.Len())
	}
	if !bytes.Contains(buf.Bytes(), []byte(trailer+"\x00")) {
		t.Fatal("archive has no trailer")
	}
	return buf.Bytes()
}

func TestWriterReadBack(t *testing.T) {
	arch := writeSample(t)
	r := NewReader(bytes.NewReader(arch))
	for i, want := range sample {
		h, err := r.Next()
		if err != nil {
			t.Fatalf("entry %d (%s): %v", i, want.name, err)
		}
		if h.Name != want.name || h.FileMode() != want.mode || h.Major != want.major || h.Minor != want.minor {
			t.Errorf("entry %d: got %s %v %d,%d; want %s %v %d,%d", i, h.Name, h.FileMode(), h.Major, h.Minor,
				want.name, want.mode, want.major, want.minor)
		}
		data, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("read %s: %v", h.Name, err)
		}
		if string(data) != want.data {
			t.Errorf("%s: data %q, want %q", h.Name, data, want.data)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("after last entry: %v, want io.EOF", err)
	}
}

func TestWriterShortFile(t *testing.T) {
	w := NewWriter(io.Discard)
	err := w.File("init", 0o755, 10, strings.NewReader("short"))
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short file: %v, want io.ErrUnexpectedEOF", err)
	}
	for _, bad := range []string{"", "a\x00b", "/TRAILER!!!"} {
		if err := w.Dir(bad, 0o755); err == nil {
			t.Errorf("name %q accepted", bad)
		}
	}
}

func TestReaderTruncated(t *testing.T) {
	arch := writeSample(t)
	for _, n := range []int{0, 50, 200, len(arch) - 120} {
		r := NewReader(bytes.NewReader(arch[:n]))
		var err error
		for err == nil {
			if _, err = r.Next(); err == nil {
				_, err = io.Copy(io.Discard, r)
			}
		}
		if err == io.EOF {
			t.Errorf("archive cut at %d read as complete", n)
		}
	}
}

// TestWriterSystemCpio reads the archive with GNU cpio, the tool the kernel's
// own initramfs format follows.
func TestWriterSystemCpio(t *testing.T) {
	cpio := needTool(t, "cpio", "cpio")
	arch := writeSample(t)

	list := exec.Command(cpio, "-t", "-v", "--quiet")
	list.Stdin = bytes.NewReader(arch)
	out, err := list.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -t: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(sample) {
		t.Fatalf("cpio -t lists %d entries, want %d:\n%s", len(lines), len(sample), out)
	}
	for i, e := range sample {
		if !strings.HasSuffix(lines[i], " "+e.name) && !strings.Contains(lines[i], " "+e.name+" -> ") {
			t.Errorf("cpio -t line %d %q, want %s", i, lines[i], e.name)
		}
	}
	if !strings.HasPrefix(lines[1], "crw-------") || !strings.Contains(lines[1], "5,") {
		t.Errorf("console listed as %q, want a 5,1 character device", lines[1])
	}

	// Extract everything but the device node, which only root may create.
	dir := t.TempDir()
	var pats []string
	for _, e := range sample {
		if e.mode&fs.ModeDevice == 0 {
			pats = append(pats, e.name)
		}
	}
	ext := exec.Command(cpio, append([]string{"-idv", "--no-absolute-filenames", "--quiet"}, pats...)...)
	ext.Dir = dir
	ext.Stdin = bytes.NewReader(arch)
	if out, err := ext.CombinedOutput(); err != nil {
		t.Fatalf("cpio -idv: %v\n%s", err, out)
	}
	for _, e := range sample {
		p := filepath.Join(dir, e.name)
		switch {
		case e.mode&fs.ModeDevice != 0:
		case e.mode&fs.ModeSymlink != 0:
			got, err := os.Readlink(p)
			if err != nil || got != e.data {
				t.Errorf("%s: link %q, %v; want %q", e.name, got, err, e.data)
			}
		default:
			fi, err := os.Lstat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != e.mode {
				t.Errorf("%s: mode %v, want %v", e.name, fi.Mode(), e.mode)
			}
			if !e.mode.IsDir() {
				got, err := os.ReadFile(p)
				if err != nil || string(got) != e.data {
					t.Errorf("%s: %d bytes, %v; want %d bytes", e.name, len(got), err, len(e.data))
				}
			}
		}
	}
}

func needTool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install the Debian package %s (testdata/install-deps.sh)", name, pkg)
	}
	return p
}

func FuzzReadNewc(f *testing.F) {
	f.Add(writeSample(f))
	f.Add([]byte(newcMagic + strings.Repeat("0", 104)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data))
		for range 10000 {
			h, err := r.Next()
			if err != nil {
				return
			}
			if h.Size < 0 || len(h.Name) >= maxNameSize {
				t.Fatalf("bad header %+v", h)
			}
			n, err := io.Copy(io.Discard, r)
			if err == nil && n != h.Size {
				t.Fatalf("%s: read %d bytes, header says %d", h.Name, n, h.Size)
			}
			if err != nil {
				return
			}
		}
	})
}
