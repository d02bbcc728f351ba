package delta

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/dvpc/dvpc/image"
	"github.com/dvpc/dvpc/internal/regtest"
)

func newLayout(t *testing.T) *image.Layout {
	t.Helper()
	lay, err := image.InitLayout(filepath.Join(t.TempDir(), "pulled"))
	if err != nil {
		t.Fatal(err)
	}
	return lay
}

func readIndex(t *testing.T, lay *image.Layout) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(lay.Root(), "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkAllOK(t *testing.T, res []MirrorResult) {
	t.Helper()
	for _, r := range res {
		if r.Err != nil {
			t.Fatalf("push to %s: %v", r.Mirror, r.Err)
		}
	}
}

func TestPushPull(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	s1 := s.snapshot(t)
	want1 := copyHome(t, s)
	writeFile(t, filepath.Join(s.home, "docs", "second.txt"), []byte("only in the second snapshot\n"))
	s2 := s.snapshot(t)
	want2 := copyHome(t, s)

	regs := regtest.StartN(t, 4)
	mirrors := mirrorsOf(t, regs, "dvpc/home")

	res := PushAll(ctx, s.lay, mirrors, PushOptions{})
	checkAllOK(t, res)
	for _, r := range res {
		if r.Report.BlobsUploaded == 0 || r.Report.Manifests != 5 {
			t.Fatalf("first push to %s: %+v", r.Mirror, r.Report)
		}
	}
	// Nothing is sent twice, even through handles that know nothing yet.
	res = PushAll(ctx, s.lay, mirrorsOf(t, regs, "dvpc/home"), PushOptions{})
	checkAllOK(t, res)
	for _, r := range res {
		if r.Report.BlobsUploaded != 0 || r.Report.BytesUploaded != 0 || r.Report.Manifests != 0 {
			t.Fatalf("second push to %s sent %+v", r.Mirror, r.Report)
		}
	}

	// Pull into an empty store and restore both snapshots.
	dst := newLayout(t)
	rep, err := Pull(ctx, mirrorsOf(t, regs, "dvpc/home"), dst, PullOptions{Key: s.key()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Snapshots) != 2 || !rep.KeysAdded || len(rep.Refused) != 0 {
		t.Fatalf("pull: %+v", rep)
	}
	restoreEqual(t, dst, s1.ID, want1)
	restoreEqual(t, dst, s2.ID, want2)
	// A second pull fetches nothing.
	rep, err = Pull(ctx, mirrorsOf(t, regs, "dvpc/home"), dst, PullOptions{})
	if err != nil || len(rep.Snapshots) != 0 || rep.BlobsFetched != 0 {
		t.Fatalf("second pull: %+v, %v", rep, err)
	}

	// A stopped mirror fails alone; after a restart the next push completes it.
	writeFile(t, filepath.Join(s.home, "third.txt"), []byte("third\n"))
	s3 := s.snapshot(t)
	want3 := copyHome(t, s)
	regs[2].Stop()
	res = PushAll(ctx, s.lay, mirrors, PushOptions{})
	for i, r := range res {
		if (r.Err != nil) != (i == 2) {
			t.Fatalf("push with mirror 2 stopped: mirror %d: %+v", i, r)
		}
		if i != 2 && r.Report.Manifests != 2 {
			t.Fatalf("mirror %d: %+v", i, r.Report)
		}
	}
	regs[2].Restart(t)
	rp, err := Push(ctx, s.lay, mirrors[2], PushOptions{})
	if err != nil || rp.Manifests != 2 || rp.BlobsUploaded == 0 {
		t.Fatalf("push after restart: %+v, %v", rp, err)
	}
	rp, err = Push(ctx, s.lay, mirrors[2], PushOptions{})
	if err != nil || rp.BlobsUploaded != 0 || rp.Manifests != 0 {
		t.Fatalf("push again: %+v, %v", rp, err)
	}

	// Mirror 0 serves a corrupt blob: the pull succeeds from the others and
	// names it. Ranked first, it is asked first.
	big := largestBlob(t, s.lay)
	corruptBlob(t, regs[0], big)
	if _, err := mirrorsOf(t, regs, "dvpc/home")[0].OpenBlob(ctx, big); err == nil {
		t.Fatalf("corrupt blob %s served", big)
	}
	dst2 := newLayout(t)
	rep, err = Pull(ctx, mirrorsOf(t, regs, "dvpc/home"), dst2, PullOptions{Health: []int{0, 1, 1, 1}, Key: s.key()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Snapshots) != 3 {
		t.Fatalf("pull with a corrupt mirror: %+v", rep)
	}
	if bad := rep.BadMirrors(); !slices.Equal(bad, []string{mirrors[0].String()}) {
		t.Fatalf("bad mirrors %v, want %s; failures %v; mirrors %+v", bad, mirrors[0], rep.Failures, rep.Mirrors)
	}
	restoreEqual(t, dst2, s3.ID, want3)

	// Only the corrupt mirror: the pull fails and names nothing.
	dst3 := newLayout(t)
	before := readIndex(t, dst3)
	rep, err = Pull(ctx, mirrorsOf(t, regs[:1], "dvpc/home"), dst3, PullOptions{Key: s.key()})
	var de *image.DigestError
	if err == nil || !errors.As(err, &de) {
		t.Fatalf("pull from the corrupt mirror alone: %+v, %v", rep, err)
	}
	if !bytes.Equal(readIndex(t, dst3), before) {
		t.Fatal("a failed pull changed index.json")
	}
	if bad := rep.BadMirrors(); !slices.Equal(bad, []string{mirrors[0].String()}) {
		t.Fatalf("bad mirrors %v", bad)
	}
}

// TestPullRefuses checks rollback protection and signature checks: a pull
// never names a snapshot older than MinSeq nor one signed by another key.
func TestPullRefuses(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	s1 := s.snapshot(t)
	regs := regtest.StartN(t, 1)
	mirrors := mirrorsOf(t, regs, "dvpc/home")
	checkAllOK(t, PushAll(ctx, s.lay, mirrors, PushOptions{}))

	dst := newLayout(t)
	before := readIndex(t, dst)
	rep, err := Pull(ctx, mirrors, dst, PullOptions{MinSeq: s1.Config.Seq + 1, Key: s.key()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Snapshots) != 0 || len(rep.Refused) != 1 || !errors.Is(rep.Refused[0].Err, ErrRollback) {
		t.Fatalf("rollback: %+v", rep)
	}
	if !bytes.Equal(readIndex(t, dst), before) {
		t.Fatal("a refused pull changed index.json")
	}

	// A store with keys of its own refuses snapshots signed by another.
	other := newTestStore(t)
	if _, err := Pull(ctx, mirrors, dst, PullOptions{MinSeq: s1.Config.Seq, Key: s.key()}); err != nil {
		t.Fatal(err)
	}
	rep, err = Pull(ctx, mirrors, other.lay, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Snapshots) != 0 || len(rep.Refused) != 1 || !errors.Is(rep.Refused[0].Err, image.ErrBadSignature) {
		t.Fatalf("foreign key: %+v", rep)
	}
}

// TestPushResumeAndMount checks that blobs already on a mirror, as after an
// interrupted push, are not sent again, and that blobs are mounted from
// another repository of the same registry.
func TestPushResumeAndMount(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	s.snapshot(t)
	regs := regtest.StartN(t, 1)
	a := mirrorsOf(t, regs, "dvpc/a")[0]

	// Half the blobs arrived before the push was cut short.
	refs, err := s.lay.Refs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	main, sigs, _, err := pushRefs(ctx, s.lay, refs)
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := image.BlobsOf(ctx, s.lay, append(main, sigs...))
	if err != nil {
		t.Fatal(err)
	}
	isManifest := map[image.Digest]bool{}
	for _, r := range append(main, sigs...) {
		d, _ := image.DigestFromHash(r.Desc.Digest)
		isManifest[d] = true
	}
	var plain []image.BlobRef
	for _, b := range blobs {
		if !isManifest[b.Digest] {
			plain = append(plain, b)
		}
	}
	sent := 0
	for i, b := range plain {
		if i%2 == 0 {
			if _, err := a.putBlob(ctx, s.lay, b, ""); err != nil {
				t.Fatal(err)
			}
			sent++
		}
	}
	rep, err := Push(ctx, s.lay, a, PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.BlobsSkipped != sent || rep.BlobsUploaded != len(plain)-sent {
		t.Fatalf("resumed push: %+v; %d of %d blobs were there", rep, sent, len(plain))
	}

	b := mirrorsOf(t, regs, "dvpc/b")[0]
	rep, err = Push(ctx, s.lay, b, PushOptions{MountFrom: "dvpc/a"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.BlobsMounted != len(plain) || rep.BlobsUploaded != 0 {
		t.Fatalf("push with mounts: %+v", rep)
	}
	restoreEqual(t, mirrorsOf(t, regs, "dvpc/b")[0], "latest", s.home)

	// Three repositories of one registry pushed together: the first
	// receives the bytes, the other two mount every blob from it.
	var three []*Registry
	for _, p := range []string{"dvpc/c", "dvpc/d", "dvpc/e"} {
		three = append(three, mirrorsOf(t, regs, p)[0])
	}
	res := PushAll(ctx, s.lay, three, PushOptions{})
	checkAllOK(t, res)
	if r := res[0].Report; r.BlobsUploaded != len(plain) || r.BlobsMounted != 0 {
		t.Fatalf("first repository of the registry: %+v", r)
	}
	for _, r := range res[1:] {
		if r.Report.BlobsMounted != len(plain) || r.Report.BlobsUploaded != 0 || r.Report.Manifests != res[0].Report.Manifests {
			t.Fatalf("%s should mount every blob from dvpc/c: %+v", r.Mirror, r.Report)
		}
	}
	restoreEqual(t, mirrorsOf(t, regs, "dvpc/e")[0], "latest", s.home)
}
