package image

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestMetadataLimits: a manifest or a signature blob whose descriptor
// claims more than a manifest or a signature can be is refused before it
// is read.
func TestMetadataLimits(t *testing.T) {
	ctx := context.Background()
	_, lay := newTestRepo(t)
	zero := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}
	if _, _, err := readManifest(ctx, lay, v1.Descriptor{Digest: zero, Size: maxManifest + 1}); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "over the") {
		t.Fatalf("a manifest over the limit: %v, want ErrFormat naming the limit", err)
	}

	huge := putBlobT(t, lay, []byte(strings.Repeat("x", 100)))
	huge.Size = maxSignature + 1
	huge.MediaType = types.MediaType(SignatureType)
	empty := putBlobT(t, lay, emptyConfig)
	b, err := json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: SignatureArtifactType,
		Config: empty, Layers: []v1.Descriptor{huge}})
	if err != nil {
		t.Fatal(err)
	}
	sm := putBlobT(t, lay, b)
	if _, _, _, err := readSignatureAt(ctx, lay, sm); !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "over the") {
		t.Fatalf("a signature over the limit: %v, want ErrBadSignature naming the limit", err)
	}
}

// putBlobT stores b and returns its descriptor.
func putBlobT(t *testing.T, lay *Layout, b []byte) v1.Descriptor {
	t.Helper()
	d, err := PutBlob(context.Background(), lay, "application/octet-stream", b)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
