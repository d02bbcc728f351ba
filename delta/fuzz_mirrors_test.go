package delta

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzLoadMirrors reads hostile mirror lists (dvpc-mirrors.json on a
// damaged disk or in a copied store directory): LoadMirrors must return the
// list or an error, never panic; and a list it returns must save and load
// back unchanged.
//
//	go test -run '^$' -fuzz '^FuzzLoadMirrors$' -fuzztime 20s ./delta/
func FuzzLoadMirrors(f *testing.F) {
	m := Mirrors{Mirrors: []Mirror{
		{Name: "r0", URL: "127.0.0.1:5000/dvpc/home", Insecure: true, PushRate: 1e6, Pushed: "snap-00000003-0123456789ab"},
		{Name: "hub", URL: "registry.example/me/home", LastPush: time.Date(2026, 11, 5, 10, 0, 0, 0, time.FixedZone("", 3600)),
			LastError: "push: unauthorized", BadData: "2026-11-05", PullRate: 2.5e7},
	}}
	seed, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	for _, s := range []string{`{}`, `{"mirrors":null}`, `{"mirrors":[{}]}`, `{"mirrors":[{"last_push":"0000-01-01T00:00:00Z"}]}`,
		`{"mirrors":[{"last_push":"9999-12-31T23:59:59.999999999-23:59"}]}`, `{"mirrors":[{"pull_rate":1e309}]}`, `[]`, ``} {
		f.Add([]byte(s))
	}
	f.Add(seed[:len(seed)/2])

	in, out := f.TempDir(), f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(filepath.Join(in, MirrorsFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
		m, err := LoadMirrors(in)
		if err != nil {
			return
		}
		if err := m.Save(out); err != nil {
			t.Fatalf("a loaded mirror list does not save: %v", err)
		}
		m2, err := LoadMirrors(out)
		if err != nil {
			t.Fatalf("a saved mirror list does not load: %v", err)
		}
		b1, _ := json.Marshal(m)
		b2, _ := json.Marshal(m2)
		if !bytes.Equal(b1, b2) {
			t.Fatalf("mirror list changed on a round trip:\n%s\n%s", b1, b2)
		}
	})
}
