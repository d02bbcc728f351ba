package image

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestIsStoreDir(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	l, err := InitLayout(store)
	if err != nil {
		t.Fatal(err)
	}
	if IsStoreDir(store) {
		t.Fatal("an OCI layout without a keys manifest counts as a dvpc store")
	}
	if _, _, err := Init(ctx, l, []byte("pw"), testArgon); err != nil {
		t.Fatal(err)
	}
	if !IsStoreDir(store) {
		t.Fatal("an initialised store is not recognised")
	}
	if IsStoreDir(dir) || IsStoreDir(filepath.Join(dir, "missing")) {
		t.Fatal("a plain or missing directory counts as a store")
	}
	other := filepath.Join(dir, "other")
	if err := os.MkdirAll(other, 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(other, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o600)
	os.WriteFile(filepath.Join(other, "index.json"), []byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:`+
		"0000000000000000000000000000000000000000000000000000000000000000"+`","size":2,"annotations":{"org.opencontainers.image.ref.name":"keys"}}]}`), 0o600)
	if IsStoreDir(other) {
		t.Fatal("a layout whose keys tag is not a dvpc keys artifact counts as a store")
	}
}
