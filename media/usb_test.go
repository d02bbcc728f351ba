package media

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"

	"github.com/dvpc/dvpc/image"
	"github.com/dvpc/dvpc/internal/treecmp"
)

var usbTestTime = time.Date(2026, 11, 25, 13, 37, 42, 0, time.UTC)

// needTool fails the test when an external checker is missing.
func needTool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install the Debian package %s", name, pkg)
	}
	return p
}

// usbStore makes a store holding one snapshot of a small home with a 3 MiB
// random file, and returns the store's directory and the home.
func usbStore(t testing.TB) (storeDir, home string) {
	t.Helper()
	ctx := context.Background()
	home = t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	for p, b := range map[string][]byte{
		"notes.txt":         []byte("hello from the USB key\n"),
		"docs/report.md":    bytes.Repeat([]byte("dvpc "), 1000),
		"docs/empty":        nil,
		"photos/random.bin": big,
	} {
		if err := os.MkdirAll(filepath.Join(home, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(home, p), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	storeDir = filepath.Join(t.TempDir(), "store")
	lay, err := image.InitLayout(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := image.Init(ctx, lay, []byte("pass"), image.Argon2Params{Time: 1, MemoryKiB: 8 << 10, Threads: 1}); err != nil {
		t.Fatal(err)
	}
	r, _, err := image.Open(ctx, lay, []byte("pass"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, _, err := r.Snapshot(ctx, home, image.SnapshotOptions{
		OnError: func(p string, err error) { t.Errorf("snapshot %s: %v", p, err) },
	}); err != nil {
		t.Fatal(err)
	}
	return storeDir, home
}

// dirEntries lists every file under root as prefix/rel.
func dirEntries(t testing.TB, root, prefix string) []Entry {
	t.Helper()
	var es []Entry
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		e, err := FileEntry(path.Join(prefix, filepath.ToSlash(rel)), p)
		es = append(es, e)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func memEntry(p string, b []byte) Entry {
	return Entry{Path: p, Size: int64(len(b)), Open: func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}}
}

// usbTestContent is the content of a USB key for the store in storeDir.
func usbTestContent(t testing.TB, storeDir string) (esp, data Content) {
	esp = Content{Label: USBESPLabel, ModTime: usbTestTime, Entries: []Entry{
		memEntry("README.txt", []byte("This USB key holds a dvpc store.\r\n")),
		memEntry("index.html", []byte("<!doctype html><title>dvpc</title><p>A dvpc store.</p>\n")),
	}}
	data = Content{Label: USBDataLabel, ModTime: usbTestTime, Entries: dirEntries(t, storeDir, "store")}
	return esp, data
}

// restoreEqual opens src, restores its only snapshot and compares it with
// home.
func restoreEqual(t testing.TB, src image.Source, home string) {
	t.Helper()
	ctx := context.Background()
	r, _, err := image.Open(ctx, src, []byte("pass"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	snaps, probs, err := r.Snapshots(ctx)
	if err != nil || len(probs) > 0 || len(snaps) != 1 {
		t.Fatalf("snapshots: %v %v %v", snaps, probs, err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := r.Restore(ctx, snaps[0], image.RestoreOptions{Target: out}); err != nil {
		t.Fatal(err)
	}
	diffs, err := treecmp.Compare(home, out)
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) > 0 {
		t.Fatalf("restore differs from %s:\n%s", home, treecmp.Format(diffs))
	}
}

// cutPart copies size bytes at off of img into a new sparse file.
func cutPart(t testing.TB, img string, off, size int64) string {
	t.Helper()
	in, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	name := filepath.Join(t.TempDir(), fmt.Sprintf("part-%d.img", off))
	out, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := out.Truncate(size); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	zero := make([]byte, len(buf))
	for at := int64(0); at < size; at += int64(len(buf)) {
		n, err := in.ReadAt(buf[:min(int64(len(buf)), size-at)], off+at)
		if err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if !bytes.Equal(buf[:n], zero[:n]) {
			if _, err := out.WriteAt(buf[:n], at); err != nil {
				t.Fatal(err)
			}
		}
	}
	return name
}

// fsckClean runs fsck.fat -n and wants nothing but its banner and summary.
func fsckClean(t testing.TB, part string) {
	t.Helper()
	needTool(t, "fsck.fat", "dosfstools")
	out, err := exec.Command("fsck.fat", "-n", "-v", part).CombinedOutput()
	if err != nil {
		t.Fatalf("fsck.fat -n %s: %v\n%s", part, err, out)
	}
	for _, bad := range []string{"Fixing", "Invalid", "wrong", "uninitialized", "Truncating", "differ", "Bad", "Free cluster", "lost", "Dirty"} {
		if strings.Contains(string(out), bad) {
			t.Fatalf("fsck.fat -n %s reports a problem (%q):\n%s", part, bad, out)
		}
	}
}

// usbParts returns the offsets and sizes of the image's two partitions.
func usbParts(t testing.TB, img string) []gptPart {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	parts, err := readGPT(f, fi.Size())
	if err != nil || len(parts) != 2 {
		t.Fatalf("GPT: %v %v", parts, err)
	}
	if parts[0].typ != gptTypeESP || parts[1].typ != gptTypeBasicData {
		t.Fatalf("partition types %x %x", parts[0].typ, parts[1].typ)
	}
	return parts
}

// checkUSBImage runs the external checks on a written image and reads the
// store back through mtools and through OpenUSB.
func checkUSBImage(t *testing.T, img, home string) {
	t.Helper()
	needTool(t, "sgdisk", "gdisk")
	out, err := exec.Command("sgdisk", "-v", img).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "No problems found") {
		t.Fatalf("sgdisk -v: %v\n%s", err, out)
	}
	parts := usbParts(t, img)
	for _, p := range parts {
		if p.start%usbAlign != 0 || p.size%usbAlign != 0 || !fatGeometry(p.size).ok {
			t.Errorf("partition %d at %d, %d bytes: want 1 MiB alignment and a size go-diskfs gets right", p.index, p.start, p.size)
		}
		fsckClean(t, cutPart(t, img, p.start, p.size))
	}

	// mtools, reading the data partition in place.
	needTool(t, "mcopy", "mtools")
	dir := t.TempDir()
	loc := fmt.Sprintf("%s@@%d", img, parts[1].start)
	if out, err := exec.Command("mcopy", "-s", "-i", loc, "::store", dir).CombinedOutput(); err != nil {
		t.Fatalf("mcopy: %v\n%s", err, out)
	}
	lay, err := image.OpenLayout(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	restoreEqual(t, lay, home)
	out, err = exec.Command("mdir", "-i", loc, "::").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Volume in drive : is DVPC") {
		t.Fatalf("mdir: %v\n%s", err, out)
	}
	espLoc := fmt.Sprintf("%s@@%d", img, parts[0].start)
	out, err = exec.Command("mtype", "-i", espLoc, "::README.txt").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "dvpc store") {
		t.Fatalf("mtype README.txt: %v\n%s", err, out)
	}

	// OpenUSB, without mounting.
	u := requireUSBRestores(t, img, home)
	b, err := fs.ReadFile(u.ESPFS(), "index.html")
	if err != nil || !bytes.Contains(b, []byte("A dvpc store.")) {
		t.Fatalf("index.html on the ESP: %q %v", b, err)
	}
}

func TestWriteUSBStore(t *testing.T) {
	storeDir, home := usbStore(t)
	esp, data := usbTestContent(t, storeDir)
	img := filepath.Join(t.TempDir(), "key.img")
	if err := WriteUSB(context.Background(), img, esp, data, 0); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size()%usbStep != 0 {
		t.Errorf("chosen size %d is not a multiple of 64 MiB", fi.Size())
	}
	checkUSBImage(t, img, home)

	// The files read back are the files written, at their sizes.
	u, err := OpenUSB(img)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	for _, e := range data.Entries {
		b, err := readEntry(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := fs.ReadFile(u.FS(), e.Path)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("%s: read %d bytes, want %d (%v)", e.Path, len(got), len(b), err)
		}
	}
}

func readEntry(e Entry) ([]byte, error) {
	r, err := e.Open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// smallUSBContent has the awkward names and sizes: long names, spaces,
// several dots, an empty file, a directory spanning many clusters, sizes
// around the cluster size.
func smallUSBContent() (esp, data Content) {
	esp = Content{Label: USBESPLabel, ModTime: usbTestTime, Entries: []Entry{
		memEntry("README.txt", []byte("read me\n")),
		memEntry("index.html", []byte("<p>dvpc</p>\n")),
		memEntry("dvpc/dvpc-linux-amd64", bytes.Repeat([]byte{0x7f, 'E', 'L', 'F'}, 3000)),
	}}
	// Enough names in the root to take several clusters.
	for i := range 12 {
		esp.Entries = append(esp.Entries, memEntry(fmt.Sprintf("page-%02d-of-the-manual.html", i), []byte{byte(i)}))
	}
	es := []Entry{
		memEntry("store/oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)),
		memEntry("store/index.json", []byte(`{"schemaVersion":2,"manifests":[]}`)),
		memEntry("store/.dvpc-tmp.lock", nil),
		memEntry("notes/my file.txt", []byte("spaces\n")),
		memEntry("notes/a.b.c.d", []byte("dots\n")),
		memEntry("notes/UPPER.TXT", []byte("upper\n")),
		memEntry("notes/"+strings.Repeat("long-name-", 10), []byte("a hundred bytes of name\n")),
		// Names whose 8.3 names need care.
		memEntry("names/index.html", []byte("html")),
		memEntry("names/index.htm", []byte("htm")),
		memEntry("names/my file", []byte("1")),
		memEntry("names/myfile", []byte("2")),
		memEntry("names/README~1.TXT", []byte("exact")),
		memEntry("names/readme.txt", []byte("lower")),
		memEntry("names/a~1", []byte("tilde")),
		memEntry("names/.profile", []byte("dot")),
		memEntry("names/caf\u00e9 cr\u00e8me.txt", []byte("utf-8")),
		memEntry("names/BOOTX64.EFI", []byte("exact 8.3")),
		memEntry("names/..x..y", []byte("dots")),
	}
	for i, n := range []int{1, 511, 512, 513, 4095, 4096, 4097, 70000} {
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(i + j*7)
		}
		es = append(es, memEntry(fmt.Sprintf("sizes/%d.bin", n), b))
	}
	for i := range 40 {
		sum := sha256.Sum256([]byte{byte(i)})
		es = append(es, memEntry("store/blobs/sha256/"+hex.EncodeToString(sum[:]), sum[:]))
	}
	data = Content{Label: "DVPC_20261125", ModTime: usbTestTime, Entries: es}
	return esp, data
}

func writeTestUSB(t testing.TB, esp, data Content, size int64) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "key.img")
	if err := WriteUSB(context.Background(), img, esp, data, size); err != nil {
		t.Fatal(err)
	}
	return img
}

func TestUSBReader(t *testing.T) {
	esp, data := smallUSBContent()
	img := writeTestUSB(t, esp, data, 0)
	checkContentOnImage(t, img, esp, data)
}

// checkContentOnImage reads every file back through OpenUSB and mtools and
// runs fstest.TestFS on both partitions.
func checkContentOnImage(t *testing.T, img string, esp, data Content) {
	t.Helper()
	u, err := OpenUSB(img)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	parts := usbParts(t, img)
	for i, c := range []Content{esp, data} {
		fsys := []fs.FS{u.ESPFS(), u.FS()}[i]
		var names []string
		for _, e := range c.Entries {
			names = append(names, e.Path)
			want, _ := readEntry(e)
			got, err := fs.ReadFile(fsys, e.Path)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s: read %d bytes, want %d (%v)", e.Path, len(got), len(want), err)
			}
			f, err := fsys.Open(e.Path)
			if err != nil {
				t.Fatal(err)
			}
			fi, _ := f.Stat()
			if fi.Size() != e.Size || !fi.ModTime().Equal(usbTestTime.Truncate(2*time.Second)) {
				t.Errorf("%s: size %d, mtime %v", e.Path, fi.Size(), fi.ModTime())
			}
			ra, ok := f.(io.ReaderAt)
			_, ok2 := f.(io.Seeker)
			if !ok || !ok2 {
				t.Fatalf("%s: %T is not an io.ReaderAt and io.Seeker", e.Path, f)
			}
			// Never a byte past the size.
			p := make([]byte, 10)
			if n, err := ra.ReadAt(p, e.Size); n != 0 || err != io.EOF {
				t.Errorf("%s: ReadAt at the end: %d %v", e.Path, n, err)
			}
			if e.Size > 0 {
				if n, err := ra.ReadAt(p, e.Size-1); n != 1 || err != io.EOF || p[0] != want[len(want)-1] {
					t.Errorf("%s: ReadAt of the last byte: %d %v", e.Path, n, err)
				}
			}
			f.Close()
		}
		if err := fstest.TestFS(fsys, names...); err != nil {
			t.Fatal(err)
		}
		// mtools lists the same long names.
		needTool(t, "mdir", "mtools")
		cmd := exec.Command("mdir", "-/", "-b", "-i", fmt.Sprintf("%s@@%d", img, parts[i].start), "::")
		cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("mdir: %v\n%s", err, out)
		}
		var listed []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l = strings.TrimPrefix(strings.TrimSpace(l), "::/"); l != "" && !strings.HasSuffix(l, "/") {
				listed = append(listed, l)
			}
		}
		slices.Sort(listed)
		slices.Sort(names)
		if !slices.Equal(listed, names) {
			t.Errorf("mdir lists\n%q\nwant\n%q", listed, names)
		}
		fsckClean(t, cutPart(t, img, parts[i].start, parts[i].size))
	}
	if parts[1].name != data.Label || parts[0].name != esp.Label {
		t.Errorf("GPT names %q %q", parts[0].name, parts[1].name)
	}
}

func TestWriteUSBReproducible(t *testing.T) {
	esp, data := smallUSBContent()
	a := writeTestUSB(t, esp, data, 0)
	b := writeTestUSB(t, esp, data, 0)
	if ha, hb := fileHash(t, a), fileHash(t, b); ha != hb {
		t.Fatalf("two images of the same content differ: %x %x", ha, hb)
	}
	// Every timestamp is the content's, whatever the clock said.
	f, err := os.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	wantDate, wantTime, _ := fatStamp(usbTestTime)
	var ids []uint32
	for _, p := range usbParts(t, a) {
		v, err := readFATVolume(f, p.start, p.size)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, v.volumeID)
		var walk func(c uint32)
		walk = func(c uint32) {
			raw, err := v.dirRaw(c)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range raw {
				b := make([]byte, 32)
				if _, err := f.ReadAt(b, e.off); err != nil {
					t.Fatal(err)
				}
				for _, o := range []int{14, 22} {
					if got := uint16(b[o]) | uint16(b[o+1])<<8; got != wantTime {
						t.Errorf("%s: time at %d is %#x, want %#x", e.name, o, got, wantTime)
					}
				}
				for _, o := range []int{16, 18, 24} {
					if got := uint16(b[o]) | uint16(b[o+1])<<8; got != wantDate {
						t.Errorf("%s: date at %d is %#x, want %#x", e.name, o, got, wantDate)
					}
				}
				if e.isDir() && !e.isDot() {
					walk(e.cluster)
				}
			}
		}
		walk(v.rootCluster)
	}
	if ids[0] == 0 || ids[1] == 0 || ids[0] == ids[1] {
		t.Errorf("volume serials %08x %08x", ids[0], ids[1])
	}
	// Another time is another image.
	data.ModTime = data.ModTime.Add(time.Hour)
	if c := writeTestUSB(t, esp, data, 0); fileHash(t, c) == fileHash(t, a) {
		t.Error("a different ModTime gave the same image")
	}
}

func fileHash(t testing.TB, name string) [32]byte {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

// TestFATGeometry checks that fatGeometry says what go-diskfs does: at the
// sizes it calls broken, fsck.fat rejects the FAT go-diskfs writes; at the
// others fsck.fat accepts it and the layout is the predicted one.
func TestFATGeometry(t *testing.T) {
	needTool(t, "fsck.fat", "dosfstools")
	for _, mib := range []int64{40, 63, 64, 100, 128, 129, 194, 256, 259, 260, 261, 300, 505, 512, 1024} {
		size := mib << 20
		g := fatGeometry(size)
		name := filepath.Join(t.TempDir(), "fat.img")
		f, err := os.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		if _, err := fat32.Create(file.New(f, false), size, 0, 512, "T", true); err != nil {
			t.Fatal(err)
		}
		v, err := readFATVolume(f, 0, size)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		out, err := exec.Command("fsck.fat", "-n", name).CombinedOutput()
		if g.ok != (err == nil) {
			t.Errorf("%d MiB: fatGeometry says ok=%v, fsck.fat says %v:\n%s", mib, g.ok, err, out)
		}
		if !g.ok && !strings.Contains(string(out), "only space for") {
			t.Errorf("%d MiB: fsck.fat rejects it for another reason:\n%s", mib, out)
		}
		if g.ok && (v.clusterSize != g.clusterSize || int64(v.clusters) != g.clusters || v.fatBytes != g.fatSectors*512) {
			t.Errorf("%d MiB: go-diskfs made %d clusters of %d bytes and %d-byte FATs, predicted %+v",
				mib, v.clusters, v.clusterSize, v.fatBytes, g)
		}
	}
	for _, mib := range []int64{64, 129, 194, 259, 505} {
		if fatGeometry(mib << 20).ok {
			t.Errorf("%d MiB is one of go-diskfs's broken sizes", mib)
		}
		if s := fatSafeSize(mib << 20); s != (mib-1)<<20 {
			t.Errorf("fatSafeSize(%d MiB) = %d", mib, s)
		}
	}
	if !fatGeometry(USBESPSize).ok {
		t.Error("the default ESP size is broken")
	}
	// The 16-bit sector count per FAT ends at 256 GiB.
	if fatGeometry(300 << 30).ok {
		t.Error("300 GiB fits go-diskfs's 16-bit FAT size")
	}
}

// TestUSBPlan checks that every layout the planner makes is one go-diskfs
// writes correctly, over many image sizes.
func TestUSBPlan(t *testing.T) {
	esp, data := smallUSBContent()
	espT, dataT, err := usbTrees(&esp, &data)
	if err != nil {
		t.Fatal(err)
	}
	stepped := 0
	for mib := int64(310); mib < 40<<10; mib += 7 {
		size := mib<<20 + 4096 // not a whole number of MiB
		p, err := planUSB(espT, dataT, size)
		if err != nil {
			t.Fatalf("%d MiB: %v", mib, err)
		}
		if !fatGeometry(p.espSize).ok || !fatGeometry(p.dataSize).ok {
			t.Fatalf("%d MiB: plan %+v uses a broken size", mib, p)
		}
		if p.espStart != usbAlign || p.dataStart != p.espStart+p.espSize || p.dataStart%usbAlign != 0 ||
			p.dataSize%usbAlign != 0 || p.dataStart+p.dataSize > p.size-usbGPTEnd || p.espSize != USBESPSize {
			t.Fatalf("%d MiB: plan %+v", mib, p)
		}
		if p.dataStart+p.dataSize < (p.size-usbGPTEnd)/usbAlign*usbAlign {
			stepped++
		}
	}
	if stepped == 0 {
		t.Error("no size needed stepping down; the guard is not exercised")
	}
	// Automatic sizes are multiples of 64 MiB with room to spare.
	p, err := planUSB(espT, dataT, 0)
	if err != nil || p.size%usbStep != 0 || p.size > USBESPSize+usbHeadroom+3*usbStep {
		t.Fatalf("automatic plan %+v %v", p, err)
	}
	// Big keys keep the data partition at 256 GiB at most.
	p, err = planUSB(espT, dataT, 1<<40)
	if err != nil || p.dataSize > usbMaxData || !fatGeometry(p.dataSize).ok {
		t.Fatalf("1 TiB plan %+v %v", p, err)
	}
}

// TestWriteUSBSteppedSize writes an image whose data partition would be a
// broken size (505 MiB) and checks the one written.
func TestWriteUSBSteppedSize(t *testing.T) {
	esp, data := smallUSBContent()
	img := writeTestUSB(t, esp, data, (2+USBESPSize>>20+505)<<20)
	parts := usbParts(t, img)
	if parts[1].size != 504<<20 {
		t.Errorf("data partition of %d bytes, want 504 MiB", parts[1].size)
	}
	fsckClean(t, cutPart(t, img, parts[1].start, parts[1].size))
}

func TestWriteUSBRefusals(t *testing.T) {
	ctx := context.Background()
	esp, data := smallUSBContent()

	// An existing file is never replaced.
	out := filepath.Join(t.TempDir(), "key.img")
	if err := os.WriteFile(out, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteUSB(ctx, out, esp, data, 0); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("existing out: %v", err)
	}
	if b, _ := os.ReadFile(out); string(b) != "precious" {
		t.Fatal("existing out was changed")
	}
	if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}

	// Content that does not fit names the sizes.
	big := data
	big.Entries = append(slices.Clone(data.Entries), Entry{Path: "store/huge", Size: 600 << 20,
		Open: func() (io.ReadCloser, error) { return nil, errors.New("must not be read") }})
	out = filepath.Join(t.TempDir(), "key.img")
	err := WriteUSB(ctx, out, esp, big, 800<<20)
	var tl *ErrTooLarge
	if !errors.As(err, &tl) || !strings.Contains(err.Error(), strconv.Itoa(800<<20)) || tl.Need <= 600<<20 {
		t.Fatalf("too large: %v", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("an image was left for content that does not fit")
	}
	if err := WriteUSB(ctx, out, esp, data, 100<<20); !errors.As(err, &tl) {
		t.Fatalf("an image smaller than the ESP: %v", err)
	}
	// With size 0 it fits.
	if err := WriteUSB(ctx, out, esp, big, 0); err == nil || !strings.Contains(err.Error(), "must not be read") {
		t.Fatalf("automatic size for big content: %v", err)
	}

	// Files of 4 GiB and names FAT or go-diskfs cannot hold.
	for _, es := range [][]Entry{
		{{Path: "store/huge", Size: 4 << 30}},
		{memEntry("x:y", nil)},
		{memEntry("a\x01b", nil)},
		{memEntry("\xff", nil)},
		{memEntry("trailing.", nil)},
		{memEntry(" leading", nil)},
		{memEntry("a.txt", nil), memEntry("A.TXT", nil)},
		{memEntry("a", nil), memEntry("a/b", nil)},
		{memEntry("store", nil), memEntry("STORE/x", nil)},
		{memEntry("d/"+strings.Repeat("x", 90)+"/y", nil), memEntry("D/"+strings.Repeat("X", 90)+"/z", nil)},
	} {
		bad := Content{Label: USBDataLabel, ModTime: usbTestTime, Entries: es}
		out := filepath.Join(t.TempDir(), "key.img")
		if err := WriteUSB(ctx, out, esp, bad, 0); err == nil {
			t.Errorf("%v: accepted", es[len(es)-1].Path)
		} else if _, err := os.Stat(out); err == nil {
			t.Errorf("%v: an image was left", es[len(es)-1].Path)
		}
	}

	// A reader that gives too few or too many bytes fails the write.
	for _, e := range []Entry{
		{Path: "short", Size: 10, Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("12345")), nil }},
		{Path: "long", Size: 3, Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("12345")), nil }},
	} {
		bad := Content{Label: USBDataLabel, ModTime: usbTestTime, Entries: []Entry{e}}
		out := filepath.Join(t.TempDir(), "key.img")
		if err := WriteUSB(ctx, out, esp, bad, 0); err == nil || !strings.Contains(err.Error(), "bytes") {
			t.Errorf("%s: %v", e.Path, err)
		}
	}

	// Cancelled.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := WriteUSB(cctx, filepath.Join(t.TempDir(), "key.img"), esp, data, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

// tinyUSB returns a USB image with 128 KiB partitions, far below what
// WriteUSB makes: a seed for fuzzing.
func tinyUSB(t testing.TB) []byte {
	t.Helper()
	esp := Content{Label: USBESPLabel, ModTime: usbTestTime, Entries: []Entry{
		memEntry("README.txt", []byte("read me\n")),
		memEntry("index.html", []byte("<p>dvpc</p>\n")),
	}}
	sum := sha256.Sum256([]byte("blob"))
	data := Content{Label: USBDataLabel, ModTime: usbTestTime, Entries: []Entry{
		memEntry("store/oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)),
		memEntry("store/index.json", []byte(`{"schemaVersion":2,"manifests":[]}`)),
		memEntry("store/blobs/sha256/"+hex.EncodeToString(sum[:]), bytes.Repeat([]byte("blob"), 300)),
		memEntry("store/empty", nil),
		memEntry("notes/a long name with spaces.txt", []byte("x")),
	}}
	espT, dataT, err := usbTrees(&esp, &data)
	if err != nil {
		t.Fatal(err)
	}
	const part = 128 << 10
	p := usbPlan{espStart: 34 * 512, espSize: part, dataStart: 34*512 + part, dataSize: part}
	p.size = p.dataStart + p.dataSize + 33*512
	f, err := os.Create(filepath.Join(t.TempDir(), "tiny.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(p.size); err != nil {
		t.Fatal(err)
	}
	if err := buildUSB(context.Background(), f, p, espT, dataT); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// exerciseFS walks fsys and reads what it finds, within a budget, checking
// that no file yields more than its size.
func exerciseFS(t *testing.T, fsys fs.FS) {
	seen := 0
	fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if seen++; seen > 300 {
			return fs.SkipAll
		}
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		f, err := fsys.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			t.Fatalf("stat %s: %v", p, err)
		}
		n, _ := io.Copy(io.Discard, io.LimitReader(f, 1<<20))
		if n > fi.Size() {
			t.Fatalf("%s: read %d bytes of a %d-byte file", p, n, fi.Size())
		}
		if ra, ok := f.(io.ReaderAt); ok {
			buf := make([]byte, 700)
			for _, off := range []int64{0, fi.Size() / 2, fi.Size() - 1, fi.Size()} {
				if n, _ := ra.ReadAt(buf, max(0, off)); int64(n) > max(0, fi.Size()-max(0, off)) {
					t.Fatalf("%s: ReadAt at %d gave %d bytes of a %d-byte file", p, off, n, fi.Size())
				}
			}
		}
		return nil
	})
}

func FuzzOpenUSB(f *testing.F) {
	img := tinyUSB(f)
	f.Add(img)
	for _, n := range []int{0, 1, 512, 1024, 34 * 512, 34*512 + 600, len(img) / 2, len(img) - 33*512 - 512, len(img) - 512} {
		f.Add(img[:n])
	}
	// The data partition alone, so that mutations reach the FAT reader
	// without having to mend the GPT's checksums.
	f.Add(img[34*512+128<<10 : 34*512+256<<10])
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		esp, data, _, err := openUSBParts(r, int64(len(b)))
		if err != nil {
			if !errors.Is(err, ErrNotUSB) {
				t.Fatalf("error not wrapping ErrNotUSB: %v", err)
			}
		} else {
			exerciseFS(t, esp)
			exerciseFS(t, data)
		}
		if v, err := readFATVolume(r, 0, int64(len(b))); err == nil {
			exerciseFS(t, newFATFS(v))
		}
	})
}

// TestOpenUSBDamaged opens truncated, garbage and corrupted images: each is
// an error (or, where the damage spares what is read, a working image),
// never a panic or a hang.
func TestOpenUSBDamaged(t *testing.T) {
	esp, data := smallUSBContent()
	img := writeTestUSB(t, esp, data, 0)
	parts := usbParts(t, img)
	dataEnd := parts[1].start + parts[1].size

	open := func(name string) error {
		t.Helper()
		u, err := OpenUSB(name)
		if err != nil {
			return err
		}
		defer u.Close()
		exerciseFS(t, u.FS())
		exerciseFS(t, u.ESPFS())
		return nil
	}
	for _, n := range []int64{0, 100, 512, 1024, 17408, usbAlign, usbAlign + 100<<10, parts[1].start - 512} {
		err := open(cutPart(t, img, 0, n))
		if !errors.Is(err, ErrNotUSB) {
			t.Errorf("truncated to %d bytes: %v", n, err)
		}
	}
	// Cut inside the data partition, after its boot sector: it opens as
	// far as it goes and says where it was cut.
	for _, n := range []int64{parts[1].start + 4096, parts[1].start + usbAlign, dataEnd - 512} {
		u, err := OpenUSB(cutPart(t, img, 0, n))
		if err != nil {
			t.Errorf("truncated to %d bytes: %v", n, err)
			continue
		}
		if have, want := u.Size(); have != n || want != dataEnd {
			t.Errorf("truncated to %d bytes: size %d of %d, want %d of %d", n, have, want, n, dataEnd)
		}
		exerciseFS(t, u.FS())
		u.Close()
	}
	// Cut after the data partition, only the backup GPT is lost.
	if err := open(cutPart(t, img, 0, dataEnd)); err != nil {
		t.Errorf("truncated after the data partition: %v", err)
	}

	garbage := filepath.Join(t.TempDir(), "garbage")
	rng := rand.New(rand.NewPCG(3, 4))
	b := make([]byte, 1<<20)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	for _, c := range [][]byte{b, make([]byte, 1<<20), []byte("not a disk\n")} {
		if err := os.WriteFile(garbage, c, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := open(garbage); !errors.Is(err, ErrNotUSB) || !strings.Contains(err.Error(), "not a dvpc USB image") {
			t.Errorf("garbage: %v", err)
		}
	}
	if _, err := OpenUSB(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}

	// damaged copies the image and changes it.
	damaged := func(change func(f *os.File, v *fatVolume, fsys *fatFS)) string {
		t.Helper()
		name := cutPart(t, img, 0, parts[1].start+parts[1].size+usbAlign)
		f, err := os.OpenFile(name, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		v, err := readFATVolume(f, parts[1].start, parts[1].size)
		if err != nil {
			t.Fatal(err)
		}
		change(f, v, newFATFS(v))
		return name
	}
	put32 := func(f *os.File, off int64, x uint32) {
		if _, err := f.WriteAt([]byte{byte(x), byte(x >> 8), byte(x >> 16), byte(x >> 24)}, off); err != nil {
			t.Fatal(err)
		}
	}
	entry := func(fsys *fatFS, p string) fatRawEntry {
		e, err := fsys.lookup("test", p)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}

	// The primary GPT header lost: the backup is read.
	name := damaged(func(f *os.File, v *fatVolume, fsys *fatFS) {
		if _, err := f.WriteAt(make([]byte, 512), 512); err != nil {
			t.Fatal(err)
		}
	})
	if err := open(name); err != nil {
		t.Errorf("without the primary GPT: %v", err)
	}

	// The data partition's boot sector lost.
	name = damaged(func(f *os.File, v *fatVolume, fsys *fatFS) {
		if _, err := f.WriteAt(make([]byte, 512), parts[1].start); err != nil {
			t.Fatal(err)
		}
	})
	if err := open(name); !errors.Is(err, ErrNotUSB) {
		t.Errorf("without a boot sector: %v", err)
	}

	// A cluster chain that loops, a file longer than its chain, and a
	// directory that contains itself.
	name = damaged(func(f *os.File, v *fatVolume, fsys *fatFS) {
		c := entry(fsys, "sizes/70000.bin").cluster + 3
		for k := range v.numFATs {
			put32(f, v.base+v.fatOff+k*v.fatBytes+int64(c)*4, c-2)
		}
		put32(f, entry(fsys, "sizes/4097.bin").off+28, 1<<20)
		s := entry(fsys, "store")
		b := make([]byte, 2)
		if _, err := f.WriteAt(b, s.off+20); err != nil {
			t.Fatal(err)
		}
		b[0] = byte(v.rootCluster)
		if _, err := f.WriteAt(b, s.off+26); err != nil {
			t.Fatal(err)
		}
	})
	u, err := OpenUSB(name)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	for _, p := range []string{"sizes/70000.bin", "sizes/4097.bin", "store/store/store/oci-layout"} {
		if _, err := fs.ReadFile(u.FS(), p); err == nil {
			t.Errorf("%s: read from a damaged file system", p)
		}
	}
	if b, err := fs.ReadFile(u.FS(), "sizes/513.bin"); err != nil || len(b) != 513 {
		t.Errorf("an undamaged file: %d %v", len(b), err)
	}
	if err := fs.WalkDir(u.FS(), ".", func(string, fs.DirEntry, error) error { return nil }); err != nil {
		t.Errorf("walk: %v", err)
	}
}

// TestFATReaderInterop reads a FAT32 made by mkfs.fat and filled by mtools,
// and checks that the data partition dvpc writes takes new files from
// mtools and stays clean.
func TestFATReaderInterop(t *testing.T) {
	needTool(t, "mkfs.fat", "dosfstools")
	needTool(t, "mcopy", "mtools")
	if len(fatCP437) != 128 {
		t.Fatalf("code page 437 table has %d entries", len(fatCP437))
	}
	src := t.TempDir()
	files := map[string][]byte{
		"a long name with spaces.txt":              []byte("spaces"),
		"caf\u00e9/cr\u00e8me br\u00fbl\u00e9e.md": []byte("utf-8"),
		"README.TXT":             []byte("short"),
		"lower.txt":              []byte("lower"),
		"deep/er/still/file.bin": bytes.Repeat([]byte{1, 2, 3}, 70000),
		"empty":                  nil,
	}
	for p, b := range files {
		if err := os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, p), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mtools := func(args ...string) {
		t.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	img := filepath.Join(t.TempDir(), "fat.img")
	mtools("mkfs.fat", "-F", "32", "-C", img, strconv.Itoa(100<<10))
	ents, _ := os.ReadDir(src)
	for _, e := range ents {
		mtools("mcopy", "-s", "-i", img, filepath.Join(src, e.Name()), "::")
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := readFATVolume(f, 0, 100<<20)
	if err != nil {
		t.Fatal(err)
	}
	fsys := newFATFS(v)
	var names []string
	for p, want := range files {
		names = append(names, p)
		got, err := fs.ReadFile(fsys, p)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes, want %d (%v)", p, len(got), len(want), err)
		}
	}
	if err := fstest.TestFS(fsys, names...); err != nil {
		t.Fatal(err)
	}

	// The other way: mtools writes into a key dvpc made.
	esp, data := smallUSBContent()
	key := writeTestUSB(t, esp, data, 0)
	parts := usbParts(t, key)
	loc := fmt.Sprintf("%s@@%d", key, parts[1].start)
	mtools("mmd", "-i", loc, "::added")
	mtools("mcopy", "-i", loc, filepath.Join(src, "deep/er/still/file.bin"), "::added/new file.bin")
	mtools("mcopy", "-i", loc, filepath.Join(src, "lower.txt"), "::store/blobs/sha256/lower.txt")
	fsckClean(t, cutPart(t, key, parts[1].start, parts[1].size))
	u, err := OpenUSB(key)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	for p, want := range map[string][]byte{"added/new file.bin": files["deep/er/still/file.bin"], "store/blobs/sha256/lower.txt": files["lower.txt"]} {
		if got, err := fs.ReadFile(u.FS(), p); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s written by mtools: %d bytes (%v)", p, len(got), err)
		}
	}
}

// requireUSBRestores opens the USB image or device at path without
// mounting, requires its store to restore identically to home, and
// returns it, closed when the test ends.
func requireUSBRestores(t *testing.T, path, home string) *USB {
	t.Helper()
	u, err := OpenUSB(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	src, err := image.OpenFSSource(u.FS(), "store")
	if err != nil {
		t.Fatal(err)
	}
	restoreEqual(t, src, home)
	return u
}
