package ignore

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Matcher holds compiled ignore patterns. The zero value has no patterns.
// Match may be called from several goroutines at once, but not while
// patterns are being added.
type Matcher struct {
	pats []*pattern
}

// New returns a Matcher without patterns.
func New() *Matcher {
	return &Matcher{}
}

// Empty reports whether m holds no pattern that can match; blank lines,
// comments and patterns that never match do not count.
func (m *Matcher) Empty() bool {
	return len(m.pats) == 0
}

// AddPatterns adds pattern lines that apply below base, the slash-separated
// directory they came from relative to the snapshot root ("" or "." for the
// root; surrounding slashes are ignored). Each element is one line; it is
// used as is, so it may contain a newline. Patterns added later take
// precedence over earlier ones.
func (m *Matcher) AddPatterns(base string, lines []string) {
	prefix := strings.Trim(base, "/")
	if prefix == "." {
		prefix = ""
	}
	if prefix != "" {
		prefix += "/"
	}
	depth := strings.Count(prefix, "/")
	for _, line := range lines {
		if p := compile(line); p != nil {
			p.base, p.depth = prefix, depth
			m.pats = append(m.pats, p)
		}
	}
}

var bom = []byte("\xef\xbb\xbf")

// AddFile adds the patterns of an ignore file, such as a .dvpcignore, that
// lies in directory base (see AddPatterns). Lines end at \n; a \r before it
// and a UTF-8 byte order mark at the start of the file are dropped.
func (m *Matcher) AddFile(base string, r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		where := fmt.Sprintf("directory %q", base)
		if strings.Trim(base, "/") == "" || base == "." {
			where = "the snapshot root"
		}
		return fmt.Errorf("read ignore patterns for %s: %w", where, err)
	}
	lines := strings.Split(string(bytes.TrimPrefix(data, bom)), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	m.AddPatterns(base, lines)
	return nil
}

// Match reports whether the path rel, slash-separated and relative to the
// snapshot root, is excluded. isDir tells whether rel is a directory;
// symbolic links count as files, as in git. Match only looks at rel itself:
// callers must not descend into a directory for which it reports true.
func (m *Matcher) Match(rel string, isDir bool) bool {
	if rel == "" {
		return false
	}
	name := rel[strings.LastIndexByte(rel, '/')+1:]
	var buf [32]string
	var segs []string
	for i := len(m.pats) - 1; i >= 0; i-- {
		p := m.pats[i]
		if p.dirOnly && !isDir {
			continue
		}
		sub := rel
		if p.base != "" {
			if len(rel) <= len(p.base) || !strings.HasPrefix(rel, p.base) {
				continue
			}
			sub = rel[len(p.base):]
		}
		var ok bool
		switch {
		case !p.anchored:
			ok = p.name.match(name)
		case p.literal:
			ok = sub == p.lit
		default:
			if segs == nil {
				segs = split(buf[:0], rel)
			}
			ok = matchSegs(p.segs, segs[p.depth:])
		}
		if ok {
			return !p.negate
		}
	}
	return false
}

func split(dst []string, s string) []string {
	for {
		i := strings.IndexByte(s, '/')
		if i < 0 {
			return append(dst, s)
		}
		dst = append(dst, s[:i])
		s = s[i+1:]
	}
}

// pattern is one compiled pattern line.
type pattern struct {
	base     string // "" or the base directory with a trailing slash
	depth    int    // number of path elements in base
	negate   bool   // leading !
	dirOnly  bool   // trailing /
	anchored bool   // contains a slash: match segs against the path below base
	name     glob   // for patterns that are not anchored: the last element
	segs     []seg  // for anchored patterns
	literal  bool   // anchored and free of wildcards: compare with lit
	lit      string
}

// seg matches path elements: a "**" element matches zero or more of them,
// any other exactly one.
type seg struct {
	double bool
	g      glob
}

// compile parses one pattern line; it returns nil for blank lines, comments
// and patterns that can never match.
func compile(line string) *pattern {
	if line == "" || line[0] == '#' {
		return nil
	}
	line = trimTrailingSpaces(line)
	p := &pattern{}
	if strings.HasPrefix(line, "!") {
		p.negate = true
		line = line[1:]
	}
	if strings.HasSuffix(line, "/") {
		p.dirOnly = true
		line = line[:len(line)-1]
	}
	if line == "" {
		return nil
	}
	p.anchored = strings.Contains(line, "/")
	if p.anchored {
		line = strings.TrimPrefix(line, "/")
	}
	toks, ok := tokenize(line)
	if !ok {
		return nil
	}
	if !p.anchored {
		p.name = newGlob(toks)
		if p.name.kind == gLiteral && p.name.lit == "" {
			return nil
		}
		return p
	}

	// Split at slashes into path elements.
	var elems [][]token
	start := 0
	for i, t := range toks {
		if t.kind == tSep {
			elems = append(elems, toks[start:i])
			start = i + 1
		}
	}
	elems = append(elems, toks[start:])

	literal := true
	for _, e := range elems {
		if isDoubleStar(e) {
			p.segs = append(p.segs, seg{double: true})
			literal = false
			continue
		}
		g := newGlob(e)
		if g.kind != gLiteral {
			literal = false
		}
		p.segs = append(p.segs, seg{g: g})
	}
	if last := len(p.segs) - 1; p.segs[last].double {
		// A trailing /** matches one or more elements: the contents of
		// the directory, not the directory itself.
		p.segs[last] = seg{g: glob{kind: gAll}}
		p.segs = append(p.segs, seg{double: true})
	}
	if literal {
		if len(p.segs) == 1 && p.segs[0].g.lit == "" {
			return nil
		}
		lits := make([]string, len(p.segs))
		for i, s := range p.segs {
			lits[i] = s.g.lit
		}
		p.literal, p.lit = true, strings.Join(lits, "/")
	}
	return p
}

// isDoubleStar reports whether a path element of a pattern is ** (or a
// longer run of stars), which matches any number of path elements.
func isDoubleStar(e []token) bool {
	if len(e) < 2 {
		return false
	}
	for _, t := range e {
		if t.kind != tStar {
			return false
		}
	}
	return true
}

// trimTrailingSpaces removes trailing spaces that are not escaped by a
// backslash, as git does.
func trimTrailingSpaces(s string) string {
	lastSpace := -1
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ':
			if lastSpace < 0 {
				lastSpace = i
			}
		case '\\':
			i++
			if i >= len(s) {
				return s
			}
			lastSpace = -1
		default:
			lastSpace = -1
		}
	}
	if lastSpace >= 0 {
		return s[:lastSpace]
	}
	return s
}

type tokKind uint8

const (
	tLit   tokKind = iota // literal bytes
	tStar                 // *
	tOne                  // ?
	tClass                // [...]
	tSep                  // / (only while compiling)
)

type token struct {
	kind tokKind
	lit  string
	cls  *class
}

// tokenize splits a pattern into tokens. It reports false for a pattern
// that can never match: a trailing backslash or a malformed class.
func tokenize(p string) ([]token, bool) {
	var toks []token
	var lit []byte
	flush := func() {
		if len(lit) > 0 {
			toks = append(toks, token{kind: tLit, lit: string(lit)})
			lit = lit[:0]
		}
	}
	for i := 0; i < len(p); {
		switch c := p[i]; c {
		case '\\':
			if i+1 >= len(p) {
				return nil, false
			}
			if p[i+1] == '/' {
				flush()
				toks = append(toks, token{kind: tSep})
			} else {
				lit = append(lit, p[i+1])
			}
			i += 2
		case '/':
			flush()
			toks = append(toks, token{kind: tSep})
			i++
		case '*':
			flush()
			toks = append(toks, token{kind: tStar})
			i++
		case '?':
			flush()
			toks = append(toks, token{kind: tOne})
			i++
		case '[':
			cls, n, ok := parseClass(p[i:])
			if !ok {
				return nil, false
			}
			flush()
			toks = append(toks, token{kind: tClass, cls: cls})
			i += n
		default:
			lit = append(lit, c)
			i++
		}
	}
	flush()
	return toks, true
}

type globKind uint8

const (
	gLiteral  globKind = iota // the element equals lit
	gPrefix                   // lit*
	gSuffix                   // *lit
	gContains                 // *lit*
	gAll                      // *
	gGeneral                  // anything else: run toks
)

// glob matches a single path element (no slashes).
type glob struct {
	kind globKind
	lit  string
	toks []token
}

// newGlob compiles the tokens of one path element; runs of stars count as
// one star.
func newGlob(in []token) glob {
	var toks []token
	for _, t := range in {
		if t.kind == tStar && len(toks) > 0 && toks[len(toks)-1].kind == tStar {
			continue
		}
		toks = append(toks, t)
	}
	kinds := func(ks ...tokKind) bool {
		if len(toks) != len(ks) {
			return false
		}
		for i, k := range ks {
			if toks[i].kind != k {
				return false
			}
		}
		return true
	}
	switch {
	case len(toks) == 0:
		return glob{kind: gLiteral}
	case kinds(tLit):
		return glob{kind: gLiteral, lit: toks[0].lit}
	case kinds(tStar):
		return glob{kind: gAll}
	case kinds(tLit, tStar):
		return glob{kind: gPrefix, lit: toks[0].lit}
	case kinds(tStar, tLit):
		return glob{kind: gSuffix, lit: toks[1].lit}
	case kinds(tStar, tLit, tStar):
		return glob{kind: gContains, lit: toks[1].lit}
	}
	return glob{kind: gGeneral, toks: toks}
}

func (g *glob) match(s string) bool {
	switch g.kind {
	case gLiteral:
		return s == g.lit
	case gPrefix:
		return strings.HasPrefix(s, g.lit)
	case gSuffix:
		return strings.HasSuffix(s, g.lit)
	case gContains:
		return strings.Contains(s, g.lit)
	case gAll:
		return true
	}
	toks := g.toks
	ti, si := 0, 0
	star, starSi := -1, 0
	for {
		if ti < len(toks) {
			switch t := &toks[ti]; t.kind {
			case tStar:
				if ti == len(toks)-1 {
					return true
				}
				star, starSi = ti, si
				ti++
				continue
			case tLit:
				if strings.HasPrefix(s[si:], t.lit) {
					si += len(t.lit)
					ti++
					continue
				}
			case tOne:
				if si < len(s) {
					_, w := decode(s[si:])
					si += w
					ti++
					continue
				}
			case tClass:
				if si < len(s) {
					if v, w := decode(s[si:]); t.cls.match(v) {
						si += w
						ti++
						continue
					}
				}
			}
		} else if si == len(s) {
			return true
		}
		// Let the last star take one more byte and try again.
		if star < 0 || starSi >= len(s) {
			return false
		}
		starSi++
		si, ti = starSi, star+1
	}
}

// matchSegs matches path elements against pattern elements, where a double
// element matches any number of path elements.
func matchSegs(ps []seg, names []string) bool {
	pi, ni := 0, 0
	star, starNi := -1, 0
	for {
		if pi < len(ps) {
			if ps[pi].double {
				if pi == len(ps)-1 {
					return true
				}
				star, starNi = pi, ni
				pi++
				continue
			}
			if ni < len(names) && ps[pi].g.match(names[ni]) {
				pi++
				ni++
				continue
			}
		} else if ni == len(names) {
			return true
		}
		if star < 0 || starNi >= len(names) {
			return false
		}
		starNi++
		pi, ni = star+1, starNi
	}
}

// invalidBase is added to a byte that is not part of valid UTF-8 to give it
// a character value distinct from every rune.
const invalidBase = utf8.MaxRune + 1

// decode returns the character at the start of s and its length in bytes:
// a rune, or a single byte that is not valid UTF-8 as invalidBase+byte.
func decode(s string) (rune, int) {
	r, w := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError && w <= 1 {
		return invalidBase + rune(s[0]), 1
	}
	return r, w
}

// class is a compiled [...] character class.
type class struct {
	negate bool
	ranges []charRange
	posix  uint16 // bit set of POSIX classes
}

type charRange struct{ lo, hi rune }

const (
	pAlnum uint16 = 1 << iota
	pAlpha
	pBlank
	pCntrl
	pDigit
	pGraph
	pLower
	pPrint
	pPunct
	pSpace
	pUpper
	pXdigit
)

var posixNames = map[string]uint16{
	"alnum": pAlnum, "alpha": pAlpha, "blank": pBlank, "cntrl": pCntrl,
	"digit": pDigit, "graph": pGraph, "lower": pLower, "print": pPrint,
	"punct": pPunct, "space": pSpace, "upper": pUpper, "xdigit": pXdigit,
}

func (c *class) match(v rune) bool {
	in := false
	for _, r := range c.ranges {
		if r.lo <= v && v <= r.hi {
			in = true
			break
		}
	}
	if !in && c.posix != 0 && v < utf8.RuneSelf {
		in = c.posix&posixBits(byte(v)) != 0
	}
	return in != c.negate
}

// posixBits returns the POSIX classes an ASCII byte belongs to.
func posixBits(b byte) uint16 {
	var bits uint16
	lower := 'a' <= b && b <= 'z'
	upper := 'A' <= b && b <= 'Z'
	digit := '0' <= b && b <= '9'
	if lower {
		bits |= pLower
	}
	if upper {
		bits |= pUpper
	}
	if digit {
		bits |= pDigit
	}
	if lower || upper {
		bits |= pAlpha
	}
	if lower || upper || digit {
		bits |= pAlnum
	}
	if digit || 'a' <= b && b <= 'f' || 'A' <= b && b <= 'F' {
		bits |= pXdigit
	}
	if b == ' ' || b == '\t' {
		bits |= pBlank
	}
	if b == ' ' || '\t' <= b && b <= '\r' {
		bits |= pSpace
	}
	if b < 0x20 || b == 0x7f {
		bits |= pCntrl
	}
	if 0x20 <= b && b < 0x7f {
		bits |= pPrint
	}
	if 0x20 < b && b < 0x7f {
		bits |= pGraph
		if !lower && !upper && !digit {
			bits |= pPunct
		}
	}
	return bits
}

// parseClass parses the class at the start of p, which begins with '[', the
// way git's wildmatch does. It returns the class and its length in bytes,
// or false if the class is malformed.
func parseClass(p string) (*class, int, bool) {
	c := &class{}
	j := 1
	if j < len(p) && (p[j] == '!' || p[j] == '^') {
		c.negate = true
		j++
	}
	prev := rune(-1) // last single member, the start of a possible range
	add := func(lo, hi rune) { c.ranges = append(c.ranges, charRange{lo, hi}) }
	for first := true; ; first = false {
		if j >= len(p) {
			return nil, 0, false
		}
		switch {
		case p[j] == ']' && !first:
			return c, j + 1, true
		case p[j] == '\\':
			j++
			if j >= len(p) {
				return nil, 0, false
			}
			v, w := decode(p[j:])
			add(v, v)
			prev = v
			j += w
		case p[j] == '-' && prev >= 0 && j+1 < len(p) && p[j+1] != ']':
			j++
			if p[j] == '\\' {
				j++
				if j >= len(p) {
					return nil, 0, false
				}
			}
			hi, w := decode(p[j:])
			add(prev, hi)
			prev = -1
			j += w
		case p[j] == '[' && j+1 < len(p) && p[j+1] == ':':
			s := j + 2
			k := s
			for k < len(p) && p[k] != ']' {
				k++
			}
			if k >= len(p) {
				return nil, 0, false
			}
			if k-s-1 < 0 || p[k-1] != ':' {
				// No ":]": the [ is an ordinary member.
				add('[', '[')
				prev = '['
				j++
				continue
			}
			bit, ok := posixNames[p[s:k-1]]
			if !ok {
				return nil, 0, false
			}
			c.posix |= bit
			prev = -1
			j = k + 1
		default:
			v, w := decode(p[j:])
			add(v, v)
			prev = v
			j += w
		}
	}
}
