package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dvpc/dvpc/internal/regtest"
)

// TestWritesOnEveryKindOfStore runs every command that writes against
// every kind of --store. On a store directory each works; on a missing
// one each says the store is not found, and init creates it; on a medium
// (ISO file, USB image, extracted medium, disc set) or a mirror each is
// refused before it starts, says the store is read-only, exits with the
// usage code and leaves the medium as it was. `media iso|usb` only read the
// store, so they copy a medium or a mirror onto a new one.
func TestWritesOnEveryKindOfStore(t *testing.T) {
	osirrox := requireTool(t, "osirrox", "xorriso")
	reg := regtest.Start(t)
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	store := filepath.Join(dir, "store")
	const pass = "read-only test passphrase"
	cli := newCLI(t, store, pass)
	cli.must("init", "--argon2-memory", "8")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	randomFile(t, filepath.Join(home, "a.bin"), 1, 1<<20)
	cli.snapshot(home)
	randomFile(t, filepath.Join(home, "b.bin"), 2, 1<<20)
	cli.snapshot(home)
	mirror := reg.Addr() + "/dvpc/home"
	cli.must("mirror", "add", mirror, "--name", "m")
	cli.must("push")

	media := filepath.Join(dir, "media")
	iso := filepath.Join(media, "weekly.iso")
	usb := filepath.Join(media, "key.img")
	if err := os.Mkdir(media, 0o755); err != nil {
		t.Fatal(err)
	}
	cli.must("media", "iso", "--out", iso, "--no-clients")
	cli.must("media", "usb", "--out", usb, "--no-clients")
	extracted := filepath.Join(media, "extracted")
	if out, err := exec.Command(osirrox, "-indev", iso, "-extract", "/", extracted).CombinedOutput(); err != nil {
		t.Fatalf("osirrox -extract: %v\n%s", err, out)
	}
	set := strings.Fields(cli.must("media", "iso", "--out", filepath.Join(media, "set.iso"), "--capacity", "3M", "--span", "--no-clients").stdout)
	if len(set) < 2 {
		t.Fatalf("want a set of at least two discs, got %v", set)
	}

	kinds := []struct {
		name     string
		store    func(t *testing.T) string // a fresh --store for one command
		readOnly bool
		missing  bool
	}{
		{name: "directory", store: func(t *testing.T) string {
			s := filepath.Join(t.TempDir(), "store")
			copyStore(t, store, s)
			return s
		}},
		{name: "missing directory", missing: true, store: func(t *testing.T) string { return filepath.Join(t.TempDir(), "nothing-here") }},
		{name: "ISO file", readOnly: true, store: func(*testing.T) string { return iso }},
		{name: "USB image", readOnly: true, store: func(*testing.T) string { return usb }},
		{name: "extracted medium", readOnly: true, store: func(*testing.T) string { return extracted }},
		{name: "registry", readOnly: true, store: func(*testing.T) string { return registryPrefix + mirror }},
		{name: "disc set", readOnly: true, store: func(*testing.T) string { return strings.Join(set, ",") }},
	}
	out := func(t *testing.T, name string) string { return filepath.Join(t.TempDir(), name) }
	commands := []struct {
		name string
		args func(t *testing.T) []string
		// on a store directory, and on a missing one
		dirCode, missingCode int
		readsOnly            bool // works on media and mirrors too
	}{
		{name: "init", args: func(*testing.T) []string { return []string{"init", "--argon2-memory", "8"} }, dirCode: exitError, missingCode: exitOK},
		{name: "snapshot", args: func(*testing.T) []string { return []string{"snapshot", home} }, missingCode: exitNotFound},
		{name: "forget", args: func(*testing.T) []string { return []string{"forget", "--keep-last", "1"} }, missingCode: exitNotFound},
		{name: "prune", args: func(*testing.T) []string { return []string{"prune"} }, missingCode: exitNotFound},
		{name: "key passwd", args: func(*testing.T) []string { return []string{"key", "passwd"} }, missingCode: exitNotFound},
		{name: "mirror add", args: func(*testing.T) []string { return []string{"mirror", "add", reg.Addr() + "/dvpc/other"} }, missingCode: exitNotFound},
		{name: "mirror remove", args: func(*testing.T) []string { return []string{"mirror", "remove", "m"} }, missingCode: exitNotFound},
		{name: "mirror adopt", args: func(*testing.T) []string { return []string{"mirror", "adopt"} }, missingCode: exitNotFound},
		{name: "mirror heal", args: func(*testing.T) []string { return []string{"mirror", "heal"} }, missingCode: exitUsage}, // no mirrors
		{name: "push", args: func(*testing.T) []string { return []string{"push"} }, missingCode: exitNotFound},
		{name: "pull", args: func(*testing.T) []string { return []string{"pull"} }, missingCode: exitUsage}, // no mirrors
		{name: "media iso", readsOnly: true, missingCode: exitNotFound,
			args: func(t *testing.T) []string {
				return []string{"media", "iso", "--out", out(t, "copy.iso"), "--no-clients"}
			}},
		{name: "media usb", readsOnly: true, missingCode: exitNotFound,
			args: func(t *testing.T) []string {
				return []string{"media", "usb", "--out", out(t, "copy.img"), "--no-clients"}
			}},
	}
	for _, k := range kinds {
		for _, c := range commands {
			t.Run(k.name+"/"+c.name, func(t *testing.T) {
				s := k.store(t)
				d := newCLI(t, s, pass).with("DVPC_NEW_PASSPHRASE", "another passphrase")
				var before map[string]string
				if k.readOnly {
					before = treeState(t, media)
				}
				r := d.run(c.args(t)...)
				want := c.dirCode
				switch {
				case k.missing:
					want = c.missingCode
				case k.readOnly && !c.readsOnly:
					want = exitUsage
				}
				if r.code != want {
					t.Fatalf("want exit %d, got:\n%s", want, r)
				}
				if k.readOnly && !c.readsOnly {
					if !strings.Contains(r.stderr, "read-only") && !strings.Contains(r.stderr, "never writes") {
						t.Errorf("the refusal does not say the store is read-only:\n%s", r)
					}
					if strings.Contains(r.stderr, "not a directory") {
						t.Errorf("the refusal is a raw error:\n%s", r)
					}
					if strings.Count(r.stderr, "\n") != 2 || strings.Count(r.stderr, "hint: ") != 1 {
						t.Errorf("want one error line and one hint:\n%s", r)
					}
				}
				if k.missing && c.name != "init" && want == exitNotFound {
					if _, err := os.Lstat(s); err == nil {
						t.Errorf("%s created the missing store %s", c.name, s)
					}
				}
				if k.readOnly {
					requireSameState(t, "the media", before, treeState(t, media))
				}
			})
		}
	}
	// The registry mirror still holds the store, whole.
	cli.onStore(registryPrefix+mirror).must("verify", "--read-data")
}
