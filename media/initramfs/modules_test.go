package initramfs

import (
	"bytes"
	"compress/gzip"
	"errors"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// fakeKo is an ELF-free stand-in for a module file: junk around a
// .modinfo-like run of NUL-terminated key=value strings.
func fakeKo(name, depends string) []byte {
	return []byte("\x7fELF\x02\x01junk-notdepends=x\x00license=GPL\x00depends=" + depends +
		"\x00name=" + name + "\x00vermagic=6.1.0 SMP mod_unload\x00\xff\xfe")
}

func zstdBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

func xzBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := xz.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func names(ms []Module) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name+"="+m.Path)
	}
	return out
}

// checkOrder asserts every module comes after the ones it depends on.
func checkOrder(t *testing.T, ms []Module, deps map[string][]string) {
	t.Helper()
	pos := map[string]int{}
	for i, m := range ms {
		if _, dup := pos[m.Name]; dup {
			t.Errorf("%s listed twice", m.Name)
		}
		pos[m.Name] = i
	}
	for m, ds := range deps {
		for _, d := range ds {
			if pm, ok := pos[m]; ok && pos[d] > pm {
				t.Errorf("%s placed before its dependency %s: %v", m, d, names(ms))
			}
		}
	}
}

func TestClosureModulesDep(t *testing.T) {
	fsys := fstest.MapFS{
		"modules.dep": {Data: []byte(strings.Join([]string{
			"kernel/drivers/usb/storage/usb-storage.ko: kernel/drivers/scsi/scsi_mod.ko kernel/drivers/usb/core/usbcore.ko kernel/drivers/usb/common/usb-common.ko",
			"kernel/drivers/scsi/scsi_mod.ko: kernel/drivers/scsi/scsi_common.ko",
			"kernel/drivers/scsi/scsi_common.ko:",
			"kernel/drivers/usb/core/usbcore.ko: kernel/drivers/usb/common/usb-common.ko",
			"kernel/drivers/usb/common/usb-common.ko:",
			"kernel/drivers/scsi/sr_mod.ko: kernel/drivers/scsi/scsi_mod.ko kernel/drivers/cdrom/cdrom.ko kernel/drivers/scsi/scsi_common.ko",
			"/lib/modules/6.1.0-56-amd64/kernel/drivers/cdrom/cdrom.ko:",
			"kernel/fs/nls/nls_cp437.ko:",
			"kernel/unused.ko:",
		}, "\n") + "\n")},
		"modules.builtin": {Data: []byte("kernel/fs/vfat/vfat.ko\n")},
	}
	for _, f := range []string{"usb/storage/usb-storage", "scsi/scsi_mod", "scsi/scsi_common", "usb/core/usbcore",
		"usb/common/usb-common", "scsi/sr_mod", "cdrom/cdrom", "../fs/nls/nls_cp437"} {
		p := strings.Replace("kernel/drivers/"+f+".ko", "drivers/../", "", 1)
		fsys[p] = &fstest.MapFile{Data: []byte("not parsed when modules.dep exists")}
	}
	got, err := Closure(fsys, []string{"usb_storage", "sr-mod", "usb-storage", "vfat", "nls_cp437"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"scsi_common=kernel/drivers/scsi/scsi_common.ko",
		"scsi_mod=kernel/drivers/scsi/scsi_mod.ko",
		"usb_common=kernel/drivers/usb/common/usb-common.ko",
		"usbcore=kernel/drivers/usb/core/usbcore.ko",
		"usb_storage=kernel/drivers/usb/storage/usb-storage.ko",
		"cdrom=kernel/drivers/cdrom/cdrom.ko",
		"sr_mod=kernel/drivers/scsi/sr_mod.ko",
		"nls_cp437=kernel/fs/nls/nls_cp437.ko",
	}
	if !reflect.DeepEqual(names(got), want) {
		t.Fatalf("closure\n got %v\nwant %v", names(got), want)
	}

	_, err = Closure(fsys, []string{"isofs"})
	if !errors.Is(err, ErrModuleNotFound) || !strings.Contains(err.Error(), "isofs") {
		t.Fatalf("missing module: %v", err)
	}
	// Listed in modules.dep but the file is gone.
	_, err = Closure(fsys, []string{"unused"})
	if err == nil || !strings.Contains(err.Error(), "unused") {
		t.Fatalf("module without file: %v", err)
	}
}

func TestClosureModinfo(t *testing.T) {
	d := "kernel/drivers/"
	fsys := fstest.MapFS{
		d + "block/virtio_blk.ko.zst":            {},
		d + "virtio/virtio.ko.xz":                {},
		d + "virtio/virtio_ring.ko":              {Data: fakeKo("virtio_ring", "")},
		d + "virtio/virtio_pci.ko.zst":           {},
		d + "virtio/virtio_pci_modern_dev.ko.gz": {},
		"kernel/fs/isofs/isofs.ko":               {Data: fakeKo("isofs", "cdrom")},
		d + "cdrom/cdrom.ko.zst":                 {},
		"kernel/fs/fat/vfat.ko.xz":               {},
		"kernel/fs/fat/fat.ko":                   {Data: fakeKo("fat", "")},
		"build/Makefile":                         {Data: []byte("depends=virtio_blk\x00")},
	}
	fsys[d+"block/virtio_blk.ko.zst"].Data = zstdBytes(t, fakeKo("virtio_blk", "virtio,virtio_ring"))
	fsys[d+"virtio/virtio.ko.xz"].Data = xzBytes(t, fakeKo("virtio", "virtio-ring"))
	fsys[d+"virtio/virtio_pci.ko.zst"].Data = zstdBytes(t, fakeKo("virtio_pci", "virtio_pci_modern_dev,virtio,virtio_ring"))
	fsys[d+"virtio/virtio_pci_modern_dev.ko.gz"].Data = gzBytes(t, fakeKo("virtio_pci_modern_dev", ""))
	fsys[d+"cdrom/cdrom.ko.zst"].Data = zstdBytes(t, fakeKo("cdrom", ""))
	fsys["kernel/fs/fat/vfat.ko.xz"].Data = xzBytes(t, fakeKo("vfat", "fat"))

	got, err := Closure(fsys, []string{"virtio_blk", "virtio-pci", "isofs", "vfat"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"virtio_ring=kernel/drivers/virtio/virtio_ring.ko",
		"virtio=kernel/drivers/virtio/virtio.ko.xz",
		"virtio_blk=kernel/drivers/block/virtio_blk.ko.zst",
		"virtio_pci_modern_dev=kernel/drivers/virtio/virtio_pci_modern_dev.ko.gz",
		"virtio_pci=kernel/drivers/virtio/virtio_pci.ko.zst",
		"cdrom=kernel/drivers/cdrom/cdrom.ko.zst",
		"isofs=kernel/fs/isofs/isofs.ko",
		"fat=kernel/fs/fat/fat.ko",
		"vfat=kernel/fs/fat/vfat.ko.xz",
	}
	if !reflect.DeepEqual(names(got), want) {
		t.Fatalf("closure\n got %v\nwant %v", names(got), want)
	}
	checkOrder(t, got, map[string][]string{"virtio_blk": {"virtio", "virtio_ring"}, "virtio": {"virtio_ring"}})

	// A dependency that no file provides is named with the module needing it.
	fsys["kernel/fs/isofs/isofs.ko"] = &fstest.MapFile{Data: fakeKo("isofs", "cdrom,nls_base")}
	_, err = Closure(fsys, []string{"isofs"})
	if !errors.Is(err, ErrModuleNotFound) || !strings.Contains(err.Error(), "nls_base (needed by isofs)") {
		t.Fatalf("missing dependency: %v", err)
	}

	// A damaged compressed module is an error naming it, not a silent skip.
	fsys[d+"cdrom/cdrom.ko.zst"] = &fstest.MapFile{Data: []byte("(\xb5/\xfdgarbage")}
	_, err = Closure(fsys, []string{"cdrom"})
	if err == nil || !strings.Contains(err.Error(), "cdrom") {
		t.Fatalf("damaged module: %v", err)
	}
}

func TestClosureCycle(t *testing.T) {
	fsys := fstest.MapFS{
		"a.ko":     {Data: fakeKo("a", "b")},
		"b.ko.zst": {Data: zstdBytes(t, fakeKo("b", "c"))},
		"c.ko":     {Data: fakeKo("c", "a")},
	}
	_, err := Closure(fsys, []string{"a"})
	if !errors.Is(err, ErrModuleCycle) || !strings.Contains(err.Error(), "a -> b -> c -> a") {
		t.Fatalf("cycle: %v", err)
	}
	dep := fstest.MapFS{
		"modules.dep": {Data: []byte("x.ko: y.ko\ny.ko: x.ko\n")},
		"x.ko":        {}, "y.ko": {},
	}
	_, err = Closure(dep, []string{"x"})
	if !errors.Is(err, ErrModuleCycle) || !strings.Contains(err.Error(), "x -> y -> x") {
		t.Fatalf("modules.dep cycle: %v", err)
	}
}

func TestModinfoDepends(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"depends=a,b-c\x00", []string{"a", "b_c"}},
		{"x\x00depends=\x00", []string{}},
		{"notdepends=z\x00", []string{}},
		{"\x00depends=q", []string{"q"}},
		{"\x00depends=a\x00\x00depends=a,b\x00", []string{"a", "b"}},
	} {
		got := ModinfoDepends([]byte(c.in))
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("ModinfoDepends(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func FuzzModinfoDepends(f *testing.F) {
	f.Add(fakeKo("a", "b,c"))
	f.Add([]byte("depends="))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, n := range ModinfoDepends(data) {
			if n == "" || strings.ContainsAny(n, "\x00,/-") {
				t.Fatalf("bad name %q", n)
			}
		}
	})
}
