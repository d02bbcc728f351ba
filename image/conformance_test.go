package image_test

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/dvpc/dvpc/image"
	"github.com/dvpc/dvpc/internal/sourcetest"
)

func newLayout(t *testing.T) image.Store {
	lay, err := image.InitLayout(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	return lay
}

func TestLayoutConformance(t *testing.T) {
	sourcetest.Run(t, func(t *testing.T, blobs map[image.Digest][]byte, refs []image.Ref) image.Source {
		return sourcetest.Layout(t, filepath.Join(t.TempDir(), "store"), blobs, refs)
	})
	sourcetest.RunStore(t, newLayout)
}

func TestFSSourceConformance(t *testing.T) {
	sourcetest.Run(t, func(t *testing.T, blobs map[image.Digest][]byte, refs []image.Ref) image.Source {
		lay := sourcetest.Layout(t, filepath.Join(t.TempDir(), "store"), blobs, refs)
		src, err := image.OpenFSSource(os.DirFS(filepath.Dir(lay.Root())), filepath.Base(lay.Root()))
		if err != nil {
			t.Fatal(err)
		}
		return src
	})
}

// split deals blobs out to n maps, in digest order.
func split(blobs map[image.Digest][]byte, n int) []map[image.Digest][]byte {
	ds := make([]image.Digest, 0, len(blobs))
	for d := range blobs {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].String() < ds[j].String() })
	out := make([]map[image.Digest][]byte, n)
	for i := range out {
		out[i] = map[image.Digest][]byte{}
	}
	for i, d := range ds {
		out[i%n][d] = blobs[d]
	}
	return out
}

func TestStackConformance(t *testing.T) {
	sourcetest.Run(t, func(t *testing.T, blobs map[image.Digest][]byte, refs []image.Ref) image.Source {
		parts := split(blobs, 3)
		local := sourcetest.Layout(t, filepath.Join(t.TempDir(), "store"), parts[0], refs)
		return image.Stack(local, sourcetest.Layout(t, filepath.Join(t.TempDir(), "store"), parts[1], nil), image.Named("dvd", sourcetest.Layout(t, filepath.Join(t.TempDir(), "store"), parts[2], nil)))
	})
	sourcetest.RunStore(t, func(t *testing.T) image.Store {
		return image.Stack(newLayout(t), newLayout(t))
	})
}
