package ignore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// walkIgnored reports whether a walk from the root that does not descend
// into excluded directories leaves out rel. That is what git check-ignore
// reports, since it also counts a path inside an excluded directory.
func walkIgnored(m *Matcher, rel string, isDir bool) bool {
	for i := 0; i < len(rel); i++ {
		if rel[i] == '/' && m.Match(rel[:i], true) {
			return true
		}
	}
	return m.Match(rel, isDir)
}

// TestMatchAgreesWithGit builds every case of matchCases in a scratch git
// work tree, asks git check-ignore about each path and compares its answer
// with the Matcher's. It needs git and fails without it.
func TestMatchAgreesWithGit(t *testing.T) {
	git, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("git is needed to cross-check the matcher against git check-ignore: %v", err)
	}
	repo := t.TempDir()
	env := append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL="+os.DevNull,
		"HOME="+repo,
		"XDG_CONFIG_HOME="+repo,
		"LC_ALL=C",
	)
	initCmd := exec.Command(git, "init", "-q", repo)
	initCmd.Env = env
	if out, err := initCmd.CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}

	type row struct {
		tc   *matchCase
		c    check
		want bool
	}
	rows := map[string]row{} // by path in the work tree
	var stdin bytes.Buffer
	for i := range matchCases {
		tc := &matchCases[i]
		if tc.notGit != "" {
			continue
		}
		m := newMatcher(tc.files)
		ignoreFiles := map[string][]string{}
		for _, fl := range tc.files {
			ignoreFiles[fl.base] = append(ignoreFiles[fl.base], fl.lines...)
		}
	checks:
		for j, c := range tc.checks {
			for base := range ignoreFiles {
				if !c.dir && base != "" && (base == c.path || strings.HasPrefix(base, c.path+"/")) {
					continue checks // the path would have to be a directory
				}
			}
			dir := fmt.Sprintf("r%d_%d", i, j)
			for base, lines := range ignoreFiles {
				bdir := filepath.Join(repo, dir, filepath.FromSlash(base))
				if err := os.MkdirAll(bdir, 0o755); err != nil {
					t.Fatal(err)
				}
				content := strings.Join(lines, "\n") + "\n"
				if err := os.WriteFile(filepath.Join(bdir, ".gitignore"), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			full := filepath.Join(repo, dir, filepath.FromSlash(c.path))
			if c.dir {
				err = os.MkdirAll(full, 0o755)
			} else if err = os.MkdirAll(filepath.Dir(full), 0o755); err == nil {
				err = os.WriteFile(full, nil, 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
			p := dir + "/" + c.path
			rows[p] = row{tc: tc, c: c, want: walkIgnored(m, c.path, c.dir)}
			stdin.WriteString(p)
			stdin.WriteByte(0)
		}
	}

	cmd := exec.Command(git, "check-ignore", "--no-index", "--stdin", "-z", "--verbose", "--non-matching")
	cmd.Dir = repo
	cmd.Env = env
	cmd.Stdin = &stdin
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
		t.Fatalf("git check-ignore: %v\n%s", err, stderr.Bytes())
	}
	// Records are source, line number, pattern and path, each ended by NUL.
	fields := strings.Split(string(out), "\x00")
	if len(fields)%4 != 1 || fields[len(fields)-1] != "" {
		t.Fatalf("git check-ignore printed %d fields, want 4 per path", len(fields)-1)
	}
	seen := 0
	for k := 0; k+4 <= len(fields); k += 4 {
		pat, p := fields[k+2], fields[k+3]
		r, ok := rows[p]
		if !ok {
			t.Errorf("git check-ignore reported unknown path %q", p)
			continue
		}
		seen++
		gitIgnored := pat != "" && !strings.HasPrefix(pat, "!")
		if gitIgnored != r.want {
			t.Errorf("%s: %q (dir=%v): git says ignored=%v (source %q line %s pattern %q), matcher says %v",
				r.tc.name, r.c.path, r.c.dir, gitIgnored, fields[k], fields[k+1], pat, r.want)
		}
	}
	if seen != len(rows) {
		t.Errorf("git check-ignore answered for %d of %d paths", seen, len(rows))
	}
	t.Logf("compared %d paths with git check-ignore", seen)
}
