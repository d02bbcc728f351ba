package image

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	r, _ := newTestRepo(t)
	home := mkhome(t)
	s, st := mustSnapshot(t, r, home, SnapshotOptions{})
	if st.Files == 0 || st.Errors != 0 {
		t.Fatalf("stats %+v", st)
	}
	mustRestoreEqual(t, r, s, home)
}

func TestRoundTripFromFreshOpen(t *testing.T) {
	r, lay := newTestRepo(t)
	home := mkhome(t)
	mustSnapshot(t, r, home, SnapshotOptions{})
	r2 := reopen(t, lay)
	snaps, probs, err := r2.Snapshots(context.Background())
	if err != nil || len(probs) > 0 || len(snaps) != 1 {
		t.Fatalf("snapshots %v, problems %v, err %v", snaps, probs, err)
	}
	mustRestoreEqual(t, r2, snaps[0], home)
}

func seededBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func newBlobs(before, after map[string]int64) (n int, bytes int64) {
	for k, v := range after {
		if _, ok := before[k]; !ok {
			n++
			bytes += v
		}
	}
	return
}

func TestDedup(t *testing.T) {
	r, lay := newTestRepo(t)
	home := t.TempDir()
	big := seededBytes(1, 100<<20)
	writeFile(t, filepath.Join(home, "big.bin"), big)
	writeFile(t, filepath.Join(home, "notes.txt"), []byte("hello"))
	waitPastRacyWindow()
	s1, _ := mustSnapshot(t, r, home, SnapshotOptions{})

	// Unchanged: only the manifest, config and signature are new.
	before := blobSet(t, lay)
	s2, st := mustSnapshot(t, r, home, SnapshotOptions{})
	n, _ := newBlobs(before, blobSet(t, lay))
	if n > 5 || st.BytesNew != 0 || st.BytesRead != 0 {
		t.Errorf("unchanged snapshot added %d blobs, stored %d bytes, read %d bytes", n, st.BytesNew, st.BytesRead)
	}
	if len(s1.Layers) != len(s2.Layers) {
		t.Errorf("unchanged snapshot lists %d layers, first %d", len(s2.Layers), len(s1.Layers))
	}

	// A copy of the 100 MB file adds no data, only a tree.
	writeFile(t, filepath.Join(home, "copy", "big-copy.bin"), big)
	before = blobSet(t, lay)
	s3, st := mustSnapshot(t, r, home, SnapshotOptions{})
	_, added := newBlobs(before, blobSet(t, lay))
	if st.BytesNew > 64<<10 || added > 128<<10 {
		t.Errorf("copy of a 100 MB file stored %d new bytes (%d in new blobs)", st.BytesNew, added)
	}

	// 1 MB changed in the middle adds about one chunk: count the chunks of
	// the new version that the store did not hold before.
	copy(big[50<<20:], seededBytes(2, 1<<20))
	writeFile(t, filepath.Join(home, "big.bin"), big)
	s4, st := mustSnapshot(t, r, home, SnapshotOptions{})
	had := map[ChunkID]bool{}
	for _, p := range mustNode(t, r, s3, "big.bin") {
		had[p.Chunk] = true
	}
	parts := mustNode(t, r, s4, "big.bin")
	newChunks := 0
	for _, p := range parts {
		if !had[p.Chunk] {
			newChunks++
		}
	}
	// The change itself spans one or two chunks; boundaries realign right
	// after it.
	if newChunks < 1 || newChunks > 4 || len(parts) < 50 {
		t.Errorf("1 MB change in a %d-chunk file added %d chunks (%d bytes)", len(parts), newChunks, st.BytesNew)
	}
	mustRestoreEqual(t, r, s4, home)
}

// TestIncrementalWeek runs a scripted week of work between two snapshots and
// checks that the incremental snapshot, which skips unchanged files, restores
// exactly the changed tree.
func TestIncrementalWeek(t *testing.T) {
	r, lay := newTestRepo(t)
	home := mkhome(t)
	big := seededBytes(3, 12<<20)
	writeFile(t, filepath.Join(home, "video", "big.mp4"), big)
	for i := range 20 {
		writeFile(t, filepath.Join(home, "proj", "src", "f"+string(rune('a'+i))+".txt"), bytes.Repeat([]byte{byte('a' + i)}, 1000+i))
	}
	old := time.Date(2023, 1, 2, 3, 4, 5, 6, time.UTC)
	for _, p := range []string{"proj/src", "proj", "video"} {
		if err := os.Chtimes(filepath.Join(home, p), old, old); err != nil {
			t.Fatal(err)
		}
	}
	waitPastRacyWindow()
	s1, _ := mustSnapshot(t, r, home, SnapshotOptions{})
	mustRestoreEqual(t, r, s1, home)

	// Edits that keep the size and the mtime: the classic trap.
	p := filepath.Join(home, "proj", "src", "fa.txt")
	fi, _ := os.Stat(p)
	writeFile(t, p, bytes.Repeat([]byte{'Z'}, int(fi.Size())))
	os.Chtimes(p, fi.ModTime(), fi.ModTime())
	// Two edits within the same second.
	q := filepath.Join(home, "proj", "src", "fb.txt")
	writeFile(t, q, []byte("first edit of the second"))
	writeFile(t, q, []byte("second edit, same second"))
	// Rename a directory; delete; append; 1 MB in the middle of the big file.
	if err := os.Rename(filepath.Join(home, "proj", "src"), filepath.Join(home, "proj", "source")); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(home, "proj", "source", "fc.txt"))
	f, _ := os.OpenFile(filepath.Join(home, "docs", "notes.md"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("\nappended on Tuesday\n")
	f.Close()
	copy(big[6<<20:], seededBytes(4, 1<<20))
	writeFile(t, filepath.Join(home, "video", "big.mp4"), big)

	s2, st := mustSnapshot(t, reopen(t, lay), home, SnapshotOptions{})
	if st.BytesRead >= st.Bytes {
		t.Errorf("incremental read %d of %d bytes: unchanged files were read again", st.BytesRead, st.Bytes)
	}
	mustRestoreEqual(t, reopen(t, lay), s2, home)

	// A same-size edit right after a snapshot, in the same instant as far as
	// timestamps go, must not be skipped by the next snapshot.
	writeFile(t, q, []byte("third edit, same size!!"))
	s3, _ := mustSnapshot(t, r, home, SnapshotOptions{})
	writeFile(t, q, []byte("fourth edit same size!!"))
	s4, _ := mustSnapshot(t, r, home, SnapshotOptions{})
	mustRestoreEqual(t, r, s4, home)
	if s3.Config.Root == s4.Config.Root {
		t.Error("an edit right after a snapshot was not seen")
	}
}

// waitPastRacyWindow lets files just written age past the window in which a
// snapshot distrusts their timestamps and reads them again anyway.
func waitPastRacyWindow() { time.Sleep(racyWindow + 100*time.Millisecond) }

func TestExcludes(t *testing.T) {
	r, _ := newTestRepo(t)
	home := t.TempDir()
	writeFile(t, filepath.Join(home, "keep.txt"), []byte("k"))
	writeFile(t, filepath.Join(home, "cache", "x.bin"), []byte("c"))
	writeFile(t, filepath.Join(home, "a", "b.log"), []byte("l"))
	writeFile(t, filepath.Join(home, "a", "c.txt"), []byte("t"))
	writeFile(t, filepath.Join(home, "a", IgnoreFile), []byte("*.log\n!secret.key\n"))
	writeFile(t, filepath.Join(home, "a", "secret.key"), []byte("k"))
	s, _ := mustSnapshot(t, r, home, SnapshotOptions{Excludes: []string{"cache/", "*.key"}})
	var got []string
	if err := r.Walk(context.Background(), s, func(rel string, n *Node) error {
		got = append(got, rel)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := "a a/.dvpcignore a/c.txt keep.txt"
	if strings.Join(got, " ") != want {
		t.Errorf("snapshot holds %q, want %q", strings.Join(got, " "), want)
	}
}

func TestTamper(t *testing.T) {
	r, lay := newTestRepo(t)
	home := t.TempDir()
	writeFile(t, filepath.Join(home, "one.bin"), seededBytes(5, 300<<10))
	s1, _ := mustSnapshot(t, r, home, SnapshotOptions{})
	writeFile(t, filepath.Join(home, "two.bin"), seededBytes(6, 300<<10))
	s2, _ := mustSnapshot(t, r, home, SnapshotOptions{})

	// The pack that holds one.bin's first chunk; two.bin's data went to
	// newer packs.
	n1, err := r.FindNode(context.Background(), s1, "one.bin")
	if err != nil {
		t.Fatal(err)
	}
	loc, ok := r.idx.lookup(n1.Parts[0].Chunk)
	if !ok {
		t.Fatal("one.bin's first chunk is not indexed")
	}
	pack := loc.pack
	for _, p := range mustNode(t, r, s2, "two.bin") {
		if l, _ := r.idx.lookup(p.Chunk); l.pack == pack {
			t.Fatal("two.bin shares a pack with one.bin")
		}
	}
	flipByte(t, lay, pack, loc.off+20)

	r2 := reopen(t, lay)
	rep, err := r2.Verify(context.Background(), VerifyOptions{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range rep.Problems {
		var de *DigestError
		if p.Blob == pack && errors.As(p.Err, &de) {
			found = true
		}
	}
	if !found {
		t.Fatalf("verify --read-data did not name pack %s: %v", pack, rep.Problems)
	}
	if rep2, _ := r2.Verify(context.Background(), VerifyOptions{}); len(rep2.Problems) != 0 {
		t.Errorf("structural verify without data flagged %v (a flipped data byte is found only by reading)", rep2.Problems)
	}

	snaps, _, _ := r2.Snapshots(context.Background())
	s2 = snaps[len(snaps)-1]
	err = r2.Restore(context.Background(), s2, RestoreOptions{Target: t.TempDir(), Paths: []string{"one.bin"}})
	var ce *ChunkError
	if !errors.As(err, &ce) || ce.Pack != pack || !errors.Is(err, ErrSeal) || !strings.Contains(err.Error(), pack.String()) {
		t.Fatalf("restore of the damaged file: %v, want a seal error naming %s", err, pack)
	}
	out := t.TempDir()
	if err := r2.Restore(context.Background(), s2, RestoreOptions{Target: out, Paths: []string{"two.bin"}}); err != nil {
		t.Fatalf("restore of an undamaged file: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "two.bin")); !bytes.Equal(b, seededBytes(6, 300<<10)) {
		t.Error("undamaged file restored wrong")
	}
}

func flipByte(t testing.TB, lay *Layout, d Digest, off int64) {
	t.Helper()
	p := lay.blobPath(d)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestForgedManifestRefused(t *testing.T) {
	r, lay := newTestRepo(t)
	home := t.TempDir()
	writeFile(t, filepath.Join(home, "a"), []byte("a"))
	s, _ := mustSnapshot(t, r, home, SnapshotOptions{})
	// Another store's key signs a manifest for this store: refused.
	other, olay := newTestRepo(t)
	mustSnapshot(t, other, home, SnapshotOptions{})
	sig, err := other.keys.sign.signSSHSIG(s.RawManifest())
	if err != nil {
		t.Fatal(err)
	}
	_ = olay
	if err := VerifySSHSIG(r.kf.SigningPublic, s.RawManifest(), sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("foreign signature: %v", err)
	}
	// Change the manifest bytes in place: the digest check refuses it.
	flipByte(t, lay, s.Manifest, 20)
	snaps, probs, err := reopen(t, lay).Snapshots(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var de *DigestError
	if len(snaps) != 0 || len(probs) != 1 || !errors.As(probs[0].Err, &de) {
		t.Fatalf("changed manifest: snapshots %v, problems %v", snaps, probs)
	}
}

func TestKeys(t *testing.T) {
	ctx := context.Background()
	lay, err := InitLayout(filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	codes, _, err := Init(ctx, lay, []byte("old"), testArgon)
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != RecoveryCodes {
		t.Fatalf("%d codes", len(codes))
	}
	if _, _, err := Open(ctx, lay, []byte("wrong")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	r, info, err := Open(ctx, lay, []byte(strings.ToLower(codes[2])))
	if err != nil || !info.RecoveryUsed || info.RecoveryLeft != RecoveryCodes-1 {
		t.Fatalf("recovery code: %+v, %v", info, err)
	}
	if _, _, err := Open(ctx, lay, []byte(codes[2])); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("burnt code unlocked again: %v", err)
	}
	if _, err := r.SetPassphrase(ctx, []byte("new"), Argon2Params{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(ctx, lay, []byte("old")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("old passphrase still works: %v", err)
	}
	r2, _, err := Open(ctx, lay, []byte("new"))
	if err != nil {
		t.Fatal(err)
	}
	if r2.keys.ChunkID([]byte("x")) != r.keys.ChunkID([]byte("x")) {
		t.Fatal("a new passphrase changed the data keys")
	}
	if _, _, err := Open(ctx, lay, []byte(codes[5])); err != nil {
		t.Fatalf("an unused code stopped working after passwd: %v", err)
	}
}

// mustNode returns the parts of the file at p in s.
func mustNode(t *testing.T, r *Repo, s *Snapshot, p string) []Part {
	t.Helper()
	n, err := r.FindNode(context.Background(), s, p)
	if err != nil {
		t.Fatal(err)
	}
	return n.Parts
}
