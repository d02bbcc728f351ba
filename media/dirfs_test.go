//go:build unix

package media

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dvpc/dvpc/image"
)

// TestOpenDirRefusesLinksAndFIFOs reads an extracted medium in which one
// blob is a symbolic link to a file outside it (with the right bytes), one
// is a FIFO (which no one writes), and, in a second copy, the blob folder
// is a link: each read fails at once with ErrNotRegular, naming the file.
func TestOpenDirRefusesLinksAndFIFOs(t *testing.T) {
	storeDir, home := usbStore(t)
	root := t.TempDir()
	if err := os.CopyFS(filepath.Join(root, StoreDir), os.DirFS(storeDir)); err != nil {
		t.Fatal(err)
	}
	m, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	restoreEqual(t, m.Store, home) // untouched, it restores
	m.Close()

	blobs := filepath.Join(root, StoreDir, "blobs", "sha256")
	ents, err := os.ReadDir(blobs)
	if err != nil || len(ents) < 2 {
		t.Fatalf("blobs: %v %v", ents, err)
	}
	linked, fifo := ents[0].Name(), ents[1].Name()
	outside := filepath.Join(t.TempDir(), linked)
	if err := os.Rename(filepath.Join(blobs, linked), outside); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(blobs, linked)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(blobs, fifo)); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(blobs, fifo), 0o644); err != nil {
		t.Fatal(err)
	}
	// A second medium whose whole blob folder is a link to the first's.
	root2 := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root2, StoreDir, "blobs"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"oci-layout", "index.json"} {
		b, err := os.ReadFile(filepath.Join(root, StoreDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root2, StoreDir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(blobs, filepath.Join(root2, StoreDir, "blobs", "sha256")); err != nil {
		t.Fatal(err)
	}
	other := ents[len(ents)-1].Name()

	for _, c := range []struct {
		root, blob, want string
	}{
		{root, linked, "store/blobs/sha256/" + linked + ": a symbolic link: not a regular file"},
		{root, fifo, "store/blobs/sha256/" + fifo + ": a FIFO: not a regular file"},
		{root2, other, "store/blobs/sha256: a symbolic link: not a regular file"},
	} {
		m, err := Open(c.root)
		if err != nil {
			t.Fatal(err)
		}
		d, err := image.ParseDigest("sha256:" + c.blob)
		if err != nil {
			t.Fatal(err)
		}
		for _, op := range []string{"open", "stat"} {
			errc := make(chan error, 1)
			go func() {
				ctx := context.Background()
				if op == "stat" {
					_, err := m.Store.StatBlob(ctx, d)
					errc <- err
					return
				}
				b, err := m.Store.OpenBlob(ctx, d)
				if err == nil {
					b.Close()
				}
				errc <- err
			}()
			select {
			case err := <-errc:
				if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), c.want) {
					t.Errorf("%s blob %s: %v, want ErrNotRegular naming %q", op, c.blob, err, c.want)
				}
			case <-time.After(time.Minute):
				t.Fatalf("%s blob %s: still waiting after a minute (a FIFO opened for reading)", op, c.blob)
			}
		}
		m.Close()
	}
}
