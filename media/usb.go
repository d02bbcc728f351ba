package media

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/diskfs/go-diskfs/backend"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
	"github.com/diskfs/go-diskfs/partition/gpt"
)

// Writing a USB key.
//
// A dvpc USB key is a GPT disk with two FAT32 partitions, both aligned to
// 1 MiB: the EFI system partition (label [USBESPLabel]: clients and pages,
// with room left for boot files) and a Microsoft basic data partition
// (label [USBDataLabel]: the store under store/, and the clients and pages
// again), which every system mounts and can write to.
//
// go-diskfs v1.9.4 writes the partition table and formats both file
// systems (boot sectors, FATs, FSInfo). dvpc fills them itself: it gives
// every directory and file one contiguous run of clusters (directories in
// path order, then files in the order of [Placed]), writes the
// directories, streams each file into its run and writes the FAT chains
// once. go-diskfs's own file creation re-reads the directory and
// rewrites the whole FAT for every file (minutes for a few thousand files
// on a large key), stamps entries with time.Now, points ".." at cluster 2
// and gives empty files a cluster, all of which fsck.fat or reproducibility
// object to. Around go-diskfs's formatting dvpc guards that
//   - at some sizes (64 MiB among them) its FAT has two entries fewer than
//     the clusters it declares, which fsck.fat rejects: [fatGeometry] mirrors
//     its arithmetic, only sizes it gets right are used, and the layout it
//     wrote is checked against the prediction;
//   - its sector count per FAT is 16 bits, so data partitions stop at 256 GiB;
//   - it writes a zero volume serial and no hidden-sector count: both are set;
//   - the backend it writes through ([fatWindow]) refuses writes outside the
//     partition.

const (
	usbAlign = 1 << 20
	// USBESPSize is the EFI system partition's size unless its content
	// needs more: the size Windows gives it on 4Kn disks, with room for a
	// boot loader, kernels and the dvpc clients.
	USBESPSize = 260 << 20
	// usbBootRoom is kept free in the EFI system partition for boot files.
	usbBootRoom = 64 << 20
	// usbHeadroom is kept free in a data partition sized to its content.
	usbHeadroom = 64 << 20
	// usbStep rounds a USB image's size when dvpc chooses it.
	usbStep = 64 << 20
	// usbMinFAT is the smallest FAT32 file system written: below about
	// 33 MiB it would have too few clusters to be FAT32.
	usbMinFAT = 40 << 20
	// usbMaxData is the largest data partition: go-diskfs keeps the FAT's
	// sector count in 16 bits. A larger key keeps the rest unpartitioned.
	usbMaxData = 256 << 30
	usbGPTEnd  = 34 * gptSector // backup GPT: 32 sectors of entries and the header
)

// WriteUSB writes a raw GPT disk image to out for dd or any USB image
// writer: esp goes on the EFI system partition and data on the data
// partition. size is the image's size in bytes (rounded down to a 512-byte
// sector; the data partition fills what the EFI system partition leaves, up
// to 256 GiB); 0 chooses the smallest multiple of 64 MiB that holds the
// content with 10% and 64 MiB to spare. Content that does not fit is an
// [*ErrTooLarge]. The image is written to a temporary file next to out and
// linked into place; an existing out is never replaced. The same content and
// ModTimes give the same bytes.
func WriteUSB(ctx context.Context, out string, esp, data Content, size int64) error {
	espT, dataT, err := usbTrees(&esp, &data)
	if err != nil {
		return fmt.Errorf("write USB image %s: %w", out, err)
	}
	p, err := planUSB(espT, dataT, size)
	if err != nil {
		return fmt.Errorf("write USB image %s: %w", out, err)
	}
	if _, err := os.Lstat(out); err == nil {
		return fmt.Errorf("write USB image %s: %w", out, fs.ErrExist)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("write USB image: %w", err)
	}
	dir := filepath.Dir(out)
	f, err := os.CreateTemp(dir, "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write USB image: %w", err)
	}
	tmp := f.Name()
	defer func() {
		f.Close()
		os.Remove(tmp)
	}()
	if err := f.Truncate(p.size); err != nil {
		return fmt.Errorf("write USB image %s: %w", out, err)
	}
	if err := buildUSB(ctx, f, p, espT, dataT); err != nil {
		return fmt.Errorf("write USB image %s: %w", out, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write USB image %s: %w", out, err)
	}
	// A hard link, unlike a rename, fails when out has appeared meanwhile.
	if err := os.Link(tmp, out); err != nil {
		if _, serr := os.Lstat(out); serr == nil {
			return fmt.Errorf("write USB image %s: %w", out, fs.ErrExist)
		}
		// Some file systems (FAT, exFAT) have no hard links.
		if err := os.Rename(tmp, out); err != nil {
			return fmt.Errorf("write USB image %s: %w", out, err)
		}
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func usbTrees(esp, data *Content) (espT, dataT *fatTree, err error) {
	if espT, err = newFATTree(esp); err != nil {
		return nil, nil, fmt.Errorf("EFI system partition: %w", err)
	}
	if dataT, err = newFATTree(data); err != nil {
		return nil, nil, fmt.Errorf("data partition: %w", err)
	}
	for _, l := range []string{esp.Label, data.Label} {
		if len(l) > 36 || strings.ContainsFunc(l, func(r rune) bool { return r < 0x20 || r > 0x7E }) {
			return nil, nil, fmt.Errorf("label %q: a GPT partition name is at most 36 printable ASCII characters", l)
		}
	}
	return espT, dataT, nil
}

// fatGeom is the layout go-diskfs v1.9.4 (fat32.Create) gives a FAT32 file
// system of a given size, computed as it does.
type fatGeom struct {
	clusterSize int64
	clusters    int64 // data clusters
	fatSectors  int64 // per FAT
	// ok is true when go-diskfs gets this size right: the FAT has an entry
	// for every cluster (at 64, 129, 194, 259, 505… MiB it has two too
	// few) and its sector count fits its 16 bits. (Enough clusters for
	// FAT32 is usbMinFAT's job.)
	ok bool
}

func fatGeometry(size int64) fatGeom {
	var cs int64
	switch {
	case size <= 260<<20:
		cs = 512
	case size <= 8<<30:
		cs = 4 << 10
	case size <= 16<<30:
		cs = 8 << 10
	case size <= 32<<30:
		cs = 16 << 10
	default:
		cs = 32 << 10
	}
	spc := cs / 512
	total := size / 512
	den := 512*spc + 8
	spf := (4*(total-32) + den - 1) / den
	data := total - 32 - 2*spf
	g := fatGeom{clusterSize: cs, clusters: data / spc, fatSectors: spf}
	g.ok = total > 32 && 4*(total-32) < 1<<32 && spf <= 0xFFFF &&
		spf*128 >= g.clusters+2 && data*512 >= 32<<10
	return g
}

// fatSafeSize returns the largest size, at most size and a multiple of
// 1 MiB, at which go-diskfs writes a correct FAT32; 0 if there is none down
// to the smallest FAT32 dvpc writes.
func fatSafeSize(size int64) int64 {
	for s := size / usbAlign * usbAlign; s >= usbMinFAT; s -= usbAlign {
		if fatGeometry(s).ok {
			return s
		}
	}
	return 0
}

// fatTree is the content of one FAT partition as the directories and files
// to write, checked for what FAT can hold.
type fatTree struct {
	c     *Content
	root  *fatNode
	dirs  []*fatNode // root first, then by path
	files []*fatNode // in the order of [Placed]
}

// fatNode is a directory or file of a fatTree.
type fatNode struct {
	name     string
	parent   *fatNode
	dir      bool
	entry    Entry      // what a file holds
	children []*fatNode // what a directory holds, sorted by name
	short    [11]byte   // the 8.3 name
	long     bool       // also has long-name entries
	slots    int64      // directory entries it takes in its parent
	first    uint32     // first cluster; 0 for an empty file
	n        int64      // clusters
}

func newFATTree(c *Content) (*fatTree, error) {
	if err := c.Check(); err != nil {
		return nil, err
	}
	es, err := c.Sorted()
	if err != nil {
		return nil, err
	}
	t := &fatTree{c: c, root: &fatNode{dir: true}}
	t.dirs = append(t.dirs, t.root)
	byPath := map[string]*fatNode{"": t.root}
	byFold := map[string]*fatNode{}
	add := func(parent *fatNode, p, name string, n *fatNode) error {
		if err := fatNameOK(name); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		fold := path.Join(strings.ToUpper(path.Dir(p)), strings.ToUpper(name))
		if o, ok := byFold[fold]; ok {
			return fmt.Errorf("%q and %q differ only in case, which FAT cannot hold", p, path.Join(path.Dir(p), o.name))
		}
		byFold[fold] = n
		n.name, n.parent = name, parent
		parent.children = append(parent.children, n)
		byPath[p] = n
		return nil
	}
	for _, e := range es {
		parts := strings.Split(e.Path, "/")
		parent := t.root
		for i := range len(parts) - 1 {
			p := strings.Join(parts[:i+1], "/")
			d, ok := byPath[p]
			if !ok {
				d = &fatNode{dir: true}
				if err := add(parent, p, parts[i], d); err != nil {
					return nil, err
				}
				t.dirs = append(t.dirs, d)
			} else if !d.dir {
				return nil, fmt.Errorf("%s is both a file and a directory", p)
			}
			parent = d
		}
		f := &fatNode{entry: e}
		if err := add(parent, e.Path, parts[len(parts)-1], f); err != nil {
			return nil, err
		}
		t.files = append(t.files, f)
	}
	// Lay the files' bytes out as on every medium: what is needed to read
	// the rest first.
	rank := map[string]int{}
	for i, e := range Placed(es) {
		rank[e.Path] = i
	}
	slices.SortFunc(t.files, func(a, b *fatNode) int { return rank[a.entry.Path] - rank[b.entry.Path] })
	for _, d := range t.dirs {
		slices.SortFunc(d.children, func(a, b *fatNode) int { return strings.Compare(a.name, b.name) })
		if err := fatShortNames(d); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// fatNameOK accepts what FAT long names can hold and every system can
// open: no control characters, none of " * / : < > ? \ |, no leading
// space and no trailing dot or space.
func fatNameOK(name string) error {
	if !utf8.ValidString(name) {
		return fmt.Errorf("name %q is not UTF-8", name)
	}
	if strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7F || strings.ContainsRune(`"*/:<>?\|`, r) }) {
		return fmt.Errorf("name %q: FAT names hold no control characters and none of \" * : < > ? \\ |", name)
	}
	if strings.HasPrefix(name, " ") || strings.HasSuffix(name, ".") || strings.HasSuffix(name, " ") {
		return fmt.Errorf("name %q starts with a space or ends in a dot or space, which FAT drops", name)
	}
	if len(utf16.Encode([]rune(name))) > 255 {
		return fmt.Errorf("name %q is over 255 UTF-16 units", name)
	}
	return nil
}

const fatShortChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'()-@^_`{}~"

// fatShortNames gives the children of d their 8.3 names: a name that is
// already a valid upper-case 8.3 name keeps it and needs no long name;
// any other gets a basis name with a numeric tail ("OCI-LA~1"), unique in
// d and unlike any long name in d, and long-name entries.
func fatShortNames(d *fatNode) error {
	used := map[[11]byte]bool{}
	longs := map[string]bool{}
	var entries int64 = 2 // "." and "..", or the root's volume label and end
	for _, c := range d.children {
		longs[strings.ToUpper(c.name)] = true
		if s, ok := fatExact(c.name); ok {
			c.short = s
			used[s] = true
		} else {
			c.long = true
		}
	}
	tails := map[string]int{} // the next tail to try for a basis
	for _, c := range d.children {
		if c.long {
			stem, ext := fatBasis(c.name)
			k := max(1, tails[stem+"."+ext])
			for ; ; k++ {
				tail := "~" + strconv.Itoa(k)
				s := stem[:min(len(stem), 8-len(tail))] + tail
				c.short = fatPad(s, ext)
				shown := s
				if ext != "" {
					shown += "." + ext
				}
				if !used[c.short] && !longs[shown] {
					break
				}
			}
			tails[stem+"."+ext] = k + 1
			used[c.short] = true
			c.slots = 1 + int64(len(utf16.Encode([]rune(c.name)))+12)/13
		} else {
			c.slots = 1
		}
		entries += c.slots
	}
	if entries > fatMaxDir/32 {
		return fmt.Errorf("directory %q holds %d entries; FAT allows %d", fatPath(d), entries, fatMaxDir/32)
	}
	return nil
}

// fatExact returns name as an 8.3 name when it is one: 1-8 and 0-3
// upper-case valid characters.
func fatExact(name string) ([11]byte, bool) {
	stem, ext, dot := strings.Cut(name, ".")
	if stem == "" || len(stem) > 8 || len(ext) > 3 || dot && ext == "" || strings.Contains(ext, ".") {
		return [11]byte{}, false
	}
	for _, c := range []byte(stem + ext) {
		if strings.IndexByte(fatShortChars, c) < 0 {
			return [11]byte{}, false
		}
	}
	return fatPad(stem, ext), true
}

// fatBasis is the start of a generated 8.3 name: upper case, valid
// characters only, no spaces or leading dots, stem and extension split at
// the last dot.
func fatBasis(name string) (stem, ext string) {
	clean := func(s string, n int) string {
		var b strings.Builder
		for _, r := range s {
			switch {
			case b.Len() >= n:
			case r == ' ' || r == '.':
			case r < 0x80 && strings.IndexByte(fatShortChars, byte(unicode.ToUpper(r))) >= 0:
				b.WriteByte(byte(unicode.ToUpper(r)))
			default:
				b.WriteByte('_')
			}
		}
		return b.String()
	}
	name = strings.TrimLeft(name, ". ")
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		stem, ext = clean(name[:i], 8), clean(name[i+1:], 3)
	} else {
		stem = clean(name, 8)
	}
	if stem == "" {
		stem = "_"
	}
	return stem, ext
}

func fatPad(stem, ext string) [11]byte {
	var s [11]byte
	copy(s[:], fmt.Sprintf("%-8s%-3s", stem, ext))
	return s
}

func fatPath(n *fatNode) string {
	if n.parent == nil {
		return "/"
	}
	return path.Join(fatPath(n.parent), n.name)
}

// dirBytes is the size of a directory's entries.
func (n *fatNode) dirBytes() int64 {
	b := int64(2) // "." and "..", or the volume label and an end marker
	for _, c := range n.children {
		b += c.slots
	}
	return b * 32
}

// clusters returns how many clusters of cs bytes the tree takes.
func (t *fatTree) clusters(cs int64) int64 {
	var n int64
	for _, d := range t.dirs {
		n += (d.dirBytes() + cs - 1) / cs
	}
	for _, f := range t.files {
		n += (f.entry.Size + cs - 1) / cs
	}
	return n
}

// usbPlan places the partitions of a USB image.
type usbPlan struct {
	size                int64
	espStart, espSize   int64
	dataStart, dataSize int64
}

// planUSB chooses the sizes for size (0: the smallest that fits).
func planUSB(esp, data *fatTree, size int64) (usbPlan, error) {
	espSize, err := usbESPSize(esp)
	if err != nil {
		return usbPlan{}, err
	}
	if size != 0 {
		return usbPlanFor(esp, data, size/gptSector*gptSector, espSize, 0)
	}
	g := fatGeometry(usbMinFAT)
	want := data.clusters(g.clusterSize) * g.clusterSize * 11 / 10
	for total := (2*usbAlign + espSize + want + usbHeadroom + usbStep - 1) / usbStep * usbStep; total <= 2*usbMaxData; total += usbStep {
		if p, err := usbPlanFor(esp, data, total, espSize, usbHeadroom); err == nil {
			return p, nil
		}
	}
	return usbPlan{}, &ErrTooLarge{Need: data.c.Size(), Capacity: usbMaxData,
		Hint: "a USB key's data partition holds at most 256 GiB"}
}

// usbESPSize is USBESPSize, or more when esp needs it.
func usbESPSize(esp *fatTree) (int64, error) {
	for s := int64(USBESPSize); s <= usbMaxData; s += usbStep {
		s := fatSafeSize(s)
		g := fatGeometry(s)
		if esp.clusters(g.clusterSize)*g.clusterSize+usbBootRoom <= g.clusters*g.clusterSize {
			return s, nil
		}
	}
	return 0, &ErrTooLarge{Need: esp.c.Size(), Capacity: usbMaxData, Hint: "the EFI system partition cannot hold its content"}
}

// usbPlanFor lays out an image of size bytes; the data partition must keep
// spare bytes free after its content, with 10% more when spare is not 0.
func usbPlanFor(esp, data *fatTree, size, espSize, spare int64) (usbPlan, error) {
	p := usbPlan{size: size, espStart: usbAlign, espSize: espSize}
	p.dataStart = p.espStart + espSize
	end := (size - usbGPTEnd) / usbAlign * usbAlign
	p.dataSize = fatSafeSize(min(end-p.dataStart, usbMaxData))
	if p.dataSize == 0 {
		return usbPlan{}, &ErrTooLarge{Need: p.dataStart + usbMinFAT + usbAlign, Capacity: size,
			Hint: fmt.Sprintf("a USB image needs at least %d bytes: %d for the partition table and the %d-byte EFI system partition, %d for the data partition",
				p.dataStart+usbMinFAT+usbAlign, 2*usbAlign, espSize, usbMinFAT)}
	}
	g := fatGeometry(p.dataSize)
	need := data.clusters(g.clusterSize) * g.clusterSize
	if spare > 0 {
		need = need*11/10 + spare
	}
	if have := g.clusters * g.clusterSize; need > have {
		return usbPlan{}, &ErrTooLarge{Need: need, Capacity: have,
			Hint: fmt.Sprintf("the data partition of a %d-byte image holds %d bytes in %d-byte clusters; the %d files of %d bytes need %d",
				size, have, g.clusterSize, len(data.files), data.c.Size(), need)}
	}
	return p, nil
}

// buildUSB writes the image into f, which is p.size bytes long: first it
// clears the partition tables, then it writes both file systems, and last
// the partition table, so that a write cut short leaves a key with no
// partitions rather than a damaged one.
func buildUSB(ctx context.Context, f *os.File, p usbPlan, espT, dataT *fatTree) error {
	if err := usbZero(f, 0, p.espStart); err != nil {
		return err
	}
	if err := usbZero(f, max(p.dataStart+p.dataSize, p.size-usbAlign), p.size); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := writeFATPart(ctx, f, p.espStart, p.espSize, USBESPLabel, espT); err != nil {
		return fmt.Errorf("EFI system partition: %w", err)
	}
	if err := writeFATPart(ctx, f, p.dataStart, p.dataSize, USBDataLabel, dataT); err != nil {
		return fmt.Errorf("data partition: %w", err)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	seed := fmt.Sprintf("%s\x00%s\x00%s\x00%d", espT.c.Label, dataT.c.Label, dataT.c.ModTime.UTC().Format(time.RFC3339Nano), p.size)
	name := func(l, def string) string {
		if l == "" {
			return def
		}
		return l
	}
	table := &gpt.Table{
		LogicalSectorSize:  gptSector,
		PhysicalSectorSize: gptSector,
		ProtectiveMBR:      true,
		GUID:               usbGUID("disk", seed),
		Partitions: []*gpt.Partition{{
			Index: 1, Start: uint64(p.espStart / gptSector), End: uint64((p.espStart+p.espSize)/gptSector - 1),
			Type: gpt.EFISystemPartition, Name: name(espT.c.Label, USBESPLabel), GUID: usbGUID("esp", seed),
		}, {
			Index: 2, Start: uint64(p.dataStart / gptSector), End: uint64((p.dataStart+p.dataSize)/gptSector - 1),
			Type: gpt.MicrosoftBasicData, Name: name(dataT.c.Label, USBDataLabel), GUID: usbGUID("data", seed),
		}},
	}
	if err := table.Write(f, p.size); err != nil {
		return fmt.Errorf("write partition table: %w", err)
	}
	// go-diskfs wraps the protective MBR's sector count past 2 TiB.
	if p.size/gptSector-1 > 0xFFFFFFFF {
		if _, err := f.WriteAt([]byte{0xFF, 0xFF, 0xFF, 0xFF}, 446+12); err != nil {
			return err
		}
	}
	return f.Sync()
}

// usbGUID derives a version-4-shaped GUID from the content, so that the
// same content gives the same image.
func usbGUID(role, seed string) string {
	h := sha256.Sum256([]byte("dvpc usb " + role + "\x00" + seed))
	h[6] = h[6]&0x0F | 0x40
	h[8] = h[8]&0x3F | 0x80
	return strings.ToUpper(fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16]))
}

// fatVolumeID derives a FAT volume serial number from the label and the
// content's time.
func fatVolumeID(label string, c *Content) uint32 {
	h := sha256.Sum256([]byte("dvpc fat\x00" + label + "\x00" + c.Label + "\x00" + c.ModTime.UTC().Format(time.RFC3339Nano)))
	return binary.LittleEndian.Uint32(h[:4])
}

func usbZero(f io.WriterAt, from, to int64) error {
	if to <= from {
		return nil
	}
	z := make([]byte, min(to-from, usbAlign))
	for off := from; off < to; off += int64(len(z)) {
		n := min(int64(len(z)), to-off)
		if _, err := f.WriteAt(z[:n], off); err != nil {
			return err
		}
	}
	return nil
}

// writeFATPart formats a FAT32 file system of size bytes at start in f with
// go-diskfs and writes t into it.
func writeFATPart(ctx context.Context, f *os.File, start, size int64, label string, t *fatTree) error {
	g := fatGeometry(size)
	if !g.ok {
		return fmt.Errorf("go-diskfs writes a broken FAT32 at %d bytes", size)
	}
	w := &fatWindow{f: f, off: start, size: size}
	// Clear the reserved sectors, which may hold an older file system.
	if _, err := w.WriteAt(make([]byte, 32*512), 0); err != nil {
		return err
	}
	if _, err := fat32.Create(w, size, 0, 512, label, true); err != nil {
		return fmt.Errorf("format FAT32: %w", err)
	}
	v, err := readFATVolume(f, start, size)
	if err != nil {
		return fmt.Errorf("read back the new FAT32: %w", err)
	}
	if v.clusterSize != g.clusterSize || int64(v.clusters) != g.clusters || v.fatBytes != g.fatSectors*512 ||
		v.rootCluster != 2 || v.numFATs != 2 || v.fsInfo == 0 || v.backupBoot == 0 {
		return fmt.Errorf("go-diskfs made %d clusters of %d bytes, not the %d of %d predicted", v.clusters, v.clusterSize, g.clusters, g.clusterSize)
	}

	// Every directory and file gets one run of clusters: the root starts at
	// cluster 2, where go-diskfs put it, and goes on after it if it must.
	cs := v.clusterSize
	if need := t.clusters(cs); need > int64(v.clusters) {
		return fmt.Errorf("content needs %d clusters of %d bytes, the partition has %d", need, cs, v.clusters)
	}
	next := uint32(3)
	alloc := func(n int64) uint32 {
		c := next
		next += uint32(n)
		return c
	}
	type run struct{ first, n, then uint32 } // then: the cluster after the run, 0 for the end
	var runs []run
	var rootMore uint32
	for i, d := range t.dirs {
		d.n = (d.dirBytes() + cs - 1) / cs
		if i == 0 {
			d.first = 2
			if d.n > 1 {
				rootMore = alloc(d.n - 1)
				runs = append(runs, run{2, 1, rootMore}, run{rootMore, uint32(d.n - 1), 0})
			} else {
				runs = append(runs, run{2, 1, 0})
			}
			continue
		}
		d.first = alloc(d.n)
		runs = append(runs, run{d.first, uint32(d.n), 0})
	}
	for _, fl := range t.files {
		if fl.n = (fl.entry.Size + cs - 1) / cs; fl.n > 0 {
			fl.first = alloc(fl.n)
			runs = append(runs, run{fl.first, uint32(fl.n), 0})
		}
	}

	date, tm, tenth := fatStamp(t.c.ModTime)
	stamp := func(b []byte) {
		b[13] = tenth
		binary.LittleEndian.PutUint16(b[14:], tm)
		binary.LittleEndian.PutUint16(b[16:], date)
		binary.LittleEndian.PutUint16(b[18:], date)
		binary.LittleEndian.PutUint16(b[22:], tm)
		binary.LittleEndian.PutUint16(b[24:], date)
	}
	short := func(b []byte, name [11]byte, attr byte, first uint32, size int64) {
		copy(b, name[:])
		b[11] = attr
		stamp(b)
		binary.LittleEndian.PutUint16(b[20:], uint16(first>>16))
		binary.LittleEndian.PutUint16(b[26:], uint16(first))
		binary.LittleEndian.PutUint32(b[28:], uint32(size))
	}
	for i, d := range t.dirs {
		if err := ctx.Err(); err != nil {
			return err
		}
		b := make([]byte, d.n*cs)
		o := 0
		if i == 0 {
			short(b, fatPad(label, ""), fatAttrLabel, 0, 0)
		} else {
			up := d.parent.first
			if d.parent == t.root {
				up = 0
			}
			short(b, fatPad(".", ""), fatAttrDir, d.first, 0)
			short(b[32:], fatPad("..", ""), fatAttrDir, up, 0)
			o = 32
		}
		for _, c := range d.children {
			o += 32
			if c.long {
				o += fatLongEntries(b[o:], c.name, c.short)
			}
			if c.dir {
				short(b[o:], c.short, fatAttrDir, c.first, 0)
			} else {
				short(b[o:], c.short, 0x20, c.first, c.entry.Size) // archive, as new files are
			}
		}
		if i == 0 && rootMore != 0 {
			if _, err := w.WriteAt(b[:cs], v.dataOff); err != nil {
				return err
			}
			if _, err := w.WriteAt(b[cs:], v.dataOff+int64(rootMore-2)*cs); err != nil {
				return err
			}
		} else if _, err := w.WriteAt(b, v.dataOff+int64(d.first-2)*cs); err != nil {
			return err
		}
	}
	buf := make([]byte, 1<<20)
	for _, fl := range t.files {
		if err := w.writeFile(ctx, fl, v.dataOff+int64(fl.first-2)*cs, cs, buf); err != nil {
			return fmt.Errorf("write %s: %w", fl.entry.Path, err)
		}
	}

	// The FAT chains, from cluster 2 to the last one used, in both FATs.
	fat := make([]byte, 0, len(buf))
	at := int64(8)
	flush := func() error {
		for k := range v.numFATs {
			if _, err := w.WriteAt(fat, v.fatOff+k*v.fatBytes+at); err != nil {
				return err
			}
		}
		at += int64(len(fat))
		fat = fat[:0]
		return nil
	}
	for _, r := range runs {
		for c := r.first; c < r.first+r.n; c++ {
			e := c + 1
			if c == r.first+r.n-1 {
				e = r.then
				if e == 0 {
					e = 0x0FFFFFFF
				}
			}
			fat = binary.LittleEndian.AppendUint32(fat, e)
			if len(fat) == cap(fat) {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}

	// The boot sector and its backup: the volume serial and the sectors
	// before the partition; then the FSInfo sectors: the free clusters.
	for _, s := range []int64{0, v.backupBoot} {
		b := make([]byte, 512)
		if _, err := w.ReadAt(b, s*v.bps); err != nil {
			return err
		}
		binary.LittleEndian.PutUint32(b[28:], uint32(start/512))
		binary.LittleEndian.PutUint32(b[67:], fatVolumeID(label, t.c))
		if _, err := w.WriteAt(b, s*v.bps); err != nil {
			return err
		}
	}
	free, nextFree := v.clusters-(next-2), next
	if next > v.clusters+1 {
		nextFree = 0xFFFFFFFF
	}
	for _, s := range []int64{v.fsInfo, v.backupBoot + v.fsInfo} {
		b := make([]byte, 512)
		if _, err := w.ReadAt(b, s*v.bps); err != nil {
			return err
		}
		if string(b[0:4]) != "RRaA" || string(b[484:488]) != "rrAa" {
			return fmt.Errorf("no FSInfo sector at sector %d", s)
		}
		binary.LittleEndian.PutUint32(b[488:], free)
		binary.LittleEndian.PutUint32(b[492:], nextFree)
		if _, err := w.WriteAt(b, s*v.bps); err != nil {
			return err
		}
	}
	return nil
}

// fatLongEntries writes the long-name entries for name before its short
// entry (at b[n*32:], n being what it returns) and returns their size.
func fatLongEntries(b []byte, name string, short [11]byte) int {
	u := utf16.Encode([]rune(name))
	n := (len(u) + 12) / 13
	u = append(u, 0)
	for len(u) < n*13 {
		u = append(u, 0xFFFF)
	}
	sum := fatChecksum(short)
	// The last part comes first, its ordinal marked with 0x40.
	for i := range n {
		ord := n - i
		e := b[i*32 : i*32+32]
		e[0] = byte(ord)
		if i == 0 {
			e[0] |= 0x40
		}
		e[11], e[12], e[13] = fatAttrLFN, 0, sum
		part := u[(ord-1)*13 : ord*13]
		for j, o := range []int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30} {
			binary.LittleEndian.PutUint16(e[o:], part[j])
		}
		clear(e[26:28])
	}
	return n * 32
}

// writeFile streams a file into its clusters at off (from the partition's
// start), zeroing the rest of the last cluster.
func (w *fatWindow) writeFile(ctx context.Context, fl *fatNode, off, cs int64, buf []byte) error {
	e := fl.entry
	if e.Size == 0 {
		return nil
	}
	r, err := e.Open()
	if err != nil {
		return err
	}
	defer r.Close()
	for left := e.Size; left > 0; {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := min(left, int64(len(buf)))
		if _, err := io.ReadFull(r, buf[:k]); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return fmt.Errorf("shorter than its %d bytes", e.Size)
			}
			return err
		}
		if _, err := w.WriteAt(buf[:k], off); err != nil {
			return err
		}
		off, left = off+k, left-k
	}
	// Read to the end: a verifying reader checks the digest there.
	var one [1]byte
	for {
		n, err := r.Read(one[:])
		if n > 0 {
			return fmt.Errorf("longer than its %d bytes", e.Size)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	if tail := fl.n*cs - e.Size; tail > 0 {
		if _, err := w.WriteAt(make([]byte, tail), off); err != nil {
			return err
		}
	}
	return nil
}

// fatWindow is the bytes [off, off+size) of f: one partition. It is the
// backend go-diskfs formats, and it refuses writes outside the partition.
type fatWindow struct {
	f         *os.File
	off, size int64
}

var _ backend.Storage = (*fatWindow)(nil)

func (w *fatWindow) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= w.size {
		return 0, io.EOF
	}
	want := len(p)
	p = p[:min(int64(len(p)), w.size-off)]
	n, err := w.f.ReadAt(p, w.off+off)
	if errors.Is(err, io.EOF) {
		// Past the end of a sparse image file: zeros.
		clear(p[n:])
		n, err = len(p), nil
	}
	if err == nil && n < want {
		err = io.EOF
	}
	return n, err
}

func (w *fatWindow) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > w.size {
		return 0, fmt.Errorf("write of %d bytes at %d outside the %d-byte partition", len(p), off, w.size)
	}
	return w.f.WriteAt(p, w.off+off)
}

func (w *fatWindow) Stat() (fs.FileInfo, error)              { return nil, errors.ErrUnsupported }
func (w *fatWindow) Read([]byte) (int, error)                { return 0, errors.ErrUnsupported }
func (w *fatWindow) Seek(int64, int) (int64, error)          { return 0, errors.ErrUnsupported }
func (w *fatWindow) Close() error                            { return nil }
func (w *fatWindow) Sys() (*os.File, error)                  { return nil, backend.ErrNotSuitable }
func (w *fatWindow) Writable() (backend.WritableFile, error) { return w, nil }
func (w *fatWindow) Path() string                            { return "" }

// fatStamp encodes t as a FAT date, time and hundredths (FAT has no time
// zone: UTC is written), clamped to the years FAT can hold.
func fatStamp(t time.Time) (date, tm uint16, tenth byte) {
	t = t.UTC()
	switch {
	case t.Year() < 1980:
		t = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	case t.Year() > 2107:
		t = time.Date(2107, 12, 31, 23, 59, 59, 0, time.UTC)
	}
	date = uint16(t.Year()-1980)<<9 | uint16(t.Month())<<5 | uint16(t.Day())
	tm = uint16(t.Hour())<<11 | uint16(t.Minute())<<5 | uint16(t.Second()/2)
	tenth = byte(t.Second()%2*100 + t.Nanosecond()/10_000_000)
	return date, tm, tenth
}
