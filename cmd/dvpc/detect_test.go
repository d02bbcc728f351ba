package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// A partition named DVPC, a disc volume DVPC_*, and a mounted medium are
// found; other disks and mount points are not.
func TestFindMedia(t *testing.T) {
	dir := t.TempDir()
	disks := filepath.Join(dir, "disk")
	for _, d := range []string{"by-partlabel", "by-label"} {
		if err := os.MkdirAll(filepath.Join(disks, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dev := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key, disc, other := dev("sdb2"), dev("sr0"), dev("sda1")
	for link, target := range map[string]string{
		"by-partlabel/DVPC": key, "by-label/DVPC_2026W48": disc, "by-partlabel/EFI": other, "by-label/DATA": other,
	} {
		if err := os.Symlink(target, filepath.Join(disks, link)); err != nil {
			t.Fatal(err)
		}
	}
	mounted := filepath.Join(dir, "media", "key")
	if err := os.MkdirAll(filepath.Join(mounted, "store"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mounted, "store", "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "media", "photos")
	os.MkdirAll(plain, 0o755)
	mounts := filepath.Join(dir, "mounts")
	table := "/dev/sda1 / ext4 rw 0 0\n/dev/sdc1 " + mounted + " vfat rw 0 0\n/dev/sdd1 " + plain + " vfat rw 0 0\n" + key + " /media/k vfat rw 0 0\n"
	if err := os.WriteFile(mounts, []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	got := findMedia(disks, mounts)
	want := []string{key, disc, mounted}
	if !slices.Equal(got, want) {
		t.Errorf("found %v, want %v", got, want)
	}
}
