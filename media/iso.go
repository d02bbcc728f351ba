package media

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"math/bits"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/diskfs/go-diskfs/backend"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
)

// How WriteISO works
//
// go-diskfs lays out and encodes the metadata: it walks a work directory and
// writes the volume descriptors, the ISO 9660 + Rock Ridge and the Joliet
// directory trees, and the path tables. dvpc gives it a throwaway work
// directory (Finalize deletes it) of empty placeholder files, so the image
// it writes ends where the file data would begin; go-diskfs would otherwise
// need a copy of every file and copy it again 2 KiB per system call. dvpc
// then, in one pass over the metadata:
//
//  1. gives each file its extent after go-diskfs's end, in the order of
//     [Placed], and writes extents and sizes into the records of
//     both trees and the new volume size into the descriptors;
//  2. rewrites what go-diskfs takes from the clock and the work directory
//     (every date, Rock Ridge PX modes, owners, link counts and serial
//     numbers), space-pads the identifiers and rounds directory lengths to
//     whole blocks, so the same [Content] gives the same bytes;
//
// and finally streams each entry into its extent with large writes, or
// copy_file_range for local files, fsyncs, and links the image into place,
// which never replaces an existing file.
//
// go-diskfs v1.9.4 faults guarded here: files of 4 GiB and more and names
// over about 135 bytes make broken images ([Content.Check]); directories
// deeper than 8 need DeepDirectories; Symlink, Chmod and Chtimes are not
// implemented (dvpc writes only files and directories, and sets modes and
// times itself); the zero block it writes after a file whose size is a
// multiple of 2 KiB can land on the Joliet root directory
// (isoSparseWriter); Joliet records of subdirectories point at the ISO 9660
// directories (isoSectors.tree); the PX serial number is not both-endian
// (isoPatchPX); its 8.3 names can depend on map order (see "ISO 9660 short
// names" below).
//
// El Torito boot records fit in later through FinalizeOptions.ElTorito: the
// boot images must then be real files in the work directory, because
// go-diskfs patches a boot information table into them and lays them out
// itself, before the end at which dvpc's extents begin.

// isoBlock is the ISO 9660 logical block (sector) size.
const isoBlock = 2048

// isoMaxJolietName is the longest name, in UTF-16 code units, that Joliet
// allows; longer names are unreadable on some systems.
const isoMaxJolietName = 64

// isoCopyChunk bounds each copy so a cancelled context is noticed.
const isoCopyChunk = 64 << 20

// isoLayoutAttempts bounds the retries when go-diskfs's 8.3 names of
// directories depend on map order (see isoShortNamesOrderDependent).
const isoLayoutAttempts = 64

// errISOShortNames means go-diskfs gave directories other 8.3 names than
// isoCanonicalShortNames.
var errISOShortNames = errors.New("go-diskfs gave no reproducible ISO 9660 names to directories whose first 8 characters collide; rename them")

// WriteISO writes c as an ISO 9660 image with Rock Ridge and Joliet to out,
// which must not exist. The image is built in a temporary file next to out
// and appears under its name only when complete. The same Content gives
// byte-identical images: every timestamp on the image is c.ModTime, owners
// are 0, modes are 0644 for files, 0755 for programs ([Entry.Exec]) and
// directories, and the files' bytes lie in the order of [Placed].
//
// Files must be under 4 GiB, names at most [MaxNameLen] bytes and 64 UTF-16
// code units (Joliet's limit), without control characters, any of *:;?\ or
// a leading or trailing dot. The label is made an ISO 9660 volume
// identifier by [ISOVolumeID].
func WriteISO(ctx context.Context, out string, c Content) error {
	entries, label, err := checkISOContent(&c)
	if err != nil {
		return fmt.Errorf("write ISO %s: %w", out, err)
	}
	if _, err := os.Lstat(out); err == nil {
		return fmt.Errorf("write ISO: %s already exists; remove it or choose another name: %w", out, fs.ErrExist)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("write ISO: %w", err)
	}
	tmp, err := createISOTemp(out)
	if err != nil {
		return fmt.Errorf("write ISO %s: %w", out, err)
	}
	defer func() {
		if tmp != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	mtime := c.ModTime.UTC().Truncate(time.Second)
	var canon map[string]string
	if isoShortNamesOrderDependent(entries) {
		canon = isoCanonicalShortNames(entries)
	}
	var lay *isoLayout
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := tmp.Truncate(0); err != nil {
			return fmt.Errorf("write ISO %s: %w", out, err)
		}
		lay, err = layOutISO(tmp, entries, label, mtime, canon)
		if err == nil {
			break
		}
		if !errors.Is(err, errISOShortNames) || attempt == isoLayoutAttempts {
			return fmt.Errorf("write ISO %s: %w", out, err)
		}
	}
	if err := copyISOData(ctx, tmp, entries, lay); err != nil {
		return fmt.Errorf("write ISO %s: %w", out, err)
	}
	if err := tmp.Truncate(int64(lay.volumeBlocks) * isoBlock); err != nil {
		return fmt.Errorf("write ISO %s: %w", out, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write ISO %s: %w", out, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write ISO %s: %w", out, err)
	}
	if err := placeNoClobber(tmp.Name(), out); err != nil {
		return fmt.Errorf("write ISO: %w", err)
	}
	os.Remove(tmp.Name())
	tmp = nil
	return syncDirOf(out)
}

// createISOTemp creates a new temporary file next to out, with the mode a
// new file gets (0666 less the umask).
func createISOTemp(out string) (*os.File, error) {
	dir, base := filepath.Split(out)
	if dir == "" {
		dir = "."
	}
	var err error
	for range 100 {
		var f *os.File
		name := filepath.Join(dir, fmt.Sprintf(".%s.%d.tmp", base, rand.Uint32()))
		f, err = os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
	}
	return nil, err
}

// placeNoClobber gives the file at tmp the name out without replacing an
// existing out: a hard link fails if out exists. File systems without hard
// links (FAT) fall back to a check and a rename.
func placeNoClobber(tmp, out string) error {
	err := os.Link(tmp, out)
	if err == nil {
		return nil
	}
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists; remove it or choose another name: %w", out, fs.ErrExist)
	}
	if _, serr := os.Lstat(out); serr == nil {
		return fmt.Errorf("%s already exists; remove it or choose another name: %w", out, fs.ErrExist)
	}
	return os.Rename(tmp, out)
}

func syncDirOf(p string) error {
	d, err := os.Open(filepath.Dir(p))
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("sync %s: %w", filepath.Dir(p), err)
	}
	return nil
}

// checkISOContent applies the shared limits and the ISO ones before
// anything is written, and returns the sorted entries and the volume ID.
func checkISOContent(c *Content) ([]Entry, string, error) {
	if err := c.Check(); err != nil {
		return nil, "", err
	}
	entries, err := c.Sorted()
	if err != nil {
		return nil, "", err
	}
	label, err := ISOVolumeID(c.Label)
	if err != nil {
		return nil, "", err
	}
	if y := c.ModTime.UTC().Year(); c.ModTime.IsZero() || y < 1970 || y > 2155 {
		return nil, "", fmt.Errorf("modification time %v cannot be recorded on ISO 9660 (1970 to 2155)", c.ModTime)
	}
	files := make(map[string]bool, len(entries))
	var blocks int64
	for _, e := range entries {
		if e.Open == nil {
			return nil, "", fmt.Errorf("medium entry %q has no Open", e.Path)
		}
		files[e.Path] = true
		for _, name := range strings.Split(e.Path, "/") {
			if err := checkISOName(name); err != nil {
				return nil, "", fmt.Errorf("medium entry %q: %w", e.Path, err)
			}
		}
		for d := path.Dir(e.Path); d != "."; d = path.Dir(d) {
			if files[d] {
				return nil, "", fmt.Errorf("medium entry %q is both a file and a directory", d)
			}
		}
		blocks += (e.Size + isoBlock - 1) / isoBlock
	}
	if blocks > math.MaxUint32/2 {
		return nil, "", fmt.Errorf("the files need %d blocks of 2 KiB; an ISO 9660 volume holds at most %d", blocks, math.MaxUint32/2)
	}
	return entries, label, nil
}

// checkISOName refuses names that Joliet cannot hold, and names that
// go-diskfs mangles: its reader strips leading and trailing dots from file
// names, and a name that starts with a dot gets an empty ISO 9660
// identifier, which readers take for the directory itself.
func checkISOName(name string) error {
	if !utf8.ValidString(name) {
		return fmt.Errorf("name %q is not UTF-8", name)
	}
	if strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") {
		return fmt.Errorf("name %q starts or ends with a dot", name)
	}
	units := 0
	for _, r := range name {
		switch {
		case r < 0x20 || r == 0x7f:
			return fmt.Errorf("name %q holds a control character", name)
		case strings.ContainsRune(`*:;?\`, r):
			return fmt.Errorf("name %q holds %q, which Joliet does not allow", name, r)
		case r > 0xffff:
			return fmt.Errorf("name %q holds %q, which Joliet (UCS-2) cannot record", name, r)
		}
		units++
	}
	if units > isoMaxJolietName {
		return fmt.Errorf("name %q is over %d characters, which Joliet does not allow", name, isoMaxJolietName)
	}
	return nil
}

// ISOVolumeID turns a label into an ISO 9660 volume identifier: letters
// are upper-cased and anything but A-Z, 0-9 and _ becomes _. The result
// must be 1 to 32 characters long.
func ISOVolumeID(label string) (string, error) {
	if label == "" {
		return "", errors.New("the volume label is empty")
	}
	var b strings.Builder
	for _, r := range label {
		switch {
		case r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
		case r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() > 32 {
		return "", fmt.Errorf("volume label %q is %d characters; ISO 9660 allows 32", label, b.Len())
	}
	return b.String(), nil
}

// isoExtent is where a file's bytes lie on the image.
type isoExtent struct {
	block uint32
	size  int64
}

// isoLayout is the image's shape once layOutISO is done.
type isoLayout struct {
	volumeBlocks uint32
	files        map[string]isoExtent // by entry path
	shortNames   map[string]string    // ISO 9660 identifier by path
}

// layOutISO has go-diskfs write the image's metadata into tmp (which must be
// empty), then places the files and makes the image reproducible. canon,
// when not nil, holds the ISO 9660 identifiers every path must get.
func layOutISO(tmp *os.File, entries []Entry, label string, mtime time.Time, canon map[string]string) (*isoLayout, error) {
	// A throwaway work directory: Finalize deletes it.
	work, err := os.MkdirTemp("", "dvpc-iso-work-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	for _, e := range entries {
		p := filepath.Join(work, filepath.FromSlash(e.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return nil, err
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
	}
	if err := finalizeISO(tmp, work, label); err != nil {
		return nil, err
	}
	lay, err := fixISO(tmp, entries, mtime, label, canon)
	if errors.Is(err, errISOShortNames) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("go-diskfs wrote an image dvpc cannot use: %w", err)
	}
	return lay, nil
}

func finalizeISO(tmp *os.File, work, label string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("go-diskfs panicked while writing the image: %v", r)
		}
	}()
	fsm, err := iso9660.Create(isoWriteBackend{tmp}, 0, 0, isoBlock, work)
	if err != nil {
		return fmt.Errorf("create ISO 9660 file system: %w", err)
	}
	err = fsm.Finalize(iso9660.FinalizeOptions{
		RockRidge:        true,
		Joliet:           true,
		DeepDirectories:  true,
		VolumeIdentifier: label,
	})
	if err != nil {
		return fmt.Errorf("finalize ISO 9660 file system: %w", err)
	}
	return nil
}

// isoWriteBackend is go-diskfs's view of the temporary image file.
type isoWriteBackend struct{ *os.File }

var _ backend.Storage = isoWriteBackend{}

func (b isoWriteBackend) Sys() (*os.File, error) { return b.File, nil }
func (b isoWriteBackend) Path() string           { return "" }
func (b isoWriteBackend) Writable() (backend.WritableFile, error) {
	return isoSparseWriter{b.File}, nil
}

// isoSparseWriter drops writes of zeros, which guards against a go-diskfs
// bug: after each file whose size is a multiple of 2 KiB (every empty file
// among them) it writes a whole block of zeros, and that block can be the
// Joliet root directory, written before the files. The image file starts
// empty, so dropping zeros changes nothing else.
type isoSparseWriter struct{ *os.File }

func (w isoSparseWriter) WriteAt(p []byte, off int64) (int, error) {
	if isoAllZero(p) {
		return len(p), nil
	}
	return w.File.WriteAt(p, off)
}

var isoZeros [4096]byte

func isoAllZero(p []byte) bool {
	for len(p) > 0 {
		n := min(len(p), len(isoZeros))
		if !bytes.Equal(p[:n], isoZeros[:n]) {
			return false
		}
		p = p[n:]
	}
	return true
}

// copyISOData streams every entry into its extent.
func copyISOData(ctx context.Context, tmp *os.File, entries []Entry, lay *isoLayout) error {
	buf := make([]byte, 1<<20)
	for _, e := range Placed(entries) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := copyISOEntry(ctx, tmp, e, int64(lay.files[e.Path].block)*isoBlock, buf); err != nil {
			return err
		}
	}
	return nil
}

func copyISOEntry(ctx context.Context, tmp *os.File, e Entry, off int64, buf []byte) (err error) {
	rc, err := e.Open()
	if err != nil {
		return fmt.Errorf("open %s: %w", e.Path, err)
	}
	defer func() {
		if cerr := rc.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close %s: %w", e.Path, cerr)
		}
	}()
	if _, err := tmp.Seek(off, io.SeekStart); err != nil {
		return err
	}
	_, local := rc.(*os.File)
	for left := e.Size; left > 0; {
		if err := ctx.Err(); err != nil {
			return err
		}
		lr := &io.LimitedReader{R: rc, N: min(left, isoCopyChunk)}
		want := lr.N
		var n int64
		if local {
			// *os.File.ReadFrom uses copy_file_range for a limited *os.File.
			n, err = io.Copy(tmp, lr)
		} else {
			n, err = io.CopyBuffer(struct{ io.Writer }{tmp}, lr, buf)
		}
		if err != nil {
			return fmt.Errorf("copy %s: %w", e.Path, err)
		}
		if n != want {
			return fmt.Errorf("copy %s: it has %d bytes, want %d", e.Path, e.Size-left+n, e.Size)
		}
		left -= n
	}
	// Read on to EOF, so a verifying reader checks what it gave.
	var one [1]byte
	for range 100 {
		n, err := rc.Read(one[:])
		if n > 0 {
			return fmt.Errorf("copy %s: it has more than %d bytes", e.Path, e.Size)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("copy %s: %w", e.Path, err)
		}
	}
	return fmt.Errorf("copy %s: no end after %d bytes", e.Path, e.Size)
}

// The fix-up pass. Offsets are those of ECMA-119 (volume descriptors,
// directory records) and of Rock Ridge 1.12 (PX, TF, NM, CE entries).

// isoSectors caches the image's metadata sectors while they are patched.
type isoSectors struct {
	f interface {
		io.ReaderAt
		io.WriterAt
	}
	m map[uint32][]byte
}

func (s *isoSectors) get(n uint32) ([]byte, error) {
	if b, ok := s.m[n]; ok {
		return b, nil
	}
	b := make([]byte, isoBlock)
	if _, err := s.f.ReadAt(b, int64(n)*isoBlock); err != nil && err != io.EOF {
		return nil, err
	}
	s.m[n] = b
	return b, nil
}

func (s *isoSectors) flush() error {
	keys := slices.Sorted(maps.Keys(s.m))
	for _, k := range keys {
		if _, err := s.f.WriteAt(s.m[k], int64(k)*isoBlock); err != nil {
			return err
		}
	}
	return nil
}

// isoRecord is one directory record, a slice of its cached sector.
type isoRecord struct {
	b []byte
}

func (r isoRecord) block() uint32 { return binary.LittleEndian.Uint32(r.b[2:6]) }
func (r isoRecord) size() uint32  { return binary.LittleEndian.Uint32(r.b[10:14]) }
func (r isoRecord) isDir() bool   { return r.b[25]&0x02 != 0 }
func (r isoRecord) ident() []byte { return r.b[33 : 33+int(r.b[32])] }
func (r isoRecord) special() bool { id := r.ident(); return len(id) == 1 && id[0] <= 1 }

func (r isoRecord) setExtent(block, size uint32) {
	binary.LittleEndian.PutUint32(r.b[2:6], block)
	binary.BigEndian.PutUint32(r.b[6:10], block)
	binary.LittleEndian.PutUint32(r.b[10:14], size)
	binary.BigEndian.PutUint32(r.b[14:18], size)
}

func (r isoRecord) systemUse() []byte {
	n := 33 + int(r.b[32])
	if r.b[32]%2 == 0 {
		n++
	}
	if n > len(r.b) {
		return nil
	}
	return r.b[n:]
}

// records calls fn on each record of the directory extent at block,
// size bytes long.
func (s *isoSectors) records(block, size uint32, fn func(isoRecord) error) error {
	for i := uint32(0); i < (size+isoBlock-1)/isoBlock; i++ {
		sec, err := s.get(block + i)
		if err != nil {
			return err
		}
		for pos := 0; pos < isoBlock && int64(i)*isoBlock+int64(pos) < int64(size); {
			n := int(sec[pos])
			if n == 0 {
				break
			}
			if n < 34 || pos+n > isoBlock || 33+int(sec[pos+32]) > n {
				return fmt.Errorf("bad directory record at block %d offset %d", block+i, pos)
			}
			if err := fn(isoRecord{sec[pos : pos+n]}); err != nil {
				return err
			}
			pos += n
		}
	}
	return nil
}

// susp calls fn on each SUSP entry of a system use area, following
// continuation areas.
func (s *isoSectors) susp(area []byte, depth int, fn func(sig string, e []byte)) error {
	if depth > 16 {
		return errors.New("SUSP continuation areas nest too deep")
	}
	for i := 0; i+4 <= len(area); {
		sig, n := string(area[i:i+2]), int(area[i+2])
		if n < 4 || i+n > len(area) {
			return fmt.Errorf("bad SUSP entry %q", sig)
		}
		e := area[i : i+n]
		switch sig {
		case "ST":
			return nil
		case "CE":
			if n < 28 {
				return errors.New("bad SUSP CE entry")
			}
			blk := binary.LittleEndian.Uint32(e[4:8])
			off := binary.LittleEndian.Uint32(e[12:16])
			ln := binary.LittleEndian.Uint32(e[20:24])
			if off > isoBlock || ln > isoBlock-off {
				return errors.New("SUSP continuation area crosses a block")
			}
			sec, err := s.get(blk)
			if err != nil {
				return err
			}
			if err := s.susp(sec[off:off+ln], depth+1, fn); err != nil {
				return err
			}
		default:
			fn(sig, e)
		}
		i += n
	}
	return nil
}

// isoDirVisit is one directory of a tree.
type isoDirVisit struct {
	path        string
	block, size uint32
}

// isoTree is the ISO 9660 + Rock Ridge tree, or the Joliet one.
type isoTree struct {
	dirs    []isoDirVisit
	recs    map[string]isoRecord // files and directories
	files   map[string]isoRecord
	idents  map[string]string // ISO 9660 identifier by path
	subdirs map[uint32]uint32 // by directory extent
}

// tree reads the tree below root, naming entries by Rock Ridge NM or, for
// Joliet, by their UCS-2 identifiers. For Joliet, jdirs gives each
// directory's extent by path, and subdirectory records are pointed at it:
// go-diskfs points them at the ISO 9660 directories instead, so Joliet
// readers would see those (their 8.3 names read as UCS-2) below the root.
func (s *isoSectors) tree(root isoRecord, jdirs map[string]uint32) (*isoTree, error) {
	joliet := jdirs != nil
	t := &isoTree{recs: map[string]isoRecord{}, files: map[string]isoRecord{}, idents: map[string]string{}, subdirs: map[uint32]uint32{}}
	seen := map[uint32]bool{}
	for queue := []isoDirVisit{{path: ".", block: root.block(), size: root.size()}}; len(queue) > 0; queue = queue[1:] {
		d := queue[0]
		if seen[d.block] {
			return nil, fmt.Errorf("directory %s loops", d.path)
		}
		seen[d.block] = true
		t.dirs = append(t.dirs, d)
		err := s.records(d.block, d.size, func(r isoRecord) error {
			if r.special() {
				return nil
			}
			name, err := s.recordName(r, joliet)
			if err != nil {
				return fmt.Errorf("in %s: %w", d.path, err)
			}
			p := path.Join(d.path, name)
			if _, dup := t.idents[p]; dup {
				return fmt.Errorf("%s appears twice", p)
			}
			t.idents[p] = string(r.ident())
			t.recs[p] = r
			if r.isDir() {
				if joliet {
					blk, ok := jdirs[p]
					if !ok {
						return fmt.Errorf("directory %s is not in the path table", p)
					}
					sec, err := s.get(blk)
					if err != nil {
						return err
					}
					self := isoRecord{sec[:34]}
					if sec[0] < 34 || !self.special() || self.block() != blk {
						return fmt.Errorf("directory %s: no directory at block %d", p, blk)
					}
					r.setExtent(blk, self.size())
				}
				t.subdirs[d.block]++
				queue = append(queue, isoDirVisit{path: p, block: r.block(), size: r.size()})
			} else {
				t.files[p] = r
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return t, nil
}

func (s *isoSectors) recordName(r isoRecord, joliet bool) (string, error) {
	if joliet {
		id := r.ident()
		u := make([]uint16, len(id)/2)
		for i := range u {
			u[i] = binary.BigEndian.Uint16(id[2*i:])
		}
		return string(utf16.Decode(u)), nil
	}
	var name []byte
	err := s.susp(r.systemUse(), 0, func(sig string, e []byte) {
		if sig == "NM" && len(e) >= 5 && e[4]&0x06 == 0 {
			name = append(name, e[5:]...)
		}
	})
	if err != nil {
		return "", err
	}
	if len(name) == 0 {
		return "", fmt.Errorf("entry %q has no Rock Ridge name", r.ident())
	}
	return string(name), nil
}

// jolietPathTable returns the extent of every directory by path, from the
// Joliet volume descriptor's L path table.
func (s *isoSectors) jolietPathTable(svd []byte) (map[string]uint32, error) {
	size := binary.LittleEndian.Uint32(svd[132:136])
	start := binary.LittleEndian.Uint32(svd[140:144])
	if size > 16<<20 {
		return nil, errors.New("path table too large")
	}
	b := make([]byte, 0, size)
	for blk := start; uint32(len(b)) < size; blk++ {
		sec, err := s.get(blk)
		if err != nil {
			return nil, err
		}
		b = append(b, sec[:min(isoBlock, int(size)-len(b))]...)
	}
	var paths []string
	dirs := map[string]uint32{}
	for i := 0; i < len(b); {
		n := int(b[i])
		if n == 0 || i+8+n > len(b) {
			return nil, errors.New("bad path table")
		}
		blk := binary.LittleEndian.Uint32(b[i+2 : i+6])
		parent := int(binary.LittleEndian.Uint16(b[i+6 : i+8]))
		p := "."
		if len(paths) > 0 {
			if parent < 1 || parent > len(paths) {
				return nil, errors.New("bad path table parent")
			}
			u := make([]uint16, n/2)
			for j := range u {
				u[j] = binary.BigEndian.Uint16(b[i+8+2*j:])
			}
			p = path.Join(paths[parent-1], string(utf16.Decode(u)))
		}
		paths = append(paths, p)
		dirs[p] = blk
		i += 8 + n + n%2
	}
	return dirs, nil
}

// fixISO places the files after the end of what go-diskfs wrote, rewrites
// every date to mtime, the Rock Ridge PX entries to fixed values and the
// identifiers to space-padded ones. With canon, files get the ISO 9660
// identifiers it names; directories must have them already (their order
// on the image follows them), else the error is errISOShortNames.
func fixISO(f *os.File, entries []Entry, mtime time.Time, label string, canon map[string]string) (*isoLayout, error) {
	s := &isoSectors{f: f, m: map[uint32][]byte{}}
	d7, d17 := isoDate7(mtime), isoDate17(mtime)
	var pvd, svd []byte
	for n := uint32(16); ; n++ {
		if n == 16+16 {
			return nil, errors.New("no volume descriptor set terminator")
		}
		vd, err := s.get(n)
		if err != nil {
			return nil, err
		}
		if string(vd[1:6]) != "CD001" {
			return nil, fmt.Errorf("block %d is no volume descriptor", n)
		}
		switch {
		case vd[0] == 255:
		case vd[0] == 1 && pvd == nil:
			pvd = vd
			continue
		case vd[0] == 2 && svd == nil && vd[88] == 0x25 && vd[89] == 0x2f && vd[90] == 0x45:
			svd = vd
			continue
		default:
			continue
		}
		break
	}
	if pvd == nil || svd == nil {
		return nil, errors.New("no primary or no Joliet volume descriptor")
	}
	pvdRoot, svdRoot := isoRecord{pvd[156 : 156+34]}, isoRecord{svd[156 : 156+34]}
	pt, err := s.tree(pvdRoot, nil)
	if err != nil {
		return nil, err
	}
	jdirs, err := s.jolietPathTable(svd)
	if err != nil {
		return nil, fmt.Errorf("Joliet: %w", err)
	}
	jt, err := s.tree(svdRoot, jdirs)
	if err != nil {
		return nil, fmt.Errorf("Joliet: %w", err)
	}

	// The files begin where go-diskfs ended, which must be past all its
	// metadata: the sectors read so far and the path tables.
	end := binary.LittleEndian.Uint32(pvd[80:84])
	metaEnd := slices.Max(slices.Collect(maps.Keys(s.m))) + 1
	for _, vd := range [][]byte{pvd, svd} {
		ptBlocks := (binary.LittleEndian.Uint32(vd[132:136]) + isoBlock - 1) / isoBlock
		metaEnd = max(metaEnd, binary.LittleEndian.Uint32(vd[140:144])+ptBlocks, binary.BigEndian.Uint32(vd[148:152])+ptBlocks)
	}
	if metaEnd > end {
		return nil, fmt.Errorf("metadata reaches block %d, past the volume's end %d", metaEnd, end)
	}
	if len(pt.files) != len(entries) || len(jt.files) != len(entries) {
		return nil, fmt.Errorf("the image lists %d (Joliet: %d) files, want %d", len(pt.files), len(jt.files), len(entries))
	}
	for p, want := range canon {
		r, ok := pt.recs[p]
		if !ok {
			return nil, fmt.Errorf("%s is missing from the image", p)
		}
		id := r.ident()
		if string(id) == want {
			continue
		}
		if r.isDir() || len(id) != len(want) {
			return nil, errISOShortNames
		}
		copy(id, want)
		pt.idents[p] = want
	}
	lay := &isoLayout{files: make(map[string]isoExtent, len(entries)), shortNames: pt.idents}
	loc := end
	exec := map[*byte]bool{} // the records of programs, by their first byte
	for _, e := range Placed(entries) {
		pr, ok1 := pt.files[e.Path]
		jr, ok2 := jt.files[e.Path]
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("%s is missing from the image", e.Path)
		}
		if pr.size() != 0 || jr.size() != 0 {
			return nil, fmt.Errorf("%s has data, but its placeholder was empty", e.Path)
		}
		lay.files[e.Path] = isoExtent{block: loc, size: e.Size}
		if e.Exec {
			exec[&pr.b[0]] = true
		}
		pr.setExtent(loc, uint32(e.Size))
		jr.setExtent(loc, uint32(e.Size))
		loc += uint32((e.Size + isoBlock - 1) / isoBlock)
	}
	// An empty file at the very end points at the block after the last;
	// make that block part of the volume.
	for _, x := range lay.files {
		if x.block == loc {
			loc++
			break
		}
	}
	lay.volumeBlocks = loc

	for _, d := range pt.dirs {
		err := s.records(d.block, d.size, func(r isoRecord) error {
			isoPatchRecord(r, d7)
			return s.susp(r.systemUse(), 0, func(sig string, e []byte) {
				switch sig {
				case "PX":
					isoPatchPX(e, r.isDir(), exec[&r.b[0]], 2+pt.subdirs[r.block()])
				case "TF":
					isoPatchTF(e, d7, d17)
				}
			})
		})
		if err != nil {
			return nil, err
		}
	}
	for _, d := range jt.dirs {
		err := s.records(d.block, d.size, func(r isoRecord) error {
			isoPatchRecord(r, d7)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	for _, vd := range [][]byte{pvd, svd} {
		isoPatchVD(vd, label, vd[0] == 2, d17)
		binary.LittleEndian.PutUint32(vd[80:84], loc)
		binary.BigEndian.PutUint32(vd[84:88], loc)
		isoPatchRecord(isoRecord{vd[156 : 156+34]}, d7)
	}
	return lay, s.flush()
}

// isoPatchRecord sets a directory record's date and rounds a directory's
// length up to whole blocks, as other ISO 9660 writers do (go-diskfs
// records the bytes used; the rest of the last block is zeros).
func isoPatchRecord(r isoRecord, d7 []byte) {
	copy(r.b[18:25], d7)
	if r.isDir() {
		r.setExtent(r.block(), (r.size()+isoBlock-1)/isoBlock*isoBlock)
	}
}

// isoPatchVD sets a primary or Joliet volume descriptor's identifiers and
// dates the way xorriso does: identifiers padded with spaces (UCS-2 spaces
// for Joliet), creation and modification dates set, expiration and
// effective dates unset.
func isoPatchVD(vd []byte, label string, joliet bool, d17 []byte) {
	put := func(off, n int, s string) {
		f := vd[off : off+n]
		if !joliet {
			for i := range f {
				f[i] = ' '
			}
			copy(f, s)
			return
		}
		for i := range f {
			f[i] = byte(i%2) * ' '
		}
		u := utf16.Encode([]rune(s))
		for i := 0; i < len(u) && 2*i+1 < n; i++ {
			binary.BigEndian.PutUint16(f[2*i:], u[i])
		}
	}
	put(8, 32, "")         // system
	put(40, 32, label)     // volume
	put(190, 128, "")      // volume set
	put(318, 128, "")      // publisher
	put(446, 128, "DVPC")  // data preparer
	put(574, 128, "DVPC")  // application
	put(702, 37, "")       // copyright file
	put(739, 37, "")       // abstract file
	put(776, 37, "")       // bibliographic file
	copy(vd[813:830], d17) // creation
	copy(vd[830:847], d17) // modification
	unset := []byte("0000000000000000\x00")
	copy(vd[847:864], unset) // expiration
	copy(vd[864:881], unset) // effective
}

// isoPatchPX sets mode, link count, owner and group, and writes the serial
// number in both byte orders (go-diskfs writes it as one little-endian
// 64-bit number where Rock Ridge 1.12 wants a both-endian 32-bit one).
func isoPatchPX(e []byte, dir, exec bool, dirLinks uint32) {
	if len(e) < 36 {
		return
	}
	mode, links := uint32(0o100644), uint32(1)
	switch {
	case dir:
		mode, links = 0o40755, dirLinks
	case exec:
		mode = 0o100755
	}
	both := func(off int, v uint32) {
		binary.LittleEndian.PutUint32(e[off:], v)
		binary.BigEndian.PutUint32(e[off+4:], v)
	}
	both(4, mode)
	both(12, links)
	both(20, 0)
	both(28, 0)
	if len(e) >= 44 {
		both(36, binary.LittleEndian.Uint32(e[36:40]))
	}
}

// isoPatchTF sets every Rock Ridge timestamp of a TF entry.
func isoPatchTF(e []byte, d7, d17 []byte) {
	if len(e) < 5 {
		return
	}
	stamp := d7
	if e[4]&0x80 != 0 {
		stamp = d17
	}
	for i, n := 5, bits.OnesCount8(e[4]&0x7f); n > 0 && i+len(stamp) <= len(e); i, n = i+len(stamp), n-1 {
		copy(e[i:], stamp)
	}
}

// isoDate7 is a directory record date in UTC.
func isoDate7(t time.Time) []byte {
	return []byte{byte(t.Year() - 1900), byte(t.Month()), byte(t.Day()), byte(t.Hour()), byte(t.Minute()), byte(t.Second()), 0}
}

// isoDate17 is a volume descriptor date in UTC.
func isoDate17(t time.Time) []byte {
	return append([]byte(t.Format("20060102150405")+"00"), 0)
}

// ISO 9660 short names
//
// go-diskfs gives every name an 8.3 identifier and resolves collisions
// within a directory by numbering them (as libisofs does), one collision
// group at a time, in Go map order. Two groups in one directory can compete
// for the same numbered names, and then the result depends on that order.
// isoShortNamesOrderDependent finds such directories (conservatively), and
// then files get the identifiers isoCanonicalShortNames computes with the
// groups in sorted order, written over go-diskfs's (the same length; the
// files' order on the image is dvpc's own). A directory's identifier also
// decides where go-diskfs puts it, so for directories WriteISO retries
// until go-diskfs happens on the canonical names.

var isoShortInvalid = regexp.MustCompile("[^A-Z0-9_]")

// isoShortName is go-diskfs's calculateShortnameExtension.
func isoShortName(name string) (short, ext string) {
	short, ext, _ = strings.Cut(name, ".")
	short = isoShortInvalid.ReplaceAllString(strings.ToUpper(short), "_")
	ext = isoShortInvalid.ReplaceAllString(strings.ToUpper(ext), "_")
	if len(ext) > 3 {
		ext = ext[:3]
	}
	if len(short) > 8 {
		short = short[:8]
	}
	return short, ext
}

type isoShortChild struct {
	path       string
	dir        bool
	short, ext string // ext is empty for directories
}

func (c *isoShortChild) key() string {
	if c.ext != "" {
		return c.short + "." + c.ext
	}
	return c.short
}

func (c *isoShortChild) ident() string {
	if c.dir {
		return c.short
	}
	return c.short + "." + c.ext + ";1"
}

type isoShortGroup struct {
	key        string
	short, ext string
	members    []*isoShortChild // in go-diskfs's walk order: by name
}

// isoShortDirs returns, for each directory, its children sorted by name
// and its collision groups sorted by key.
func isoShortDirs(entries []Entry) (map[string][]*isoShortChild, map[string][]*isoShortGroup) {
	children := map[string][]*isoShortChild{}
	seen := map[string]bool{}
	add := func(p string, dir bool) {
		if seen[p] {
			return
		}
		seen[p] = true
		short, ext := isoShortName(path.Base(p))
		if dir {
			ext = ""
		}
		parent := path.Dir(p)
		children[parent] = append(children[parent], &isoShortChild{path: p, dir: dir, short: short, ext: ext})
	}
	for _, e := range entries {
		add(e.Path, false)
		for d := path.Dir(e.Path); d != "."; d = path.Dir(d) {
			add(d, true)
		}
	}
	groups := map[string][]*isoShortGroup{}
	for dir, cs := range children {
		slices.SortFunc(cs, func(a, b *isoShortChild) int { return strings.Compare(path.Base(a.path), path.Base(b.path)) })
		byKey := map[string]*isoShortGroup{}
		for _, c := range cs {
			g := byKey[c.key()]
			if g == nil {
				g = &isoShortGroup{key: c.key(), short: c.short, ext: c.ext}
				byKey[c.key()] = g
			}
			g.members = append(g.members, c)
		}
		var gs []*isoShortGroup
		for _, g := range byKey {
			if len(g.members) > 1 {
				gs = append(gs, g)
			}
		}
		slices.SortFunc(gs, func(a, b *isoShortGroup) int { return strings.Compare(a.key, b.key) })
		groups[dir] = gs
	}
	return children, groups
}

// isoCanonicalShortNames returns the ISO 9660 identifier of every path when
// go-diskfs resolves the collision groups of each directory in key order.
func isoCanonicalShortNames(entries []Entry) map[string]string {
	children, groups := isoShortDirs(entries)
	out := map[string]string{}
	for dir, gs := range groups {
		for _, g := range gs {
			isoResolveGroup(g, children[dir])
		}
	}
	for _, cs := range children {
		for _, c := range cs {
			out[c.path] = c.ident()
		}
	}
	return out
}

// isoResolveGroup is go-diskfs's resolveCollisionGroup.
func isoResolveGroup(g *isoShortGroup, siblings []*isoShortChild) {
	taken := map[string]bool{}
	for _, c := range siblings {
		taken[c.key()] = true
	}
	for digits := len(strconv.Itoa(len(g.members) - 1)); digits < 8; digits++ {
		base := g.short
		if len(base) > 8-digits {
			base = base[:8-digits]
		}
		change, maxChange, all := 0, isoPow10(digits), true
		for _, m := range g.members {
			found := false
			for change < maxChange {
				idx := fmt.Sprintf("%0*d", digits, change)
				cand := base + idx
				if g.ext != "" {
					cand += "." + g.ext
				}
				change++
				if !taken[cand] {
					m.short = base + idx
					taken[cand] = true
					found = true
					break
				}
			}
			if !found {
				all = false
				break
			}
		}
		if all {
			return
		}
	}
}

func isoPow10(n int) int {
	p := 1
	for range n {
		p *= 10
	}
	return p
}

// isoShortNamesOrderDependent reports whether two collision groups of one
// directory could compete for a numbered name.
func isoShortNamesOrderDependent(entries []Entry) bool {
	children, groups := isoShortDirs(entries)
	for dir, gs := range groups {
		n := len(children[dir])
		for i, a := range gs {
			for _, b := range gs[i+1:] {
				if a.ext == b.ext && isoGroupsMeet(a, b, n) {
					return true
				}
			}
		}
	}
	return false
}

// isoDigitRange is the range of digit counts a group of a directory with n
// children can use: go-diskfs widens the number only when the names of one
// width run out, and they cannot while 10^d exceeds every name the
// directory's groups can take.
func isoDigitRange(g *isoShortGroup, n int) (lo, hi int) {
	lo = len(strconv.Itoa(len(g.members) - 1))
	hi = lo
	for hi < 7 && isoPow10(hi) < 8*n+len(g.members) {
		hi++
	}
	return lo, hi
}

func isoGroupsMeet(a, b *isoShortGroup, n int) bool {
	alo, ahi := isoDigitRange(a, n)
	blo, bhi := isoDigitRange(b, n)
	for da := alo; da <= ahi; da++ {
		pa := a.short[:min(len(a.short), 8-da)]
		if isoMatchesPattern(b.short, pa, da) {
			return true
		}
		for db := blo; db <= bhi; db++ {
			pb := b.short[:min(len(b.short), 8-db)]
			if isoMatchesPattern(a.short, pb, db) || isoPatternsMeet(pa, da, pb, db) {
				return true
			}
		}
	}
	return false
}

// isoMatchesPattern reports whether s is prefix followed by d digits.
func isoMatchesPattern(s, prefix string, d int) bool {
	if len(s) != len(prefix)+d || !strings.HasPrefix(s, prefix) {
		return false
	}
	for _, c := range s[len(prefix):] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// isoPatternsMeet reports whether some name is both pa followed by da digits
// and pb followed by db digits.
func isoPatternsMeet(pa string, da int, pb string, db int) bool {
	if len(pa)+da != len(pb)+db {
		return false
	}
	for i := range len(pa) + da {
		switch {
		case i < len(pa) && i < len(pb):
			if pa[i] != pb[i] {
				return false
			}
		case i < len(pa):
			if pa[i] < '0' || pa[i] > '9' {
				return false
			}
		case i < len(pb):
			if pb[i] < '0' || pb[i] > '9' {
				return false
			}
		}
	}
	return true
}
