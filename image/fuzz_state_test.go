package image

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadState reads hostile trust states (dvpc-state.json, which a
// damaged disk or a copied store directory may hold): LoadState must
// return the state or an error wrapping ErrFormat, never panic; and a state
// it returns must write and read back unchanged.
//
//	go test -run '^$' -fuzz '^FuzzLoadState$' -fuzztime 20s ./image/
func FuzzLoadState(f *testing.F) {
	st := newState()
	st.StoreID, st.HighSeq = "store-1", 7
	h := HomeID{1, 2, 3}
	st.Heads[HomeID{}] = []StateHead{{Manifest: testDigest("a"), Seq: 3}}
	st.Heads[h] = []StateHead{{Manifest: testDigest("b"), Seq: 6}, {Manifest: testDigest("c"), Seq: 7}}
	st.Forgotten = []Signed{{Manifest: testDigest("d"), Seq: 5, Home: h, Parents: []Digest{testDigest("a")}}}
	seed, err := json.Marshal(st)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	for _, s := range []string{`{}`, `{"version":1}`, `{"version":2}`, `{"version":1,"heads":null}`,
		`{"version":1,"heads":{"zz":[]}}`, `{"version":1,"forgotten":[{"manifest":"sha256:00"}]}`, `[]`, ``} {
		f.Add([]byte(s))
	}
	f.Add(seed[:len(seed)/2])

	dir := f.TempDir()
	l, err := InitLayout(dir)
	if err != nil {
		f.Fatal(err)
	}
	path := filepath.Join(dir, StateFile)
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := l.LoadState()
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error without ErrFormat: %v", err)
			}
			return
		}
		if st.Version != 1 || st.Heads == nil {
			t.Fatalf("loaded state version %d, heads %v", st.Version, st.Heads)
		}
		again, err := json.Marshal(st)
		if err != nil {
			t.Fatalf("marshal a loaded state: %v", err)
		}
		if err := os.WriteFile(path, again, 0o600); err != nil {
			t.Fatal(err)
		}
		st2, err := l.LoadState()
		if err != nil {
			t.Fatalf("a written state does not load: %v\n%s", err, again)
		}
		if third, _ := json.Marshal(st2); !bytes.Equal(again, third) {
			t.Fatalf("state changed on a round trip:\n%s\n%s", again, third)
		}
	})
}
