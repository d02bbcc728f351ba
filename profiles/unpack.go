package profiles

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"runtime"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// ErrHostile means a layer tried to write outside its directory, or
// through a link it made.
var ErrHostile = errors.New("hostile layer")

// HostileError names the entry of a layer that was refused.
type HostileError struct {
	Name string
	Why  string
}

func (e *HostileError) Error() string {
	return fmt.Sprintf("layer entry %q: %s", e.Name, e.Why)
}

func (e *HostileError) Unwrap() error { return ErrHostile }

// UnpackReport is what an unpack neutralised rather than refused.
type UnpackReport struct {
	Skipped   []string // device nodes, FIFOs and other special files
	Rewritten []string // symlinks whose target was made relative and inside
}

// Limits of one layer, so that a hostile one cannot exhaust the disk's
// inodes or memory through names.
const (
	maxNameLen = 4096
	maxEntries = 4 << 20
)

// MaxLayerBytes bounds what one layer may unpack to, so that a layer that
// decompresses to far more than any app holds (a "zip bomb") is refused
// rather than filling the disk.
var MaxLayerBytes int64 = 32 << 30

// Unpack applies one layer (a tar stream, gzip or zstd compressed or not)
// over root. It never writes outside root: see the package documentation
// for what it refuses and what it neutralises.
func Unpack(ctx context.Context, root *os.Root, layer io.Reader, rep *UnpackReport) error {
	r, closeFn, err := decompress(layer)
	if err != nil {
		return err
	}
	defer closeFn()
	u := &unpacker{root: root, rep: rep, here: map[string]bool{}}
	tr := tar.NewReader(&boundedReader{r: r, left: MaxLayerBytes})
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if n >= maxEntries {
			return &HostileError{Name: "(layer)", Why: fmt.Sprintf("more than %d entries", maxEntries)}
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		var he *HostileError
		if errors.As(err, &he) {
			return he
		}
		if err != nil {
			return fmt.Errorf("read layer: %w", err)
		}
		if err := u.entry(hdr, tr); err != nil {
			return err
		}
	}
}

// decompress recognises gzip and zstd by their magic numbers; anything
// else is read as a plain tar.
func decompress(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReader(r)
	magic, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("read layer: %w", err)
		}
		return zr, func() { zr.Close() }, nil
	case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, nil, fmt.Errorf("read layer: %w", err)
		}
		return zr, zr.Close, nil
	}
	return br, func() {}, nil
}

type unpacker struct {
	root *os.Root
	rep  *UnpackReport
	here map[string]bool // names this layer wrote, which an opaque whiteout keeps
}

// cleanName makes a layer's entry name relative to the root, refusing one
// that climbs out of it.
func cleanName(name string) (string, error) {
	if len(name) > maxNameLen {
		return "", &HostileError{Name: name[:64] + "…", Why: "name too long"}
	}
	if strings.ContainsRune(name, 0) {
		return "", &HostileError{Name: name, Why: "name holds a NUL byte"}
	}
	if runtime.GOOS == "windows" && strings.ContainsAny(name, `\:`) {
		return "", &HostileError{Name: name, Why: "name holds \\ or :, which Windows reads as a path"}
	}
	rel := path.Clean(strings.TrimLeft(name, "/"))
	if rel == ".." || strings.HasPrefix(rel, "../") {
		return "", &HostileError{Name: name, Why: "climbs out of the directory (..)"}
	}
	return rel, nil
}

// checkParents refuses an entry whose parent directories include a
// symlink or a non-directory, and makes the missing ones.
func (u *unpacker) checkParents(name string) error {
	dir := path.Dir(name)
	if dir == "." {
		return nil
	}
	parts := strings.Split(dir, "/")
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		fi, err := u.root.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			if err := u.root.Mkdir(p, 0o755); err != nil {
				return fmt.Errorf("unpack %s: %w", name, err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("unpack %s: %w", name, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return &HostileError{Name: name, Why: "is placed beneath the symlink " + p}
		}
		if !fi.IsDir() {
			return &HostileError{Name: name, Why: "is placed beneath " + p + ", which is not a directory"}
		}
	}
	return nil
}

// clear removes what is at name, unless it is a directory and keepDir.
func (u *unpacker) clear(name string, keepDir bool) error {
	fi, err := u.root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		if keepDir {
			return nil
		}
		return u.root.RemoveAll(name)
	}
	return u.root.Remove(name)
}

func (u *unpacker) entry(hdr *tar.Header, r io.Reader) error {
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	dir, base := path.Dir(name), path.Base(name)
	if strings.HasPrefix(base, ".wh.") {
		return u.whiteout(name, dir, base)
	}
	if name == "." {
		if hdr.Typeflag == tar.TypeDir {
			return nil // the root's own mode stays ours
		}
		return &HostileError{Name: hdr.Name, Why: "replaces the directory itself"}
	}
	if err := u.checkParents(name); err != nil {
		return err
	}
	perm := fs.FileMode(hdr.Mode) & 0o777 // no set-ID or sticky bits
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := u.clear(name, true); err != nil {
			return fmt.Errorf("unpack %s: %w", name, err)
		}
		if err := u.root.Mkdir(name, perm|0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("unpack %s: %w", name, err)
		}
		if err := u.root.Chmod(name, perm|0o700); err != nil {
			return fmt.Errorf("unpack %s: %w", name, err)
		}
	case tar.TypeReg, tar.TypeRegA:
		if err := u.clear(name, false); err != nil {
			return fmt.Errorf("unpack %s: %w", name, err)
		}
		f, err := u.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if err != nil {
			return fmt.Errorf("unpack %s: %w", name, err)
		}
		_, err = io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("unpack %s: %w", name, err)
		}
		if err := u.root.Chmod(name, perm); err != nil { // umask took bits
			return fmt.Errorf("unpack %s: %w", name, err)
		}
		if !hdr.ModTime.IsZero() {
			u.root.Chtimes(name, hdr.ModTime, hdr.ModTime)
		}
	case tar.TypeSymlink:
		target := inside(dir, hdr.Linkname)
		if target != hdr.Linkname {
			u.rep.rewrite(name + " -> " + hdr.Linkname)
		}
		if err := u.clear(name, false); err != nil {
			return fmt.Errorf("unpack %s: %w", name, err)
		}
		if err := u.root.Symlink(target, name); err != nil {
			return fmt.Errorf("unpack %s: %w", name, err)
		}
	case tar.TypeLink:
		old, err := cleanName(hdr.Linkname)
		if err != nil {
			return &HostileError{Name: hdr.Name, Why: "hard link to " + hdr.Linkname + " outside the directory"}
		}
		fi, err := u.root.Lstat(old)
		if err != nil {
			return &HostileError{Name: hdr.Name, Why: "hard link to " + hdr.Linkname + ", which the layers do not hold"}
		}
		if !fi.Mode().IsRegular() && fi.Mode()&fs.ModeSymlink == 0 {
			return &HostileError{Name: hdr.Name, Why: "hard link to " + hdr.Linkname + ", which is not a file"}
		}
		if old == name {
			return nil
		}
		if err := u.clear(name, false); err != nil {
			return fmt.Errorf("unpack %s: %w", name, err)
		}
		if err := u.root.Link(old, name); err != nil {
			return fmt.Errorf("unpack %s: %w", name, err)
		}
	default:
		// Character and block devices, FIFOs and anything else: an
		// unprivileged install cannot make them and an app has no use
		// for the PC's devices through its own tree.
		u.rep.skip(fmt.Sprintf("%s (type %q)", name, hdr.Typeflag))
		return nil
	}
	u.here[name] = true
	return nil
}

func (u *unpacker) whiteout(name, dir, base string) error {
	if err := u.checkParents(name); err != nil {
		return err
	}
	if base == ".wh..wh..opq" {
		// Opaque: what lower layers put in dir goes; this layer's stays.
		f, err := u.root.Open(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("unpack %s: %w", name, err)
		}
		ents, err := f.ReadDir(-1)
		f.Close()
		if err != nil {
			return fmt.Errorf("unpack %s: %w", name, err)
		}
		for _, e := range ents {
			p := path.Join(dir, e.Name())
			if !u.here[p] {
				if err := u.root.RemoveAll(p); err != nil {
					return fmt.Errorf("unpack %s: %w", name, err)
				}
			}
		}
		return nil
	}
	gone := path.Join(dir, strings.TrimPrefix(base, ".wh."))
	if path.Base(gone) == ".." || path.Base(gone) == "." {
		return &HostileError{Name: name, Why: "whiteout of the directory itself"}
	}
	if err := u.root.RemoveAll(gone); err != nil {
		return fmt.Errorf("unpack %s: %w", name, err)
	}
	return nil
}

// inside turns the target of a symlink placed in dir into a relative
// target that resolves, as if the unpacked directory were the root, to
// the same place: an absolute target starts at the root, and .. stops
// there.
func inside(dir, target string) string {
	stack := resolveIn(dir, target)
	var from []string
	if dir != "." {
		from = strings.Split(dir, "/")
	}
	common := 0
	for common < len(from) && common < len(stack) && from[common] == stack[common] {
		common++
	}
	var out []string
	for range from[common:] {
		out = append(out, "..")
	}
	out = append(out, stack[common:]...)
	if len(out) == 0 {
		return "."
	}
	return strings.Join(out, "/")
}

// resolveIn resolves a symlink target found in dir lexically, as if the
// unpacked directory were the root, into path elements from that root.
func resolveIn(dir, target string) []string {
	var stack []string
	if !strings.HasPrefix(target, "/") && dir != "." {
		stack = strings.Split(dir, "/")
	}
	for _, p := range strings.Split(target, "/") {
		switch p {
		case "", ".":
		case "..":
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		default:
			stack = append(stack, p)
		}
	}
	return stack
}

func (r *UnpackReport) skip(s string) {
	if r != nil {
		r.Skipped = append(r.Skipped, s)
	}
}

func (r *UnpackReport) rewrite(s string) {
	if r != nil {
		r.Rewritten = append(r.Rewritten, s)
	}
}

// boundedReader refuses to read past left bytes of a decompressed layer.
type boundedReader struct {
	r    io.Reader
	left int64
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, &HostileError{Name: "(layer)", Why: fmt.Sprintf("unpacks to more than %d bytes", MaxLayerBytes)}
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}
