package media

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dvpc/dvpc/image"
)

// cutContent is a medium's content as a store lays it out: pages, the
// store's metadata, a program and three packs, each pack a blob named by
// its digest.
type cutContent struct {
	files map[string][]byte
	packs []string // paths of the packs, in the order they are laid out
	c     Content
}

func newCutContent() *cutContent {
	cc := &cutContent{files: map[string][]byte{}}
	add := func(p string, b []byte, mt string, exec bool) {
		cc.files[p] = b
		e := memEntry(p, b)
		e.MediaType, e.Exec = mt, exec
		cc.c.Entries = append(cc.c.Entries, e)
	}
	add("README.txt", []byte("read me\n"), "", false)
	add("index.html", []byte("<p>dvpc</p>\n"), "", false)
	add("store/oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`), "", false)
	add("store/index.json", []byte(`{"schemaVersion":2,"manifests":[]}`), "", false)
	for i := range 3 {
		b := isoRandom(uint64(50+i), 200<<10)
		p := "store/blobs/sha256/" + image.DigestOf(b).Hex()
		add(p, b, image.PackType, false)
		cc.packs = append(cc.packs, p)
	}
	meta := []byte(`{"schemaVersion":2}`)
	add("store/blobs/sha256/"+image.DigestOf(meta).Hex(), meta, image.ManifestType, false)
	add("dvpc/dvpc-linux-amd64", isoRandom(60, 100<<10), "", true)
	slices.Sort(cc.packs) // packs are laid out by path
	cc.c.Label, cc.c.ModTime = "DVPC_20261125", isoTestTime
	return cc
}

// offsets finds where each file's bytes lie in the image.
func (cc *cutContent) offsets(t *testing.T, img []byte) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for p, b := range cc.files {
		i := bytes.Index(img, b)
		if i < 0 {
			t.Fatalf("%s is not on the image", p)
		}
		out[p] = int64(i)
	}
	return out
}

// checkCut opens the medium at img, cut inside the second pack, and checks
// that everything before the cut reads whole and the rest is named.
func (cc *cutContent) checkCut(t *testing.T, img string, cutAt int64) {
	t.Helper()
	m, err := Open(img)
	if err != nil {
		t.Fatalf("open a medium cut short inside its packs: %v", err)
	}
	defer m.Close()
	ctx := context.Background()
	d, err := m.Damage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Cut() || d.End != cutAt {
		t.Errorf("damage: cut %v at %d, want cut at %d", d.Cut(), d.End, cutAt)
	}
	var names []string
	for _, f := range d.Files {
		var ce *CutError
		if !errors.As(f.Err, &ce) || ce.What != f.Path || ce.Have >= ce.Size {
			t.Errorf("%s: %v, want a CutError naming it", f.Path, f.Err)
		}
		names = append(names, f.Path)
	}
	if want := cc.packs[1:]; !slices.Equal(names, want) {
		t.Errorf("damaged files %v, want %v", names, want)
	}
	for p, want := range cc.files {
		got, err := fs.ReadFile(m.fsys, p)
		cut := slices.Contains(cc.packs[1:], p)
		switch {
		case cut && !errors.Is(err, ErrDamaged):
			t.Errorf("read %s past the cut: %v", p, err)
		case !cut && (err != nil || !bytes.Equal(got, want)):
			t.Errorf("read %s before the cut: %v", p, err)
		}
	}
	// The store reads a blob cut off as a damaged blob, naming it.
	for i, p := range cc.packs {
		dg := image.DigestOf(cc.files[p])
		b, err := m.Store.OpenBlob(ctx, dg)
		if i == 0 {
			if err != nil {
				t.Errorf("open the intact pack: %v", err)
			} else {
				b.Close()
			}
			continue
		}
		var de *image.DigestError
		if !errors.As(err, &de) || de.Want != dg || !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), dg.String()) {
			t.Errorf("open pack %d past the cut: %v", i, err)
		}
		if _, err := m.Store.StatBlob(ctx, dg); !errors.As(err, &de) {
			t.Errorf("stat pack %d past the cut: %v", i, err)
		}
	}
}

// writeCut copies the first n bytes of img to a new file.
func writeCut(t *testing.T, img []byte, n int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cut.img")
	if err := os.WriteFile(p, img[:n], 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPlacedOrder checks the order in which media lay out their files:
// the store's metadata before the programs, the programs before the packs.
func TestPlacedOrder(t *testing.T) {
	cc := newCutContent()
	es, err := cc.c.Sorted()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range Placed(es) {
		got = append(got, e.Path)
	}
	want := []string{"README.txt", "index.html"}
	for _, e := range es {
		if e.MediaType == image.ManifestType {
			want = append(want, e.Path)
		}
	}
	want = append(want, "store/index.json", "store/oci-layout", "dvpc/dvpc-linux-amd64")
	want = append(want, cc.packs...)
	if !slices.Equal(got, want) {
		t.Errorf("placed\n%v\nwant\n%v", got, want)
	}
}

func TestISOCutShort(t *testing.T) {
	cc := newCutContent()
	out := filepath.Join(t.TempDir(), "dvpc.iso")
	if err := WriteISO(context.Background(), out, cc.c); err != nil {
		t.Fatal(err)
	}
	img, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	off := cc.offsets(t, img)
	for _, p := range []string{"store/index.json", "store/oci-layout"} {
		if off[p] > off["dvpc/dvpc-linux-amd64"] || off["dvpc/dvpc-linux-amd64"] > off[cc.packs[0]] {
			t.Errorf("%s at %d, the program at %d, the first pack at %d: want the store's metadata first, the packs last",
				p, off[p], off["dvpc/dvpc-linux-amd64"], off[cc.packs[0]])
		}
	}
	cut := off[cc.packs[1]] + 100<<10
	cc.checkCut(t, writeCut(t, img, cut), cut)

	// The program is executable in Rock Ridge, and xorriso reads it so.
	x, err := OpenISO(out)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	for p, want := range map[string]fs.FileMode{"dvpc/dvpc-linux-amd64": 0o755, "README.txt": 0o644, cc.packs[0]: 0o644} {
		if fi, err := fs.Stat(x.FS(), p); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %v", p, fi.Mode(), err, want)
		}
	}
	xorriso := needTool(t, "xorriso", "xorriso")
	ls, err := exec.Command(xorriso, "-indev", out, "-lsdl", "/dvpc/dvpc-linux-amd64").CombinedOutput()
	if err != nil || !strings.Contains(string(ls), "-rwxr-xr-x") {
		t.Errorf("xorriso -lsdl of the program: %v\n%s", err, ls)
	}

	// Cut before the root directory's records: a clear error, naming the
	// damage.
	root := int64(img[16*isoBlock+156+2]) | int64(img[16*isoBlock+156+3])<<8 | int64(img[16*isoBlock+156+4])<<16
	_, err = Open(writeCut(t, img, root*isoBlock))
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "cut short") {
		t.Errorf("cut before the directories: %v", err)
	}
}

func TestUSBCutShort(t *testing.T) {
	cc := newCutContent()
	esp := Content{Label: USBESPLabel, ModTime: isoTestTime}
	for _, e := range cc.c.Entries {
		if !strings.HasPrefix(e.Path, "store/") {
			esp.Entries = append(esp.Entries, e)
		}
	}
	data := cc.c
	data.Label = USBDataLabel
	out := writeTestUSB(t, esp, data, 0)
	img, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	parts := usbParts(t, out)
	// Search the data partition only: the ESP holds the same pages and
	// program.
	dataImg := img[parts[1].start:]
	off := cc.offsets(t, dataImg)
	if off["store/index.json"] > off["dvpc/dvpc-linux-amd64"] || off["dvpc/dvpc-linux-amd64"] > off[cc.packs[0]] {
		t.Errorf("index.json at %d, the program at %d, the first pack at %d: want the store's metadata first, the packs last",
			off["store/index.json"], off["dvpc/dvpc-linux-amd64"], off[cc.packs[0]])
	}
	cut := parts[1].start + off[cc.packs[1]] + 100<<10
	cc.checkCut(t, writeCut(t, img, cut), cut)

	// Cut before the data partition's root directory.
	_, err = Open(writeCut(t, img, parts[1].start+4096))
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "cut off") {
		t.Errorf("cut before the directories: %v", err)
	}
}
