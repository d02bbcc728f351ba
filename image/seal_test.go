package image

import (
	"bytes"
	"crypto/rand"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// TestSealInPlace: sealing over the plaintext gives what open reads back,
// with or without room for the tag, and a flipped byte fails.
func TestSealInPlace(t *testing.T) {
	key := make([]byte, 32)
	rand.Read(key)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		t.Fatal(err)
	}
	const ns = chacha20poly1305.NonceSizeX
	for _, n := range []int{0, 1, 100, 64 << 10, MaxChunk} {
		for _, room := range []int{0, chacha20poly1305.Overhead} {
			msg := make([]byte, n)
			rand.Read(msg)
			b := make([]byte, ns+n, ns+n+room)
			copy(b[ns:], msg)
			sealed := sealInPlace(aead, b, []byte("ad"))
			if len(sealed) != n+sealOverhead {
				t.Fatalf("n %d: sealed %d bytes, want %d", n, len(sealed), n+sealOverhead)
			}
			got, err := open(aead, nil, sealed, []byte("ad"))
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("n %d room %d: open: %v", n, room, err)
			}
			sealed[len(sealed)/2] ^= 1
			if _, err := open(aead, nil, sealed, []byte("ad")); err == nil {
				t.Fatalf("n %d: a flipped byte opened", n)
			}
		}
	}
}
