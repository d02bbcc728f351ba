package image

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestCommitReplacesDamagedBlob: committing a blob whose file is there with
// the same size but other bytes replaces it; an intact one is kept.
func TestCommitReplacesDamagedBlob(t *testing.T) {
	ctx := context.Background()
	lay, err := InitLayout(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("dvpc blob "), 1000)
	desc, err := PutBlob(ctx, lay, PackType, data)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := DigestFromHash(desc.Digest)
	p := lay.blobPath(d)
	bad := bytes.Clone(data)
	bad[len(bad)/2] ^= 0xff
	if err := os.WriteFile(p, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(p)
	if _, err := PutBlob(ctx, lay, PackType, data); err != nil {
		t.Fatal(err)
	}
	if err := VerifyBlob(ctx, lay, d, int64(len(data))); err != nil {
		t.Fatalf("the damaged blob was kept: %v", err)
	}
	after, _ := os.Stat(p)
	if os.SameFile(before, after) {
		t.Fatal("the damaged file was rewritten in place, not replaced by a rename")
	}
	if _, err := PutBlob(ctx, lay, PackType, data); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.Stat(p); !os.SameFile(after, again) {
		t.Error("an intact blob was replaced")
	}
}
