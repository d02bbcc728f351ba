//go:build linux

package main

import (
	"archive/tar"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/dvpc/dvpc/internal/regtest"
)

// greetSource is a static interpreter that exists only inside the app's
// image: it prints the greeting its own layer holds at /etc/greeting.
const greetSource = `package main

import (
	"fmt"
	"os"
	"strings"
)

func main() {
	b, err := os.ReadFile("/etc/greeting")
	if err != nil {
		fmt.Println("no greeting:", err)
		os.Exit(3)
	}
	wd, _ := os.Getwd()
	fmt.Printf("%s script=%s args=%s wd=%s\n", strings.TrimSpace(string(b)), os.Args[1], strings.Join(os.Args[2:], ","), wd)
}
`

// TestAppRunInItsOwnRoot: an app whose entrypoint is a script for an
// interpreter inside its image, reading a file of its own layer, runs in
// its own root file system (a user namespace and chroot), offline.
func TestAppRunInItsOwnRoot(t *testing.T) {
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "main.go"), []byte(greetSource), 0o644)
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module greet\n\ngo 1.22\n"), 0o644)
	bin := filepath.Join(src, "greet")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the interpreter: %v\n%s", err, out)
	}
	greet, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	reg := regtest.Start(t)
	ref := reg.Addr() + "/apps/rootfs:1"
	plat := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	layer := newLayer(t,
		tarEntry{hdr: tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755}},
		file("bin/greet", 0o755, greet),
		tarEntry{hdr: tar.Header{Name: "usr/", Typeflag: tar.TypeDir, Mode: 0o755}},
		tarEntry{hdr: tar.Header{Name: "usr/bin/", Typeflag: tar.TypeDir, Mode: 0o755}},
		file("usr/bin/hello.sh", 0o755, []byte("#!/bin/greet\n")),
		tarEntry{hdr: tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755}},
		file("etc/greeting", 0o644, []byte("hello from the app's own root\n")))
	img := ociImage(t, plat, []string{"/usr/bin/hello.sh"}, layer)
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}

	dir := t.TempDir()
	cli := newCLI(t, filepath.Join(dir, "store"), "rootfs app passphrase")
	cli.must("init", "--argon2-memory", "8")
	cli.must("app", "add", "rootfs", ref)
	cli.must("app", "install", "rootfs")
	reg.Stop() // app run needs no registry
	res := cli.must("app", "run", "rootfs", "--", "a", "b")
	want := "hello from the app's own root script=/usr/bin/hello.sh args=a,b wd=/\n"
	if res.stdout != want {
		t.Errorf("app run in its own root printed %q, want %q\n%s", res.stdout, want, res)
	}
	if _, err := os.Stat("/bin/greet"); err == nil || strings.Contains(res.stdout, "no greeting") {
		t.Errorf("the interpreter was found on this PC, not in the app's root")
	}
}
