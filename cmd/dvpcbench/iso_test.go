//go:build linux

package main

import (
	"maps"
	"strings"
	"testing"
)

func TestCompareISOTree(t *testing.T) {
	file := func(size int64, b byte) entry { return entry{Type: 'f', Size: size, Sum: [32]byte{b}, Mode: 0o600} }
	dir := entry{Type: 'd', Mode: 0o700}
	store := map[string]entry{
		"oci-layout":          file(30, 1),
		"index.json":          file(900, 2),
		"blobs":               dir,
		"blobs/sha256":        dir,
		"blobs/sha256/aa":     file(5000, 3),
		"blobs/sha256/bb":     file(7000, 4),
		".dvpc-tmp":           dir,
		".dvpc-tmp/partial":   file(10, 5),
		".dvpc-tmp.lock":      file(0, 6),
		"blobs/.dvpc-tmp-xyz": file(3, 7),
		"dvpc-mirrors.json":   file(200, 11),
		"dvpc-state.json":     file(300, 12),
	}
	// What osirrox takes out of a good image: other modes and mtimes.
	good := map[string]entry{
		"index.html": {Type: 'f', Size: 2700, Sum: [32]byte{8}, Mode: 0o644, MTime: 5},
		"README.txt": {Type: 'f', Size: 600, Sum: [32]byte{9}, Mode: 0o644, MTime: 5},
		"store":      {Type: 'd', Mode: 0o755},
	}
	for p, e := range store {
		if !isWorkingFile(p) {
			e.Mode |= 0o044
			e.MTime = 1234
			good["store/"+p] = e
		}
	}
	files, bytes, err := compareISOTree(store, good)
	if err != nil || files != 6 || bytes != 2700+600+30+900+5000+7000 {
		t.Errorf("good tree: %d files, %d bytes, %v", files, bytes, err)
	}

	for _, c := range []struct {
		name string
		edit func(m map[string]entry)
		want string
	}{
		{"missing blob", func(m map[string]entry) { delete(m, "store/blobs/sha256/bb") }, "missing store/blobs/sha256/bb"},
		{"other content", func(m map[string]entry) { m["store/blobs/sha256/aa"] = file(5000, 99) }, "differs store/blobs/sha256/aa"},
		{"other size", func(m map[string]entry) { m["store/index.json"] = file(901, 2) }, "differs store/index.json"},
		{"extra file", func(m map[string]entry) { m["dvpc/dvpc-linux-amd64"] = file(9e6, 10) }, "extra dvpc/dvpc-linux-amd64"},
		{"working file carried", func(m map[string]entry) { m["store/.dvpc-tmp.lock"] = file(0, 6) }, "extra store/.dvpc-tmp.lock"},
		{"trust state carried", func(m map[string]entry) { m["store/dvpc-state.json"] = file(300, 12) }, "extra store/dvpc-state.json"},
		{"no page", func(m map[string]entry) { delete(m, "README.txt") }, "missing README.txt"},
		{"page not a file", func(m map[string]entry) { m["index.html"] = dir }, "differs index.html"},
		{"no store", func(m map[string]entry) {
			for p := range m {
				if strings.HasPrefix(p, "store") {
					delete(m, p)
				}
			}
		}, "missing store"},
	} {
		tree := maps.Clone(good)
		c.edit(tree)
		_, _, err := compareISOTree(store, tree)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %q", c.name, err, c.want)
		}
	}
}

func TestISOCheck(t *testing.T) {
	const gib = 1 << 30
	for _, c := range []struct {
		same          string
		dvpc, xorriso int64
		ok            bool
	}{
		{"ok", gib, gib, true},
		{"ok", gib + isoSizeSlack, gib, true},
		{"ok", gib, gib + isoSizeSlack, true},
		{"ok", gib + isoSizeSlack + 1, gib, false},
		{"ok", gib, gib + isoSizeSlack + 1, false},
		{"1 differences: missing store/index.json", gib, gib, false},
	} {
		got := isoCheck(c.same, c.dvpc, c.xorriso)
		if (got == "ok") != c.ok || (!c.ok && !strings.HasPrefix(got, "MISMATCH: ")) {
			t.Errorf("isoCheck(%q, %d, %d) = %q", c.same, c.dvpc, c.xorriso, got)
		}
	}
}

// TestTables checks that the tables name one another consistently.
func TestTables(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range stages {
		if s.global == nil {
			stepByName(s.step) // panics if missing
			seen[s.step] = true
		}
	}
	for _, s := range steps {
		if !seen[s.name] {
			t.Errorf("step %s is in no stage", s.name)
		}
		for _, n := range s.needs {
			stepByName(n)
		}
		for _, i := range s.registries {
			if i < 0 || i >= nRegistries {
				t.Errorf("step %s: no registry %d", s.name, i)
			}
		}
	}
	for _, l := range limits {
		if l.figure != nil { // computed: runs nothing
			if l.stage != "" || l.cmd != nil || l.needs != "" || l.bins != nil {
				t.Errorf("limit %s: a figure and a command", l.name)
			}
			continue
		}
		found := false
		for _, s := range stages {
			found = found || (s.global != nil && s.name == l.stage)
		}
		if !found || l.cmd == nil {
			t.Errorf("limit %s: no stage %q, or no command", l.name, l.stage)
		}
		if l.needs != "" {
			stepByName(l.needs)
		}
		for _, bin := range l.bins {
			if _, ok := debianPackages[bin]; !ok && bin != "tar" {
				t.Errorf("limit %s runs %s, which has no Debian package", l.name, bin)
			}
		}
	}
	keys := map[string]bool{}
	for _, r := range rows {
		if keys[r.key] {
			t.Errorf("row %s twice", r.key)
		}
		keys[r.key] = true
		if (r.value == nil) == (r.text == nil) {
			t.Errorf("row %s: want one of value and text", r.key)
		}
	}
	for _, s := range steps {
		for _, bin := range s.bins {
			if _, ok := debianPackages[bin]; !ok {
				t.Errorf("step %s runs %s, which has no Debian package", s.name, bin)
			}
		}
	}
	for _, a := range aims {
		rowByKey(a.key) // panics if missing
		if a.bound == nil {
			t.Errorf("aim %q has no bound", a.label)
		}
	}
}
