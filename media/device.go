package media

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

// ErrNotConfirmed means a device was not erased because the caller did not
// confirm it.
var ErrNotConfirmed = errors.New("not confirmed")

// WriteUSBDevice writes a dvpc USB key, as [WriteUSB] would write an image,
// straight onto the block device dev (such as /dev/sdb), using all of it.
//
// It refuses a device that is not a whole block device, that is read-only,
// that is mounted or used by device mapper, RAID or swap (itself or any of
// its partitions), or that holds / or /boot. It then shows dev's model and
// size on out and writes only if yes is true; otherwise it returns an error
// wrapping [ErrNotConfirmed]. The partition table is cleared first and
// written last, each step synced, so that a write cut short leaves a key
// with no partitions rather than a half-written one. Linux only.
func WriteUSBDevice(ctx context.Context, dev string, esp, data Content, yes bool, out io.Writer) error {
	return writeUSBDevice(ctx, hostDevices, dev, esp, data, yes, out)
}

// devEnv is where the device checks look: the host's sysfs and proc files,
// or a fake tree in tests.
type devEnv struct {
	sys       string // the sysfs root
	mountinfo string
	mounts    string
	swaps     string
}

var hostDevices = devEnv{sys: "/sys", mountinfo: "/proc/self/mountinfo", mounts: "/proc/mounts", swaps: "/proc/swaps"}

// usbDevice is what the checks learnt about a device.
type usbDevice struct {
	node      string // the device node, symlinks resolved
	name      string // the kernel's name, such as sdb
	dev       string // its "major:minor", which the node and sysfs agree on
	size      int64
	model     string
	removable bool
}

func writeUSBDevice(ctx context.Context, env devEnv, dev string, esp, data Content, yes bool, out io.Writer) error {
	d, err := env.inspect(dev)
	if err != nil {
		return fmt.Errorf("write USB key %s: %w", dev, err)
	}
	espT, dataT, err := usbTrees(&esp, &data)
	if err != nil {
		return fmt.Errorf("write USB key %s: %w", dev, err)
	}
	p, err := planUSB(espT, dataT, d.size)
	if err != nil {
		return fmt.Errorf("write USB key %s: %w", dev, err)
	}
	kind := "fixed disk"
	if d.removable {
		kind = "removable"
	}
	fmt.Fprintf(out, "%s (%s): %s, %s (%d bytes), %s\n", dev, d.name, d.model, HumanBytes(d.size), d.size, kind)
	fmt.Fprintf(out, "Everything on it will be erased. It will hold a %s EFI system partition and a %s data partition with %d files (%s).\n",
		HumanBytes(p.espSize), HumanBytes(p.dataSize), len(dataT.files), HumanBytes(data.Size()))
	if !yes {
		return fmt.Errorf("write USB key %s: erasing %s (%s) %w", dev, d.model, HumanBytes(d.size), ErrNotConfirmed)
	}
	f, err := d.open()
	if err != nil {
		return fmt.Errorf("write USB key %s: %w", dev, err)
	}
	defer f.Close()
	if size, err := f.Seek(0, io.SeekEnd); err != nil || size != d.size {
		return fmt.Errorf("write USB key %s: the device has %d bytes, sysfs said %d (%v)", dev, size, d.size, err)
	}
	if err := buildUSB(ctx, f, p, espT, dataT); err != nil {
		return fmt.Errorf("write USB key %s: %w", dev, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write USB key %s: %w", dev, err)
	}
	return nil
}

// inspect checks that dev is a whole block device that may be erased.
func (env devEnv) inspect(dev string) (*usbDevice, error) {
	if runtime.GOOS != "linux" {
		return nil, fmt.Errorf("writing to a device is supported on Linux only; write an image and copy it with a USB image writer")
	}
	node, err := filepath.EvalSymlinks(dev)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(node)
	if err != nil {
		return nil, err
	}
	if fi.Mode()&fs.ModeDevice == 0 || fi.Mode()&fs.ModeCharDevice != 0 {
		return nil, fmt.Errorf("%s is not a block device", dev)
	}
	num, ok := devNumber(fi)
	if !ok {
		return nil, fmt.Errorf("%s: no device number", dev)
	}
	d, err := env.inspectName(node, filepath.Base(node))
	if err != nil {
		return nil, err
	}
	// The checks read sysfs by the node's name; the node must be that
	// device, not one named after it.
	if num != d.dev {
		return nil, fmt.Errorf("%s is device %s, but sysfs's %s is %s; give the device's own node, /dev/%s", dev, num, d.name, d.dev, d.name)
	}
	return d, nil
}

// open opens the device that was checked for writing, and makes sure it
// is still that device: the node is opened by its path, which may have
// been replaced since the checks.
func (d *usbDevice) open() (*os.File, error) {
	// O_EXCL on a block device fails while the kernel has it mounted.
	f, err := os.OpenFile(d.node, os.O_RDWR|os.O_EXCL, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	num, ok := devNumber(fi)
	if fi.Mode()&fs.ModeDevice == 0 || fi.Mode()&fs.ModeCharDevice != 0 || !ok || num != d.dev {
		f.Close()
		return nil, fmt.Errorf("%s changed after it was checked: it is no longer block device %s (%s); nothing was written", d.node, d.dev, d.name)
	}
	return f, nil
}

// inspectName checks the block device the kernel calls name.
func (env devEnv) inspectName(node, name string) (*usbDevice, error) {
	ix, err := env.blockIndex()
	if err != nil {
		return nil, err
	}
	b, ok := ix.byName[name]
	if !ok {
		return nil, fmt.Errorf("%s: no such block device in %s/block", name, env.sys)
	}
	if b.disk != name {
		return nil, fmt.Errorf("%s is a partition of %s; give the whole device, /dev/%s", name, b.disk, b.disk)
	}
	dir := filepath.Join(env.sys, "block", name)
	d := &usbDevice{node: node, name: name, dev: readSys(dir, "dev")}
	sectors, err := strconv.ParseInt(readSys(dir, "size"), 10, 64)
	if err != nil || sectors <= 0 {
		return nil, fmt.Errorf("%s: no size in sysfs (%q)", name, readSys(dir, "size"))
	}
	d.size = sectors * 512 // sysfs counts 512-byte sectors whatever the device's
	d.model = strings.Join(strings.Fields(readSys(dir, "device/vendor")+" "+readSys(dir, "device/model")), " ")
	if d.model == "" {
		d.model = "unknown model"
	}
	d.removable = readSys(dir, "removable") == "1"
	if readSys(dir, "ro") == "1" {
		return nil, fmt.Errorf("%s (%s) is read-only", name, d.model)
	}
	if lbs := readSys(dir, "queue/logical_block_size"); lbs != "" && lbs != "512" {
		return nil, fmt.Errorf("%s has %s-byte sectors; dvpc writes USB keys with 512-byte sectors", name, lbs)
	}
	for _, n := range append([]string{name}, b.parts...) {
		hdir := filepath.Join(dir, "holders")
		if n != name {
			hdir = filepath.Join(dir, n, "holders")
		}
		if hs, _ := os.ReadDir(hdir); len(hs) > 0 {
			return nil, fmt.Errorf("%s is in use by %s (device mapper, LVM or RAID)", n, hs[0].Name())
		}
	}
	mounts, err := env.mountList(ix)
	if err != nil {
		return nil, err
	}
	for _, m := range mounts {
		if m.system && slices.Contains(ix.disksUnder(m.dev, 0), name) {
			return nil, fmt.Errorf("%s holds the running system (%s is mounted from %s)", name, m.point, m.dev)
		}
	}
	for _, m := range mounts {
		if slices.Contains(ix.disksUnder(m.dev, 0), name) {
			what := "mounted at " + m.point
			if m.point == "" {
				what = "used as swap"
			}
			return nil, fmt.Errorf("%s is %s; unmount it first", m.dev, what)
		}
	}
	return d, nil
}

func readSys(dir, name string) string {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// blockIndex lists the kernel's block devices.
type blockIndex struct {
	byName map[string]*blockNode
	byDev  map[string]*blockNode // by "major:minor"
}

type blockNode struct {
	name, disk string   // disk is name for a whole device
	parts      []string // a disk's partitions
	slaves     []string // the devices a dm or md device is made of
}

func (env devEnv) blockIndex() (*blockIndex, error) {
	root := filepath.Join(env.sys, "block")
	disks, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("list block devices: %w", err)
	}
	ix := &blockIndex{byName: map[string]*blockNode{}, byDev: map[string]*blockNode{}}
	add := func(n *blockNode, dir string) {
		ix.byName[n.name] = n
		if dev := readSys(dir, "dev"); dev != "" {
			ix.byDev[dev] = n
		}
	}
	for _, de := range disks {
		dir := filepath.Join(root, de.Name())
		n := &blockNode{name: de.Name(), disk: de.Name()}
		if ss, err := os.ReadDir(filepath.Join(dir, "slaves")); err == nil {
			for _, s := range ss {
				n.slaves = append(n.slaves, s.Name())
			}
		}
		subs, _ := os.ReadDir(dir)
		for _, s := range subs {
			if _, err := os.Stat(filepath.Join(dir, s.Name(), "partition")); err == nil {
				n.parts = append(n.parts, s.Name())
				add(&blockNode{name: s.Name(), disk: de.Name()}, filepath.Join(dir, s.Name()))
			}
		}
		add(n, dir)
	}
	return ix, nil
}

// disksUnder returns the whole devices under name: its own disk, or for a
// device-mapper or RAID device the disks it is made of.
func (ix *blockIndex) disksUnder(name string, depth int) []string {
	n := ix.byName[name]
	if n == nil || depth > 8 {
		return nil
	}
	if n.disk != n.name {
		return ix.disksUnder(n.disk, depth+1)
	}
	if len(n.slaves) == 0 {
		return []string{n.name}
	}
	var out []string
	for _, s := range n.slaves {
		out = append(out, ix.disksUnder(s, depth+1)...)
	}
	return out
}

// devMount is a block device in use: mounted at point, or swap (point "").
type devMount struct {
	dev    string // kernel name
	point  string
	system bool // /, /boot, /boot/efi, /efi or /usr
}

// mountList reads mountinfo, mounts and swaps and keeps what is on a block
// device.
func (env devEnv) mountList(ix *blockIndex) ([]devMount, error) {
	var out []devMount
	resolve := func(majmin, source string) string {
		if n := ix.byDev[majmin]; n != nil {
			return n.name
		}
		if !strings.HasPrefix(source, "/dev/") {
			return ""
		}
		if p, err := filepath.EvalSymlinks(source); err == nil {
			source = p
		}
		if n := ix.byName[filepath.Base(source)]; n != nil {
			return n.name
		}
		return ""
	}
	add := func(dev, point string) {
		if dev == "" {
			return
		}
		switch point {
		case "/", "/boot", "/boot/efi", "/efi", "/usr":
			out = append(out, devMount{dev: dev, point: point, system: true})
		default:
			out = append(out, devMount{dev: dev, point: point})
		}
	}
	err := readLines(env.mountinfo, func(f []string) {
		// id parent major:minor root point options [optional...] - type source super
		sep := slices.Index(f, "-")
		if len(f) < 5 || sep < 0 || sep+2 >= len(f) {
			return
		}
		add(resolve(f[2], f[sep+2]), unescapeMount(f[4]))
	})
	if err != nil {
		return nil, err
	}
	if err := readLines(env.mounts, func(f []string) {
		if len(f) >= 2 {
			add(resolve("", unescapeMount(f[0])), unescapeMount(f[1]))
		}
	}); err != nil {
		return nil, err
	}
	if err := readLines(env.swaps, func(f []string) {
		if len(f) >= 1 && f[0] != "Filename" {
			add(resolve("", unescapeMount(f[0])), "")
		}
	}); err != nil {
		return nil, err
	}
	return out, nil
}

// readLines calls fn with the fields of every line of a proc file; a file
// that does not exist has no lines.
func readLines(name string, fn func([]string)) error {
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fn(strings.Fields(sc.Text()))
	}
	return sc.Err()
}

// unescapeMount undoes the octal escapes (\040 for a space) of proc's
// mount tables.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
