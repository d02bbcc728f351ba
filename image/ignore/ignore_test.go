package ignore

import (
	"errors"
	"strings"
	"testing"
	"testing/iotest"
)

// file is one set of pattern lines and the directory they apply below.
type file struct {
	base  string
	lines []string
}

// check is one path and whether Match reports it excluded.
type check struct {
	path string
	dir  bool
	want bool
}

type matchCase struct {
	name   string
	files  []file
	checks []check
	// notGit, when set, says why git answers differently; the case is left
	// out of the comparison with git check-ignore.
	notGit string
}

func root(lines ...string) []file { return []file{{"", lines}} }

func f(p string) check  { return check{path: p} }
func fx(p string) check { return check{path: p, want: true} }
func d(p string) check  { return check{path: p, dir: true} }
func dx(p string) check { return check{path: p, dir: true, want: true} }

var matchCases = []matchCase{
	{name: "blank lines and comments", files: root("", "# foo", "   ", "#"),
		checks: []check{f("# foo"), f("foo"), f("#"), f("   "), f(" ")}},
	{name: "escaped hash", files: root(`\#foo`),
		checks: []check{fx("#foo"), f("foo"), f(`\#foo`)}},
	{name: "hash inside pattern", files: root("a#b"),
		checks: []check{fx("a#b"), f("a")}},
	{name: "escaped bang", files: root(`\!important`),
		checks: []check{fx("!important"), f("important")}},
	{name: "bang alone", files: root("!", "!important"),
		checks: []check{f("!important"), f("important"), f("!")}},
	{name: "trailing spaces trimmed", files: root("foo  "),
		checks: []check{fx("foo"), f("foo  "), f("foo ")}},
	{name: "escaped trailing space", files: root(`foo\ `),
		checks: []check{fx("foo "), f("foo"), f("foo  ")}},
	{name: "escaped space then spaces", files: root(`foo\  `),
		checks: []check{fx("foo "), f("foo")}},
	{name: "space before escaped space", files: root(`foo \ `),
		checks: []check{fx("foo  "), f("foo"), f("foo ")}},
	{name: "trailing tab kept", files: root("foo\t"),
		checks: []check{fx("foo\t"), f("foo")}},
	{name: "leading space kept", files: root(" foo"),
		checks: []check{fx(" foo"), f("foo")}},
	{name: "only spaces", files: root("    "),
		checks: []check{f("    "), f(" ")}},
	{name: "negation", files: root("*.log", "!keep.log"),
		checks: []check{fx("a.log"), f("keep.log"), f("sub/keep.log"), fx("sub/a.log"), f("a.txt")}},
	{name: "last match wins", files: root("!keep.log", "*.log"),
		checks: []check{fx("keep.log"), fx("a.log")}},
	{name: "negation then exclusion again", files: root("*.log", "!*.log", "a.log"),
		checks: []check{fx("a.log"), f("b.log")}},
	{name: "negated dir-only", files: root("*", "!*/"),
		checks: []check{fx("x"), d("x"), fx("a/x"), d("a/x"), fx(".hidden")}},
	{name: "basename at any depth", files: root("foo"),
		checks: []check{fx("foo"), dx("foo"), fx("a/foo"), fx("a/b/foo"), f("foobar"), f("afoo"), f("foo.d")}},
	{name: "leading slash anchors", files: root("/foo"),
		checks: []check{fx("foo"), dx("foo"), f("a/foo"), f("a/b/foo")}},
	{name: "middle slash anchors", files: root("doc/frotz"),
		checks: []check{fx("doc/frotz"), dx("doc/frotz"), f("a/doc/frotz"), f("frotz"), f("doc")}},
	{name: "leading and middle slash", files: root("/doc/frotz"),
		checks: []check{fx("doc/frotz"), f("a/doc/frotz")}},
	{name: "trailing slash dirs only", files: root("build/"),
		checks: []check{dx("build"), f("build"), dx("a/build"), f("a/build"), d("builds")}},
	{name: "anchored dir only", files: root("doc/frotz/"),
		checks: []check{dx("doc/frotz"), f("doc/frotz"), d("a/doc/frotz")}},
	{name: "slash only", files: root("/", "//"),
		checks: []check{f("a"), d("a")}},
	{name: "star", files: root("*.o"),
		checks: []check{fx("x.o"), fx("a/b/x.o"), fx(".o"), f("x.oo"), f("x.o.c"), dx("dir.o")}},
	{name: "star alone", files: root("*"),
		checks: []check{fx("a"), dx("a"), fx(".hidden"), fx("a/b")}},
	{name: "star prefix", files: root("tmp*"),
		checks: []check{fx("tmp"), fx("tmpfile"), fx("a/tmp1"), f("atmp")}},
	{name: "star middle", files: root("a*b*c"),
		checks: []check{fx("abc"), fx("axxbyyc"), fx("abbbc"), f("abcd"), f("acb"), fx("aXbc")}},
	{name: "star contains", files: root("*cache*"),
		checks: []check{fx("cache"), fx(".cache"), fx("mycache.db"), f("cach")}},
	{name: "star does not cross slash", files: root("a/*"),
		checks: []check{fx("a/b"), dx("a/b"), f("a/b/c"), f("a"), f("x/a/b")}},
	{name: "star element in middle", files: root("a/*/c"),
		checks: []check{fx("a/b/c"), fx("a/.x/c"), f("a/c"), f("a/b/d/c")}},
	{name: "star then slash", files: root("*/foo"),
		checks: []check{fx("x/foo"), f("foo"), f("x/y/foo")}},
	{name: "question mark", files: root("?.txt"),
		checks: []check{fx("a.txt"), fx("sub/b.txt"), f("ab.txt"), f(".txt")}},
	{name: "question marks", files: root("a??"),
		checks: []check{fx("abc"), f("ab"), f("abcd")}},
	{name: "question mark not slash", files: root("a?b"),
		checks: []check{fx("axb"), f("a/b")}},
	{name: "class", files: root("[abc].txt"),
		checks: []check{fx("a.txt"), fx("c.txt"), f("d.txt"), f("ab.txt")}},
	{name: "negated class bang", files: root("[!abc].txt"),
		checks: []check{f("a.txt"), fx("d.txt"), fx("..txt")}},
	{name: "negated class caret", files: root("[^abc].txt"),
		checks: []check{f("a.txt"), fx("d.txt")}},
	{name: "class range", files: root("file[0-9]"),
		checks: []check{fx("file0"), fx("file9"), f("filea"), f("file10")}},
	{name: "class several ranges", files: root("[a-cx-z]"),
		checks: []check{fx("b"), fx("y"), f("d"), f("w")}},
	{name: "class range then dash", files: root("[a-c-e]"),
		checks: []check{fx("a"), fx("c"), fx("-"), fx("e"), f("d")}},
	{name: "class reversed range", files: root("[z-a]x"),
		// As in git, the first end of a range is also a member by itself.
		checks: []check{f("bx"), fx("zx"), f("ax")}},
	{name: "class with leading bracket", files: root("[]]x"),
		checks: []check{fx("]x"), f("x"), f("ax")}},
	{name: "negated class with leading bracket", files: root("[!]]x"),
		checks: []check{f("]x"), fx("ax")}},
	{name: "class with trailing dash", files: root("[a-]x"),
		checks: []check{fx("ax"), fx("-x"), f("bx")}},
	{name: "class with leading dash", files: root("[-a]x"),
		checks: []check{fx("ax"), fx("-x"), f("bx")}},
	{name: "class escape", files: root(`x[\]]`),
		checks: []check{fx("x]"), f(`x\`)}},
	{name: "class escaped range end", files: root(`[a-\z]`),
		checks: []check{fx("m"), fx("z")}},
	{name: "class backslash member", files: root(`[\\]`),
		checks: []check{fx(`\`), f("a")}},
	{name: "class special characters are literal", files: root("[*?]"),
		checks: []check{fx("*"), fx("?"), f("a")}},
	{name: "posix digit", files: root("[[:digit:]]x"),
		checks: []check{fx("5x"), f("ax")}},
	{name: "posix classes", files: root("[[:upper:][:space:]]"),
		checks: []check{fx("Q"), fx(" "), f("q"), f("1")}},
	{name: "posix alpha negated", files: root("[![:alpha:]]"),
		checks: []check{f("a"), fx("1"), fx("_")}},
	{name: "posix punct and xdigit", files: root("[[:punct:]][[:xdigit:]]"),
		checks: []check{fx("_f"), fx("!0"), f("ag"), f("_g")}},
	{name: "bracket colon without class", files: root("[[:x]"),
		checks: []check{fx("["), fx(":"), fx("x"), f("y")}},
	{name: "bracket colon empty", files: root("[[:]"),
		checks: []check{fx("["), fx(":"), f("]")}},
	{name: "unterminated class never matches", files: root("foo[", "bar[ab"),
		checks: []check{f("foo["), f("foo"), f("bar["), f("bara")}},
	{name: "unknown posix class never matches", files: root("[[:bogus:]]x"),
		checks: []check{f("ax"), f("[x"), f(":x")}},
	{name: "trailing backslash never matches", files: root(`foo\`),
		checks: []check{f("foo"), f(`foo\`)}},
	{name: "escaped wildcards", files: root(`\*`, `\?x`, `\[a]`),
		checks: []check{fx("*"), f("a"), fx("?x"), f("ax"), fx("[a]"), f("a")}},
	{name: "escaped letter", files: root(`\a\b`),
		checks: []check{fx("ab"), f(`\a\b`)}},
	{name: "leading double star", files: root("**/foo"),
		checks: []check{fx("foo"), fx("a/foo"), fx("a/b/foo"), dx("a/foo"), f("afoo"), f("a/xfoo")}},
	{name: "leading double star with path", files: root("**/foo/bar"),
		checks: []check{fx("foo/bar"), fx("x/foo/bar"), fx("x/y/foo/bar"), f("foo/x/bar"), f("bar")}},
	{name: "trailing double star", files: root("abc/**"),
		checks: []check{d("abc"), f("abc"), fx("abc/x"), dx("abc/x"), fx("abc/x/y"), f("x/abc/y")}},
	{name: "trailing double star and negation", files: root("a/**", "!a/keep"),
		checks: []check{fx("a/x"), f("a/keep"), d("a"), fx("a/keep/x")}},
	{name: "middle double star", files: root("a/**/b"),
		checks: []check{fx("a/b"), fx("a/x/b"), fx("a/x/y/b"), f("a/xb"), f("x/a/b"), f("a/b/c"), f("ab")}},
	{name: "two double stars", files: root("a/**/b/**/c"),
		checks: []check{fx("a/b/c"), fx("a/x/b/y/z/c"), fx("a/b/b/c"), f("a/c"), f("a/b/x")}},
	{name: "double star only", files: root("**"),
		checks: []check{fx("a"), dx("a"), fx("a/b/c")}},
	{name: "anchored double star only", files: root("/**"),
		checks: []check{fx("a"), dx("a"), fx("a/b/c")}},
	{name: "double star dir only", files: root("foo/**/"),
		checks: []check{dx("foo/a"), f("foo/a"), dx("foo/a/b"), d("foo")}},
	{name: "double star slash double star", files: root("**/**"),
		checks: []check{fx("a"), fx("a/b")}},
	{name: "triple star", files: root("***/foo"),
		checks: []check{fx("foo"), fx("a/foo"), fx("a/b/foo")}},
	{name: "double star not alone in element", files: root("a**b"),
		checks: []check{fx("ab"), fx("axxb"), fx("x/axb"), f("a/b")}},
	{name: "double star not alone, anchored", files: root("x/a**b"),
		checks: []check{fx("x/aqb"), f("x/a/b"), f("x/a/q/b")}},
	{name: "double star suffix", files: root("**foo"),
		checks: []check{fx("foo"), fx("afoo"), fx("x/afoo"), f("foox")}},
	{name: "double star prefix element", files: root("foo/**bar"),
		checks: []check{fx("foo/bar"), fx("foo/xbar"), f("foo/x/bar")}},
	{name: "escaped slash", files: root(`a\/b`),
		checks: []check{fx("a/b"), f("x/a/b"), f("b")}},
	{name: "double slash never matches", files: root("a//b"),
		checks: []check{f("a/b"), f("b")}},
	{name: "case sensitive", files: root("FOO", "*.JPG"),
		checks: []check{fx("FOO"), f("foo"), fx("a.JPG"), f("a.jpg")}},
	{name: "dots are literal", files: root("a.b"),
		checks: []check{fx("a.b"), f("axb")}},
	{name: "regexp characters are literal", files: root("a+b(c)|^$"),
		checks: []check{fx("a+b(c)|^$"), f("ab")}},
	{name: "newline in name", files: root("foo?bar", "x*y"),
		checks: []check{fx("foo\nbar"), fx("x\ny"), fx("x\n\ny"), fx("d/foo\nbar")}},
	{name: "invalid utf-8 literal", files: root("\xff\xfe", "a\x80*"),
		checks: []check{fx("\xff\xfe"), f("\xff"), fx("a\x80"), fx("a\x80zz"), f("a")}},
	{name: "invalid utf-8 wildcards", files: root("?x", "[\xf0-\xff]y", "z*\xa9"),
		checks: []check{fx("\xffx"), fx("\xf5y"), f("\xefy"), fx("z\xa9"), fx("z\xc3\xa9")}},
	{name: "utf-8 literal and star", files: root("café*", "*ü"),
		checks: []check{fx("café"), fx("caféx"), f("cafe"), fx("über/tschüü"), f("u")}},
	{name: "question mark matches one character", files: root("caf?"),
		checks: []check{fx("café"), fx("cafe"), f("caf")},
		notGit: "git's ? matches one byte, not one UTF-8 character"},
	{name: "class of characters", files: root("[äö]x", "[α-ω]"),
		checks: []check{fx("äx"), fx("öx"), f("ax"), fx("β"), f("a")},
		notGit: "git's classes hold bytes, not UTF-8 characters"},
	{name: "not strictly below base", files: []file{{"sub", []string{"*"}}},
		checks: []check{d("sub"), f("sub"), fx("sub/a"), dx("sub/a"), f("a"), f("subx/a")}},
	{name: "nested file", files: []file{{"sub", []string{"*.tmp", "/only", "x/y"}}},
		checks: []check{fx("sub/a.tmp"), fx("sub/d/a.tmp"), f("a.tmp"), f("subx/a.tmp"),
			fx("sub/only"), f("sub/a/only"), f("only"), fx("sub/x/y"), f("x/y"), f("sub/a/x/y")}},
	{name: "deeply nested file", files: []file{{"a/b", []string{"c", "/d/e", "**/f", "g/**"}}},
		checks: []check{fx("a/b/c"), fx("a/b/x/c"), f("a/c"), f("c"), d("a/b"),
			fx("a/b/d/e"), f("a/b/x/d/e"), fx("a/b/f"), fx("a/b/x/y/f"), f("a/f"),
			fx("a/b/g/h"), d("a/b/g"), f("a/g/h")}},
	{name: "nested file overrides root", files: []file{{"", []string{"*.log"}}, {"sub", []string{"!keep.log"}}},
		checks: []check{fx("keep.log"), f("sub/keep.log"), f("sub/d/keep.log"), fx("sub/a.log"), fx("other/keep.log")}},
	{name: "nested file excludes again", files: []file{{"", []string{"!x", "y"}}, {"sub", []string{"x", "!y"}}},
		checks: []check{f("x"), fx("sub/x"), fx("y"), f("sub/y")}},
	{name: "parent directory excluded", files: root("foo/", "/a", "!a/b"),
		checks: []check{dx("foo"), f("foo/bar"), dx("a"), f("a/b"), f("a/c")}},
	{name: "names that look like patterns", files: root("!*", "#*"),
		checks: []check{f("!x"), f("#x"), f("x")}},
}

func newMatcher(files []file) *Matcher {
	m := New()
	for _, fl := range files {
		m.AddPatterns(fl.base, fl.lines)
	}
	return m
}

func TestMatch(t *testing.T) {
	for _, tc := range matchCases {
		m := newMatcher(tc.files)
		for _, c := range tc.checks {
			if got := m.Match(c.path, c.dir); got != c.want {
				t.Errorf("%s: Match(%q, dir=%v) = %v, want %v (patterns %q)", tc.name, c.path, c.dir, got, c.want, tc.files)
			}
		}
	}
}

func TestEmpty(t *testing.T) {
	tests := []struct {
		lines []string
		want  bool
	}{
		{nil, true},
		{[]string{"", "# comment", "   ", "!", "/", "foo[", `bar\`, "[[:nope:]]"}, true},
		{[]string{"foo"}, false},
		{[]string{"!foo"}, false},
		{[]string{"# x", "*.o"}, false},
	}
	for _, tt := range tests {
		m := New()
		m.AddPatterns("", tt.lines)
		if got := m.Empty(); got != tt.want {
			t.Errorf("Empty() after %q = %v, want %v", tt.lines, got, tt.want)
		}
	}
	var zero Matcher
	if !zero.Empty() || zero.Match("a", false) {
		t.Errorf("zero Matcher is not empty")
	}
}

func TestBase(t *testing.T) {
	for _, base := range []string{"a/b", "/a/b", "a/b/", "/a/b/"} {
		m := New()
		m.AddPatterns(base, []string{"c"})
		if !m.Match("a/b/c", false) || m.Match("c", false) || m.Match("a/c", false) {
			t.Errorf("base %q does not apply below a/b only", base)
		}
	}
	for _, base := range []string{"", ".", "/"} {
		m := New()
		m.AddPatterns(base, []string{"/c"})
		if !m.Match("c", false) || m.Match("a/c", false) {
			t.Errorf("base %q is not the root", base)
		}
	}
}

func TestMatchRoot(t *testing.T) {
	m := New()
	m.AddPatterns("", []string{"*", "**"})
	if m.Match("", true) {
		t.Errorf("Match(\"\") = true, want false: the root is never excluded")
	}
}

func TestAddPatternsVerbatim(t *testing.T) {
	// A pattern given on the command line may hold a newline.
	m := New()
	m.AddPatterns("", []string{"foo\nbar", "baz\r"})
	for _, c := range []check{fx("foo\nbar"), f("foo"), f("bar"), fx("baz\r"), f("baz")} {
		if got := m.Match(c.path, c.dir); got != c.want {
			t.Errorf("Match(%q) = %v, want %v", c.path, got, c.want)
		}
	}
}

func TestAddFile(t *testing.T) {
	const content = "\xef\xbb\xbf*.log\r\n# comment\r\n!keep.log\r\n\r\nbuild/\nspace\\ \r\n/anchored"
	m := New()
	if err := m.AddFile("", strings.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []check{
		fx("a.log"), f("keep.log"), dx("build"), f("build"), fx("space "), f("space"),
		fx("anchored"), f("x/anchored"), f("# comment"),
	} {
		if got := m.Match(c.path, c.dir); got != c.want {
			t.Errorf("Match(%q, dir=%v) = %v, want %v", c.path, c.dir, got, c.want)
		}
	}

	// The byte order mark is only special at the start of the file.
	m = New()
	if err := m.AddFile("sub", strings.NewReader("a\n\xef\xbb\xbfb")); err != nil {
		t.Fatal(err)
	}
	if !m.Match("sub/a", false) || m.Match("sub/b", false) || !m.Match("sub/\xef\xbb\xbfb", false) {
		t.Errorf("byte order mark handled wrongly")
	}

	boom := errors.New("boom")
	m = New()
	err := m.AddFile("a/b", iotest.ErrReader(boom))
	if !errors.Is(err, boom) {
		t.Fatalf("AddFile error = %v, want it to wrap %v", err, boom)
	}
	if want := `read ignore patterns for directory "a/b": boom`; err.Error() != want {
		t.Errorf("AddFile error = %q, want %q", err, want)
	}
	err = New().AddFile("", iotest.ErrReader(boom))
	if want := `read ignore patterns for the snapshot root: boom`; err == nil || err.Error() != want {
		t.Errorf("AddFile error = %v, want %q", err, want)
	}
}

func TestTrimTrailingSpaces(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"foo", "foo"},
		{"foo ", "foo"},
		{"foo   ", "foo"},
		{"   ", ""},
		{`foo\ `, `foo\ `},
		{`foo\  `, `foo\ `},
		{`foo \ `, `foo \ `},
		{`foo\`, `foo\`},
		{`foo \`, `foo \`},
		{"foo\t", "foo\t"},
		{"foo \t", "foo \t"},
		{"f o o ", "f o o"},
	}
	for _, tt := range tests {
		if got := trimTrailingSpaces(tt.in); got != tt.want {
			t.Errorf("trimTrailingSpaces(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// escape returns a pattern that matches exactly the literal name s.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '*', '?', '[', '!', '#', ' ':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func FuzzMatch(f *testing.F) {
	for _, tc := range matchCases {
		for _, fl := range tc.files {
			for _, line := range fl.lines {
				for _, c := range tc.checks {
					f.Add(line, c.path, c.dir)
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, pat, path string, isDir bool) {
		m := New()
		m.AddPatterns("", strings.Split(pat, "\n"))
		m.AddPatterns("a", []string{pat})
		if err := m.AddFile("b/c", strings.NewReader(pat)); err != nil {
			t.Fatal(err)
		}
		m.Match(path, isDir)
		m.Match("a/"+path, isDir)
		m.Match("b/c/"+path, isDir)

		// A path with no empty elements is matched by its escaped self,
		// anchored or, for a single element, at any depth.
		if path == "" || strings.HasPrefix(path, "/") || strings.HasSuffix(path, "/") || strings.Contains(path, "//") {
			return
		}
		lit := New()
		lit.AddPatterns("", []string{"/" + escape(path)})
		if !lit.Match(path, isDir) {
			t.Fatalf("pattern %q does not match %q", "/"+escape(path), path)
		}
		neg := New()
		neg.AddPatterns("", []string{"*", "!/" + escape(path)})
		if neg.Match(path, isDir) {
			t.Fatalf("negated pattern %q does not re-include %q", "/"+escape(path), path)
		}
		if !strings.Contains(path, "/") {
			below := New()
			below.AddPatterns("x", []string{escape(path)})
			if !below.Match("x/y/"+path, isDir) {
				t.Fatalf("pattern %q does not match %q below its base", escape(path), "x/y/"+path)
			}
		}
	})
}

func BenchmarkMatch(b *testing.B) {
	m := New()
	m.AddPatterns("", []string{
		"*.o", "*.pyc", "__pycache__/", "node_modules/", ".cache/", "/Downloads/",
		"*~", ".*.swp", "target/", "**/build/**", "!important.o", "/.local/share/Trash/",
		"*.tmp", "[Tt]humbs.db", ".DS_Store", "go/pkg/", "*.iso",
	})
	m.AddPatterns("src/project", []string{"/vendor/", "*.log", "!keep.log"})
	paths := []string{
		"src/project/main.go", "src/project/internal/x/y/z.go", "Documents/report.pdf",
		".config/app/settings.json", "src/project/vendor", "music/a/b/c/d/e/f/song.flac",
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m.Match(paths[i%len(paths)], i%3 == 0)
	}
}
