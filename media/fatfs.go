package media

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf16"
)

// Reading a USB key without mounting.
//
// The GPT and FAT32 readers here are dvpc's own rather than go-diskfs's.
// go-diskfs v1.9.4 follows a FAT cluster chain until it ends, so a chain that
// loops back on itself never returns; it allocates the whole FAT at the size
// the boot sector claims; and after a read that stops inside a cluster, the
// next read returns the rest of that cluster whatever the file's size (read
// 3 bytes of a 10-byte file, then ReadAll gives 509). Here every size read
// from the medium is checked against the partition before it is used, every
// chain is walked at most as far as the directory entry's size needs and
// never twice through a cluster, and a file never yields a byte past its
// size.

// ErrNotUSB means a file or device does not hold a dvpc USB image: no valid
// GPT, no dvpc data partition, or a file system that cannot be read.
var ErrNotUSB = errors.New("not a dvpc USB image")

// USBESPLabel and USBDataLabel are the FAT volume labels of a dvpc USB key's
// EFI system partition and data partition.
const (
	USBESPLabel  = "DVPC_EFI"
	USBDataLabel = "DVPC"
)

const (
	gptSector = 512
	// fatMaxDir bounds a directory: FAT allows 65536 entries of 32 bytes.
	fatMaxDir = 65536 * 32
	// fatBlock is how much of the FAT is read and cached at a time.
	fatBlock = 64 << 10
)

// GPT partition type GUIDs in their on-disk byte order.
var (
	gptTypeESP       = gptGUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
	gptTypeBasicData = gptGUID("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7")
)

// gptGUID encodes a GUID as GPT stores it: the first three fields little
// endian, the rest as written.
func gptGUID(s string) [16]byte {
	var b [16]byte
	if _, err := hex.Decode(b[:], []byte(strings.ReplaceAll(s, "-", ""))); err != nil {
		panic("bad GUID " + s)
	}
	b[0], b[1], b[2], b[3] = b[3], b[2], b[1], b[0]
	b[4], b[5] = b[5], b[4]
	b[6], b[7] = b[7], b[6]
	return b
}

// USB is a dvpc USB key or image opened read-only, without mounting.
type USB struct {
	f          *os.File
	data       *fatFS
	esp        *fatFS
	size, want int64
}

// OpenUSB opens a USB image file or block device read-only and finds its
// EFI system partition and its data partition (a Microsoft basic data
// partition whose FAT label, or GPT name, is [USBDataLabel]). Anything else
// is an error wrapping [ErrNotUSB].
func OpenUSB(path string) (*USB, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open USB %s: %w", path, err)
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open USB %s: %w", path, err)
	}
	esp, data, want, err := openUSBParts(f, size)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open USB %s: %w", path, err)
	}
	return &USB{f: f, data: data, esp: esp, size: size, want: want}, nil
}

// Size returns the image's or device's size, and the size its partitions
// need, which is larger when the image is cut short.
func (u *USB) Size() (have, want int64) { return u.size, u.want }

// FS returns the data partition's files: the store under "store/". Its files
// implement io.ReaderAt and io.Seeker.
func (u *USB) FS() fs.FS { return u.data }

// ESPFS returns the EFI system partition's files.
func (u *USB) ESPFS() fs.FS { return u.esp }

// Close closes the image or device.
func (u *USB) Close() error { return u.f.Close() }

// openUSBParts reads the partition table and both file systems, and returns
// the size the partitions need. A partition cut short by the end of the
// image is read as far as it goes. A panic while parsing is a bug, but
// hostile bytes must not crash the caller: it becomes an ErrNotUSB error.
func openUSBParts(r io.ReaderAt, size int64) (esp, data *fatFS, want int64, err error) {
	defer func() {
		if p := recover(); p != nil {
			esp, data, err = nil, nil, fmt.Errorf("%w: unreadable (%v)", ErrNotUSB, p)
		}
	}()
	parts, err := readGPT(r, size)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("%w: %w", ErrNotUSB, err)
	}
	want = size
	for _, p := range parts {
		if p.typ == gptTypeESP || p.typ == gptTypeBasicData {
			want = max(want, p.start+p.size)
		}
	}
	var espErr, dataErr error
	for _, p := range parts {
		if (p.typ != gptTypeESP || esp != nil) && (p.typ != gptTypeBasicData || data != nil) {
			continue
		}
		// A partition cut short is read as far as it goes: its FAT must be
		// there, its files may not all be.
		cut := p.start+p.size > size
		v, err := readFATVolume(r, p.start, p.size)
		if err != nil {
			if cut {
				err = &CutError{What: fmt.Sprintf("partition %d", p.index), Size: p.size, Have: size - p.start, End: size, Want: want}
			}
			if p.typ == gptTypeESP {
				espErr = fmt.Errorf("EFI system partition %d: %w", p.index, err)
			} else if cut || strings.HasPrefix(p.name, USBDataLabel) {
				dataErr = fmt.Errorf("data partition %d: %w", p.index, err)
			}
			continue
		}
		if cut {
			v.end, v.want = size, want
		}
		fsys := newFATFS(v)
		switch {
		case p.typ == gptTypeESP:
			esp = fsys
		case fsys.label() == USBDataLabel || v.label == USBDataLabel || strings.HasPrefix(p.name, USBDataLabel):
			data = fsys
		}
	}
	switch {
	case data == nil && dataErr != nil:
		return nil, nil, 0, fmt.Errorf("%w: %w", ErrNotUSB, dataErr)
	case data == nil:
		return nil, nil, 0, fmt.Errorf("%w: no FAT32 data partition labelled %s", ErrNotUSB, USBDataLabel)
	case esp == nil && espErr != nil:
		return nil, nil, 0, fmt.Errorf("%w: %w", ErrNotUSB, espErr)
	case esp == nil:
		return nil, nil, 0, fmt.Errorf("%w: no EFI system partition", ErrNotUSB)
	}
	return esp, data, want, nil
}

// gptPart is one used entry of a GPT.
type gptPart struct {
	index       int // 1-based
	typ         [16]byte
	name        string
	start, size int64 // bytes
}

// readGPT reads the primary GPT, or the backup at the end when the primary
// is damaged, and returns its used entries in table order.
func readGPT(r io.ReaderAt, size int64) ([]gptPart, error) {
	if size < 34*gptSector {
		return nil, fmt.Errorf("%d bytes is too small for a GPT disk", size)
	}
	parts, err := readGPTAt(r, size, 1)
	if err == nil {
		return parts, nil
	}
	if parts, err2 := readGPTAt(r, size, size/gptSector-1); err2 == nil {
		return parts, nil
	}
	return nil, err
}

func readGPTAt(r io.ReaderAt, size, lba int64) ([]gptPart, error) {
	h := make([]byte, gptSector)
	if err := readFullAt(r, h, lba*gptSector); err != nil {
		return nil, fmt.Errorf("read GPT header: %w", err)
	}
	if string(h[:8]) != "EFI PART" {
		return nil, errors.New("no GPT header")
	}
	hsize := binary.LittleEndian.Uint32(h[12:])
	if hsize < 92 || hsize > gptSector {
		return nil, fmt.Errorf("GPT header size %d", hsize)
	}
	want := binary.LittleEndian.Uint32(h[16:])
	c := slices.Clone(h[:hsize])
	clear(c[16:20])
	if crc32.ChecksumIEEE(c) != want {
		return nil, errors.New("GPT header checksum mismatch")
	}
	if my := binary.LittleEndian.Uint64(h[24:]); my != uint64(lba) {
		return nil, fmt.Errorf("GPT header at sector %d says it is at %d", lba, my)
	}
	entLBA := binary.LittleEndian.Uint64(h[72:])
	n := binary.LittleEndian.Uint32(h[80:])
	esize := binary.LittleEndian.Uint32(h[84:])
	if n == 0 || n > 1024 || esize < 128 || esize > 1024 || esize%8 != 0 {
		return nil, fmt.Errorf("GPT partition array of %d entries of %d bytes", n, esize)
	}
	total := int64(n) * int64(esize)
	if entLBA < 2 || entLBA > uint64(size/gptSector) || int64(entLBA)*gptSector+total > size {
		return nil, fmt.Errorf("GPT partition array at sector %d lies outside the %d-byte disk", entLBA, size)
	}
	arr := make([]byte, total)
	if err := readFullAt(r, arr, int64(entLBA)*gptSector); err != nil {
		return nil, fmt.Errorf("read GPT partition array: %w", err)
	}
	if crc32.ChecksumIEEE(arr) != binary.LittleEndian.Uint32(h[88:]) {
		return nil, errors.New("GPT partition array checksum mismatch")
	}
	var parts []gptPart
	for i := range int(n) {
		e := arr[i*int(esize) : (i+1)*int(esize)]
		var typ [16]byte
		copy(typ[:], e[:16])
		if typ == ([16]byte{}) {
			continue
		}
		first := binary.LittleEndian.Uint64(e[32:])
		last := binary.LittleEndian.Uint64(e[40:])
		if first < 1 || last < first || last >= uint64(1)<<40 {
			continue
		}
		u := make([]uint16, 36)
		for j := range u {
			u[j] = binary.LittleEndian.Uint16(e[56+2*j:])
		}
		if k := slices.Index(u, 0); k >= 0 {
			u = u[:k]
		}
		parts = append(parts, gptPart{
			index: i + 1, typ: typ, name: string(utf16.Decode(u)),
			start: int64(first) * gptSector, size: int64(last-first+1) * gptSector,
		})
	}
	return parts, nil
}

// readFullAt reads len(p) bytes at off; a short read is io.ErrUnexpectedEOF,
// which on a medium means it is truncated.
func readFullAt(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return fmt.Errorf("%d bytes at offset %d: %w (truncated image?)", len(p), off, io.ErrUnexpectedEOF)
	}
	return err
}

// fatVolume is a FAT32 file system in the byte range [base, base+size) of r.
type fatVolume struct {
	r           io.ReaderAt
	base, size  int64
	bps         int64 // bytes per sector
	clusterSize int64
	numFATs     int64
	fatOff      int64 // of the first FAT, from base
	fatBytes    int64 // of one FAT
	dataOff     int64 // of cluster 2, from base
	clusters    uint32
	rootCluster uint32
	fsInfo      int64 // sector of the FSInfo sector; 0 when none
	backupBoot  int64 // sector of the backup boot sector; 0 when none
	volumeID    uint32
	label       string // from the boot sector
	// end and want are where r ends and should end, when the partition is
	// cut short (both 0 when it is whole).
	end, want int64

	mu  sync.Mutex
	fat map[int64][]byte // cached FAT blocks
}

// readFATVolume checks a FAT32 boot sector against the partition that holds
// it.
func readFATVolume(r io.ReaderAt, base, size int64) (*fatVolume, error) {
	bs := make([]byte, 512)
	if err := readFullAt(r, bs, base); err != nil {
		return nil, fmt.Errorf("read boot sector: %w", err)
	}
	if bs[510] != 0x55 || bs[511] != 0xAA {
		return nil, errors.New("no FAT boot sector")
	}
	le16 := func(o int) int64 { return int64(binary.LittleEndian.Uint16(bs[o:])) }
	le32 := func(o int) int64 { return int64(binary.LittleEndian.Uint32(bs[o:])) }
	bps := le16(11)
	spc := int64(bs[13])
	if bps != 512 && bps != 1024 && bps != 2048 && bps != 4096 {
		return nil, fmt.Errorf("FAT sector size %d", bps)
	}
	if spc == 0 || spc&(spc-1) != 0 || bps*spc > 256<<10 {
		return nil, fmt.Errorf("FAT cluster of %d sectors", spc)
	}
	reserved, numFATs := le16(14), int64(bs[16])
	if reserved == 0 || numFATs < 1 || numFATs > 2 {
		return nil, fmt.Errorf("FAT with %d reserved sectors and %d FATs", reserved, numFATs)
	}
	if le16(17) != 0 || le16(22) != 0 {
		return nil, errors.New("a FAT12 or FAT16 file system, not FAT32")
	}
	total := le16(19)
	if total == 0 {
		total = le32(32)
	}
	v := &fatVolume{
		r: r, base: base, size: size, bps: bps, clusterSize: bps * spc, numFATs: numFATs,
		fatOff: reserved * bps, fatBytes: le32(36) * bps,
		rootCluster: uint32(le32(44)), volumeID: uint32(le32(67)),
		label: strings.TrimRight(string(bs[71:82]), " "),
		fat:   map[int64][]byte{},
	}
	if fsi := le16(48); fsi > 0 && fsi < reserved {
		v.fsInfo = fsi
	}
	if bb := le16(50); bb > 0 && bb < reserved {
		v.backupBoot = bb
	}
	totalBytes := total * bps
	if totalBytes > size {
		return nil, fmt.Errorf("FAT claims %d bytes in a %d-byte partition", totalBytes, size)
	}
	v.dataOff = v.fatOff + numFATs*v.fatBytes
	if v.fatBytes < 8 || v.dataOff >= totalBytes {
		return nil, fmt.Errorf("FAT of %d bytes leaves no data area in %d bytes", v.fatBytes, totalBytes)
	}
	clusters := (totalBytes - v.dataOff) / v.clusterSize
	// A FAT with fewer entries than clusters limits the usable clusters.
	clusters = min(clusters, v.fatBytes/4-2, 0x0FFFFFF0)
	if clusters < 1 {
		return nil, errors.New("FAT has no data clusters")
	}
	v.clusters = uint32(clusters)
	if !v.valid(v.rootCluster) {
		return nil, fmt.Errorf("root directory at cluster %d outside the %d clusters", v.rootCluster, clusters)
	}
	return v, nil
}

func (v *fatVolume) valid(c uint32) bool { return c >= 2 && c <= v.clusters+1 }

// clusterOff returns the offset of cluster c in r.
func (v *fatVolume) clusterOff(c uint32) int64 {
	return v.base + v.dataOff + int64(c-2)*v.clusterSize
}

// entry returns FAT entry c, reading the FAT a block at a time.
func (v *fatVolume) entry(c uint32) (uint32, error) {
	off := int64(c) * 4
	blk := off / fatBlock
	v.mu.Lock()
	b, ok := v.fat[blk]
	v.mu.Unlock()
	if !ok {
		n := min(fatBlock, v.fatBytes-blk*fatBlock)
		b = make([]byte, n)
		if err := readFullAt(v.r, b, v.base+v.fatOff+blk*fatBlock); err != nil {
			return 0, fmt.Errorf("read FAT: %w", err)
		}
		v.mu.Lock()
		v.fat[blk] = b
		v.mu.Unlock()
	}
	o := off - blk*fatBlock
	return binary.LittleEndian.Uint32(b[o:]) & 0x0FFFFFFF, nil
}

// next returns the cluster after c in its chain; end is true at the end
// of the chain.
func (v *fatVolume) next(c uint32) (n uint32, end bool, err error) {
	e, err := v.entry(c)
	if err != nil {
		return 0, false, err
	}
	switch {
	case e >= 0x0FFFFFF8:
		return 0, true, nil
	case !v.valid(e):
		return 0, false, fmt.Errorf("cluster %d links to %#x", c, e)
	}
	return e, false, nil
}

// fatExtent is a run of contiguous clusters holding part of a file.
type fatExtent struct {
	off  int64 // in the file
	disk int64 // in r
	n    int64
}

// extents maps the first n bytes of the chain starting at first. It walks
// no further than n needs and stops at a cluster seen before, so a looping
// chain can neither hold it nor make it allocate much.
func (v *fatVolume) extents(first uint32, n int64) ([]fatExtent, error) {
	if (n-1)/v.clusterSize >= int64(v.clusters) {
		return nil, fmt.Errorf("%d bytes do not fit in %d clusters", n, v.clusters)
	}
	var ext []fatExtent
	var seen []uint64 // a bitmap of visited clusters, for long chains
	c := first
	for off, i := int64(0), 0; off < n; off, i = off+v.clusterSize, i+1 {
		if !v.valid(c) {
			return nil, fmt.Errorf("cluster %d is outside the %d clusters", c, v.clusters)
		}
		if i == 1024 {
			seen = make([]uint64, (v.clusters+2)/64+1)
			for _, x := range ext {
				for d := x.disk; d < x.disk+x.n; d += v.clusterSize {
					k := uint32((d-v.base-v.dataOff)/v.clusterSize) + 2
					seen[k/64] |= 1 << (k % 64)
				}
			}
		}
		d := v.clusterOff(c)
		if seen != nil {
			if seen[c/64]&(1<<(c%64)) != 0 {
				return nil, fmt.Errorf("cluster chain loops at cluster %d", c)
			}
			seen[c/64] |= 1 << (c % 64)
		} else if slices.ContainsFunc(ext, func(x fatExtent) bool { return d >= x.disk && d < x.disk+x.n }) {
			return nil, fmt.Errorf("cluster chain loops at cluster %d", c)
		}
		l := min(v.clusterSize, n-off)
		if k := len(ext) - 1; k >= 0 && ext[k].disk+ext[k].n == d {
			ext[k].n += l
		} else {
			ext = append(ext, fatExtent{off: off, disk: d, n: l})
		}
		if off+v.clusterSize >= n {
			break
		}
		nx, end, err := v.next(c)
		if err != nil {
			return nil, err
		}
		if end {
			return nil, fmt.Errorf("cluster chain ends after %d bytes of %d", off+v.clusterSize, n)
		}
		c = nx
	}
	return ext, nil
}

// fatRawEntry is one short directory entry, with the long name that
// precedes it when that is intact.
type fatRawEntry struct {
	name    string
	short   [11]byte
	attr    byte
	cluster uint32
	size    uint32
	mtime   time.Time
	off     int64 // of the 32-byte entry in r
}

const (
	fatAttrLabel = 0x08
	fatAttrDir   = 0x10
	fatAttrLFN   = 0x0F
)

func (e *fatRawEntry) isDir() bool   { return e.attr&fatAttrDir != 0 }
func (e *fatRawEntry) isLabel() bool { return e.attr&fatAttrLabel != 0 }
func (e *fatRawEntry) isDot() bool {
	return e.short == [11]byte{'.', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '} ||
		e.short == [11]byte{'.', '.', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '}
}

// dirRaw returns every short entry of the directory at cluster, including
// ".", ".." and the volume label, in disk order.
func (v *fatVolume) dirRaw(cluster uint32) ([]fatRawEntry, error) {
	var out []fatRawEntry
	var lfn lfnState
	buf := make([]byte, v.clusterSize)
	c := cluster
	for read := int64(0); ; read += v.clusterSize {
		if read >= fatMaxDir {
			return nil, fmt.Errorf("directory at cluster %d is over %d bytes (a looping chain?)", cluster, fatMaxDir)
		}
		if !v.valid(c) {
			return nil, fmt.Errorf("directory cluster %d is outside the %d clusters", c, v.clusters)
		}
		if v.want > 0 {
			if err := cutAt(fmt.Sprintf("directory cluster %d", c), v.clusterOff(c), v.clusterSize, v.end, v.want); err != nil {
				return nil, err
			}
		}
		if err := readFullAt(v.r, buf, v.clusterOff(c)); err != nil {
			return nil, fmt.Errorf("read directory: %w", err)
		}
		for i := 0; i < len(buf); i += 32 {
			raw := buf[i : i+32]
			switch {
			case raw[0] == 0:
				return out, nil
			case raw[0] == 0xE5:
				lfn.reset()
				continue
			case raw[11]&0x3F == fatAttrLFN:
				lfn.add(raw)
				continue
			}
			e := fatRawEntry{
				attr:    raw[11],
				cluster: uint32(binary.LittleEndian.Uint16(raw[20:]))<<16 | uint32(binary.LittleEndian.Uint16(raw[26:])),
				size:    binary.LittleEndian.Uint32(raw[28:]),
				mtime:   fatTime(binary.LittleEndian.Uint16(raw[24:]), binary.LittleEndian.Uint16(raw[22:])),
				off:     v.clusterOff(c) + int64(i),
			}
			copy(e.short[:], raw[:11])
			e.name = lfn.name(e.short)
			if e.name == "" {
				e.name = fatShortString(raw)
			}
			lfn.reset()
			out = append(out, e)
		}
		nx, end, err := v.next(c)
		if err != nil {
			return nil, err
		}
		if end {
			return out, nil
		}
		c = nx
	}
}

// lfnState gathers the long-name entries before a short entry.
type lfnState struct {
	parts [][13]uint16
	want  int // the next ordinal expected; 0 when complete
	sum   byte
	ok    bool
}

func (l *lfnState) reset() { *l = lfnState{} }

func (l *lfnState) add(raw []byte) {
	ord := int(raw[0] & 0x1F)
	if raw[0]&0x40 != 0 {
		if ord == 0 || ord > 20 {
			l.reset()
			return
		}
		*l = lfnState{parts: make([][13]uint16, ord), want: ord, sum: raw[13], ok: true}
	}
	if !l.ok || ord != l.want || raw[13] != l.sum {
		l.reset()
		return
	}
	p := &l.parts[ord-1]
	for j, o := range []int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30} {
		p[j] = binary.LittleEndian.Uint16(raw[o:])
	}
	l.want--
}

// name returns the long name if it is complete and belongs to short.
func (l *lfnState) name(short [11]byte) string {
	if !l.ok || l.want != 0 || fatChecksum(short) != l.sum {
		return ""
	}
	var u []uint16
	for _, p := range l.parts {
		u = append(u, p[:]...)
	}
	if k := slices.Index(u, 0); k >= 0 {
		u = u[:k]
	}
	n := string(utf16.Decode(u))
	if n == "" || n == "." || n == ".." || strings.ContainsAny(n, "/\x00") {
		return ""
	}
	return n
}

// fatChecksum is the checksum of an 8.3 name that ties long-name entries to
// their short entry.
func fatChecksum(short [11]byte) byte {
	var s byte
	for _, c := range short {
		s = (s&1)<<7 + s>>1 + c
	}
	return s
}

// fatShortString renders an 8.3 name, reading its bytes in code page 437
// (the default of Linux, mtools and most firmware) and lower-casing it as
// the NT flags say.
func fatShortString(raw []byte) string {
	decode := func(b []byte, lower bool) string {
		var s strings.Builder
		for i, c := range b {
			switch {
			case i == 0 && c == 0x05:
				c = 0xE5
				fallthrough
			case c >= 0x80:
				r := fatCP437[c-0x80]
				if lower {
					r = unicode.ToLower(r)
				}
				s.WriteRune(r)
			case c == '/' || c < 0x20:
				s.WriteByte('_')
			case lower && 'A' <= c && c <= 'Z':
				s.WriteByte(c + 'a' - 'A')
			default:
				s.WriteByte(c)
			}
		}
		return s.String()
	}
	name := decode(bytes.TrimRight(raw[:8], " "), raw[12]&0x08 != 0)
	if ext := decode(bytes.TrimRight(raw[8:11], " "), raw[12]&0x10 != 0); ext != "" {
		name += "." + ext
	}
	return name
}

// fatCP437 is code page 437 from 0x80 on.
var fatCP437 = []rune("ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u00a0")

// fatTime decodes a DOS date and time; FAT keeps no time zone, so it is
// read as UTC.
func fatTime(d, t uint16) time.Time {
	return time.Date(1980+int(d>>9), time.Month(d>>5&0x0F), int(d&0x1F),
		int(t>>11), int(t>>5&0x3F), int(t&0x1F)*2, 0, time.UTC)
}

// fatFS is a FAT32 volume as an fs.FS.
type fatFS struct {
	v    *fatVolume
	mu   sync.Mutex
	dirs map[uint32]*fatDir
}

// fatDir is a parsed directory: its files and subdirectories by name.
type fatDir struct {
	entries []fatRawEntry // sorted by name, without ".", ".." and the label
	label   string
}

var (
	_ fs.StatFS    = (*fatFS)(nil)
	_ fs.ReadDirFS = (*fatFS)(nil)
)

func newFATFS(v *fatVolume) *fatFS { return &fatFS{v: v, dirs: map[uint32]*fatDir{}} }

// label returns the volume label from the root directory, where systems
// that relabel a volume write it, or else from the boot sector.
func (f *fatFS) label() string {
	d, err := f.dir(f.v.rootCluster)
	if err != nil || d.label == "" {
		return f.v.label
	}
	return d.label
}

func (f *fatFS) dir(cluster uint32) (*fatDir, error) {
	f.mu.Lock()
	d, ok := f.dirs[cluster]
	f.mu.Unlock()
	if ok {
		return d, nil
	}
	raw, err := f.v.dirRaw(cluster)
	if err != nil {
		return nil, err
	}
	d = &fatDir{}
	for _, e := range raw {
		switch {
		case e.isLabel():
			if d.label == "" {
				d.label = strings.TrimRight(string(e.short[:]), " ")
			}
		case e.isDot():
		default:
			d.entries = append(d.entries, e)
		}
	}
	slices.SortStableFunc(d.entries, func(a, b fatRawEntry) int { return strings.Compare(a.name, b.name) })
	f.mu.Lock()
	f.dirs[cluster] = d
	f.mu.Unlock()
	return d, nil
}

// lookup resolves a path to its entry; "." is the root directory.
func (f *fatFS) lookup(op, name string) (fatRawEntry, error) {
	if !fs.ValidPath(name) {
		return fatRawEntry{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	e := fatRawEntry{name: ".", attr: fatAttrDir, cluster: f.v.rootCluster}
	if name == "." {
		return e, nil
	}
	seen := map[uint32]bool{e.cluster: true}
	for part := range strings.SplitSeq(name, "/") {
		if !e.isDir() {
			return fatRawEntry{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		d, err := f.dir(e.cluster)
		if err != nil {
			return fatRawEntry{}, &fs.PathError{Op: op, Path: name, Err: err}
		}
		i, ok := slices.BinarySearchFunc(d.entries, part, func(x fatRawEntry, n string) int { return strings.Compare(x.name, n) })
		if !ok {
			// FAT names are case-insensitive.
			i = slices.IndexFunc(d.entries, func(x fatRawEntry) bool { return strings.EqualFold(x.name, part) })
			if i < 0 {
				return fatRawEntry{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
			}
		}
		e = d.entries[i]
		if e.isDir() {
			if seen[e.cluster] {
				return fatRawEntry{}, &fs.PathError{Op: op, Path: name, Err: errors.New("directory loop in the FAT")}
			}
			seen[e.cluster] = true
		}
	}
	return e, nil
}

// Open implements fs.FS.
func (f *fatFS) Open(name string) (fs.File, error) {
	e, err := f.lookup("open", name)
	if err != nil {
		return nil, err
	}
	if e.isDir() {
		d, err := f.dir(e.cluster)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &fatDirFile{info: fatInfo(e, name), entries: d.entries}, nil
	}
	fl := &fatFile{v: f.v, e: e, path: name, info: fatInfo(e, name)}
	if err := fl.cut(); err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return fl, nil
}

// Stat implements fs.StatFS.
func (f *fatFS) Stat(name string) (fs.FileInfo, error) {
	e, err := f.lookup("stat", name)
	if err != nil {
		return nil, err
	}
	if !e.isDir() {
		if err := (&fatFile{v: f.v, e: e, path: name}).cut(); err != nil {
			return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
		}
	}
	return fatInfo(e, name), nil
}

// ReadDir implements fs.ReadDirFS.
func (f *fatFS) ReadDir(name string) ([]fs.DirEntry, error) {
	e, err := f.lookup("readdir", name)
	if err != nil {
		return nil, err
	}
	if !e.isDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	d, err := f.dir(e.cluster)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	out := make([]fs.DirEntry, len(d.entries))
	for i, c := range d.entries {
		out[i] = fatInfo(c, c.name)
	}
	return out, nil
}

// fatFileInfo is both the fs.FileInfo and the fs.DirEntry of an entry.
type fatFileInfo struct {
	name  string
	size  int64
	dir   bool
	mtime time.Time
}

func fatInfo(e fatRawEntry, p string) *fatFileInfo {
	fi := &fatFileInfo{name: path.Base(p), dir: e.isDir(), mtime: e.mtime}
	if !fi.dir {
		fi.size = int64(e.size)
	}
	return fi
}

func (i *fatFileInfo) Name() string       { return i.name }
func (i *fatFileInfo) Size() int64        { return i.size }
func (i *fatFileInfo) ModTime() time.Time { return i.mtime }
func (i *fatFileInfo) IsDir() bool        { return i.dir }
func (i *fatFileInfo) Sys() any           { return nil }
func (i *fatFileInfo) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}
func (i *fatFileInfo) Type() fs.FileMode          { return i.Mode().Type() }
func (i *fatFileInfo) Info() (fs.FileInfo, error) { return i, nil }

// fatFile is an open regular file. ReadAt is safe for concurrent use.
type fatFile struct {
	v    *fatVolume
	e    fatRawEntry
	path string
	info *fatFileInfo

	once sync.Once
	ext  []fatExtent
	err  error

	mu  sync.Mutex
	off int64
}

var (
	_ io.ReaderAt = (*fatFile)(nil)
	_ io.Seeker   = (*fatFile)(nil)
)

func (f *fatFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *fatFile) Close() error               { return nil }

// cut returns a [*CutError] when part of the file lies past the end of a
// partition cut short.
func (f *fatFile) cut() error {
	if f.v.want == 0 {
		return nil
	}
	if err := f.load(); err != nil {
		return err
	}
	var have int64
	for _, x := range f.ext {
		have += max(0, min(x.disk+x.n, f.v.end)-x.disk)
	}
	if size := int64(f.e.size); have < size {
		return &CutError{What: f.path, Size: size, Have: have, End: f.v.end, Want: f.v.want}
	}
	return nil
}

func (f *fatFile) load() error {
	f.once.Do(func() {
		if n := int64(f.e.size); n > 0 {
			f.ext, f.err = f.v.extents(f.e.cluster, n)
		}
	})
	return f.err
}

// ReadAt reads within the size the directory entry gives, never past it.
func (f *fatFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: f.path, Err: fs.ErrInvalid}
	}
	size := int64(f.e.size)
	if off >= size {
		return 0, io.EOF
	}
	if err := f.load(); err != nil {
		return 0, &fs.PathError{Op: "read", Path: f.path, Err: err}
	}
	want := len(p)
	p = p[:min(int64(len(p)), size-off)]
	n := 0
	i, _ := slices.BinarySearchFunc(f.ext, off, func(x fatExtent, o int64) int {
		switch {
		case x.off+x.n <= o:
			return -1
		case x.off > o:
			return 1
		}
		return 0
	})
	for ; n < len(p) && i < len(f.ext); i++ {
		x := f.ext[i]
		at := off + int64(n) - x.off
		m := min(int64(len(p)-n), x.n-at)
		if err := readFullAt(f.v.r, p[n:n+int(m)], x.disk+at); err != nil {
			return n, &fs.PathError{Op: "read", Path: f.path, Err: err}
		}
		n += int(m)
	}
	if n < want {
		return n, io.EOF
	}
	return n, nil
}

func (f *fatFile) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.ReadAt(p, f.off)
	f.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (f *fatFile) Seek(offset int64, whence int) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += f.off
	case io.SeekEnd:
		offset += int64(f.e.size)
	default:
		return 0, &fs.PathError{Op: "seek", Path: f.path, Err: fs.ErrInvalid}
	}
	if offset < 0 {
		return 0, &fs.PathError{Op: "seek", Path: f.path, Err: fs.ErrInvalid}
	}
	f.off = offset
	return offset, nil
}

// fatDirFile is an open directory.
type fatDirFile struct {
	info    *fatFileInfo
	entries []fatRawEntry
	pos     int
}

func (d *fatDirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *fatDirFile) Close() error               { return nil }
func (d *fatDirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: errors.New("is a directory")}
}

func (d *fatDirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.pos:]
	if n > 0 && len(rest) == 0 {
		return nil, io.EOF
	}
	if n > 0 && len(rest) > n {
		rest = rest[:n]
	}
	d.pos += len(rest)
	out := make([]fs.DirEntry, len(rest))
	for i, e := range rest {
		out[i] = fatInfo(e, e.name)
	}
	return out, nil
}
