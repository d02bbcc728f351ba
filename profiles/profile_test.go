package profiles

import (
	"errors"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func testResolved() *Resolved {
	h := func(c byte) v1.Hash {
		return v1.Hash{Algorithm: "sha256", Hex: repeat(c)}
	}
	return &Resolved{Ref: "127.0.0.1:5000/apps/hello:1", Digest: h('a'), Images: []Image{
		{Platform: Platform{OS: "linux", Arch: "amd64"}, Digest: h('b'), Entrypoint: []string{"/hello"},
			Meta: map[string]string{AnnotationSettings + "linux": "~/.config/hello", AnnotationBin + "hi": "/hello"}},
		{Platform: Platform{OS: "windows", Arch: "amd64"}, Digest: h('c'), Entrypoint: []string{"/hello.exe"}},
	}}
}

func repeat(c byte) string {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return string(b)
}

func TestProfileRoundTrip(t *testing.T) {
	a, err := NewApp("hello", testResolved(), nil, map[string]string{"windows": `%APPDATA%\hello`}, time.Unix(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	if a.Bins["hi"] != "/hello" || a.Settings["linux"] != "~/.config/hello" || a.Settings["windows"] != `%APPDATA%\hello` {
		t.Errorf("bins %v settings %v", a.Bins, a.Settings)
	}
	p := &Profile{}
	p.Set(a)
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ParseProfile(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := q.App("hello")
	if err != nil {
		t.Fatal(err)
	}
	pi, h, err := got.For(Platform{OS: "windows", Arch: "amd64"})
	if err != nil || h.Hex != repeat('c') || pi.Entrypoint[0] != "/hello.exe" {
		t.Errorf("windows image: %v %v %v", pi, h, err)
	}
	if _, _, err := got.For(Platform{OS: "linux", Arch: "riscv64"}); !errors.Is(err, ErrNoPlatform) {
		t.Errorf("riscv64: %v, want ErrNoPlatform", err)
	}
	if err := q.Remove("hello"); err != nil || len(q.Apps) != 0 {
		t.Errorf("remove: %v %v", err, q.Apps)
	}
	if err := q.Remove("hello"); !errors.Is(err, ErrNoApp) {
		t.Errorf("remove twice: %v", err)
	}
}

func TestParseProfileRefuses(t *testing.T) {
	for name, doc := range map[string]string{
		"newer":     `{"version":2,"apps":[]}`,
		"bad name":  `{"version":1,"apps":[{"name":"../x","ref":"r","digest":"sha256:` + repeat('a') + `","platforms":[{"platform":"linux/amd64","digest":"sha256:` + repeat('b') + `"}]}]}`,
		"no digest": `{"version":1,"apps":[{"name":"x","ref":"r","digest":"","platforms":[{"platform":"linux/amd64","digest":"sha256:` + repeat('b') + `"}]}]}`,
		"twice":     `{"version":1,"apps":[{"name":"x","ref":"r","digest":"sha256:` + repeat('a') + `","platforms":[{"platform":"linux/amd64","digest":"sha256:` + repeat('b') + `"}]},{"name":"x","ref":"r","digest":"sha256:` + repeat('a') + `","platforms":[{"platform":"linux/amd64","digest":"sha256:` + repeat('b') + `"}]}]}`,
		"bad bin":   `{"version":1,"apps":[{"name":"x","ref":"r","digest":"sha256:` + repeat('a') + `","bins":{"a/b":"/x"},"platforms":[{"platform":"linux/amd64","digest":"sha256:` + repeat('b') + `"}]}]}`,
		"garbage":   `{"version":`,
	} {
		if _, err := ParseProfile([]byte(doc)); !errors.Is(err, ErrProfile) {
			t.Errorf("%s: %v, want ErrProfile", name, err)
		}
	}
}

func FuzzParseProfile(f *testing.F) {
	p := &Profile{}
	a, _ := NewApp("hello", testResolved(), nil, nil, time.Unix(1, 0))
	p.Set(a)
	b, _ := p.Marshal()
	f.Add(b)
	f.Add([]byte(`{"version":1,"apps":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseProfile(b)
		if err != nil {
			return
		}
		out, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseProfile(out); err != nil {
			t.Fatalf("a profile that parsed does not parse again after Marshal: %v", err)
		}
	})
}
