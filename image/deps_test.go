package image

// The dependency direction of dvpc's top-level folders: image is the base;
// delta builds on image; overlay on delta and image; media and profiles on
// image alone; cmd may use them all. Folders named after no purpose (util,
// common, helpers) are not allowed anywhere.

import (
	"bytes"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const depModule = "github.com/dvpc/dvpc"

// depForbidden lists, for each top-level folder, the top-level folders of
// the module that no package below it may import.
var depForbidden = map[string][]string{
	"image":    {"delta", "overlay", "media", "profiles", "cmd"},
	"delta":    {"overlay", "media", "profiles", "cmd"},
	"overlay":  {"media", "profiles", "cmd"},
	"media":    {"delta", "overlay", "profiles", "cmd"},
	"profiles": {"delta", "overlay", "media", "cmd"},
}

// depBannedDirs are folder names that say nothing about what is inside.
var depBannedDirs = []string{"util", "common", "helpers"}

// depViolation says why the file at rel (slash-separated, relative to the
// repository root) may not import imp, or returns "" if it may.
func depViolation(rel, imp string) string {
	area, _, _ := strings.Cut(rel, "/")
	for _, bad := range depForbidden[area] {
		p := depModule + "/" + bad
		if imp == p || strings.HasPrefix(imp, p+"/") {
			return fmt.Sprintf("%s imports %s, but %s/... must not depend on %s/...", rel, imp, area, bad)
		}
	}
	return ""
}

// depBannedDir reports whether a folder may not have this name.
func depBannedDir(name string) bool { return slices.Contains(depBannedDirs, strings.ToLower(name)) }

// depScan checks every folder below root and every non-test Go file in its
// top-level folders. It returns the violations found.
func depScan(root string) ([]string, error) {
	var problems []string
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == "." {
				return nil
			}
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			if depBannedDir(d.Name()) {
				problems = append(problems, fmt.Sprintf("folder %s/: name folders after what they hold, not util, common or helpers", rel))
			}
			return nil
		}
		// The go tool ignores testdata and folders starting with . or _.
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") || !strings.Contains(rel, "/") {
			return nil
		}
		for _, part := range strings.Split(rel, "/") {
			if part == "testdata" || strings.HasPrefix(part, ".") || strings.HasPrefix(part, "_") {
				return nil
			}
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: cannot read its imports: %v", rel, err))
			return nil
		}
		for _, im := range f.Imports {
			imp, err := strconv.Unquote(im.Path.Value)
			if err != nil {
				return fmt.Errorf("%s: import %s: %w", rel, im.Path.Value, err)
			}
			if v := depViolation(rel, imp); v != "" {
				problems = append(problems, v)
			}
		}
		return nil
	})
	return problems, err
}

// depRepoRoot finds the repository root from the test's directory, image/.
func depRepoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatalf("repository root: %v", err)
	}
	if !bytes.HasPrefix(mod, []byte("module "+depModule+"\n")) {
		t.Fatalf("%s/go.mod is not module %s", root, depModule)
	}
	return root
}

func TestDependencyDirection(t *testing.T) {
	root := depRepoRoot(t)
	problems, err := depScan(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

func TestDependencyRule(t *testing.T) {
	const m = depModule + "/"
	cases := []struct {
		file, imp string
		bad       bool
	}{
		{"image/tree.go", m + "delta", true},
		{"image/tree.go", m + "overlay/mount", true},
		{"image/ignore/ignore.go", m + "cmd/dvpc", true},
		{"image/tree.go", m + "media", true},
		{"image/tree.go", m + "profiles", true},
		{"image/tree.go", m + "image/ignore", false},
		{"image/tree.go", m + "deltas", false}, // another folder, not delta/...
		{"image/tree.go", "github.com/other/delta", false},
		{"image/tree.go", "fmt", false},
		{"delta/delta.go", m + "image", false},
		{"delta/delta.go", m + "overlay", true},
		{"delta/x/y.go", m + "media", true},
		{"delta/delta.go", m + "profiles", true},
		{"delta/delta.go", m + "cmd/dvpc", true},
		{"overlay/overlay.go", m + "delta", false},
		{"overlay/overlay.go", m + "image", false},
		{"overlay/overlay.go", m + "internal/treecmp", false},
		{"overlay/overlay.go", m + "profiles", true},
		{"overlay/overlay.go", m + "media/usb", true},
		{"overlay/overlay.go", m + "cmd", true},
		{"media/media.go", m + "image", false},
		{"media/media.go", m + "delta", true},
		{"media/media.go", m + "overlay", true},
		{"media/media.go", m + "profiles", true},
		{"profiles/profiles.go", m + "image", false},
		{"profiles/profiles.go", m + "overlay", true},
		{"profiles/profiles.go", m + "delta", true},
		{"profiles/profiles.go", m + "media", true},
		{"cmd/dvpc/main.go", m + "overlay", false},
		{"cmd/dvpc/main.go", m + "profiles", false},
	}
	for _, c := range cases {
		if got := depViolation(c.file, c.imp) != ""; got != c.bad {
			t.Errorf("depViolation(%q, %q): violation %v, want %v", c.file, c.imp, got, c.bad)
		}
	}
	for name, bad := range map[string]bool{"util": true, "common": true, "helpers": true, "Util": true, "utils": false, "helper": false, "image": false} {
		if depBannedDir(name) != bad {
			t.Errorf("depBannedDir(%q) = %v, want %v", name, !bad, bad)
		}
	}
}

// TestDependencyScan runs the scan over a made-up repository that breaks
// each rule once, so TestDependencyDirection is known to be able to fail.
func TestDependencyScan(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"go.mod":                 "module " + depModule + "\n",
		"image/bad.go":           "package image\n\nimport _ \"" + depModule + "/delta\"\n",
		"image/ok.go":            "package image\n\nimport (\n\t\"fmt\"\n\t_ \"" + depModule + "/image/ignore\"\n)\n\nvar _ = fmt.Sprint\n",
		"image/bad_test.go":      "package image\n\nimport _ \"" + depModule + "/cmd/dvpc\"\n",
		"image/testdata/x.go":    "package x\n\nimport _ \"" + depModule + "/cmd/dvpc\"\n",
		"overlay/ok.go":          "package overlay\n\nimport _ \"" + depModule + "/delta\"\n",
		"overlay/sub/bad.go":     "package sub\n\nimport p \"" + depModule + "/profiles\"\n\nvar _ = p.X\n",
		"media/helpers/x.go":     "package helpers\n",
		"cmd/dvpc/main.go":       "package main\n\nimport _ \"" + depModule + "/media\"\n",
		"profiles/broken.go":     "package profiles\n\nimport (\n",
		"delta/util/README":      "",
		"notes/common/about.txt": "",
	}
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	problems, err := depScan(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"image/bad.go imports", "overlay/sub/bad.go imports", "folder media/helpers/", "folder delta/util/", "folder notes/common/", "profiles/broken.go: cannot read"}
	for _, w := range want {
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.HasPrefix(p, w) }) {
			t.Errorf("no problem reported for %q", w)
		}
	}
	if len(problems) != len(want) {
		t.Errorf("%d problems, want %d:\n%s", len(problems), len(want), strings.Join(problems, "\n"))
	}
}
