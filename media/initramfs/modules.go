package initramfs

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Module is one kernel module file an initramfs carries.
type Module struct {
	Name string // canonical module name: "-" written as "_"
	Path string // slash-separated path inside the modules tree
}

var (
	// ErrModuleNotFound is returned when a wanted module, or one it depends
	// on, is neither in the modules tree nor built into the kernel.
	ErrModuleNotFound = errors.New("kernel module not found")
	// ErrModuleCycle is returned when modules depend on each other in a loop.
	ErrModuleCycle = errors.New("kernel module dependency cycle")
)

// maxModuleSize bounds a module file after decompression.
const maxModuleSize = 256 << 20

// moduleSuffixes are the module file endings Closure reads, longest first.
var moduleSuffixes = []string{".ko.zst", ".ko.xz", ".ko.gz", ".ko"}

// ModuleName returns the canonical name of a module or of a module file
// ("usb-storage", "kernel/drivers/usb/storage/usb-storage.ko.zst" →
// "usb_storage").
func ModuleName(s string) string {
	s = path.Base(s)
	for _, suf := range moduleSuffixes {
		if strings.HasSuffix(s, suf) {
			s = strings.TrimSuffix(s, suf)
			break
		}
	}
	return strings.ReplaceAll(s, "-", "_")
}

// Closure returns the module files needed to load the wanted modules, each
// after every module it depends on. fsys is one kernel's module directory
// (lib/modules/KVER). Dependencies come from its modules.dep; when the tree
// has none, from the depends= field of each module's .modinfo. Modules
// listed in modules.builtin need no file and are left out.
func Closure(fsys fs.FS, wanted []string) ([]Module, error) {
	idx, err := loadIndex(fsys)
	if err != nil {
		return nil, err
	}
	c := closure{idx: idx, state: map[string]int{}}
	for _, w := range wanted {
		if err := c.visit(ModuleName(w), ""); err != nil {
			return nil, err
		}
	}
	return c.out, nil
}

type moduleIndex struct {
	fsys    fs.FS
	paths   map[string]string   // name → file
	deps    map[string][]string // name → direct (or all) dependencies, when known
	fromDep bool                // deps came from modules.dep
	builtin map[string]bool
}

func loadIndex(fsys fs.FS) (*moduleIndex, error) {
	idx := &moduleIndex{fsys: fsys, paths: map[string]string{}, deps: map[string][]string{}, builtin: map[string]bool{}}
	if f, err := fsys.Open("modules.builtin"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); l != "" {
				idx.builtin[ModuleName(l)] = true
			}
		}
		err := sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read modules.builtin: %w", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read modules.builtin: %w", err)
	}

	f, err := fsys.Open("modules.dep")
	switch {
	case err == nil:
		defer f.Close()
		idx.fromDep = true
		return idx, idx.parseDep(f)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read modules.dep: %w", err)
	}
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		for _, suf := range moduleSuffixes {
			if strings.HasSuffix(p, suf) {
				n := ModuleName(p)
				if old, dup := idx.paths[n]; dup {
					return fmt.Errorf("module %s: two files, %s and %s", n, old, p)
				}
				idx.paths[n] = p
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list kernel modules: %w", err)
	}
	return idx, nil
}

// parseDep reads modules.dep: "kernel/a.ko: kernel/b.ko kernel/c.ko" lines.
func (idx *moduleIndex) parseDep(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		file, rest, ok := strings.Cut(l, ":")
		if !ok {
			return fmt.Errorf("read modules.dep line %d: no colon in %q", line, l)
		}
		file = depPath(file)
		n := ModuleName(file)
		idx.paths[n] = file
		var deps []string
		for _, d := range strings.Fields(rest) {
			dp := depPath(d)
			dn := ModuleName(dp)
			if _, ok := idx.paths[dn]; !ok {
				idx.paths[dn] = dp
			}
			deps = append(deps, dn)
		}
		idx.deps[n] = deps
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read modules.dep: %w", err)
	}
	return nil
}

// depPath makes an old-style absolute modules.dep path
// (/lib/modules/KVER/kernel/x.ko) relative to the module directory.
func depPath(p string) string {
	p = strings.TrimSpace(p)
	if i := strings.Index(p, "/lib/modules/"); strings.HasPrefix(p, "/") && i >= 0 {
		rest := p[i+len("/lib/modules/"):]
		if _, after, ok := strings.Cut(rest, "/"); ok {
			return after
		}
	}
	return strings.TrimPrefix(p, "/")
}

// dependencies returns a module's dependencies, reading its .modinfo when
// the tree has no modules.dep.
func (idx *moduleIndex) dependencies(name string) ([]string, error) {
	if d, ok := idx.deps[name]; ok || idx.fromDep {
		return d, nil
	}
	p := idx.paths[name]
	f, err := idx.fsys.Open(p)
	if err != nil {
		return nil, fmt.Errorf("read module %s: %w", name, err)
	}
	defer f.Close()
	data, err := readModule(f, p)
	if err != nil {
		return nil, fmt.Errorf("read module %s: %w", name, err)
	}
	d := ModinfoDepends(data)
	idx.deps[name] = d
	return d, nil
}

// readModule returns a module file's bytes, decompressed by its suffix.
func readModule(f io.Reader, p string) ([]byte, error) {
	var r io.Reader = f
	switch {
	case strings.HasSuffix(p, ".ko.zst"):
		zr, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxModuleSize))
		if err != nil {
			return nil, fmt.Errorf("zstd %s: %w", p, err)
		}
		defer zr.Close()
		r = zr
	case strings.HasSuffix(p, ".ko.xz"):
		xr, err := xz.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("xz %s: %w", p, err)
		}
		r = xr
	case strings.HasSuffix(p, ".ko.gz"):
		gr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("gzip %s: %w", p, err)
		}
		defer gr.Close()
		r = gr
	}
	data, err := io.ReadAll(io.LimitReader(r, maxModuleSize+1))
	if err != nil {
		return nil, fmt.Errorf("decompress %s: %w", p, err)
	}
	if len(data) > maxModuleSize {
		return nil, fmt.Errorf("decompress %s: larger than %d bytes", p, maxModuleSize)
	}
	return data, nil
}

// ModinfoDepends returns the module names in the depends= fields of a
// module's bytes. A .modinfo section is a run of NUL-terminated "key=value"
// strings; ModinfoDepends looks for "depends=" at the start of such a string
// (at the start of data or after a NUL) anywhere in the file, so it needs no
// ELF parsing. The names come back canonical, sorted and without repeats.
func ModinfoDepends(data []byte) []string {
	const key = "depends="
	seen := map[string]bool{}
	for i := 0; i < len(data); {
		j := bytes.Index(data[i:], []byte(key))
		if j < 0 {
			break
		}
		at := i + j
		i = at + len(key)
		if at > 0 && data[at-1] != 0 {
			continue
		}
		val := data[i:]
		if end := bytes.IndexByte(val, 0); end >= 0 {
			val = val[:end]
		}
		for _, n := range strings.Split(string(val), ",") {
			if n = strings.TrimSpace(n); n != "" && !strings.ContainsAny(n, "/ \t") {
				seen[ModuleName(n)] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

type closure struct {
	idx   *moduleIndex
	state map[string]int // 1 while visiting, 2 when placed
	stack []string
	out   []Module
}

func (c *closure) visit(name, by string) error {
	switch c.state[name] {
	case 2:
		return nil
	case 1:
		i := len(c.stack) - 1
		for i > 0 && c.stack[i] != name {
			i--
		}
		loop := append(append([]string{}, c.stack[i:]...), name)
		return fmt.Errorf("%w: %s", ErrModuleCycle, strings.Join(loop, " -> "))
	}
	p, ok := c.idx.paths[name]
	if !ok {
		if c.idx.builtin[name] {
			c.state[name] = 2
			return nil
		}
		if by != "" {
			return fmt.Errorf("%w: %s (needed by %s)", ErrModuleNotFound, name, by)
		}
		return fmt.Errorf("%w: %s", ErrModuleNotFound, name)
	}
	if _, err := fs.Stat(c.idx.fsys, p); err != nil {
		return fmt.Errorf("module %s: %w", name, err)
	}
	c.state[name] = 1
	c.stack = append(c.stack, name)
	deps, err := c.idx.dependencies(name)
	if err != nil {
		return err
	}
	for _, d := range deps {
		if err := c.visit(d, name); err != nil {
			return err
		}
	}
	c.stack = c.stack[:len(c.stack)-1]
	c.state[name] = 2
	c.out = append(c.out, Module{Name: name, Path: p})
	return nil
}
