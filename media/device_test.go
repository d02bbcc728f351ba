package media

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSys builds a sysfs and proc tree from a list of "path=content" lines
// (a path ending in "/" is an empty directory) and returns its env.
func fakeSys(t *testing.T, files ...string) devEnv {
	t.Helper()
	root := t.TempDir()
	for _, l := range files {
		p, content, _ := strings.Cut(l, "=")
		full := filepath.Join(root, p)
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return devEnv{
		sys:       filepath.Join(root, "sys"),
		mountinfo: filepath.Join(root, "proc/self/mountinfo"),
		mounts:    filepath.Join(root, "proc/mounts"),
		swaps:     filepath.Join(root, "proc/swaps"),
	}
}

// fakeDisk lists the sysfs files of a disk with partitions.
func fakeDisk(name, majmin string, parts ...string) []string {
	d := "sys/block/" + name + "/"
	fs := []string{d + "dev=" + majmin, d + "size=31260672", d + "removable=1", d + "ro=0",
		d + "device/vendor=SanDisk ", d + "device/model=Cruzer Blade    ", d + "queue/logical_block_size=512",
		d + "holders/", d + "slaves/"}
	for i, p := range parts {
		mm := majmin[:strings.Index(majmin, ":")+1] + string(rune('1'+i))
		fs = append(fs, d+p+"/partition=1", d+p+"/dev="+mm, d+p+"/holders/")
	}
	return fs
}

func TestDeviceChecks(t *testing.T) {
	disks := [][]string{
		fakeDisk("sda", "8:0", "sda1", "sda2"),
		fakeDisk("sdz", "65:0", "sdz1"),
		fakeDisk("sdy", "66:0", "sdy1"),
		fakeDisk("sdt", "67:0"),
		fakeDisk("sdu", "68:0", "sdu1"),
		fakeDisk("dm-1", "254:1"),
		{"sys/block/sdy/sdy1/holders/dm-0/", "sys/block/dm-1/slaves/sdt/"},
		fakeDisk("sdx", "69:0"),
		{"sys/block/sdx/queue/logical_block_size=4096"},
		fakeDisk("sdw", "70:0"),
		{"sys/block/sdw/ro=1"},
	}
	var base []string
	for _, d := range disks {
		base = append(base, d...)
	}
	system := []string{
		"proc/self/mountinfo=" + strings.Join([]string{
			"25 1 8:2 / / rw,relatime - ext4 /dev/sda2 rw",
			"26 25 8:1 / /boot/efi rw,relatime - vfat /dev/sda1 rw",
			"27 25 0:22 / /proc rw - proc proc rw",
			"31 25 254:1 / /srv rw - ext4 /dev/mapper/srv rw",
		}, "\n"),
		"proc/swaps=Filename\tType\tSize\tUsed\tPriority\n/dev/sdu1 partition 1024 0 -2",
	}
	plain := fakeSys(t, append(base, system...)...)
	mounted := fakeSys(t, append(append(base, system...),
		"proc/mounts=/dev/sdz1 /media/usb\\040key vfat rw 0 0")...)
	mountedInfo := fakeSys(t, append(base,
		"proc/self/mountinfo=40 1 65:1 / /media/usb\\040key rw - vfat /dev/sdz1 rw")...)

	d, err := plain.inspectName("/dev/sdz", "sdz")
	if err != nil {
		t.Fatal(err)
	}
	if d.size != 31260672*512 || d.model != "SanDisk Cruzer Blade" || !d.removable {
		t.Errorf("sdz: %+v", d)
	}
	for _, c := range []struct {
		env  devEnv
		name string
		want string
	}{
		{plain, "sda", "holds the running system (/ is mounted from sda2)"},
		{plain, "sdz1", "is a partition of sdz"},
		{plain, "sdy", "sdy1 is in use by dm-0"},
		{plain, "sdt", "dm-1 is mounted at /srv"},
		{plain, "sdu", "sdu1 is used as swap"},
		{plain, "sdx", "4096-byte sectors"},
		{plain, "sdw", "read-only"},
		{plain, "sdq", "no such block device"},
		{mounted, "sdz", "sdz1 is mounted at /media/usb key"},
		{mountedInfo, "sdz", "sdz1 is mounted at /media/usb key"},
	} {
		_, err := c.env.inspectName("/dev/"+c.name, c.name)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// TestDeviceRefusesNonDevices refuses files and directories before any
// sysfs lookup.
func TestDeviceRefusesNonDevices(t *testing.T) {
	esp, data := smallUSBContent()
	img := filepath.Join(t.TempDir(), "key.img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{img, t.TempDir(), "/dev/null"} {
		var out bytes.Buffer
		err := WriteUSBDevice(context.Background(), p, esp, data, true, &out)
		if err == nil || !strings.Contains(err.Error(), "not a block device") {
			t.Errorf("%s: %v", p, err)
		}
		if out.Len() != 0 {
			t.Errorf("%s: printed %q", p, out.String())
		}
	}
	if b, _ := os.ReadFile(img); !bytes.Equal(b, make([]byte, 1<<20)) {
		t.Error("a regular file was written")
	}
}

// TestDeviceRefusesSystemDisk inspects (never writes) the disk this system
// runs from.
func TestDeviceRefusesSystemDisk(t *testing.T) {
	ix, err := hostDevices.blockIndex()
	if err != nil {
		t.Fatal(err)
	}
	mounts, err := hostDevices.mountList(ix)
	if err != nil {
		t.Fatal(err)
	}
	var disk string
	for _, m := range mounts {
		if m.system {
			if ds := ix.disksUnder(m.dev, 0); len(ds) > 0 {
				disk = ds[0]
				break
			}
		}
	}
	if disk == "" {
		t.Fatalf("/ is on no block device here (mounts %v); this test needs a machine or VM whose root file system is on a disk", mounts)
	}
	_, err = hostDevices.inspect("/dev/" + disk)
	if err == nil || !strings.Contains(err.Error(), "holds the running system") {
		t.Fatalf("/dev/%s: %v", disk, err)
	}
}

// TestWriteUSBDeviceLoop writes a key onto a loop device backed by a file,
// as root, and reads it back through the device and through the file.
func TestWriteUSBDeviceLoop(t *testing.T) {
	needTool(t, "losetup", "util-linux")
	if os.Geteuid() != 0 {
		t.Fatal("this test attaches a loop device: run it as root")
	}
	storeDir, home := usbStore(t)
	esp, data := usbTestContent(t, storeDir)

	backing := filepath.Join(t.TempDir(), "loop.img")
	f, err := os.Create(backing)
	if err != nil {
		t.Fatal(err)
	}
	const size = 640 << 20
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	mark := bytes.Repeat([]byte{0xAA}, 1<<20)
	for _, off := range []int64{0, size - 1<<20} {
		if _, err := f.WriteAt(mark, off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	out, err := exec.Command("losetup", "--find", "--show", backing).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v\n%s (needs root and the loop module)", err, out)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "--detach", loop).CombinedOutput(); err != nil {
			t.Errorf("losetup --detach %s: %v\n%s", loop, err, out)
		}
	})
	before := fileHash(t, backing)
	ctx := context.Background()

	// Unconfirmed: it says what it would erase and writes nothing.
	var msg bytes.Buffer
	err = WriteUSBDevice(ctx, loop, esp, data, false, &msg)
	if !errors.Is(err, ErrNotConfirmed) {
		t.Fatalf("unconfirmed: %v", err)
	}
	if s := msg.String(); !strings.Contains(s, "unknown model") || !strings.Contains(s, "640.0 MiB") || !strings.Contains(s, filepath.Base(loop)) {
		t.Errorf("message: %q", s)
	}
	if fileHash(t, backing) != before {
		t.Fatal("an unconfirmed write changed the device")
	}

	// Busy: another exclusive opener keeps it.
	busy, err := os.OpenFile(loop, os.O_RDWR|os.O_EXCL, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteUSBDevice(ctx, loop, esp, data, true, &msg); err == nil {
		t.Error("wrote to a device opened exclusively elsewhere")
	}
	busy.Close()
	if fileHash(t, backing) != before {
		t.Fatal("a refused write changed the device")
	}

	// Through a symlink, as /dev/disk/by-id names are.
	link := filepath.Join(t.TempDir(), "by-id-usb-key")
	if err := os.Symlink(loop, link); err != nil {
		t.Fatal(err)
	}
	msg.Reset()
	if err := WriteUSBDevice(ctx, link, esp, data, true, &msg); err != nil {
		t.Fatal(err)
	}
	requireUSBRestores(t, loop, home)
	checkUSBImage(t, backing, home)
	// The old partition tables are gone; free space is left as it was.
	for _, off := range []int64{0, size - 1<<20} {
		if b := readAt(t, backing, off, 1<<20); bytes.Contains(b, mark[:4096]) {
			t.Errorf("the old contents at %d are still there", off)
		}
	}
}

func readAt(t *testing.T, name string, off, n int64) []byte {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}
