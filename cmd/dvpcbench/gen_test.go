//go:build linux

package main

import (
	"bytes"
	"compress/flate"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

func TestPlanShape(t *testing.T) {
	for _, size := range []int{16, 150, defaultSizeMiB, 4096} {
		for _, seed := range []uint64{1, 2, 99} {
			p := buildPlan(seed, size)
			want := int64(size) * mib
			if d := p.Bytes - want; d < -want/50 || d > want/50 {
				t.Errorf("size %d seed %d: %d bytes, want about %d", size, seed, p.Bytes, want)
			}
			seen := map[string]bool{}
			for _, f := range p.Files {
				if seen[f.Path] {
					t.Fatalf("size %d seed %d: %s twice", size, seed, f.Path)
				}
				seen[f.Path] = true
				if f.Size <= 0 {
					t.Errorf("size %d seed %d: %s has size %d", size, seed, f.Path, f.Size)
				}
			}
			for _, h := range p.Hardlinks {
				if !seen[h.Target] {
					t.Errorf("hard link %s to unknown %s", h.Path, h.Target)
				}
			}
			if !seen[p.BigDoc] || !seen[p.Largest] || len(p.Symlinks) < 5 || len(p.Hardlinks) < 2 || p.Dups < 5 || len(p.Projects) < 2 {
				t.Errorf("size %d seed %d: plan lacks something: bigdoc %v, %d symlinks, %d hard links, %d dups, %d projects",
					size, seed, seen[p.BigDoc], len(p.Symlinks), len(p.Hardlinks), p.Dups, len(p.Projects))
			}
			if size == defaultSizeMiB {
				var videos int
				for _, f := range p.Files {
					if strings.HasPrefix(f.Path, "Videos/") {
						videos++
						if f.Size < 20*mib || f.Size > 220*mib {
							t.Errorf("video %s of %d MiB", f.Path, f.Size/mib)
						}
					}
				}
				if videos < 3 || sizeOf(p, p.BigDoc) != 50*mib {
					t.Errorf("%d videos, big document of %d bytes", videos, sizeOf(p, p.BigDoc))
				}
			}
		}
	}
}

// TestDeterministic generates the same small home twice, and mutates both,
// and compares the trees: paths, types, modes, sizes, contents, mtimes,
// link targets and hard link counts.
func TestDeterministic(t *testing.T) {
	const size = 24
	o := manifestOpts{mode: true, mtime: true, nlink: true}
	var hashes, mutated []string
	var plans []*plan
	for i := range 2 {
		root := filepath.Join(t.TempDir(), "home")
		p, st, err := generate(root, 7, size)
		if err != nil {
			t.Fatal(err)
		}
		m, err := manifest(root)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, treeHash(m, o))
		plans = append(plans, p)
		if i == 0 {
			var n int
			var bytes int64
			for _, e := range m {
				if e.Type == 'f' {
					n++
					bytes += e.Size
				}
			}
			// Hard links appear as files of their own in the walk.
			if n != st.Files+st.Hardlinks {
				t.Errorf("%d files on disk, want %d", n, st.Files+st.Hardlinks)
			}
			if e := m[path.Dir(p.BigDoc)+"/"+path.Base(p.BigDoc)]; e.Type != 'f' {
				t.Errorf("big document missing")
			}
		}
		mut, err := mutate(root, p, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(mut.Edited) == 0 || len(mut.Appended) == 0 || len(mut.Deleted) == 0 || len(mut.Created) == 0 || mut.Middle == "" || mut.Renamed[0] == "" {
			t.Errorf("week of work lacks something: %+v", mut)
		}
		if _, err := os.Stat(filepath.Join(root, mut.Renamed[1])); err != nil {
			t.Error(err)
		}
		m2, err := manifest(root)
		if err != nil {
			t.Fatal(err)
		}
		mutated = append(mutated, treeHash(m2, o))
		if err := compareManifests(m, m2, o); err == nil {
			t.Errorf("mutation changed nothing")
		}
	}
	if hashes[0] != hashes[1] {
		t.Errorf("two generations differ: %s %s", hashes[0], hashes[1])
	}
	if mutated[0] != mutated[1] {
		t.Errorf("two mutations differ: %s %s", mutated[0], mutated[1])
	}
	root := filepath.Join(t.TempDir(), "home")
	if _, _, err := generate(root, 8, size); err != nil {
		t.Fatal(err)
	}
	m, err := manifest(root)
	if err != nil {
		t.Fatal(err)
	}
	if treeHash(m, o) == hashes[0] {
		t.Errorf("seeds 7 and 8 give the same home")
	}
}

// TestContentKinds checks that each kind of content is deterministic,
// has the size asked for and compresses as intended.
func TestContentKinds(t *testing.T) {
	buf := make([]byte, 0, mib)
	ratios := map[kind]float64{}
	for _, k := range []kind{kindGo, kindC, kindPython, kindText, kindLog, kindCSV, kindDoc, kindRandom} {
		var sb bytes.Buffer
		if err := writeContent(&sb, k, 300*kib, 5, buf); err != nil {
			t.Fatal(err)
		}
		if sb.Len() != 300*kib {
			t.Errorf("kind %d: %d bytes", k, sb.Len())
		}
		var again bytes.Buffer
		writeContent(&again, k, 300*kib, 5, buf)
		if !bytes.Equal(sb.Bytes(), again.Bytes()) {
			t.Errorf("kind %d is not deterministic", k)
		}
		var z bytes.Buffer
		zw, _ := flate.NewWriter(&z, flate.DefaultCompression)
		zw.Write(sb.Bytes())
		zw.Close()
		ratios[k] = float64(z.Len()) / float64(sb.Len())
	}
	for _, k := range []kind{kindGo, kindC, kindPython, kindText, kindLog, kindCSV} {
		if ratios[k] > 0.45 {
			t.Errorf("kind %d compresses to %.2f, want text-like", k, ratios[k])
		}
	}
	if r := ratios[kindDoc]; r < 0.5 || r > 0.85 {
		t.Errorf("documents compress to %.2f, want partly compressible", r)
	}
	if r := ratios[kindRandom]; r < 0.99 {
		t.Errorf("random content compresses to %.2f", r)
	}
	t.Logf("deflate ratios by kind: %v", ratios)
}
