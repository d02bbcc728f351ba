package media

import (
	"context"
	"path/filepath"
	"sort"
	"testing"

	"github.com/dvpc/dvpc/image"
	"github.com/dvpc/dvpc/internal/sourcetest"
)

// storeContent lays blobs and refs out as a medium's store, the blobs'
// bytes as they are.
func storeContent(t *testing.T, label string, blobs map[image.Digest][]byte, refs []image.Ref) Content {
	t.Helper()
	idx, err := image.IndexJSON(refs)
	if err != nil {
		t.Fatal(err)
	}
	c := Content{Label: label, ModTime: usbTestTime, Entries: []Entry{
		memEntry(StoreDir+"/oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)),
		memEntry(StoreDir+"/index.json", idx),
	}}
	for d, b := range blobs {
		c.Entries = append(c.Entries, memEntry(StoreDir+"/blobs/sha256/"+d.Hex(), b))
	}
	return c
}

func openMedium(t *testing.T, p string) image.Source {
	t.Helper()
	m, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m.Store
}

func writeISOStore(t *testing.T, blobs map[image.Digest][]byte, refs []image.Ref) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "store.iso")
	if err := WriteISO(context.Background(), out, storeContent(t, "DVPC_20261203", blobs, refs)); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestISOConformance(t *testing.T) {
	sourcetest.Run(t, func(t *testing.T, blobs map[image.Digest][]byte, refs []image.Ref) image.Source {
		return openMedium(t, writeISOStore(t, blobs, refs))
	})
}

func TestUSBConformance(t *testing.T) {
	sourcetest.Run(t, func(t *testing.T, blobs map[image.Digest][]byte, refs []image.Ref) image.Source {
		out := filepath.Join(t.TempDir(), "key.img")
		esp := Content{Label: USBESPLabel, ModTime: usbTestTime, Entries: []Entry{memEntry("README.txt", []byte("dvpc\r\n"))}}
		if err := WriteUSB(context.Background(), out, esp, storeContent(t, USBDataLabel, blobs, refs), 0); err != nil {
			t.Fatal(err)
		}
		return openMedium(t, out)
	})
}

// TestUnionConformance reads a set of two discs, each an ISO image with
// part of the blobs; the first holds the refs.
func TestUnionConformance(t *testing.T) {
	sourcetest.Run(t, func(t *testing.T, blobs map[image.Digest][]byte, refs []image.Ref) image.Source {
		ds := make([]image.Digest, 0, len(blobs))
		for d := range blobs {
			ds = append(ds, d)
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i].String() < ds[j].String() })
		halves := []map[image.Digest][]byte{{}, {}}
		for i, d := range ds {
			halves[i%2][d] = blobs[d]
		}
		parts := []image.Source{
			openMedium(t, writeISOStore(t, halves[0], refs)),
			openMedium(t, writeISOStore(t, halves[1], nil)),
		}
		return NewUnion(parts, &SetListing{Label: "DVPC_20261203", Discs: 2, Disc: 1, Packs: map[string]int{}}, []int{1, 2})
	})
}

// writeUSBStore writes a USB image holding blobs and refs and opens its
// store for writing in place.
func writeUSBStore(t *testing.T, blobs map[image.Digest][]byte, refs []image.Ref) *USBStore {
	t.Helper()
	out := filepath.Join(t.TempDir(), "key.img")
	esp := Content{Label: USBESPLabel, ModTime: usbTestTime, Entries: []Entry{memEntry("README.txt", []byte("dvpc\r\n"))}}
	if err := WriteUSB(context.Background(), out, esp, storeContent(t, USBDataLabel, blobs, refs), 0); err != nil {
		t.Fatal(err)
	}
	s, err := OpenUSBStore(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestUSBStoreConformance(t *testing.T) {
	sourcetest.Run(t, func(t *testing.T, blobs map[image.Digest][]byte, refs []image.Ref) image.Source {
		return writeUSBStore(t, blobs, refs)
	})
	sourcetest.RunStore(t, func(t *testing.T) image.Store {
		return writeUSBStore(t, nil, nil)
	})
}
