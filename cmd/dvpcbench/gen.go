//go:build linux

package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	kib = 1 << 10
	mib = 1 << 20

	// defaultSizeMiB is the size of the default home; file sizes are
	// scaled down for smaller homes (see builder.scale).
	defaultSizeMiB = 1536
)

// baseTime is the modification time of the generated home; weekTime is
// the modification time of what the week of work touches.
var (
	baseTime = time.Date(2024, 6, 3, 9, 0, 0, 0, time.UTC).Unix()
	weekTime = baseTime + 7*24*3600
)

// kind says what a file holds and so how well it compresses.
type kind uint8

const (
	kindGo     kind = iota // Go source
	kindC                  // C source
	kindPython             // Python source
	kindText               // prose, markdown, configuration
	kindLog                // log lines: very compressible
	kindCSV                // numeric tables: compressible
	kindDoc                // office-like document: random blocks mixed with XML
	kindRandom             // photos, videos, packs, caches: incompressible
)

// fileSpec is one regular file of the plan. Its content is a function of
// Kind, Size and Seed only, so two specs with equal fields are exact copies.
type fileSpec struct {
	Path  string // slash-separated, relative to the home
	Kind  kind
	Size  int64
	Seed  uint64
	Mode  fs.FileMode
	MTime int64
}

type dirSpec struct {
	Path string
	Mode fs.FileMode
}

// linkSpec is a symbolic link (Target is the link text) or a hard link
// (Target is the path of a file of the plan).
type linkSpec struct {
	Path, Target string
}

// plan is the whole generated home, computed without any I/O.
type plan struct {
	Files     []fileSpec
	Dirs      []dirSpec
	Symlinks  []linkSpec
	Hardlinks []linkSpec
	Projects  []string // source projects, "src/NAME"
	Current   string   // the project that src/current points to
	BigDoc    string   // the large document deep in the tree (one-file restore)
	Largest   string   // the largest file (changed in its middle by the week of work)
	Bytes     int64    // sum of Files sizes (hard links counted once)
	Dups      int      // files that are exact copies of other files
}

// buildPlan computes the home for seed and size. It is deterministic.
func buildPlan(seed uint64, sizeMiB int) *plan {
	total := int64(sizeMiB) * mib
	b := &builder{
		r:     rand.New(rand.NewPCG(seed, 0x64767063)),
		p:     &plan{},
		used:  map[string]bool{},
		dirs:  map[string]fs.FileMode{},
		scale: math.Min(1, float64(sizeMiB)/defaultSizeMiB),
		t:     baseTime - 3*365*24*3600,
	}
	pct := func(p float64) int64 { return int64(float64(total) * p / 100) }

	b.dotfiles(pct(3))
	b.sources(pct(9), pct(3))
	photos := b.photos(pct(21))
	docs := b.documents(pct(15))
	b.videos(pct(34))
	b.logs(pct(6))
	b.tables(pct(4))
	b.duplicates(pct(5), photos, docs)
	b.links(photos, docs)
	for _, d := range []string{"Desktop", "Music", "Public", "Templates"} {
		b.dir(d) // empty directories
	}
	return b.finish()
}

type builder struct {
	r     *rand.Rand
	p     *plan
	used  map[string]bool        // file and link paths
	dirs  map[string]fs.FileMode // directories
	scale float64                // at most 1; file sizes shrink with smaller homes
	t     int64                  // mtime of the next file
}

func (b *builder) dir(p string) {
	for d := p; d != "." && d != "" && d != "/"; d = path.Dir(d) {
		if b.used[d] {
			panic("dvpcbench: directory " + d + " is also a file")
		}
		if _, ok := b.dirs[d]; ok {
			break
		}
		b.dirs[d] = 0o755
	}
}

// uniq returns p, or p with a counter before its extension if p is taken.
func (b *builder) uniq(p string) string {
	if _, isDir := b.dirs[p]; !b.used[p] && !isDir {
		return p
	}
	ext := path.Ext(path.Base(p))
	stem := strings.TrimSuffix(p, ext)
	for i := 2; ; i++ {
		q := stem + "-" + strconv.Itoa(i) + ext
		if _, isDir := b.dirs[q]; !b.used[q] && !isDir {
			return q
		}
	}
}

func (b *builder) file(p string, k kind, size int64, mode fs.FileMode) *fileSpec {
	p = b.uniq(p)
	b.dir(path.Dir(p))
	b.used[p] = true
	b.t += 1 + b.r.Int64N(4000)
	b.p.Files = append(b.p.Files, fileSpec{Path: p, Kind: k, Size: size, Seed: b.r.Uint64(), Mode: mode, MTime: b.t})
	return &b.p.Files[len(b.p.Files)-1]
}

// size returns a log-uniform size in [lo, hi].
func (b *builder) size(lo, hi int64) int64 {
	if hi <= lo {
		return lo
	}
	l, h := math.Log(float64(lo)), math.Log(float64(hi))
	return int64(math.Exp(l + b.r.Float64()*(h-l)))
}

// scaled scales n down for small homes, but not below lo.
func (b *builder) scaled(n, lo int64) int64 {
	return max(lo, int64(float64(n)*b.scale))
}

// fill calls add with sizes in [lo, hi] summing to budget; the last size
// absorbs a remainder smaller than lo.
func (b *builder) fill(budget, lo, hi int64, add func(size int64)) {
	for budget > 0 {
		s := min(b.size(lo, hi), budget)
		if budget-s < lo {
			s = budget
		}
		add(s)
		budget -= s
	}
}

func (b *builder) word() string { return words[b.r.IntN(len(words))] }

func (b *builder) hex(n int) string {
	var buf [32]byte
	for i := range buf {
		buf[i] = byte(b.r.Uint32())
	}
	return hex.EncodeToString(buf[:])[:n]
}

func (b *builder) pick(s []string) string { return s[b.r.IntN(len(s))] }

func (b *builder) dotfiles(budget int64) {
	start := len(b.p.Files)
	b.file(".bashrc", kindText, 3771, 0o644)
	b.file(".profile", kindText, 807, 0o644)
	b.file(".gitconfig", kindText, 412, 0o644)
	b.file(".bash_history", kindText, b.scaled(180*kib, 8*kib), 0o600)
	b.file(".ssh/config", kindText, 611, 0o600)
	b.file(".ssh/id_ed25519", kindRandom, 411, 0o600)
	b.file(".ssh/id_ed25519.pub", kindText, 98, 0o644)
	b.file(".ssh/known_hosts", kindText, 4*kib, 0o644)
	for _, f := range []string{"vimrc", "tmux.conf", "zshrc", "install.sh"} {
		mode := fs.FileMode(0o644)
		if strings.HasSuffix(f, ".sh") {
			mode = 0o755
		}
		b.file("dotfiles/"+f, kindText, b.size(300, 12*kib), mode)
	}
	for _, app := range []string{"Code/User", "gtk-3.0", "nvim/lua", "htop", "pulse", "syncthing", "autostart", "fontconfig/conf.d"} {
		for i := b.r.IntN(4); i >= 0; i-- {
			b.file(".config/"+app+"/"+b.word()+b.pick([]string{".json", ".conf", ".ini", ".xml", ".lua"}), kindText, b.size(200, 20*kib), 0o644)
		}
	}
	b.file(".local/share/recently-used.xbel", kindText, b.scaled(90*kib, 4*kib), 0o644)
	ff := ".mozilla/firefox/k3j9x2ab.default-release/"
	b.file(ff+"places.sqlite", kindRandom, b.scaled(10*mib, 256*kib), 0o644)
	b.file(ff+"cookies.sqlite", kindRandom, b.scaled(mib, 64*kib), 0o644)
	b.file(ff+"prefs.js", kindText, b.scaled(24*kib, 4*kib), 0o644)
	b.dir(".ssh")
	b.dirs[".ssh"] = 0o700
	for _, f := range b.p.Files[start:] {
		budget -= f.Size
	}
	// The rest are cache entries: many small incompressible files.
	caches := []string{".cache/mozilla/firefox/k3j9x2ab.default-release/cache2/entries", ".cache/pip/http", ".cache/go-build", ".cache/thumbnails/normal"}
	b.fill(budget, 512, 64*kib, func(s int64) {
		c := b.pick(caches)
		switch c {
		case ".cache/pip/http":
			h := b.hex(40)
			c += "/" + h[:1] + "/" + h[1:2] + "/" + h[2:3] + "/" + h
		case ".cache/go-build":
			h := b.hex(64)
			c += "/" + h[:2] + "/" + h + "-d"
		case ".cache/thumbnails/normal":
			c += "/" + b.hex(32) + ".png"
		default:
			c += "/" + strings.ToUpper(b.hex(40))
		}
		b.file(c, kindRandom, s, 0o600)
	})
}

// sources makes source projects with their .git directories.
func (b *builder) sources(budget, gitBudget int64) {
	n := int(max(2, budget/(12*mib)))
	langs := []kind{kindGo, kindC, kindPython}
	for i := range n {
		name := b.word() + "-" + b.word()
		if i == 0 {
			name = "dvpc-notes"
		}
		root := b.uniq("src/" + name)
		b.dir(root)
		b.p.Projects = append(b.p.Projects, root)
		b.project(root, langs[i%len(langs)], budget/int64(n), gitBudget/int64(n))
	}
	b.p.Current = b.p.Projects[b.r.IntN(len(b.p.Projects))]
}

func (b *builder) project(root string, lang kind, budget, gitBudget int64) {
	var top []string
	var exts []string
	switch lang {
	case kindGo:
		top, exts = []string{"cmd", "internal", "pkg"}, []string{".go", ".go", "_test.go"}
	case kindC:
		top, exts = []string{"src", "include", "tests", "lib"}, []string{".c", ".c", ".h"}
	default:
		top, exts = []string{path.Base(root)[:strings.IndexByte(path.Base(root), '-')], "tests", "docs"}, []string{".py"}
	}
	pool := []string{root}
	for _, t := range top {
		pool = append(pool, root+"/"+t)
	}
	for range max(2, int(budget/(120*kib))) {
		parent := pool[b.r.IntN(len(pool))]
		if strings.Count(parent[len(root):], "/") >= 4 {
			continue
		}
		pool = append(pool, parent+"/"+b.word())
	}
	b.file(root+"/README.md", kindText, b.size(kib, 16*kib), 0o644)
	// LICENSE has the same content in every project: a natural duplicate.
	lic := b.file(root+"/LICENSE", kindText, 11357, 0o644)
	lic.Seed = 0x4c4943454e5345
	b.file(root+"/Makefile", kindText, b.size(300, 4*kib), 0o644)
	b.file(root+"/build.sh", kindText, b.size(300, 2*kib), 0o755)
	b.fill(budget-20*kib, 200, 40*kib, func(s int64) {
		d := pool[b.r.IntN(len(pool))]
		ext := b.pick(exts)
		name := b.word() + "_" + b.word()
		if lang == kindGo {
			name = b.word() + b.word()
		}
		b.file(d+"/"+name+ext, lang, s, 0o644)
	})
	g := root + "/.git"
	b.file(g+"/HEAD", kindText, 21, 0o644)
	b.file(g+"/config", kindText, b.size(200, 600), 0o644)
	b.file(g+"/description", kindText, 73, 0o644)
	b.file(g+"/refs/heads/main", kindText, 41, 0o644)
	b.file(g+"/index", kindRandom, b.scaled(budget/40, 4*kib), 0o644)
	pack := g + "/objects/pack/pack-" + b.hex(40)
	packSize := gitBudget * 6 / 10
	b.file(pack+".pack", kindRandom, packSize, 0o444)
	b.file(pack+".idx", kindRandom, max(1*kib, packSize/30), 0o444)
	b.fill(gitBudget-packSize-packSize/30, 100, 16*kib, func(s int64) {
		h := b.hex(40)
		b.file(g+"/objects/"+h[:2]+"/"+h[2:], kindRandom, s, 0o444)
	})
}

func (b *builder) photos(budget int64) []int {
	var idx []int
	n := 0
	b.fill(budget, b.scaled(mib, 32*kib), b.scaled(8*mib, 256*kib), func(s int64) {
		n++
		var p string
		switch b.r.IntN(20) {
		case 0:
			p = fmt.Sprintf("Pictures/Screenshots/Screenshot from 2024-%02d-%02d %02d-%02d-%02d.png",
				1+b.r.IntN(5), 1+b.r.IntN(28), b.r.IntN(24), b.r.IntN(60), b.r.IntN(60))
		case 1:
			p = fmt.Sprintf("Pictures/2023/Été à Paris/IMG_%04d.jpg", n)
		default:
			p = fmt.Sprintf("Pictures/%d/%02d/IMG_%04d.jpg", 2019+b.r.IntN(6), 1+b.r.IntN(12), n)
		}
		b.file(p, kindRandom, s, 0o644)
		idx = append(idx, len(b.p.Files)-1)
	})
	return idx
}

var docExts = []string{".pdf", ".docx", ".xlsx", ".odt", ".pptx", ".pdf"}

func (b *builder) documents(budget int64) []int {
	big := b.file("Documents/work/clients/acme-corp/2023/reports/final/annual-report-2023-full.pdf", kindDoc, b.scaled(50*mib, mib), 0o644)
	b.p.BigDoc = big.Path
	budget -= big.Size
	cats := []string{"work", "personal", "finance", "school", "projects", "taxes"}
	var idx []int
	b.fill(budget, 20*kib, b.scaled(4*mib, 128*kib), func(s int64) {
		d := "Documents/" + b.pick(cats) + "/" + strconv.Itoa(2019+b.r.IntN(6))
		for i := b.r.IntN(3); i > 0; i-- {
			d += "/" + b.word()
		}
		b.file(d+"/"+b.word()+"-"+b.word()+b.pick(docExts), kindDoc, s, 0o644)
		idx = append(idx, len(b.p.Files)-1)
	})
	return idx
}

func (b *builder) videos(budget int64) {
	n := 0
	b.fill(budget, b.scaled(20*mib, 2*mib), b.scaled(200*mib, 4*mib), func(s int64) {
		n++
		p := fmt.Sprintf("Videos/%d/VID_%d%02d%02d_%06d.mp4", 2021+b.r.IntN(4), 2021+b.r.IntN(4), 1+b.r.IntN(12), 1+b.r.IntN(28), b.r.IntN(240000))
		if n%4 == 0 {
			p = fmt.Sprintf("Videos/holidays/%s-%d.mov", b.word(), n)
		}
		b.file(p, kindRandom, s, 0o644)
	})
}

func (b *builder) logs(budget int64) {
	dirs := []string{".local/state/syncthing", ".local/share/xorg", "work-logs/build-server", "work-logs/laptop", ".local/state/nvim"}
	b.fill(budget, b.scaled(200*kib, 16*kib), b.scaled(20*mib, 512*kib), func(s int64) {
		b.file(fmt.Sprintf("%s/%s-2024-%02d-%02d.log", b.pick(dirs), b.word(), 1+b.r.IntN(6), 1+b.r.IntN(28)), kindLog, s, 0o644)
	})
}

func (b *builder) tables(budget int64) {
	b.fill(budget, b.scaled(100*kib, 8*kib), b.scaled(10*mib, 256*kib), func(s int64) {
		d := "Documents/data"
		if b.r.IntN(3) == 0 {
			d = b.pick(b.p.Projects) + "/testdata"
		}
		b.file(d+"/"+b.word()+"-"+b.word()+".csv", kindCSV, s, 0o644)
	})
}

// duplicates copies a source project, photos and documents elsewhere.
func (b *builder) duplicates(budget int64, photos, docs []int) {
	proj := b.p.Projects[len(b.p.Projects)-1]
	var copies []fileSpec
	for _, f := range b.p.Files {
		if strings.HasPrefix(f.Path, proj+"/") && !strings.Contains(f.Path, "/.git/") {
			copies = append(copies, f)
		}
	}
	dup := func(f fileSpec, p string) {
		c := b.file(p, f.Kind, f.Size, f.Mode)
		c.Seed = f.Seed
		budget -= f.Size
		b.p.Dups++
	}
	for _, f := range copies {
		if budget < f.Size {
			break
		}
		dup(f, "Backup/old-laptop/"+f.Path)
	}
	for budget > 0 {
		var f fileSpec
		var p string
		c := b.r.IntN(4)
		if len(docs) == 0 {
			c = 2 + c%2
		}
		switch c {
		case 0:
			f = b.p.Files[docs[b.r.IntN(len(docs))]]
			p = "Downloads/" + path.Base(f.Path)
		case 1:
			f = b.p.Files[docs[b.r.IntN(len(docs))]]
			p = "Backup/old-laptop/" + f.Path
		case 2:
			f = b.p.Files[photos[b.r.IntN(len(photos))]]
			p = "Downloads/" + path.Base(f.Path)
		default:
			f = b.p.Files[photos[b.r.IntN(len(photos))]]
			p = "Backup/phone-2022/DCIM/Camera/" + path.Base(f.Path)
		}
		if f.Size > budget && budget < 64*kib {
			break
		}
		dup(f, p)
	}
}

func (b *builder) links(photos, docs []int) {
	sym := func(p, target string) {
		p = b.uniq(p)
		b.dir(path.Dir(p))
		b.used[p] = true
		b.p.Symlinks = append(b.p.Symlinks, linkSpec{p, target})
	}
	sym("src/current", path.Base(b.p.Current))
	sym("Documents/latest-report.pdf", strings.TrimPrefix(b.p.BigDoc, "Documents/"))
	sym(".vimrc", "dotfiles/vimrc")
	sym(".tmux.conf", "dotfiles/tmux.conf")
	sym(".zshrc", "dotfiles/zshrc")
	sym(".local/bin/python", "/usr/bin/python3")
	sym(".mozilla/firefox/k3j9x2ab.default-release/lock", "127.0.0.1:+4242") // dangling, as Firefox leaves it
	sym("Videos/camera", "../Pictures")
	last := b.p.Files[photos[len(photos)-1]].Path
	sym("Pictures/latest", strings.TrimPrefix(path.Dir(last), "Pictures/"))

	hard := func(p, target string) {
		p = b.uniq(p)
		b.dir(path.Dir(p))
		b.used[p] = true
		b.p.Hardlinks = append(b.p.Hardlinks, linkSpec{p, target})
	}
	seen := map[int]bool{}
	for range min(4, len(photos)) {
		i := photos[b.r.IntN(len(photos))]
		if !seen[i] {
			seen[i] = true
			hard("Pictures/Favorites/"+path.Base(b.p.Files[i].Path), b.p.Files[i].Path)
		}
	}
	for range min(2, len(docs)) {
		i := docs[b.r.IntN(len(docs))]
		if !seen[i] {
			seen[i] = true
			hard("Documents/shared/"+path.Base(b.p.Files[i].Path), b.p.Files[i].Path)
		}
	}
}

func (b *builder) finish() *plan {
	p := b.p
	for d, mode := range b.dirs {
		p.Dirs = append(p.Dirs, dirSpec{d, mode})
	}
	sort.Slice(p.Dirs, func(i, j int) bool { return p.Dirs[i].Path < p.Dirs[j].Path })
	var largest int64
	for _, f := range p.Files {
		p.Bytes += f.Size
		if f.Size > largest {
			largest, p.Largest = f.Size, f.Path
		}
	}
	return p
}

// protected returns the paths the week of work leaves alone: link
// targets, the one-file restore target and the largest file (changed
// only in its middle).
func (p *plan) protected() map[string]bool {
	m := map[string]bool{p.BigDoc: true, p.Largest: true}
	for _, h := range p.Hardlinks {
		m[h.Target] = true
	}
	for _, s := range p.Symlinks {
		if strings.HasPrefix(s.Path, ".") && strings.HasPrefix(s.Target, "dotfiles/") {
			m[s.Target] = true
		}
	}
	return m
}

// treeStats summarises a generated home.
type treeStats struct {
	Files     int     `json:"files"`
	Dirs      int     `json:"dirs"`
	Symlinks  int     `json:"symlinks"`
	Hardlinks int     `json:"hardlinks"`
	Dups      int     `json:"duplicates"`
	Bytes     int64   `json:"bytes"`
	Seconds   float64 `json:"seconds"`
	BigDoc    string  `json:"one_file_target"`
	BigDocMiB float64 `json:"one_file_target_mib"`
	Largest   string  `json:"largest_file"`
}

// generate writes the home for seed and size into root, which must not
// exist or be empty. Files are written by parallel workers; each file's
// content depends on its spec only, so the tree is the same whatever the
// scheduling.
func generate(root string, seed uint64, sizeMiB int) (*plan, treeStats, error) {
	start := time.Now()
	p := buildPlan(seed, sizeMiB)
	st := treeStats{Files: len(p.Files), Dirs: len(p.Dirs), Symlinks: len(p.Symlinks),
		Hardlinks: len(p.Hardlinks), Dups: p.Dups, Bytes: p.Bytes, BigDoc: p.BigDoc, Largest: p.Largest}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, st, err
	}
	for _, d := range p.Dirs {
		if err := os.Mkdir(filepath.Join(root, filepath.FromSlash(d.Path)), 0o755); err != nil {
			return nil, st, err
		}
	}
	order := make([]int, len(p.Files))
	for i := range order {
		order[i] = i
	}
	// Biggest first, so that the workers finish together.
	sort.SliceStable(order, func(i, j int) bool { return p.Files[order[i]].Size > p.Files[order[j]].Size })
	work := make(chan int)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range max(2, 2*runtime.NumCPU()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, 2*mib)
			for i := range work {
				if err := writeSpec(root, &p.Files[i], buf); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for _, i := range order {
		work <- i
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return nil, st, err
	default:
	}
	for _, h := range p.Hardlinks {
		if err := os.Link(filepath.Join(root, filepath.FromSlash(h.Target)), filepath.Join(root, filepath.FromSlash(h.Path))); err != nil {
			return nil, st, err
		}
	}
	for _, s := range p.Symlinks {
		if err := os.Symlink(s.Target, filepath.Join(root, filepath.FromSlash(s.Path))); err != nil {
			return nil, st, err
		}
	}
	for _, d := range p.Dirs {
		if err := os.Chmod(filepath.Join(root, filepath.FromSlash(d.Path)), d.Mode); err != nil {
			return nil, st, err
		}
	}
	st.BigDocMiB = float64(sizeOf(p, p.BigDoc)) / mib
	st.Seconds = time.Since(start).Seconds()
	return p, st, nil
}

func sizeOf(p *plan, rel string) int64 {
	for _, f := range p.Files {
		if f.Path == rel {
			return f.Size
		}
	}
	return 0
}

func writeSpec(root string, f *fileSpec, buf []byte) error {
	name := filepath.Join(root, filepath.FromSlash(f.Path))
	fh, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	err = writeContent(fh, f.Kind, f.Size, f.Seed, buf)
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(name, f.Mode)
	}
	if err == nil {
		t := time.Unix(f.MTime, 0)
		err = os.Chtimes(name, t, t)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", f.Path, err)
	}
	return nil
}

// newChaCha returns the random byte stream of seed.
func newChaCha(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	binary.LittleEndian.PutUint64(s[8:], seed*0x9e3779b97f4a7c15+1)
	copy(s[16:], "dvpcbench-random")
	return rand.NewChaCha8(s)
}

// writeContent writes exactly size bytes of kind k for seed to w; buf is
// scratch space.
func writeContent(w io.Writer, k kind, size int64, seed uint64, buf []byte) error {
	switch k {
	case kindRandom:
		return writeRandom(w, newChaCha(seed), size, buf)
	case kindDoc:
		return writeDoc(w, size, seed, buf)
	}
	g := newTextGen(k, seed)
	return g.write(w, size, buf)
}

func writeRandom(w io.Writer, cc *rand.ChaCha8, size int64, buf []byte) error {
	buf = buf[:cap(buf)]
	for size > 0 {
		n := min(int64(len(buf)), size)
		cc.Read(buf[:n])
		if _, err := w.Write(buf[:n]); err != nil {
			return err
		}
		size -= n
	}
	return nil
}

// writeDoc writes an office-like document: a header, then blocks of
// 4–64 KiB, about half random (embedded images, compressed parts) and half
// XML text.
func writeDoc(w io.Writer, size int64, seed uint64, buf []byte) error {
	r := rand.New(rand.NewPCG(seed, 0xd0c))
	cc := newChaCha(seed)
	g := newTextGen(kindDoc, seed)
	for size > 0 {
		n := min(size, 4*kib+r.Int64N(60*kib))
		var err error
		if r.IntN(100) < 55 {
			err = writeRandom(w, cc, n, buf)
		} else {
			err = g.write(w, n, buf)
		}
		if err != nil {
			return err
		}
		size -= n
	}
	return nil
}

// textGen produces text of one kind, unit by unit (a function, a log
// line, a table row, a paragraph).
type textGen struct {
	r       *rand.Rand
	k       kind
	started bool
	t       int64 // log time, milliseconds
	n       int   // units so far
}

func newTextGen(k kind, seed uint64) *textGen {
	return &textGen{r: rand.New(rand.NewPCG(seed, uint64(k)+0x7e47)), k: k, t: baseTime * 1000}
}

// write writes exactly size bytes of text.
func (g *textGen) write(w io.Writer, size int64, buf []byte) error {
	b := buf[:0]
	for size > 0 {
		b = g.unit(b)
		if int64(len(b)) >= size || len(b) >= 256*kib {
			n := min(int64(len(b)), size)
			if _, err := w.Write(b[:n]); err != nil {
				return err
			}
			size -= n
			b = b[:0]
		}
	}
	return nil
}

// bytes returns n bytes of text.
func (g *textGen) bytes(n int) []byte {
	var b []byte
	for len(b) < n {
		b = g.unit(b)
	}
	return b[:n]
}

func (g *textGen) w() string { return words[g.r.IntN(len(words))] }

func (g *textGen) camel() string {
	a, b := g.w(), g.w()
	return strings.ToUpper(a[:1]) + a[1:] + strings.ToUpper(b[:1]) + b[1:]
}

func (g *textGen) sentence(b []byte, n int) []byte {
	for i := range n {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, g.w()...)
	}
	return b
}

func (g *textGen) num(n int) string { return strconv.Itoa(g.r.IntN(n)) }

var logLevels = []string{"DEBUG", "INFO ", "INFO ", "INFO ", "INFO ", "WARN ", "ERROR"}
var regions = []string{"eu-west", "eu-central", "us-east", "us-west", "ap-south"}
var statuses = []string{"shipped", "pending", "paid", "cancelled", "returned"}

func (g *textGen) unit(b []byte) []byte {
	g.n++
	first := !g.started
	g.started = true
	switch g.k {
	case kindGo:
		if first {
			b = fmt.Appendf(b, "// Package %s %s.\npackage %s\n\nimport (\n\t\"context\"\n\t\"errors\"\n\t\"fmt\"\n)\n\nvar err%s = errors.New(%q)\n\ntype %s struct {\n\t%s int\n\t%s string\n}\n\n",
				g.w(), string(g.sentence(nil, 6)), g.w(), g.camel(), string(g.sentence(nil, 3)), g.camel(), g.w(), g.w())
		}
		recv, name := g.camel(), g.camel()
		b = fmt.Appendf(b, "// %s %s.\nfunc (x *%s) %s(ctx context.Context, %s string, n int) (int, error) {\n", name, g.sentence(nil, 4+g.r.IntN(8)), recv, name, g.w())
		for range 1 + g.r.IntN(6) {
			switch g.r.IntN(4) {
			case 0:
				b = fmt.Appendf(b, "\tif n > %s {\n\t\treturn 0, fmt.Errorf(\"%s: %%w\", err%s)\n\t}\n", g.num(1000), g.sentence(nil, 3), g.camel())
			case 1:
				b = fmt.Appendf(b, "\tfor i := 0; i < n; i++ {\n\t\tx.%s += i * %s\n\t}\n", g.w(), g.num(16))
			case 2:
				b = fmt.Appendf(b, "\t%s, err := x.%s(ctx, %q, n-1)\n\tif err != nil {\n\t\treturn 0, err\n\t}\n\t_ = %s\n", g.w(), g.camel(), g.w(), g.w())
			default:
				b = fmt.Appendf(b, "\tx.%s = fmt.Sprintf(\"%%s-%%d\", %q, n)\n", g.w(), g.w())
			}
		}
		return fmt.Appendf(b, "\treturn x.%s, nil\n}\n\n", g.w())
	case kindC:
		if first {
			b = fmt.Appendf(b, "/* %s.c: %s */\n#include <stdio.h>\n#include <stdlib.h>\n#include \"%s.h\"\n\n", g.w(), g.sentence(nil, 6), g.w())
		}
		b = fmt.Appendf(b, "/* %s */\nstatic int %s_%s(struct %s *%c, const char *name, size_t n)\n{\n\tint rc = 0;\n", g.sentence(nil, 5), g.w(), g.w(), g.w(), 'a'+rune(g.r.IntN(26)))
		for range 1 + g.r.IntN(5) {
			switch g.r.IntN(3) {
			case 0:
				b = fmt.Appendf(b, "\tif (n > %s) {\n\t\trc = %s_%s(NULL, name, n - 1);\n\t\tif (rc < 0)\n\t\t\treturn rc;\n\t}\n", g.num(512), g.w(), g.w())
			case 1:
				b = fmt.Appendf(b, "\tfor (size_t i = 0; i < n; i++)\n\t\trc += %s[i] * %s;\n", g.w(), g.num(64))
			default:
				b = fmt.Appendf(b, "\tfprintf(stderr, \"%s: %%s\\n\", name);\n", g.sentence(nil, 3))
			}
		}
		return append(b, "\treturn rc;\n}\n\n"...)
	case kindPython:
		if first {
			b = fmt.Appendf(b, "\"\"\"%s.\"\"\"\nimport os\nimport sys\nfrom %s import %s\n\n\nclass %s:\n", g.sentence(nil, 6), g.w(), g.camel(), g.camel())
		}
		b = fmt.Appendf(b, "    def %s_%s(self, %s, count=%s):\n        \"\"\"%s.\"\"\"\n        result = []\n", g.w(), g.w(), g.w(), g.num(10), g.sentence(nil, 5))
		for range 1 + g.r.IntN(4) {
			switch g.r.IntN(3) {
			case 0:
				b = fmt.Appendf(b, "        for item in self.%s:\n            if item.%s > count:\n                result.append(item)\n", g.w(), g.w())
			case 1:
				b = fmt.Appendf(b, "        if not %s:\n            raise ValueError(%q)\n", g.w(), g.sentence(nil, 4))
			default:
				b = fmt.Appendf(b, "        self.%s = os.path.join(%q, %s)\n", g.w(), g.w(), g.w())
			}
		}
		return append(b, "        return result\n\n"...)
	case kindLog:
		g.t += 1 + g.r.Int64N(2000)
		ts := time.UnixMilli(g.t).UTC().Format("2006-01-02T15:04:05.000Z")
		return fmt.Appendf(b, "%s %s [%s-%d] %s id=%d path=/api/v1/%s/%d status=%d dur=%dms\n",
			ts, logLevels[g.r.IntN(len(logLevels))], g.w(), g.r.IntN(8), g.sentence(nil, 2+g.r.IntN(5)),
			g.r.IntN(1000000), g.w(), g.r.IntN(10000), []int{200, 200, 200, 201, 204, 304, 404, 500}[g.r.IntN(8)], g.r.IntN(900))
	case kindCSV:
		if first {
			b = append(b, "date,id,name,region,amount,qty,price,status\n"...)
		}
		g.t += g.r.Int64N(3600 * 1000)
		return fmt.Appendf(b, "%s,%d,%s %s,%s,%d.%02d,%d,%d.%02d,%s\n",
			time.UnixMilli(g.t).UTC().Format("2006-01-02"), 100000+g.n, g.w(), g.w(), regions[g.r.IntN(len(regions))],
			g.r.IntN(10000), g.r.IntN(100), 1+g.r.IntN(20), g.r.IntN(200), g.r.IntN(100), statuses[g.r.IntN(len(statuses))])
	case kindDoc:
		b = append(b, "<w:p><w:pPr><w:pStyle w:val=\"Body\"/></w:pPr><w:r><w:t xml:space=\"preserve\">"...)
		b = g.sentence(b, 8+g.r.IntN(30))
		return append(b, ".</w:t></w:r></w:p>\n"...)
	default:
		if g.r.IntN(8) == 0 {
			b = append(b, "## "...)
			b = g.sentence(b, 2+g.r.IntN(4))
			b = append(b, "\n\n"...)
		}
		for range 1 + g.r.IntN(5) {
			s := g.sentence(nil, 5+g.r.IntN(15))
			s[0] -= 'a' - 'A'
			b = append(b, s...)
			b = append(b, ". "...)
		}
		return append(b, "\n\n"...)
	}
}

var words = strings.Fields(`alpha account adapter agent archive array asset backup batch
buffer build bundle cache channel chunk client cluster codec column config context
counter cursor daemon data delta device digest disk driver encoder engine entry event
export factory feature field filter flag format frame graph handler hash header image
index input item job journal kernel key layer ledger limit link list loader lock log
manager manifest map matrix media merge message meta metric mirror model module monitor
mount node object option order output packet page parser patch path peer pipeline plan
plugin pool port profile proxy queue range reader record region registry report request
resource result router rule runner sample scanner schema scope segment server service
session shard signal snapshot socket source span stage state storage store stream table
task template thread token tracker transform tree upload user value vector version view
volume watcher worker writer zone`)

// mutation records what the week of work did.
type mutation struct {
	Edited       []string  `json:"edited"`   // changed in place, same size
	Appended     []string  `json:"appended"` // grown at the end
	Deleted      []string  `json:"deleted"`
	Created      []string  `json:"created"`
	Renamed      [2]string `json:"renamed_dir"`
	Middle       string    `json:"middle_changed"` // 1 MiB changed in its middle
	BytesWritten int64     `json:"bytes_written"`
	BytesDeleted int64     `json:"bytes_deleted"`
	Seconds      float64   `json:"seconds"`
}

// mutate applies a deterministic week of work of about 1% of the home:
// same-size edits of sources and documents, appends to logs, a table and
// sources, 1 MiB changed in the middle of the largest file, a new file of
// 20 MiB (scaled down for small homes), new cache files, deletions and
// finally the rename of a source project directory.
func mutate(root string, p *plan, seed uint64) (*mutation, error) {
	start := time.Now()
	r := rand.New(rand.NewPCG(seed, 0x7765656b))
	m := &mutation{}
	scale := math.Min(1, float64(p.Bytes)/float64(defaultSizeMiB*mib))
	prot := p.protected()
	abs := func(rel string) string { return filepath.Join(root, filepath.FromSlash(rel)) }
	touched := map[string]bool{}
	mtime := weekTime
	touch := func(rel string) error {
		touched[rel] = true
		mtime += 60
		t := time.Unix(mtime, 0)
		return os.Chtimes(abs(rel), t, t)
	}
	var src, docs, logs, csvs, small []*fileSpec
	for i := range p.Files {
		f := &p.Files[i]
		if prot[f.Path] {
			continue
		}
		switch f.Kind {
		case kindGo, kindC, kindPython:
			if f.Size >= 512 {
				src = append(src, f)
			}
		case kindDoc:
			if f.Size >= 128*kib {
				docs = append(docs, f)
			}
		case kindLog:
			logs = append(logs, f)
		case kindCSV:
			csvs = append(csvs, f)
		}
		if f.Size < 64*kib && strings.Contains(f.Path, "/") && !strings.HasPrefix(f.Path, ".ssh/") {
			small = append(small, f)
		}
	}
	choose := func(list []*fileSpec, n int) []*fileSpec {
		var out []*fileSpec
		for tries := 0; len(out) < n && tries < 20*n; tries++ {
			if len(list) == 0 {
				break
			}
			f := list[r.IntN(len(list))]
			if !touched[f.Path] && !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
		return out
	}
	writeAt := func(rel string, data []byte, off int64) error {
		fh, err := os.OpenFile(abs(rel), os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		_, err = fh.WriteAt(data, off)
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		m.BytesWritten += int64(len(data))
		if err != nil {
			return err
		}
		return touch(rel)
	}
	appendTo := func(rel string, data []byte) error {
		fh, err := os.OpenFile(abs(rel), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		_, err = fh.Write(data)
		if cerr := fh.Close(); err == nil {
			err = cerr
		}
		m.BytesWritten += int64(len(data))
		m.Appended = append(m.Appended, rel)
		if err != nil {
			return err
		}
		return touch(rel)
	}

	// Same-size edits: a few lines of sources, a block of documents.
	for _, f := range choose(src, max(5, len(src)/100)) {
		n := 32 + r.Int64N(min(480, f.Size-32))
		off := r.Int64N(f.Size - n + 1)
		g := newTextGen(f.Kind, r.Uint64())
		g.started = true
		if err := writeAt(f.Path, g.bytes(int(n)), off); err != nil {
			return nil, err
		}
		m.Edited = append(m.Edited, f.Path)
	}
	for _, f := range choose(docs, 3) {
		n := min(f.Size/2, 16*kib+r.Int64N(48*kib))
		data := make([]byte, n)
		newChaCha(r.Uint64()).Read(data)
		if err := writeAt(f.Path, data, r.Int64N(f.Size-n+1)); err != nil {
			return nil, err
		}
		m.Edited = append(m.Edited, f.Path)
	}
	// Appends: logs (0.1% of the home), a table, a few sources.
	logBytes := int(float64(p.Bytes) / 1000)
	for i, f := range choose(logs, 4) {
		g := newTextGen(kindLog, r.Uint64())
		g.t = weekTime*1000 + int64(i)*3600*1000
		if err := appendTo(f.Path, g.bytes(logBytes/4)); err != nil {
			return nil, err
		}
	}
	for _, f := range choose(csvs, 1) {
		g := newTextGen(kindCSV, r.Uint64())
		g.started = true
		if err := appendTo(f.Path, g.bytes(logBytes/8)); err != nil {
			return nil, err
		}
	}
	for _, f := range choose(src, 5) {
		g := newTextGen(f.Kind, r.Uint64())
		g.started = true
		if err := appendTo(f.Path, g.bytes(500+r.IntN(3000))); err != nil {
			return nil, err
		}
	}
	// 1 MiB changed in the middle of the largest file.
	if size := sizeOf(p, p.Largest); size >= 2*mib {
		data := make([]byte, mib)
		newChaCha(r.Uint64()).Read(data)
		if err := writeAt(p.Largest, data, size/2-mib/2); err != nil {
			return nil, err
		}
		m.Middle = p.Largest
	}
	// A new recording and new cache entries.
	create := func(rel string, k kind, size int64) error {
		f := fileSpec{Path: rel, Kind: k, Size: size, Seed: r.Uint64(), Mode: 0o644, MTime: mtime}
		if err := os.MkdirAll(filepath.Dir(abs(rel)), 0o755); err != nil {
			return err
		}
		if err := writeSpec(root, &f, make([]byte, 0, mib)); err != nil {
			return err
		}
		m.Created = append(m.Created, rel)
		m.BytesWritten += size
		return touch(rel)
	}
	if err := create("Downloads/screen-recording-2024-06-10.mp4", kindRandom, max(mib, int64(20*mib*scale))); err != nil {
		return nil, err
	}
	for i := range 10 {
		if err := create(fmt.Sprintf(".cache/thumbnails/normal/week-%02d-%016x.png", i, r.Uint64()), kindRandom, 2*kib+r.Int64N(30*kib)); err != nil {
			return nil, err
		}
	}
	// Deletions: small files and one photo.
	var gone []*fileSpec
	for _, f := range choose(small, max(3, len(p.Files)/200)) {
		gone = append(gone, f)
		touched[f.Path] = true
	}
	for i := range p.Files {
		f := &p.Files[i]
		if strings.HasPrefix(f.Path, "Pictures/20") && !prot[f.Path] && !touched[f.Path] {
			gone = append(gone, f)
			break
		}
	}
	for _, f := range gone {
		if err := os.Remove(abs(f.Path)); err != nil {
			return nil, err
		}
		m.Deleted = append(m.Deleted, f.Path)
		m.BytesDeleted += f.Size
	}
	// Rename a source project directory (not the one src/current points to).
	for _, proj := range p.Projects {
		if proj != p.Current {
			m.Renamed = [2]string{proj, proj + "-2024"}
			if err := os.Rename(abs(proj), abs(proj+"-2024")); err != nil {
				return nil, err
			}
			break
		}
	}
	m.Seconds = time.Since(start).Seconds()
	return m, nil
}

// entry is what a manifest records of one path.
type entry struct {
	Type   byte // 'f', 'd', 'l'
	Mode   fs.FileMode
	Size   int64
	MTime  int64
	Nlink  uint64
	Target string
	Sum    [32]byte
}

// manifest describes the tree at root: path → entry. It hashes file
// contents with parallel workers. The root itself is left out.
func manifest(root string) (map[string]entry, error) {
	m := map[string]entry{}
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		e := entry{Mode: info.Mode()}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			e.Type = 'l'
			e.Target, err = os.Readlink(p)
		case d.IsDir():
			e.Type = 'd'
		case d.Type().IsRegular():
			e.Type, e.Size, e.MTime = 'f', info.Size(), info.ModTime().Unix()
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				e.Nlink = uint64(st.Nlink)
			}
			files = append(files, rel)
		default:
			e.Type = '?'
		}
		m[filepath.ToSlash(rel)] = e
		return err
	})
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan string)
	var firstErr error
	for range max(2, runtime.NumCPU()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, mib)
			for rel := range work {
				sum, err := hashFile(filepath.Join(root, rel), buf)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				e := m[filepath.ToSlash(rel)]
				e.Sum = sum
				m[filepath.ToSlash(rel)] = e
				mu.Unlock()
			}
		}()
	}
	for _, f := range files {
		work <- f
	}
	close(work)
	wg.Wait()
	return m, firstErr
}

func hashFile(name string, buf []byte) ([32]byte, error) {
	var sum [32]byte
	fh, err := os.Open(name)
	if err != nil {
		return sum, err
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, fh, buf); err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// manifestOpts says which attributes compareManifests and treeHash look at
// besides type, size, content and link target.
type manifestOpts struct {
	mode, mtime, nlink bool
}

func (o manifestOpts) key(e entry) entry {
	if !o.mode || e.Type == 'l' {
		e.Mode = 0
	}
	if !o.mtime || e.Type != 'f' {
		e.MTime = 0
	}
	if !o.nlink {
		e.Nlink = 0
	}
	return e
}

// treeHash is one hash of a manifest.
func treeHash(m map[string]entry, o manifestOpts) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		e := o.key(m[k])
		fmt.Fprintf(h, "%q %c %o %d %d %d %q %x\n", k, e.Type, uint32(e.Mode), e.Size, e.MTime, e.Nlink, e.Target, e.Sum)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// compareManifests returns nil if want and got agree, or an error naming
// the number of differences and the first few paths.
func compareManifests(want, got map[string]entry, o manifestOpts) error {
	var diffs []string
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			diffs = append(diffs, "missing "+k)
		case o.key(w) != o.key(g):
			diffs = append(diffs, "differs "+k)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, "extra "+k)
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	sort.Strings(diffs)
	return fmt.Errorf("%d differences: %s", len(diffs), strings.Join(diffs[:min(3, len(diffs))], ", "))
}
