package media

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf16"

	"github.com/dvpc/dvpc/image"
)

// Writing the store on a USB key in place, without mounting.
//
// [USBStore] adds blobs under store/blobs/sha256/ and replaces
// store/index.json on the data partition of a dvpc USB key (an image file
// or a block device that is not mounted), so that a key pulled out at any
// point still holds its previous index.json and every blob it names:
//
//  1. New bytes go only into clusters that the first FAT marks free and
//     that nothing else in this process has taken; nothing in use is
//     written.
//  2. A new file's cluster chain is written into both FATs (the first,
//     which every reader uses, then its copy), then its directory entry,
//     written within one sector, names it. index.json's entry is rewritten
//     in place, one 32-byte entry, to name the new chain and size; only
//     then is the old chain freed.
//  3. Each of these steps is flushed (fsync) before the next begins. While
//     a step is under way the FSInfo free count says "unknown", which
//     fsck.fat and every system accept; after it the count is exact.
//
// Between a chain's FAT write and the directory write that names it, the
// chain is allocated but unnamed: fsck.fat reports it as unused clusters
// to reclaim, and loses nothing of the store by doing so. The next
// [OpenUSBStore] reclaims such clusters and makes the FAT copy equal to
// the first FAT before writing anything.

// fatDevice is what a USBStore writes: an image file or a block device.
type fatDevice interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
}

// KeyFullError means blobs do not fit in the free space of a USB key; the
// store wrote nothing.
type KeyFullError struct {
	Key  string
	Blob image.Digest // the first blob that does not fit
	// Need is what the blobs and the new index take, Free what the key has,
	// both in bytes of whole clusters.
	Need, Free int64
}

func (e *KeyFullError) Error() string {
	return fmt.Sprintf("the USB key %s is full: blob %s and the rest need %s, %s more than the %s free",
		e.Key, e.Blob, HumanBytes(e.Need), HumanBytes(e.Need-e.Free), HumanBytes(e.Free))
}

// USBStore is the store on a dvpc USB key or image, read and written in
// place through dvpc's own FAT32 code. It is an [image.Store]; blobs are
// written as described above.
type USBStore struct {
	path string
	f    *os.File
	dev  fatDevice
	base int64 // the data partition's offset and size
	size int64

	lock sync.Mutex // the store's write lock ([USBStore.Lock])

	mu       sync.Mutex // guards what follows, and every write
	v        *fatVolume
	src      *image.FSSource
	fat      []byte          // the first FAT, as on the key
	reserved map[uint32]bool // clusters held by blobs being written
	hint     uint32          // where to look for a free cluster next
	free     uint32          // clusters free in the FAT
	unknown  bool            // FSInfo says the free count is unknown
	// step, in tests, is called after each step leaves the key consistent.
	step func(string)
}

var _ image.Store = (*USBStore)(nil)

// OpenUSBStore opens the store on a USB image file or block device for
// reading and writing in place. A key that cannot be written (a read-only
// file or device) gives an error wrapping [image.ErrReadOnly]; a mounted
// device is refused, since the system writes it too.
func OpenUSBStore(p string) (*USBStore, error) {
	return openUSBStore(p, nil)
}

func openUSBStore(p string, wrap func(fatDevice) fatDevice) (*USBStore, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("open USB key %s: %w", p, err)
	}
	if fi.Mode().IsRegular() && fi.Mode().Perm()&0o222 == 0 {
		// Marked read-only, which binds root too.
		return nil, fmt.Errorf("write USB key %s: the image is marked read-only (mode %v): %w", p, fi.Mode().Perm(), image.ErrReadOnly)
	}
	flag := os.O_RDWR
	if fi.Mode()&fs.ModeDevice != 0 {
		// O_EXCL on a block device fails while the kernel has it mounted.
		flag |= os.O_EXCL
	}
	f, err := os.OpenFile(p, flag, 0)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) {
			return nil, fmt.Errorf("write USB key %s: %w (%w)", p, image.ErrReadOnly, err)
		}
		if fi.Mode()&fs.ModeDevice != 0 && errors.Is(err, syscall.EBUSY) {
			return nil, fmt.Errorf("write USB key %s: it is mounted or in use; unmount it or name its mounted store: %w", p, err)
		}
		return nil, fmt.Errorf("write USB key %s: %w", p, err)
	}
	if err := lockKey(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("write USB key %s: another dvpc is writing it: %w", p, err)
	}
	s, err := newUSBStore(p, f, wrap)
	if err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

func newUSBStore(p string, f *os.File, wrap func(fatDevice) fatDevice) (*USBStore, error) {
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("open USB key %s: %w", p, err)
	}
	_, data, _, err := openUSBParts(f, size)
	if err != nil {
		return nil, fmt.Errorf("open USB key %s: %w", p, err)
	}
	if data.v.want != 0 {
		return nil, fmt.Errorf("write USB key %s: its data partition is cut short: %w", p, ErrNotUSB)
	}
	return openFATStore(p, f, data.v, wrap)
}

// openFATStore opens the store on the FAT32 volume v of f for writing,
// after making the volume consistent ([USBStore.repair]).
func openFATStore(p string, f *os.File, v *fatVolume, wrap func(fatDevice) fatDevice) (*USBStore, error) {
	if v.fsInfo == 0 {
		return nil, fmt.Errorf("write USB key %s: its FAT32 has no FSInfo sector: %w", p, ErrNotUSB)
	}
	s := &USBStore{path: p, f: f, dev: f, base: v.base, size: v.size, reserved: map[uint32]bool{}}
	if wrap != nil {
		s.dev = wrap(f)
	}
	s.fat = make([]byte, v.fatBytes)
	if err := readFullAt(f, s.fat, v.base+v.fatOff); err != nil {
		return nil, fmt.Errorf("open USB key %s: read FAT: %w", p, err)
	}
	for c := uint32(2); c <= v.clusters+1; c++ {
		if s.get(c) == 0 {
			s.free++
		}
	}
	if err := s.refresh(); err != nil {
		return nil, err
	}
	for _, dir := range []string{"store/oci-layout", "store/index.json"} {
		if _, err := s.lookup(dir); err != nil {
			return nil, fmt.Errorf("open USB key %s: no dvpc store: %w", p, err)
		}
	}
	if err := s.repair(); err != nil {
		return nil, err
	}
	return s, nil
}

// refresh reads the volume again after a change, so that reads see it.
func (s *USBStore) refresh() error {
	v, err := readFATVolume(s.f, s.base, s.size)
	if err != nil {
		return fmt.Errorf("USB key %s: %w", s.path, err)
	}
	src, err := image.OpenFSSource(newFATFS(v), StoreDir)
	if err != nil {
		return fmt.Errorf("USB key %s: %w", s.path, err)
	}
	s.v, s.src = v, src
	return nil
}

func (s *USBStore) source() *image.FSSource {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.src
}

// String returns the key's path.
func (s *USBStore) String() string { return s.path }

// Close closes the key.
func (s *USBStore) Close() error { return s.f.Close() }

// Refs implements [image.Source].
func (s *USBStore) Refs(ctx context.Context) ([]image.Ref, error) {
	return s.source().Refs(ctx)
}

// OpenBlob implements [image.Source].
func (s *USBStore) OpenBlob(ctx context.Context, d image.Digest) (image.Blob, error) {
	return s.source().OpenBlob(ctx, d)
}

// StatBlob implements [image.Source].
func (s *USBStore) StatBlob(ctx context.Context, d image.Digest) (int64, error) {
	return s.source().StatBlob(ctx, d)
}

// Tags lists the key's tags.
func (s *USBStore) Tags(ctx context.Context) ([]string, error) {
	refs, err := s.Refs(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(refs))
	for _, r := range refs {
		out = append(out, r.Name)
	}
	return out, nil
}

// Lock implements [image.Store]: one writer at a time in this process.
func (s *USBStore) Lock(ctx context.Context) (func(), error) {
	s.lock.Lock()
	return s.lock.Unlock, nil
}

// Free returns the free bytes of the data partition, in whole clusters.
func (s *USBStore) Free() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(s.freeClusters()) * s.v.clusterSize
}

// CheckRoom returns a [*KeyFullError] when blobs, with the directory
// entries they take and a new index.json, do not fit in the free space.
func (s *USBStore) CheckRoom(ctx context.Context, blobs []image.BlobRef) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.v.clusterSize
	free := int64(s.freeClusters()) * cs
	idx, err := s.lookup("store/index.json")
	if err != nil {
		return err
	}
	// The new index is written before the old one is freed.
	need := ((int64(idx.size)+int64(len(blobs))*512+64<<10)/cs + 1) * cs
	need += (int64(len(blobs))*6*32/cs + 1) * cs // directory entries
	for _, b := range blobs {
		need += (b.Size + cs - 1) / cs * cs
		if need > free {
			var rest int64
			for _, c := range blobs {
				rest += (c.Size + cs - 1) / cs * cs
			}
			return &KeyFullError{Key: s.path, Blob: b.Digest, Need: need - (b.Size+cs-1)/cs*cs + rest, Free: free}
		}
	}
	return nil
}

// CreateBlob implements [image.Store]: the bytes go into free clusters as
// they come, and Commit names them.
func (s *USBStore) CreateBlob(ctx context.Context) (image.BlobWriter, error) {
	s.mu.Lock()
	cs := s.v.clusterSize
	s.mu.Unlock()
	return &usbBlobWriter{s: s, h: sha256.New(), buf: make([]byte, 0, max(cs, 1<<20)/cs*cs)}, nil
}

// usbBlobWriter writes one blob into clusters it reserves; nothing names
// them until Commit.
type usbBlobWriter struct {
	s        *USBStore
	h        hash.Hash
	n        int64
	buf      []byte
	clusters []uint32
	err      error
	done     bool
}

func (w *usbBlobWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n := len(p)
	w.h.Write(p)
	w.n += int64(n)
	for len(p) > 0 {
		k := min(len(p), cap(w.buf)-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == cap(w.buf) {
			if err := w.flush(); err != nil {
				w.err = err
				return n - len(p), err
			}
		}
	}
	return n, nil
}

// flush writes the buffer into newly reserved clusters, the last one
// padded with zeros.
func (w *usbBlobWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	s := w.s
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.v.clusterSize
	k := (int64(len(w.buf)) + cs - 1) / cs
	prev := uint32(0)
	if len(w.clusters) > 0 {
		prev = w.clusters[len(w.clusters)-1]
	}
	got, err := s.allocate(k, prev)
	if err != nil {
		return err
	}
	w.clusters = append(w.clusters, got...)
	if pad := k*cs - int64(len(w.buf)); pad > 0 {
		w.buf = append(w.buf, make([]byte, pad)...)
	}
	if err := s.writeClusters(got, w.buf); err != nil {
		return err
	}
	w.buf = w.buf[:0]
	return nil
}

func (w *usbBlobWriter) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	w.s.release(w.clusters)
}

// Commit flushes the blob's bytes and names them
// store/blobs/sha256/HEX. A blob already there and intact is kept and the
// new bytes dropped; a damaged one is replaced in one entry write.
func (w *usbBlobWriter) Commit(ctx context.Context) (image.Digest, int64, error) {
	var d image.Digest
	w.h.Sum(d[:0])
	if w.done {
		return d, 0, fmt.Errorf("write blob %s: already committed or aborted", d)
	}
	if w.err != nil {
		w.Abort()
		return d, 0, fmt.Errorf("write blob %s to USB key %s: %w", d, w.s.path, w.err)
	}
	if err := w.flush(); err != nil {
		w.Abort()
		return d, 0, fmt.Errorf("write blob %s to USB key %s: %w", d, w.s.path, err)
	}
	s := w.s
	name := "store/blobs/sha256/" + d.Hex()
	s.mu.Lock()
	old, err := s.lookup(name)
	s.mu.Unlock()
	if err == nil && int64(old.size) == w.n && image.VerifyBlob(ctx, s, d, w.n) == nil {
		w.Abort()
		return d, w.n, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w.done = true
	defer s.release(w.clusters)
	if err := s.dev.Sync(); err != nil {
		return d, 0, fmt.Errorf("write blob %s to USB key %s: %w", d, s.path, err)
	}
	if err := s.putFile(name, w.clusters, w.n); err != nil {
		return d, 0, fmt.Errorf("write blob %s to USB key %s: %w", d, s.path, err)
	}
	return d, w.n, nil
}

// UpdateRefs implements [image.Store]: the new index.json goes into free
// clusters and its directory entry is rewritten to name it; the old one's
// clusters are freed after.
func (s *USBStore) UpdateRefs(ctx context.Context, fn func([]image.Ref) ([]image.Ref, error)) error {
	refs, err := s.Refs(ctx)
	if err != nil {
		return err
	}
	refs, err = fn(refs)
	if err != nil {
		return err
	}
	b, err := image.IndexJSON(refs)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.v.clusterSize
	var got []uint32
	if len(b) > 0 {
		if got, err = s.allocate((int64(len(b))+cs-1)/cs, 0); err != nil {
			return fmt.Errorf("write index.json to USB key %s: %w", s.path, err)
		}
		defer s.release(got)
		buf := append(b, make([]byte, int64(len(got))*cs-int64(len(b)))...)
		if err := s.writeClusters(got, buf); err != nil {
			return fmt.Errorf("write index.json to USB key %s: %w", s.path, err)
		}
		if err := s.dev.Sync(); err != nil {
			return fmt.Errorf("write index.json to USB key %s: %w", s.path, err)
		}
	}
	if err := s.putFile("store/index.json", got, int64(len(b))); err != nil {
		return fmt.Errorf("write index.json to USB key %s: %w", s.path, err)
	}
	return nil
}

// putFile names the clusters (already written and flushed) as the file
// name of size bytes: the chain goes into both FATs, then the directory
// entry is added or rewritten, then an old chain is freed. Each step is
// flushed before the next.
func (s *USBStore) putFile(name string, clusters []uint32, size int64) error {
	if size > 0xFFFFFFFF {
		return fmt.Errorf("%s: %d bytes is over FAT32's 4 GiB limit", name, size)
	}
	if err := s.setUnknown(); err != nil {
		return err
	}
	set := map[uint32]uint32{}
	for i, c := range clusters {
		nx := uint32(fatEOC)
		if i+1 < len(clusters) {
			nx = clusters[i+1]
		}
		set[c] = nx
	}
	if err := s.writeFAT(set); err != nil {
		return err
	}
	first := uint32(0)
	if len(clusters) > 0 {
		first = clusters[0]
	}
	dirName, base := path.Split(name)
	dir, err := s.mkdirAll(strings.TrimSuffix(dirName, "/"))
	if err != nil {
		return err
	}
	old, err := s.lookup(name)
	var oldChain []uint32
	switch {
	case err == nil && old.isDir():
		return fmt.Errorf("%s is a directory", name)
	case err == nil:
		if oldChain, err = s.chain(old.cluster); err != nil {
			return err
		}
		if err := s.rewriteEntry(old, first, uint32(size)); err != nil {
			return err
		}
	case errors.Is(err, fs.ErrNotExist):
		if err := s.addEntry(dir.cluster, base, 0x20, first, uint32(size)); err != nil {
			return err
		}
	default:
		return err
	}
	for _, c := range clusters {
		delete(s.reserved, c)
	}
	if len(oldChain) > 0 {
		free := map[uint32]uint32{}
		for _, c := range oldChain {
			free[c] = 0
		}
		if err := s.writeFAT(free); err != nil {
			return err
		}
	}
	if err := s.refresh(); err != nil {
		return err
	}
	return s.setKnown(name)
}

const (
	fatEOC  = 0x0FFFFFFF
	fatMask = 0x0FFFFFFF
)

func (s *USBStore) get(c uint32) uint32 {
	return binary.LittleEndian.Uint32(s.fat[4*c:]) & fatMask
}

// freeClusters counts the clusters free in the FAT and not reserved.
func (s *USBStore) freeClusters() uint32 {
	n := s.free
	for c := range s.reserved {
		if s.get(c) == 0 {
			n--
		}
	}
	return n
}

// allocate reserves n free clusters, after prev when it can (so a file
// stays contiguous), else from the hint on.
func (s *USBStore) allocate(n int64, prev uint32) ([]uint32, error) {
	total := s.v.clusters
	start := s.hint
	if prev != 0 {
		start = prev + 1
	}
	var out []uint32
	c := start
	for i := uint32(0); i < total && int64(len(out)) < n; i++ {
		if c < 2 || c > total+1 {
			c = 2
		}
		if s.get(c) == 0 && !s.reserved[c] {
			out = append(out, c)
		}
		c++
	}
	if int64(len(out)) < n {
		return nil, &KeyFullError{Key: s.path, Need: n * s.v.clusterSize, Free: int64(len(out)) * s.v.clusterSize}
	}
	for _, c := range out {
		s.reserved[c] = true
	}
	s.hint = c
	return out, nil
}

// release gives back clusters reserved but not named.
func (s *USBStore) release(cs []uint32) {
	for _, c := range cs {
		delete(s.reserved, c)
	}
}

// writeClusters writes buf (whole clusters) into the clusters, a run of
// contiguous ones at a time.
func (s *USBStore) writeClusters(cl []uint32, buf []byte) error {
	cs := s.v.clusterSize
	for i := 0; i < len(cl); {
		j := i + 1
		for j < len(cl) && cl[j] == cl[j-1]+1 {
			j++
		}
		if _, err := s.dev.WriteAt(buf[int64(i)*cs:int64(j)*cs], s.v.clusterOff(cl[i])); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// writeFAT sets FAT entries: the sectors that change are written to the
// first FAT, flushed, then to each copy, flushed.
func (s *USBStore) writeFAT(set map[uint32]uint32) error {
	bps := s.v.bps
	dirty := map[int64]bool{}
	for c, val := range set {
		o := 4 * int64(c)
		old := binary.LittleEndian.Uint32(s.fat[o:])
		switch was := old & fatMask; {
		case was == 0 && val != 0:
			s.free--
		case was != 0 && val == 0:
			s.free++
		}
		binary.LittleEndian.PutUint32(s.fat[o:], old&^fatMask|val&fatMask)
		dirty[o/bps] = true
	}
	for k := range s.v.numFATs {
		if err := s.writeFATSectors(k, dirty); err != nil {
			return err
		}
	}
	return nil
}

func (s *USBStore) writeFATSectors(k int64, dirty map[int64]bool) error {
	bps := s.v.bps
	at := s.v.base + s.v.fatOff + k*s.v.fatBytes
	n := int64(len(s.fat)) / bps
	for sec := int64(0); sec < n; sec++ {
		if !dirty[sec] {
			continue
		}
		end := sec + 1
		for end < n && dirty[end] {
			end++
		}
		if _, err := s.dev.WriteAt(s.fat[sec*bps:end*bps], at+sec*bps); err != nil {
			return fmt.Errorf("write FAT: %w", err)
		}
		sec = end
	}
	return s.dev.Sync()
}

// lookup finds an entry as the current volume has it.
func (s *USBStore) lookup(name string) (fatRawEntry, error) {
	return newFATFS(s.v).lookup("open", name)
}

// chain lists the clusters of the chain that starts at first.
func (s *USBStore) chain(first uint32) ([]uint32, error) {
	if first == 0 {
		return nil, nil
	}
	var out []uint32
	seen := map[uint32]bool{}
	for c := first; ; {
		if !s.v.valid(c) || seen[c] {
			return nil, fmt.Errorf("broken cluster chain at cluster %d", c)
		}
		seen[c] = true
		out = append(out, c)
		e := s.get(c)
		if e >= 0x0FFFFFF8 {
			return out, nil
		}
		c = e
	}
}

// rewriteEntry points a short entry at a new chain and size, in one
// 32-byte write.
func (s *USBStore) rewriteEntry(e fatRawEntry, first, size uint32) error {
	b := make([]byte, 32)
	if err := readFullAt(s.dev, b, e.off); err != nil {
		return err
	}
	binary.LittleEndian.PutUint16(b[20:], uint16(first>>16))
	binary.LittleEndian.PutUint16(b[26:], uint16(first))
	binary.LittleEndian.PutUint32(b[28:], size)
	date, tm, _ := fatStamp(time.Now())
	binary.LittleEndian.PutUint16(b[22:], tm)
	binary.LittleEndian.PutUint16(b[24:], date)
	binary.LittleEndian.PutUint16(b[18:], date)
	if _, err := s.dev.WriteAt(b, e.off); err != nil {
		return fmt.Errorf("write directory entry: %w", err)
	}
	return s.dev.Sync()
}

// addEntry adds a file's long-name and short entries to the directory at
// cluster dirFirst, all within one sector, after its last entry; the
// directory grows by a cluster when it must.
func (s *USBStore) addEntry(dirFirst uint32, name string, attr byte, first, size uint32) error {
	if err := fatNameOK(name); err != nil {
		return err
	}
	cl, err := s.chain(dirFirst)
	if err != nil {
		return err
	}
	cs, bps := s.v.clusterSize, s.v.bps
	raw := make([]byte, int64(len(cl))*cs)
	for i, c := range cl {
		if err := readFullAt(s.dev, raw[int64(i)*cs:int64(i+1)*cs], s.v.clusterOff(c)); err != nil {
			return fmt.Errorf("read directory: %w", err)
		}
	}
	// The end of the entries, and the short names taken.
	end := int64(len(raw))
	used := map[[11]byte]bool{}
	for o := int64(0); o < int64(len(raw)); o += 32 {
		if raw[o] == 0 {
			end = o
			break
		}
		if raw[o] != 0xE5 && raw[o+11]&0x3F != fatAttrLFN {
			var sn [11]byte
			copy(sn[:], raw[o:o+11])
			used[sn] = true
		}
	}
	short, long := fatUniqueShort(name, used)
	slots := int64(1)
	if long {
		slots += (int64(len(utf16.Encode([]rune(name)))) + 12) / 13
	}
	need := slots * 32
	at := end
	if at/bps != (at+need-1)/bps {
		at = (at/bps + 1) * bps
	}
	if (at+need)/32 > fatMaxDir/32 {
		return fmt.Errorf("directory is full: FAT allows %d entries", fatMaxDir/32)
	}
	// Grow the directory: a zeroed cluster, then its FAT entry, then the
	// link from the last one.
	for at+need > int64(len(raw)) {
		got, err := s.allocate(1, cl[len(cl)-1])
		if err != nil {
			return err
		}
		nc := got[0]
		if _, err := s.dev.WriteAt(make([]byte, cs), s.v.clusterOff(nc)); err != nil {
			return err
		}
		if err := s.dev.Sync(); err != nil {
			return err
		}
		if err := s.writeFAT(map[uint32]uint32{nc: fatEOC}); err != nil {
			return err
		}
		if err := s.writeFAT(map[uint32]uint32{cl[len(cl)-1]: nc}); err != nil {
			return err
		}
		delete(s.reserved, nc)
		cl = append(cl, nc)
		raw = append(raw, make([]byte, cs)...)
	}
	// Slots skipped to keep the entry in one sector are marked deleted, so
	// that no end marker comes before it.
	for o := end; o < at; o += 32 {
		raw[o] = 0xE5
	}
	e := raw[at : at+need]
	o := 0
	if long {
		o = fatLongEntries(e, name, short)
	}
	se := e[o : o+32]
	copy(se, short[:])
	se[11] = attr
	date, tm, tenth := fatStamp(time.Now())
	se[13] = tenth
	binary.LittleEndian.PutUint16(se[14:], tm)
	binary.LittleEndian.PutUint16(se[16:], date)
	binary.LittleEndian.PutUint16(se[18:], date)
	binary.LittleEndian.PutUint16(se[22:], tm)
	binary.LittleEndian.PutUint16(se[24:], date)
	binary.LittleEndian.PutUint16(se[20:], uint16(first>>16))
	binary.LittleEndian.PutUint16(se[26:], uint16(first))
	binary.LittleEndian.PutUint32(se[28:], size)
	// Write the skipped slots' sectors, then the entry's one sector.
	write := func(from, to int64) error {
		for sec := from / bps; sec*bps < to; sec++ {
			ci := sec * bps / cs
			off := s.v.clusterOff(cl[ci]) + sec*bps - ci*cs
			if _, err := s.dev.WriteAt(raw[sec*bps:(sec+1)*bps], off); err != nil {
				return fmt.Errorf("write directory: %w", err)
			}
		}
		return s.dev.Sync()
	}
	if at > end {
		if err := write(end, at); err != nil {
			return err
		}
	}
	return write(at, at+need)
}

// mkdirAll returns the directory p, making it and its parents when they
// are missing (a key whose store holds no blob yet): each new directory's
// cluster is written, then its FAT entry, then its entry in the parent.
func (s *USBStore) mkdirAll(p string) (fatRawEntry, error) {
	e, err := s.lookup(p)
	if err == nil {
		if !e.isDir() {
			return e, fmt.Errorf("%s is not a directory", p)
		}
		return e, nil
	}
	if !errors.Is(err, fs.ErrNotExist) || p == "." || p == "" {
		return e, err
	}
	parentName := path.Dir(p)
	parent, err := s.mkdirAll(parentName)
	if err != nil {
		return e, err
	}
	got, err := s.allocate(1, 0)
	if err != nil {
		return e, err
	}
	defer s.release(got)
	c := got[0]
	up := parent.cluster
	if up == s.v.rootCluster {
		up = 0
	}
	b := make([]byte, s.v.clusterSize)
	date, tm, _ := fatStamp(time.Now())
	for i, n := range []string{".", ".."} {
		d := b[32*i : 32*i+32]
		sn := fatPad(n, "")
		copy(d, sn[:])
		d[11] = fatAttrDir
		first := c
		if i == 1 {
			first = up
		}
		binary.LittleEndian.PutUint16(d[20:], uint16(first>>16))
		binary.LittleEndian.PutUint16(d[26:], uint16(first))
		binary.LittleEndian.PutUint16(d[14:], tm)
		binary.LittleEndian.PutUint16(d[16:], date)
		binary.LittleEndian.PutUint16(d[22:], tm)
		binary.LittleEndian.PutUint16(d[24:], date)
	}
	if _, err := s.dev.WriteAt(b, s.v.clusterOff(c)); err != nil {
		return e, err
	}
	if err := s.dev.Sync(); err != nil {
		return e, err
	}
	if err := s.writeFAT(map[uint32]uint32{c: fatEOC}); err != nil {
		return e, err
	}
	if err := s.addEntry(parent.cluster, path.Base(p), fatAttrDir, c, 0); err != nil {
		return e, err
	}
	if err := s.refresh(); err != nil {
		return e, err
	}
	return s.lookup(p)
}

// fatUniqueShort gives name an 8.3 name unused in a directory: its own
// when it is one, else a basis with a numeric tail, and long entries.
func fatUniqueShort(name string, used map[[11]byte]bool) (short [11]byte, long bool) {
	if sn, ok := fatExact(name); ok && !used[sn] {
		return sn, false
	}
	stem, ext := fatBasis(name)
	for k := 1; ; k++ {
		tail := "~" + strconv.Itoa(k)
		sn := fatPad(stem[:min(len(stem), 8-len(tail))]+tail, ext)
		if !used[sn] {
			return sn, true
		}
	}
}

// setUnknown marks the FSInfo free count unknown while a step is under
// way.
func (s *USBStore) setUnknown() error {
	if s.unknown {
		return nil
	}
	if err := s.writeFSInfo(0xFFFFFFFF, 0xFFFFFFFF); err != nil {
		return err
	}
	s.unknown = true
	return nil
}

// setKnown writes the exact free count after a step, and tells a test.
func (s *USBStore) setKnown(step string) error {
	next := uint32(0xFFFFFFFF)
	for i, c := uint32(0), max(s.hint, 2); i < s.v.clusters; i, c = i+1, c+1 {
		if c > s.v.clusters+1 {
			c = 2
		}
		if s.get(c) == 0 {
			next = c
			break
		}
	}
	if err := s.writeFSInfo(s.free, next); err != nil {
		return err
	}
	s.unknown = false
	if s.step != nil {
		s.step(step)
	}
	return nil
}

func (s *USBStore) writeFSInfo(free, next uint32) error {
	secs := []int64{s.v.fsInfo}
	if s.v.backupBoot != 0 {
		secs = append(secs, s.v.backupBoot+s.v.fsInfo)
	}
	for _, sec := range secs {
		b := make([]byte, 512)
		off := s.v.base + sec*s.v.bps
		if err := readFullAt(s.dev, b, off); err != nil {
			return err
		}
		if string(b[0:4]) != "RRaA" || string(b[484:488]) != "rrAa" {
			continue
		}
		binary.LittleEndian.PutUint32(b[488:], free)
		binary.LittleEndian.PutUint32(b[492:], next)
		if _, err := s.dev.WriteAt(b, off); err != nil {
			return fmt.Errorf("write FSInfo: %w", err)
		}
	}
	return s.dev.Sync()
}

// repair makes the key consistent after a write cut short: clusters that
// the FAT allocates but no file or directory names are freed, and each FAT
// copy is made equal to the first.
func (s *USBStore) repair() error {
	owned := make([]bool, s.v.clusters+2)
	var walk func(first uint32, depth int) error
	// mark takes a chain as owned, stopping at a cluster already owned
	// (files that share clusters), so every cluster is visited once.
	mark := func(first uint32) error {
		for c := first; c != 0; {
			if !s.v.valid(c) {
				return fmt.Errorf("broken cluster chain at cluster %d", c)
			}
			if owned[c] {
				return nil
			}
			owned[c] = true
			e := s.get(c)
			if e >= 0x0FFFFFF8 {
				return nil
			}
			c = e
		}
		return nil
	}
	walk = func(first uint32, depth int) error {
		if depth > 32 {
			return errors.New("directories nest too deep")
		}
		if err := mark(first); err != nil {
			return err
		}
		raw, err := s.v.dirRaw(first)
		if err != nil {
			return err
		}
		for _, e := range raw {
			switch {
			case e.isLabel() || e.isDot() || e.cluster == 0:
			case e.isDir():
				if !s.v.valid(e.cluster) {
					return fmt.Errorf("directory %q at cluster %d outside the %d clusters", e.name, e.cluster, s.v.clusters)
				}
				if owned[e.cluster] {
					continue
				}
				if err := walk(e.cluster, depth+1); err != nil {
					return err
				}
			default:
				if err := mark(e.cluster); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(s.v.rootCluster, 0); err != nil {
		return fmt.Errorf("check USB key %s: %w", s.path, err)
	}
	lost := map[uint32]uint32{}
	for c := uint32(2); c <= s.v.clusters+1; c++ {
		if e := s.get(c); e != 0 && e != 0x0FFFFFF7 && !owned[c] {
			lost[c] = 0
		}
	}
	same := true
	if s.v.numFATs > 1 {
		cp := make([]byte, len(s.fat))
		if err := readFullAt(s.dev, cp, s.v.base+s.v.fatOff+s.v.fatBytes); err != nil {
			return err
		}
		same = bytes.Equal(cp, s.fat)
	}
	if len(lost) == 0 && same {
		return nil
	}
	if err := s.setUnknown(); err != nil {
		return err
	}
	if len(lost) > 0 {
		if err := s.writeFAT(lost); err != nil {
			return err
		}
	}
	if !same {
		all := map[int64]bool{}
		for sec := range int64(len(s.fat)) / s.v.bps {
			all[sec] = true
		}
		for k := int64(1); k < s.v.numFATs; k++ {
			if err := s.writeFATSectors(k, all); err != nil {
				return err
			}
		}
	}
	return s.setKnown("repair")
}
