package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/diskfs/go-diskfs/backend"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
)

// ErrNotISO means a file or device holds no readable ISO 9660 image.
var ErrNotISO = errors.New("not an ISO 9660 image")

// Limits on what an image may ask go-diskfs to read: no honest image comes
// near them, and they keep a hostile one from making it allocate gigabytes
// or loop (a continuation area that points at itself).
const (
	isoMaxMetaRead   = 16 << 20 // one directory, path table or SUSP area
	isoMaxMetaBytes  = 1 << 30  // everything read for one directory listing
	isoMaxMetaReads  = 1 << 22
	isoMaxSameReads  = 64 // the same bytes read again within one listing
	isoMaxDepth      = 256
	isoMaxDescriptor = 64 // volume descriptors before the terminator
)

// ISO is an ISO 9660 image (a file or a block device) read without
// mounting, through go-diskfs. Names come from Rock Ridge, else Joliet, else
// ISO 9660. Without Rock Ridge, go-diskfs finds directories through the path
// table with an off-by-one, so a Joliet-only image is readable down to the
// first directory level only; dvpc's images always carry Rock Ridge. It is
// safe for concurrent use.
type ISO struct {
	f     *os.File
	ra    io.ReaderAt
	size  int64
	want  int64 // the volume's size, past size when the image is cut short
	label string

	mu   sync.Mutex // guards fsm, meta and dirs
	fsm  *iso9660.FileSystem
	meta *isoReadBackend
	dirs map[string]*isoDir
	root isoNode
}

// isoNode is one file or directory of the image.
type isoNode struct {
	name    string
	size    int64
	block   uint32
	mode    fs.FileMode
	modTime time.Time
}

func (n *isoNode) isDir() bool { return n.mode.IsDir() }

type isoDir struct {
	nodes  []isoNode // sorted by name
	byName map[string]int
}

// OpenISO opens the image at path read-only. A file that holds no ISO 9660
// image, or a truncated one, gives an error wrapping [ErrNotISO].
func OpenISO(path string) (*ISO, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open ISO: %w", err)
	}
	// Seek finds the size of block devices too.
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open ISO %s: %w", path, err)
	}
	x, err := newISO(f, size)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open ISO %s: %w", path, err)
	}
	x.f = f
	return x, nil
}

// newISO reads the image in ra, size bytes long. An image cut short is read
// as far as it goes; when the cut lies inside its directories, the error
// wraps [ErrDamaged].
func newISO(ra io.ReaderAt, size int64) (x *ISO, err error) {
	want, err := isoCheckHeader(ra, size)
	defer func() {
		if err != nil && want > size {
			err = fmt.Errorf("%w: the image is cut short at %s of %s, before the end of its directories: %w", ErrDamaged, HumanBytes(size), HumanBytes(want), err)
		}
	}()
	if err != nil {
		return nil, err
	}
	meta := &isoReadBackend{ra: ra, size: size}
	meta.reset()
	defer func() {
		if r := recover(); r != nil {
			x, err = nil, fmt.Errorf("%w: go-diskfs failed reading it: %v", ErrNotISO, r)
		}
	}()
	fsm, err := iso9660.Read(meta, size, 0, isoBlock)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotISO, err)
	}
	x = &ISO{ra: ra, size: size, want: max(want, size), fsm: fsm, meta: meta, dirs: map[string]*isoDir{}}
	x.label = strings.TrimRight(fsm.Label(), " \x00")
	fi, err := fsm.Stat(".")
	if err != nil {
		return nil, fmt.Errorf("%w: root directory: %w", ErrNotISO, err)
	}
	x.root = isoNode{name: ".", size: fi.Size(), mode: fs.ModeDir | fi.Mode().Perm(), modTime: fi.ModTime()}
	if st, ok := fi.Sys().(*iso9660.StatT); ok {
		x.root.block = st.Location
	}
	if _, err := x.list("."); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotISO, err)
	}
	return x, nil
}

// Label returns the volume identifier.
func (x *ISO) Label() string { return x.label }

// Size returns the image's size, and the size its volume descriptor gives,
// which is larger when the image is cut short.
func (x *ISO) Size() (have, want int64) { return x.size, x.want }

// Close closes the image file.
func (x *ISO) Close() error {
	if x.f == nil {
		return nil
	}
	return x.f.Close()
}

// FS returns the image's files. It implements [fs.StatFS] and
// [fs.ReadDirFS]; its files implement [io.ReaderAt] and [io.Seeker].
func (x *ISO) FS() fs.FS { return isoFS{x} }

// isoCheckHeader checks what go-diskfs trusts without checking: the volume
// descriptors, the block size, the sizes and places of the path tables and
// root directories. It returns the volume's size as the primary volume
// descriptor gives it (0 before that is read); the image may be shorter.
func isoCheckHeader(ra io.ReaderAt, size int64) (want int64, err error) {
	if size < 18*isoBlock {
		return 0, fmt.Errorf("%w: %d bytes is too short", ErrNotISO, size)
	}
	vd := make([]byte, isoBlock)
	var primary bool
	for i := int64(0); ; i++ {
		if i == isoMaxDescriptor || (16+i+1)*isoBlock > size {
			return want, fmt.Errorf("%w: no volume descriptor set terminator", ErrNotISO)
		}
		if _, err := ra.ReadAt(vd, (16+i)*isoBlock); err != nil {
			return want, fmt.Errorf("%w: read volume descriptor: %w", ErrNotISO, err)
		}
		if string(vd[1:6]) != "CD001" {
			return want, fmt.Errorf("%w: no ISO 9660 volume descriptor at block %d", ErrNotISO, 16+i)
		}
		switch vd[0] {
		case 255:
			if !primary {
				return want, fmt.Errorf("%w: no primary volume descriptor", ErrNotISO)
			}
			return want, nil
		case 1, 2:
			if vd[0] == 1 && !primary {
				primary = true
				want = int64(binary.LittleEndian.Uint32(vd[80:84])) * isoBlock
			}
			if err := isoCheckVD(ra, size, vd); err != nil {
				return want, fmt.Errorf("%w: volume descriptor at block %d: %w", ErrNotISO, 16+i, err)
			}
		case 0, 3:
		default:
			return want, fmt.Errorf("%w: unknown volume descriptor type %d", ErrNotISO, vd[0])
		}
	}
}

func isoCheckVD(ra io.ReaderAt, size int64, vd []byte) error {
	if bs := binary.LittleEndian.Uint16(vd[128:130]); bs != isoBlock {
		return fmt.Errorf("block size %d, want %d", bs, isoBlock)
	}
	ptSize := int64(binary.LittleEndian.Uint32(vd[132:136]))
	ptStart := int64(binary.LittleEndian.Uint32(vd[140:144])) * isoBlock
	if ptSize > isoMaxMetaRead || ptStart+ptSize > size {
		return fmt.Errorf("path table of %d bytes at %d lies outside the image", ptSize, ptStart)
	}
	root := vd[156 : 156+34]
	rootStart := int64(binary.LittleEndian.Uint32(root[2:6])) * isoBlock
	rootSize := int64(binary.LittleEndian.Uint32(root[10:14]))
	if root[0] != 34 || rootSize == 0 || rootSize > isoMaxMetaRead || rootStart+rootSize > size {
		return errors.New("bad root directory record")
	}
	if err := isoCheckSUSP(ra, size, rootStart, rootSize); err != nil {
		return fmt.Errorf("root directory: %w", err)
	}
	// go-diskfs looks directories up in the path table (unless Rock Ridge
	// is on) and trusts the size in each one's first record.
	pt := make([]byte, ptSize)
	if _, err := ra.ReadAt(pt, ptStart); err != nil {
		return fmt.Errorf("read path table: %w", err)
	}
	var rec [4]byte
	for i := 0; i < len(pt); {
		n := int(pt[i])
		if n == 0 || i+8+n > len(pt) {
			return errors.New("bad path table")
		}
		start := int64(binary.LittleEndian.Uint32(pt[i+2:i+6])) * isoBlock
		if start+isoBlock > size {
			return errors.New("path table names a directory outside the image")
		}
		if _, err := ra.ReadAt(rec[:], start+10); err != nil {
			return fmt.Errorf("read directory: %w", err)
		}
		if dsize := int64(binary.LittleEndian.Uint32(rec[:])); dsize > isoMaxMetaRead || start+dsize > size {
			return errors.New("path table names a directory that lies outside the image")
		}
		i += 8 + n + n%2
	}
	return nil
}

// isoCheckSUSP walks the system use areas of the directory at start, size
// bytes long, as go-diskfs parses them, and refuses continuation areas that
// lie outside the image, are longer than a block or chain on and on:
// go-diskfs allocates whatever length a CE entry gives (up to 4 GiB) and
// follows a chain that loops forever.
func isoCheckSUSP(ra io.ReaderAt, size, start, dsize int64) error {
	b := make([]byte, dsize)
	if _, err := ra.ReadAt(b, start); err != nil && err != io.EOF {
		return err
	}
	for i := 0; i < len(b); {
		n := int(b[i])
		if n == 0 {
			i += isoBlock - i%isoBlock
			continue
		}
		if n < 34 || i+n > len(b) || 33+int(b[i+32]) > n {
			return nil // go-diskfs refuses this record itself
		}
		rec := b[i : i+n]
		su := 33 + int(rec[32])
		if rec[32] > 1 && rec[32]%2 == 0 {
			su++
		}
		if err := isoCheckSUSPArea(ra, size, rec[min(su, n):], 0); err != nil {
			return err
		}
		i += n
	}
	return nil
}

func isoCheckSUSPArea(ra io.ReaderAt, size int64, area []byte, depth int) error {
	for i := 0; i+3 < len(area); {
		n := int(area[i+2])
		if n < 4 || i+n > len(area) {
			return nil
		}
		if e := area[i : i+n]; string(e[:2]) == "CE" {
			if n < 28 {
				return errors.New("bad SUSP continuation entry")
			}
			if depth == 16 {
				return errors.New("SUSP continuation areas chain on too long")
			}
			start := int64(binary.LittleEndian.Uint32(e[4:8]))*isoBlock + int64(binary.LittleEndian.Uint32(e[12:16]))
			ln := int64(binary.LittleEndian.Uint32(e[20:24]))
			if ln > isoBlock || start+ln > size {
				return fmt.Errorf("SUSP continuation area of %d bytes at %d lies outside the image", ln, start)
			}
			next := make([]byte, ln)
			if _, err := ra.ReadAt(next, start); err != nil && err != io.EOF {
				return err
			}
			if err := isoCheckSUSPArea(ra, size, next, depth+1); err != nil {
				return err
			}
		}
		i += n
	}
	return nil
}

// isoReadBackend is go-diskfs's view of the image: read-only, never past
// its end, and within a budget per operation.
type isoReadBackend struct {
	ra    io.ReaderAt
	size  int64
	reads int
	bytes int64
	same  map[[2]int64]int
}

var _ backend.Storage = (*isoReadBackend)(nil)

var errISOBudget = errors.New("the image asks for implausibly much reading")

func (b *isoReadBackend) reset() {
	b.reads, b.bytes, b.same = 0, 0, map[[2]int64]int{}
}

func (b *isoReadBackend) ReadAt(p []byte, off int64) (int, error) {
	if len(p) > isoMaxMetaRead {
		return 0, fmt.Errorf("read of %d bytes: %w", len(p), errISOBudget)
	}
	b.reads++
	b.bytes += int64(len(p))
	k := [2]int64{off, int64(len(p))}
	b.same[k]++
	if b.reads > isoMaxMetaReads || b.bytes > isoMaxMetaBytes || b.same[k] > isoMaxSameReads {
		return 0, errISOBudget
	}
	return io.NewSectionReader(b.ra, 0, b.size).ReadAt(p, off)
}

func (b *isoReadBackend) Stat() (fs.FileInfo, error) { return isoSizeInfo(b.size), nil }
func (b *isoReadBackend) Read([]byte) (int, error)   { return 0, errors.ErrUnsupported }
func (b *isoReadBackend) Close() error               { return nil }
func (b *isoReadBackend) Seek(int64, int) (int64, error) {
	return 0, errors.ErrUnsupported
}
func (b *isoReadBackend) Sys() (*os.File, error) { return nil, backend.ErrNotSuitable }
func (b *isoReadBackend) Writable() (backend.WritableFile, error) {
	return nil, backend.ErrIncorrectOpenMode
}
func (b *isoReadBackend) Path() string { return "" }

type isoSizeInfo int64

func (s isoSizeInfo) Name() string       { return "image" }
func (s isoSizeInfo) Size() int64        { return int64(s) }
func (s isoSizeInfo) Mode() fs.FileMode  { return 0o444 }
func (s isoSizeInfo) ModTime() time.Time { return time.Time{} }
func (s isoSizeInfo) IsDir() bool        { return false }
func (s isoSizeInfo) Sys() any           { return nil }

// list returns the directory at p (which must be one), reading it through
// go-diskfs the first time. Its parents are listed first, so every
// directory's size and place were checked in its parent's listing.
func (x *ISO) list(p string) (*isoDir, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.listLocked(p)
}

func (x *ISO) listLocked(p string) (d *isoDir, err error) {
	if d := x.dirs[p]; d != nil {
		return d, nil
	}
	blocks := map[uint32]bool{x.root.block: true}
	if p != "." {
		n, err := x.lookupLocked(p)
		if err != nil {
			return nil, err
		}
		if !n.isDir() {
			return nil, fmt.Errorf("%s: %w", p, errISONotDir)
		}
		for q := path.Dir(p); q != "."; q = path.Dir(q) {
			a, err := x.lookupLocked(q)
			if err != nil {
				return nil, err
			}
			blocks[a.block] = true
		}
		if blocks[n.block] {
			return nil, fmt.Errorf("directory %s: it loops back to a directory above it", p)
		}
		blocks[n.block] = true
		if err := isoCheckSUSP(x.ra, x.size, int64(n.block)*isoBlock, n.size); err != nil {
			return nil, fmt.Errorf("read directory %s: %w", p, err)
		}
	}
	x.meta.reset()
	defer func() {
		if r := recover(); r != nil {
			d, err = nil, fmt.Errorf("read directory %s: go-diskfs failed: %v", p, r)
		}
	}()
	des, err := x.fsm.ReadDir(p)
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w", p, err)
	}
	d = &isoDir{nodes: make([]isoNode, 0, len(des)), byName: make(map[string]int, len(des))}
	for _, de := range des {
		n, err := isoNodeOf(de)
		if err != nil {
			return nil, fmt.Errorf("read directory %s: %w", p, err)
		}
		if !fs.ValidPath(n.name) || strings.Contains(n.name, "/") {
			return nil, fmt.Errorf("read directory %s: entry named %q", p, n.name)
		}
		if n.isDir() && (n.size > isoMaxMetaRead || int64(n.block)*isoBlock+n.size > x.size || blocks[n.block]) {
			return nil, fmt.Errorf("read directory %s: subdirectory %s lies outside the image or loops", p, n.name)
		}
		d.nodes = append(d.nodes, n)
	}
	slices.SortFunc(d.nodes, func(a, b isoNode) int { return strings.Compare(a.name, b.name) })
	for i, n := range d.nodes {
		if i > 0 && d.nodes[i-1].name == n.name {
			return nil, fmt.Errorf("read directory %s: %q appears twice (multi-extent files are not supported)", p, n.name)
		}
		d.byName[n.name] = i
	}
	x.dirs[p] = d
	return d, nil
}

var errISONotDir = errors.New("not a directory")

func isoNodeOf(de fs.DirEntry) (isoNode, error) {
	fi, err := de.Info()
	if err != nil {
		return isoNode{}, err
	}
	n := isoNode{name: de.Name(), size: fi.Size(), modTime: fi.ModTime()}
	if st, ok := fi.Sys().(*iso9660.StatT); ok {
		n.block = st.Location
	}
	m := fi.Mode()
	switch {
	case fi.IsDir():
		n.mode = fs.ModeDir | m.Perm()
	case m&fs.ModeSymlink != 0:
		n.mode = fs.ModeSymlink | m.Perm()
		n.size = 0
	case m.Type() != 0:
		n.mode = m.Type() | m.Perm()
		n.size = 0
	default:
		n.mode = m.Perm()
	}
	return n, nil
}

// lookupLocked finds the node at p, listing the directories on the way.
func (x *ISO) lookupLocked(p string) (isoNode, error) {
	if p == "." {
		return x.root, nil
	}
	if strings.Count(p, "/") >= isoMaxDepth {
		return isoNode{}, fmt.Errorf("%s: deeper than %d directories", p, isoMaxDepth)
	}
	d, err := x.listLocked(path.Dir(p))
	if err != nil {
		return isoNode{}, err
	}
	i, ok := d.byName[path.Base(p)]
	if !ok {
		return isoNode{}, fs.ErrNotExist
	}
	return d.nodes[i], nil
}

func (x *ISO) lookup(p string) (isoNode, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.lookupLocked(p)
}

// isoFS is the fs.FS of an ISO.
type isoFS struct{ x *ISO }

var (
	_ fs.StatFS    = isoFS{}
	_ fs.ReadDirFS = isoFS{}
)

func (f isoFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	n, err := f.x.lookup(name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	switch {
	case n.isDir():
		return &isoDirFile{x: f.x, path: name, node: n}, nil
	case n.mode.Type() != 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("%v files are not supported", n.mode.Type())}
	}
	start := int64(n.block) * isoBlock
	if err := cutAt(name, start, n.size, f.x.size, f.x.want); err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return &isoFile{node: n, r: io.NewSectionReader(f.x.ra, start, n.size)}, nil
}

func (f isoFS) Stat(name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrInvalid}
	}
	n, err := f.x.lookup(name)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	if !n.isDir() && n.mode.Type() == 0 {
		if err := cutAt(name, int64(n.block)*isoBlock, n.size, f.x.size, f.x.want); err != nil {
			return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
		}
	}
	return isoInfo{n}, nil
}

func (f isoFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrInvalid}
	}
	d, err := f.x.list(name)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	out := make([]fs.DirEntry, len(d.nodes))
	for i, n := range d.nodes {
		out[i] = isoInfo{n}
	}
	return out, nil
}

// isoInfo is both the fs.FileInfo and the fs.DirEntry of a node.
type isoInfo struct{ n isoNode }

func (i isoInfo) Name() string               { return path.Base(i.n.name) }
func (i isoInfo) Size() int64                { return i.n.size }
func (i isoInfo) Mode() fs.FileMode          { return i.n.mode }
func (i isoInfo) ModTime() time.Time         { return i.n.modTime }
func (i isoInfo) IsDir() bool                { return i.n.isDir() }
func (i isoInfo) Sys() any                   { return nil }
func (i isoInfo) Type() fs.FileMode          { return i.n.mode.Type() }
func (i isoInfo) Info() (fs.FileInfo, error) { return i, nil }
func (i isoInfo) String() string             { return fs.FormatFileInfo(i) }

// isoFile reads a file's extent straight from the image, never past its
// size. (go-diskfs's own File.Read ignores short reads, so on a truncated
// image it returns stale bytes instead of an error.)
type isoFile struct {
	node   isoNode
	r      *io.SectionReader
	closed bool
}

var (
	_ io.ReaderAt = (*isoFile)(nil)
	_ io.Seeker   = (*isoFile)(nil)
)

func (f *isoFile) Stat() (fs.FileInfo, error) { return isoInfo{f.node}, nil }

func (f *isoFile) Read(p []byte) (int, error) {
	if f.closed {
		return 0, fs.ErrClosed
	}
	return f.r.Read(p)
}

func (f *isoFile) ReadAt(p []byte, off int64) (int, error) {
	if f.closed {
		return 0, fs.ErrClosed
	}
	n, err := f.r.ReadAt(p, off)
	if err == io.EOF && off+int64(n) < f.node.size {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (f *isoFile) Seek(off int64, whence int) (int64, error) {
	if f.closed {
		return 0, fs.ErrClosed
	}
	return f.r.Seek(off, whence)
}

func (f *isoFile) Close() error {
	if f.closed {
		return fs.ErrClosed
	}
	f.closed = true
	return nil
}

// isoDirFile is an open directory.
type isoDirFile struct {
	x      *ISO
	path   string
	node   isoNode
	pos    int
	closed bool
}

var _ fs.ReadDirFile = (*isoDirFile)(nil)

func (d *isoDirFile) Stat() (fs.FileInfo, error) { return isoInfo{d.node}, nil }
func (d *isoDirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.path, Err: errors.New("is a directory")}
}

func (d *isoDirFile) Close() error {
	if d.closed {
		return fs.ErrClosed
	}
	d.closed = true
	return nil
}

func (d *isoDirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	if d.closed {
		return nil, fs.ErrClosed
	}
	dir, err := d.x.list(d.path)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: d.path, Err: err}
	}
	rest := dir.nodes[d.pos:]
	if n > 0 && len(rest) == 0 {
		return nil, io.EOF
	}
	if n > 0 && n < len(rest) {
		rest = rest[:n]
	}
	d.pos += len(rest)
	out := make([]fs.DirEntry, len(rest))
	for i, nd := range rest {
		out[i] = isoInfo{nd}
	}
	return out, nil
}
