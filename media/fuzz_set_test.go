package media

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"testing/fstest"

	"github.com/dvpc/dvpc/image"
)

// FuzzSetListing reads hostile set listings (dvpc-set.json on a found
// disc): attaching the disc must refuse a listing it cannot use, and a
// listing it accepts must serve a union of the set's discs: which discs
// are missing, and the disc a missing blob is on, without panicking,
// hanging or allocating without bound.
//
//	go test -run '^$' -fuzz '^FuzzSetListing$' -fuzztime 20s ./media/
func FuzzSetListing(f *testing.F) {
	blob := image.DigestOf([]byte("pack"))
	seed, err := json.Marshal(SetListing{Label: "DVPC_2026", Discs: 3, Disc: 2, Packs: map[string]int{blob.Hex(): 3}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	for _, s := range []string{`{}`, `{"discs":1,"disc":1}`, `{"discs":2,"disc":3}`, `{"discs":2,"disc":1,"packs":{"00":-1}}`, `[]`, ``, `{"discs":9000000000000000000,"disc":1}`} {
		f.Add([]byte(s))
	}
	f.Add(seed[:len(seed)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		fsys := fstest.MapFS{
			StoreDir + "/oci-layout": {Data: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
			StoreDir + "/index.json": {Data: []byte(`{"schemaVersion":2,"manifests":[]}`)},
			SetFile:                  {Data: b},
		}
		m := &Medium{}
		if err := m.attachFS(fsys); err != nil {
			return
		}
		if m.Set == nil || m.Set.Disc < 1 || m.Set.Disc > m.Set.Discs {
			t.Fatalf("attached with set listing %+v", m.Set)
		}
		u := NewUnion([]image.Source{m.Store}, m.Set, []int{m.Set.Disc})
		if missing := u.Missing(); len(missing) != m.Set.Discs-1 {
			t.Fatalf("%d discs missing of a set of %d with one attached", len(missing), m.Set.Discs)
		}
		for hex := range m.Set.Packs {
			d, err := image.ParseDigest("sha256:" + hex)
			if err != nil {
				continue
			}
			_, err = u.OpenBlob(context.Background(), d)
			if !errors.Is(err, image.ErrNotFound) {
				t.Fatalf("blob %s of no disc attached: %v", d, err)
			}
		}
	})
}
