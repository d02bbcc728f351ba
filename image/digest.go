package image

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Digest names a stored blob: the SHA-256 of its bytes as stored. It is a
// comparable value and may be used as a map key.
type Digest [sha256.Size]byte

// DigestOf returns the digest of b.
func DigestOf(b []byte) Digest { return sha256.Sum256(b) }

// String returns the digest in OCI form, "sha256:<hex>".
func (d Digest) String() string { return "sha256:" + hex.EncodeToString(d[:]) }

// Hex returns the hexadecimal form without the algorithm.
func (d Digest) Hex() string { return hex.EncodeToString(d[:]) }

// Short returns the first 12 hexadecimal digits.
func (d Digest) Short() string { return d.Hex()[:12] }

// Hash returns d as a go-containerregistry hash.
func (d Digest) Hash() v1.Hash { return v1.Hash{Algorithm: "sha256", Hex: d.Hex()} }

// IsZero reports whether d is the zero digest.
func (d Digest) IsZero() bool { return d == Digest{} }

// ParseDigest parses "sha256:<hex>".
func ParseDigest(s string) (Digest, error) {
	var d Digest
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(h) != 2*len(d) {
		return d, fmt.Errorf("parse digest %q: want sha256:<64 hex digits>", s)
	}
	if _, err := hex.Decode(d[:], []byte(h)); err != nil {
		return d, fmt.Errorf("parse digest %q: %w", s, err)
	}
	return d, nil
}

// DigestFromHash converts a go-containerregistry hash.
func DigestFromHash(h v1.Hash) (Digest, error) { return ParseDigest(h.String()) }

// ChunkID names a chunk of plaintext: a keyed BLAKE3 hash of its bytes, so it
// reveals nothing about the content to anyone without the store's key.
type ChunkID [32]byte

// String returns the ID in hexadecimal.
func (c ChunkID) String() string { return hex.EncodeToString(c[:]) }

// IsZero reports whether c is the zero ID.
func (c ChunkID) IsZero() bool { return c == ChunkID{} }

// ParseChunkID parses the hexadecimal form.
func ParseChunkID(s string) (ChunkID, error) {
	var c ChunkID
	if len(s) != 2*len(c) {
		return c, fmt.Errorf("parse chunk id %q: want 64 hex digits", s)
	}
	if _, err := hex.Decode(c[:], []byte(s)); err != nil {
		return c, fmt.Errorf("parse chunk id %q: %w", s, err)
	}
	return c, nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Digest) UnmarshalText(b []byte) error {
	v, err := ParseDigest(string(b))
	*d = v
	return err
}

// MarshalText implements encoding.TextMarshaler.
func (c ChunkID) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (c *ChunkID) UnmarshalText(b []byte) error {
	v, err := ParseChunkID(string(b))
	*c = v
	return err
}
