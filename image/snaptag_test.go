package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseSnapshotRef(t *testing.T) {
	md := DigestOf([]byte("manifest"))
	for _, c := range []struct {
		tag string
		seq uint64
		ok  bool
	}{
		{SnapshotRef(1, md), 1, true},
		{SnapshotRef(99999999, md), 99999999, true},
		{SnapshotRef(123456789012, md), 123456789012, true},
		{"snap-00000001-" + strings.ToUpper(md.Short()), 0, false},
		{"snap-1-" + md.Short(), 0, false},             // not zero-padded
		{"snap-000000001-" + md.Short(), 0, false},     // padded beyond 8 digits
		{"snap-0000000a-" + md.Short(), 0, false},      // not a number
		{"snap-00000001-" + md.Short()[:11], 0, false}, // short ID
		{"snap-00000001-" + md.Short() + "0", 0, false},
		{"snap-00000001", 0, false},
		{"snap-99999999999999999999-" + md.Short(), 0, false}, // overflows
		{"keys", 0, false},
		{SignatureRef(md), 0, false},
	} {
		seq, id, ok := ParseSnapshotRef(c.tag)
		if ok != c.ok || seq != c.seq || ok && id != md.Short() {
			t.Errorf("ParseSnapshotRef(%q) = %d, %q, %v; want %d, %v", c.tag, seq, id, ok, c.seq, c.ok)
		}
	}
}

func FuzzParseSnapshotRef(f *testing.F) {
	md := DigestOf([]byte("manifest"))
	f.Add(SnapshotRef(7, md))
	f.Add("snap-99999999-" + md.Short())
	f.Add("snap--")
	f.Fuzz(func(t *testing.T, tag string) {
		seq, id, ok := ParseSnapshotRef(tag)
		if !ok {
			return
		}
		// What parses is exactly what SnapshotRef writes.
		if got := fmt.Sprintf("snap-%08d-%s", seq, id); got != tag {
			t.Fatalf("ParseSnapshotRef(%q) = %d, %q, which writes %q", tag, seq, id, got)
		}
	})
}

// TestSnapshotsRefuseMisnamedTag: a tag in a store (or on a disc) that
// names a snapshot by another sequence number than its signed manifest is
// refused as a problem, never listed as a snapshot, and a tag that does
// not verify is the same problem wherever it is read.
func TestSnapshotsRefuseMisnamedTag(t *testing.T) {
	ctx := context.Background()
	r, lay := newTestRepo(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s1, _ := mustSnapshot(t, r, dir, SnapshotOptions{})
	fake := "snap-99999999-" + s1.ID
	if err := lay.UpdateRefs(ctx, func(refs []Ref) ([]Ref, error) {
		return append(refs, Ref{Name: fake, Desc: s1.Desc}), nil
	}); err != nil {
		t.Fatal(err)
	}
	snaps, probs, err := reopen(t, lay).Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) != 1 || snaps[0].Ref != s1.Ref {
		t.Errorf("snapshots %v, want only %s", snaps, s1.Ref)
	}
	if len(probs) != 1 || probs[0].Ref != fake || !errors.Is(probs[0].Err, ErrTagMismatch) {
		t.Errorf("problems %v, want %s refused as misnamed", probs, fake)
	}
	refs, err := lay.Refs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := SignatureRefFor(refs, Ref{Name: fake, Desc: s1.Desc})
	if _, err := VerifySnapshot(ctx, lay, r.KeyFile(), Ref{Name: fake, Desc: s1.Desc}, sig); !errors.Is(err, ErrTagMismatch) {
		t.Errorf("VerifySnapshot of %s: %v, want ErrTagMismatch", fake, err)
	}
	v, err := VerifySnapshot(ctx, lay, r.KeyFile(), Ref{Name: s1.Ref, Desc: s1.Desc}, sig)
	if err != nil || v.Ref().Name != s1.Ref || v.Seq != s1.Config.Seq {
		t.Errorf("VerifySnapshot of %s: %+v, %v", s1.Ref, v, err)
	}
	// Without its signature tag, a snapshot does not verify.
	if _, err := VerifySnapshot(ctx, lay, r.KeyFile(), Ref{Name: s1.Ref, Desc: s1.Desc}, Ref{}); !errors.Is(err, ErrBadSignature) {
		t.Errorf("VerifySnapshot without a signature: %v, want ErrBadSignature", err)
	}
}
