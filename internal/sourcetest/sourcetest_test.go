package sourcetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dvpc/dvpc/image"
)

// broken is a layout with one fault of the kind the suite must catch.
type broken struct {
	*image.Layout
	fault string
}

func (b broken) OpenBlob(ctx context.Context, d image.Digest) (image.Blob, error) {
	bl, err := b.Layout.OpenBlob(ctx, d)
	switch {
	case b.fault == "absent" && errors.Is(err, image.ErrNotFound):
		return nil, fmt.Errorf("no such blob %s", d) // loses ErrNotFound
	case b.fault == "damaged" && err == nil && image.VerifyBlob(ctx, b.Layout, d, -1) != nil:
		bl.Close()
		return nil, fmt.Errorf("blob %s: %w", d, image.ErrNotFound) // a damaged blob is not absent
	case b.fault == "eof" && err == nil:
		return noEOF{bl}, nil
	}
	return bl, err
}

func (b broken) Refs(ctx context.Context) ([]image.Ref, error) {
	refs, err := b.Layout.Refs(ctx)
	if b.fault == "refs" && len(refs) > 0 {
		refs = refs[1:]
	}
	return refs, err
}

// noEOF hides io.EOF on a read that reaches the end.
type noEOF struct{ image.Blob }

func (n noEOF) ReadAt(p []byte, off int64) (int, error) {
	k, err := n.Blob.ReadAt(p, off)
	if k > 0 {
		err = nil
	}
	return k, err
}

// TestBroken runs the suite on a broken place when TestSuiteCatchesFaults
// starts it; on its own it does nothing.
func TestBroken(t *testing.T) {
	fault := os.Getenv("SOURCETEST_FAULT")
	if fault == "" {
		return
	}
	Run(t, func(t *testing.T, blobs map[image.Digest][]byte, refs []image.Ref) image.Source {
		return broken{Layout(t, filepath.Join(t.TempDir(), "store"), blobs, refs), fault}
	})
}

// TestSuiteCatchesFaults shows that the suite fails a place with each
// fault, in the check that pins it down, and passes the same place intact.
func TestSuiteCatchesFaults(t *testing.T) {
	for fault, check := range map[string]string{
		"none":    "",
		"absent":  "TestBroken/Absent",
		"damaged": "TestBroken/Damaged",
		"eof":     "TestBroken/Intact",
		"refs":    "TestBroken/Refs",
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestBroken$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "SOURCETEST_FAULT="+fault)
		out, err := cmd.CombinedOutput()
		if fault == "none" {
			if err != nil || !strings.Contains(string(out), "--- PASS: TestBroken/Torn") {
				t.Errorf("the suite fails an intact layout: %v\n%s", err, out)
			}
			continue
		}
		if err == nil || !strings.Contains(string(out), "--- FAIL: "+check) {
			t.Errorf("fault %q: want %s to fail; got %v\n%s", fault, check, err, out)
		}
	}
}
