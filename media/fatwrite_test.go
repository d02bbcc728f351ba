package media

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dvpc/dvpc/image"
	"github.com/dvpc/dvpc/internal/treecmp"
)

// usbWrite is one write a USBStore made.
type usbWrite struct {
	off int64
	b   []byte
}

// recordingDev writes through to the image and keeps every write.
type recordingDev struct {
	*os.File
	log *[]usbWrite
}

func (d recordingDev) WriteAt(b []byte, off int64) (int, error) {
	*d.log = append(*d.log, usbWrite{off, slices.Clone(b)})
	return d.File.WriteAt(b, off)
}

// copyToKey sends the key every blob of src's refs it lacks, then names
// them, as a push does.
func copyToKey(t testing.TB, ctx context.Context, src image.Source, key *USBStore) error {
	t.Helper()
	refs, err := src.Refs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := image.BlobsOf(ctx, src, refs)
	if err != nil {
		t.Fatal(err)
	}
	var lack []image.BlobRef
	for _, b := range blobs {
		if _, err := key.StatBlob(ctx, b.Digest); errors.Is(err, image.ErrNotFound) {
			lack = append(lack, b)
		}
	}
	if err := key.CheckRoom(ctx, lack); err != nil {
		return err
	}
	for _, b := range lack {
		r, err := src.OpenBlob(ctx, b.Digest)
		if err != nil {
			t.Fatal(err)
		}
		w, err := key.CreateBlob(ctx)
		if err != nil {
			return err
		}
		_, err = w.Write(mustRead(t, r))
		r.Close()
		if err != nil {
			w.Abort()
			return err
		}
		if _, _, err := w.Commit(ctx); err != nil {
			return err
		}
	}
	return key.UpdateRefs(ctx, func([]image.Ref) ([]image.Ref, error) { return refs, nil })
}

func mustRead(t testing.TB, b image.Blob) []byte {
	buf := make([]byte, b.Size())
	if _, err := b.ReadAt(buf, 0); err != nil && len(buf) > 0 {
		t.Fatal(err)
	}
	return buf
}

// keyHolds checks with OpenUSB that the image's index is one of want and
// that every blob it names is there intact, and returns which.
func keyHolds(t *testing.T, img string, want ...[]image.Ref) int {
	t.Helper()
	ctx := context.Background()
	u, err := OpenUSB(img)
	if err != nil {
		t.Fatalf("open the key: %v", err)
	}
	defer u.Close()
	src, err := image.OpenFSSource(u.FS(), StoreDir)
	if err != nil {
		t.Fatal(err)
	}
	refs, err := src.Refs(ctx)
	if err != nil {
		t.Fatalf("read the key's index: %v", err)
	}
	which := slices.IndexFunc(want, func(w []image.Ref) bool { return sameRefs(w, refs) })
	if which < 0 {
		t.Fatalf("the key's index names %d refs, none of the expected indexes", len(refs))
	}
	blobs, err := image.BlobsOf(ctx, src, refs)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		if err := image.VerifyBlob(ctx, src, b.Digest, b.Size); err != nil {
			t.Fatalf("blob %s: %v", b.Digest, err)
		}
	}
	return which
}

func sameRefs(a, b []image.Ref) bool {
	return slices.EqualFunc(a, b, func(x, y image.Ref) bool { return x.Name == y.Name && x.Desc.Digest == y.Desc.Digest })
}

// fsckNoLoss runs fsck.fat -n and accepts only what a write cut short may
// leave: clusters allocated but not yet named, FAT copies not yet alike,
// a free count marked unknown.
func fsckNoLoss(t *testing.T, part string) {
	t.Helper()
	out, err := exec.Command("fsck.fat", "-n", part).CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
		t.Fatalf("fsck.fat -n: %v\n%s", err, out)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		ok := l == "" || strings.HasPrefix(l, "fsck.fat ") || strings.Contains(l, " files, ") ||
			strings.HasPrefix(l, "Reclaimed ") || l == "FATs differ but appear to be intact." ||
			strings.TrimSpace(l) == "Using first FAT." || strings.HasPrefix(l, "Free cluster summary uninitialized") ||
			l == "Leaving filesystem unchanged."
		if !ok {
			t.Fatalf("fsck.fat -n reports %q:\n%s", l, out)
		}
	}
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "--sparse=always", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
}

// TestUSBStoreCutAtEveryWrite writes a second snapshot into a key in
// place, then replays the writes one at a time: after each, the key holds
// the old index or the new one with every blob it names intact, and
// fsck.fat finds nothing that loses data; after each step, nothing at all.
// A key cut short and opened again is mended and takes the rest.
func TestUSBStoreCutAtEveryWrite(t *testing.T) {
	needTool(t, "fsck.fat", "dosfstools")
	ctx := context.Background()
	storeDir, home := usbStore(t)
	esp, data := usbTestContent(t, storeDir)
	base := writeTestUSB(t, esp, data, 0)
	part := usbParts(t, base)[1]
	lay, err := image.OpenLayout(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	oldRefs, err := lay.Refs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A second snapshot: new files, one changed, one gone.
	if err := os.WriteFile(filepath.Join(home, "notes.txt"), []byte("changed on the road\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "docs/new.md"), bytes.Repeat([]byte("new "), 20000), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(home, "docs/empty")); err != nil {
		t.Fatal(err)
	}
	r, _, err := image.Open(ctx, lay, []byte("pass"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Snapshot(ctx, home, image.SnapshotOptions{}); err != nil {
		t.Fatal(err)
	}
	r.Close()
	newRefs, err := lay.Refs(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// The whole write, recorded, with the points where a step ends.
	full := filepath.Join(t.TempDir(), "full.img")
	copyFile(t, base, full)
	var log []usbWrite
	var steps []int
	key, err := openUSBStore(full, func(f fatDevice) fatDevice { return recordingDev{f.(*os.File), &log} })
	if err != nil {
		t.Fatal(err)
	}
	key.step = func(string) { steps = append(steps, len(log)) }
	if err := copyToKey(t, ctx, lay, key); err != nil {
		t.Fatal(err)
	}
	key.Close()
	t.Logf("%d writes in %d steps", len(log), len(steps))
	if len(steps) < 3 || len(log) < 10 {
		t.Fatalf("%d writes in %d steps: want a blob per step and the index", len(log), len(steps))
	}
	if keyHolds(t, full, oldRefs, newRefs) != 1 {
		t.Fatal("the key does not hold the new index after the write")
	}
	fsckClean(t, cutPart(t, full, part.start, part.size))

	// Replay the writes one by one.
	work := filepath.Join(t.TempDir(), "work.img")
	copyFile(t, base, work)
	f, err := os.OpenFile(work, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	resumeAt := map[int]bool{1: true, len(log) / 2: true, len(log) - 1: true}
	sawNew := false
	for n, w := range log {
		if _, err := f.WriteAt(w.b, w.off); err != nil {
			t.Fatal(err)
		}
		done := n + 1
		which := keyHolds(t, work, oldRefs, newRefs)
		if which == 1 {
			sawNew = true
		} else if sawNew {
			t.Fatalf("after write %d the key went back to the old index", done)
		}
		p := cutPart(t, work, part.start, part.size)
		if slices.Contains(steps, done) {
			fsckClean(t, p)
		} else {
			fsckNoLoss(t, p)
		}
		if resumeAt[done] {
			// Pulled out here: opened again, the key is mended and takes
			// the rest.
			again := filepath.Join(t.TempDir(), "again.img")
			copyFile(t, work, again)
			k, err := OpenUSBStore(again)
			if err != nil {
				t.Fatalf("reopen after write %d: %v", done, err)
			}
			fsckClean(t, cutPart(t, again, part.start, part.size))
			if err := copyToKey(t, ctx, lay, k); err != nil {
				t.Fatalf("finish after write %d: %v", done, err)
			}
			k.Close()
			if keyHolds(t, again, newRefs) != 0 {
				t.Fatal("unreachable")
			}
			fsckClean(t, cutPart(t, again, part.start, part.size))
		}
	}
	if !sawNew {
		t.Fatal("the replayed writes never gave the new index")
	}
	// mtools reads the key written in place, and it restores the new
	// snapshot.
	needTool(t, "mcopy", "mtools")
	loc := work + "@@" + strconv.FormatInt(part.start, 10)
	out := t.TempDir()
	if b, err := exec.Command("mcopy", "-s", "-i", loc, "::store", out).CombinedOutput(); err != nil {
		t.Fatalf("mcopy: %v\n%s", err, b)
	}
	copied, err := image.OpenLayout(filepath.Join(out, "store"))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := copied.Refs(ctx); !sameRefs(got, newRefs) {
		t.Fatal("mtools reads another index")
	}
	rr, _, err := image.Open(ctx, copied, []byte("pass"))
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Close()
	snaps, probs, err := rr.Snapshots(ctx)
	if err != nil || len(probs) > 0 || len(snaps) != 2 {
		t.Fatalf("snapshots: %v %v %v", snaps, probs, err)
	}
	newest := snaps[0]
	for _, sn := range snaps {
		if sn.Config.Seq > newest.Config.Seq {
			newest = sn
		}
	}
	to := filepath.Join(t.TempDir(), "out")
	if err := rr.Restore(ctx, newest, image.RestoreOptions{Target: to}); err != nil {
		t.Fatal(err)
	}
	if diffs, err := treecmp.Compare(home, to); err != nil || len(diffs) > 0 {
		t.Fatalf("restore differs: %v\n%s", err, treecmp.Format(diffs))
	}
}

// TestUSBStoreFull: blobs that do not fit are refused before anything is
// written, naming the blob and what is missing.
func TestUSBStoreFull(t *testing.T) {
	ctx := context.Background()
	esp, data := smallUSBContent()
	img := writeTestUSB(t, esp, data, 0)
	before := fileHash(t, img)
	key, err := OpenUSBStore(img)
	if err != nil {
		t.Fatal(err)
	}
	defer key.Close()
	free := key.Free()
	big := image.BlobRef{Digest: image.DigestOf([]byte("big")), Size: free}
	small := image.BlobRef{Digest: image.DigestOf([]byte("small")), Size: 1000}
	err = key.CheckRoom(ctx, []image.BlobRef{small, big})
	var full *KeyFullError
	if !errors.As(err, &full) || full.Blob != big.Digest || full.Free != free || full.Need <= free {
		t.Fatalf("CheckRoom: %v, want a KeyFullError naming %s", err, big.Digest)
	}
	if !strings.Contains(err.Error(), big.Digest.String()) || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("message %q does not say which blob and how much is missing", err)
	}
	if err := key.CheckRoom(ctx, []image.BlobRef{small}); err != nil {
		t.Fatalf("a small blob: %v", err)
	}
	if fileHash(t, img) != before {
		t.Fatal("a refused write changed the key")
	}
	// A blob written past the free space is refused and leaves nothing.
	w, err := key.CreateBlob(ctx)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for n := int64(0); n <= free && err == nil; n += int64(len(chunk)) {
		_, err = w.Write(chunk)
	}
	if !errors.As(err, &full) {
		t.Fatalf("writing past the free space: %v", err)
	}
	w.Abort()
	u, err := OpenUSB(img)
	if err != nil {
		t.Fatal(err)
	}
	u.Close()
	part := usbParts(t, img)[1]
	fsckClean(t, cutPart(t, img, part.start, part.size))
}

// TestUSBStoreReadOnly: an image marked read-only is named as such.
func TestUSBStoreReadOnly(t *testing.T) {
	esp, data := smallUSBContent()
	img := writeTestUSB(t, esp, data, 0)
	if err := os.Chmod(img, 0o444); err != nil {
		t.Fatal(err)
	}
	before := fileHash(t, img)
	_, err := OpenUSBStore(img)
	if !errors.Is(err, image.ErrReadOnly) || !strings.Contains(err.Error(), img) {
		t.Fatalf("OpenUSBStore of a read-only image: %v", err)
	}
	if fileHash(t, img) != before {
		t.Fatal("the read-only image changed")
	}
	// Not a USB image at all.
	other := filepath.Join(t.TempDir(), "x.img")
	if err := os.WriteFile(other, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenUSBStore(other); !errors.Is(err, ErrNotUSB) {
		t.Fatalf("OpenUSBStore of zeros: %v", err)
	}
}

// noSync leaves flushing out, for speed where no crash is simulated.
type noSync struct{ fatDevice }

func (noSync) Sync() error { return nil }

// FuzzUSBStoreWrite opens damaged data partitions for writing and writes a
// blob and an index into them: an error or a write, never a panic or a
// hang.
func FuzzUSBStoreWrite(f *testing.F) {
	img := tinyUSB(f)
	dataPart := img[34*512+128<<10 : 34*512+256<<10]
	f.Add(dataPart)
	f.Fuzz(func(t *testing.T, b []byte) {
		name := filepath.Join(t.TempDir(), "part.img")
		if err := os.WriteFile(name, b, 0o644); err != nil {
			t.Fatal(err)
		}
		fl, err := os.OpenFile(name, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer fl.Close()
		v, err := readFATVolume(fl, 0, int64(len(b)))
		if err != nil {
			return
		}
		s, err := openFATStore(name, fl, v, func(f fatDevice) fatDevice { return noSync{f} })
		if err != nil {
			return
		}
		ctx := context.Background()
		w, err := s.CreateBlob(ctx)
		if err != nil {
			return
		}
		if _, err := w.Write(bytes.Repeat([]byte("fuzz"), 700)); err != nil {
			w.Abort()
			return
		}
		if _, _, err := w.Commit(ctx); err != nil {
			return
		}
		s.UpdateRefs(ctx, func(r []image.Ref) ([]image.Ref, error) { return r, nil })
		exerciseFS(t, newFATFS(s.v))
	})
}

// TestUSBStoreEmptyKey: a key whose store has no blob yet gets its
// blobs/sha256 directory made, which fsck.fat and mtools accept.
func TestUSBStoreEmptyKey(t *testing.T) {
	ctx := context.Background()
	s := writeUSBStore(t, nil, nil)
	want := bytes.Repeat([]byte("first blob "), 500)
	d, err := image.PutBlob(ctx, s, image.ManifestType, want)
	if err != nil {
		t.Fatal(err)
	}
	ref := image.Ref{Name: "a", Desc: d}
	if err := s.UpdateRefs(ctx, func([]image.Ref) ([]image.Ref, error) { return []image.Ref{ref}, nil }); err != nil {
		t.Fatal(err)
	}
	part := usbParts(t, s.path)[1]
	fsckClean(t, cutPart(t, s.path, part.start, part.size))
	dg, _ := image.DigestFromHash(d.Digest)
	out, err := exec.Command("mtype", "-i", s.path+"@@"+strconv.FormatInt(part.start, 10), "::store/blobs/sha256/"+dg.Hex()).CombinedOutput()
	if err != nil || !bytes.Equal(out, want) {
		t.Fatalf("mtype the blob: %v\n%.200s", err, out)
	}
	u, err := OpenUSB(s.path)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	src, err := image.OpenFSSource(u.FS(), StoreDir)
	if err != nil {
		t.Fatal(err)
	}
	if refs, err := src.Refs(ctx); err != nil || !sameRefs(refs, []image.Ref{ref}) {
		t.Fatalf("refs read back: %v %v", refs, err)
	}
	if got, err := image.ReadBlob(ctx, src, dg, d.Size); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("blob read back: %v", err)
	}
}

// TestUSBStoreOneWriter: a key open for writing cannot be opened for
// writing again until it is closed.
func TestUSBStoreOneWriter(t *testing.T) {
	s := writeUSBStore(t, nil, nil)
	if _, err := OpenUSBStore(s.path); err == nil || !strings.Contains(err.Error(), "another dvpc") {
		t.Fatalf("a second writer: %v", err)
	}
	s.Close()
	again, err := OpenUSBStore(s.path)
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	again.Close()
}

// TestUSBStoreReplacesDamagedBlob: committing a blob whose copy on the key
// is damaged writes a good copy and frees the bad one.
func TestUSBStoreReplacesDamagedBlob(t *testing.T) {
	ctx := context.Background()
	s := writeUSBStore(t, nil, nil)
	want := bytes.Repeat([]byte("a blob that gets damaged "), 400)
	desc, err := image.PutBlob(ctx, s, image.ManifestType, want)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := image.DigestFromHash(desc.Digest)
	e, err := s.lookup("store/blobs/sha256/" + d.Hex())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.f.WriteAt([]byte("XX"), s.v.clusterOff(e.cluster)+100); err != nil {
		t.Fatal(err)
	}
	var de *image.DigestError
	if err := image.VerifyBlob(ctx, s, d, int64(len(want))); !errors.As(err, &de) {
		t.Fatalf("the damaged blob verifies: %v", err)
	}
	if _, err := image.PutBlob(ctx, s, image.ManifestType, want); err != nil {
		t.Fatal(err)
	}
	if err := image.VerifyBlob(ctx, s, d, int64(len(want))); err != nil {
		t.Fatalf("after a new copy: %v", err)
	}
	e2, err := s.lookup("store/blobs/sha256/" + d.Hex())
	if err != nil || e2.cluster == e.cluster {
		t.Fatalf("the blob's entry still names cluster %d: %v", e.cluster, err)
	}
	if s.get(e.cluster) != 0 {
		t.Errorf("the damaged copy's cluster %d is not freed", e.cluster)
	}
	part := usbParts(t, s.path)[1]
	fsckClean(t, cutPart(t, s.path, part.start, part.size))
}
