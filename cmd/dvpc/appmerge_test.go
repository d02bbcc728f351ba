package main

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// appLayout writes a one-image OCI layout for linux/amd64 holding a tool
// that prints what, and returns the layout's directory.
func appLayout(t *testing.T, what string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), what)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	img := ociImage(t, v1.Platform{OS: "linux", Architecture: "amd64"}, []string{"/app/" + what},
		newLayer(t, file("app/"+what, 0o755, []byte("#!/bin/sh\necho "+what+"\n"))))
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	return dir
}

func appNames(t *testing.T, cli *dvpcCLI) []string {
	t.Helper()
	var names []string
	for _, e := range appList(t, cli) {
		names = append(names, e.Name)
	}
	slices.Sort(names)
	return names
}

// TestAppProfileMergesBetweenPCs: two PCs log in from the same snapshot;
// one adds an app, the other adds another and removes one. After both
// sync, in either order, both PCs' profiles hold the union, without the
// removed app, and a third PC logging in afterwards sees the same.
func TestAppProfileMergesBetweenPCs(t *testing.T) {
	for _, order := range []string{"pc1-first", "pc2-first"} {
		t.Run(order, func(t *testing.T) {
			h := newHomePC(t, 1)
			h.cli.must("app", "add", "keep", "oci:"+appLayout(t, "keep"))
			h.cli.must("app", "add", "drop", "oci:"+appLayout(t, "drop"))
			h.cli.snapshot(h.home)
			h.cli.must("push")
			url := h.proxies[0].addr + "/dvpc/home"
			pc1, pc2 := h.strangePC(t, "pc1").with("DVPC_HOST", "pc1"), h.strangePC(t, "pc2").with("DVPC_HOST", "pc2")
			d1, d2 := filepath.Join(t.TempDir(), "w1"), filepath.Join(t.TempDir(), "w2")
			pc1.must("login", "--no-apps", "--mirror", url, "--to", d1)
			pc2.must("login", "--no-apps", "--mirror", url, "--to", d2)

			// Only the profiles change: no file is edited.
			pc1.must("app", "add", "one", "oci:"+appLayout(t, "one"))
			pc2.must("app", "add", "two", "oci:"+appLayout(t, "two"))
			pc2.must("app", "remove", "drop")

			first, second, fd, sd := pc1, pc2, d1, d2
			if order == "pc2-first" {
				first, second, fd, sd = pc2, pc1, d2, d1
			}
			first.must("sync", fd)
			second.must("sync", sd)
			first.must("sync", fd)
			// Converged: taking the other's profile is no change.
			for _, c := range []struct {
				pc  *dvpcCLI
				dir string
			}{{second, sd}, {first, fd}} {
				if r := c.pc.must("sync", c.dir); !strings.Contains(r.stderr, "nothing changed") {
					t.Errorf("a sync after both converged made a snapshot:\n%s", r)
				}
			}

			want := []string{"keep", "one", "two"}
			for i, pc := range []*dvpcCLI{pc1, pc2} {
				if got := appNames(t, pc); !slices.Equal(got, want) {
					t.Errorf("pc%d's apps after the syncs: %v, want %v", i+1, got, want)
				}
			}
			pc3 := h.strangePC(t, "pc3")
			pc3.must("login", "--no-apps", "--mirror", url, "--to", filepath.Join(t.TempDir(), "w3"))
			if got := appNames(t, pc3); !slices.Equal(got, want) {
				t.Errorf("a new PC's apps after the syncs: %v, want %v", got, want)
			}
		})
	}
}

// TestAppProfileFollowsLogin: a PC whose store has a profile of its own
// logs in to a snapshot another PC made after adding an app: the app is in
// its list, a sync with nothing changed makes no snapshot, and an app it
// added meanwhile, never snapshotted, is kept beside the other PC's.
func TestAppProfileFollowsLogin(t *testing.T) {
	h := newHomePC(t, 1)
	h.cli.must("app", "add", "keep", "oci:"+appLayout(t, "keep"))
	h.cli.snapshot(h.home)
	h.cli.must("push")
	url := h.proxies[0].addr + "/dvpc/home"
	pc := h.strangePC(t, "pc").with("DVPC_HOST", "pc")
	d := filepath.Join(t.TempDir(), "w")
	pc.must("login", "--no-apps", "--mirror", url, "--to", d)
	pc.must("app", "add", "one", "oci:"+appLayout(t, "one"))
	pc.must("sync", d)

	// The home PC added an app it has not snapshotted yet.
	h.cli.must("app", "add", "local", "oci:"+appLayout(t, "local"))
	dh := filepath.Join(t.TempDir(), "wh")
	h.cli.must("login", "--no-apps", "--mirror", url, "--to", dh)
	if got, want := appNames(t, h.cli), []string{"keep", "local", "one"}; !slices.Equal(got, want) {
		t.Errorf("the home PC's apps after its login: %v, want %v", got, want)
	}
	h.cli.must("sync", dh)
	pc.must("sync", d)
	if got, want := appNames(t, pc), []string{"keep", "local", "one"}; !slices.Equal(got, want) {
		t.Errorf("the other PC's apps after both synced: %v, want %v", got, want)
	}

	// A login where every change is already recorded takes the profile as
	// it is: the next sync has nothing to write.
	pc2 := h.strangePC(t, "pc2")
	d2 := filepath.Join(t.TempDir(), "w2")
	pc2.must("login", "--no-apps", "--mirror", url, "--to", d2)
	if r := pc2.must("sync", d2); !strings.Contains(r.stderr, "nothing changed") {
		t.Errorf("a sync right after a login made a snapshot:\n%s", r)
	}
}
