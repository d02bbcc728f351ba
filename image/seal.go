package image

import (
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/zeebo/blake3"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"
)

// ErrSeal means sealed bytes failed authentication: they were changed, or
// sealed under another key.
var ErrSeal = errors.New("authentication failed (tampered or foreign data)")

// sealOverhead is what sealing adds to a plaintext: nonce and tag.
const sealOverhead = chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead

// seal appends nonce || ciphertext || tag to dst. XChaCha20-Poly1305 takes
// 192-bit random nonces, so one key may seal any number of chunks.
func seal(aead cipher.AEAD, dst, plaintext, ad []byte) []byte {
	var nonce [chacha20poly1305.NonceSizeX]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		panic("dvpc: no randomness: " + err.Error())
	}
	dst = append(dst, nonce[:]...)
	return aead.Seal(dst, nonce[:], plaintext, ad)
}

// sealInPlace seals b[NonceSizeX:] over itself and writes the nonce into
// b[:NonceSizeX], giving the same bytes as seal: nonce || ciphertext ||
// tag. Nothing is allocated when cap(b) holds the tag.
func sealInPlace(aead cipher.AEAD, b, ad []byte) []byte {
	const ns = chacha20poly1305.NonceSizeX
	var nonce [ns]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		panic("dvpc: no randomness: " + err.Error())
	}
	copy(b[:ns], nonce[:])
	return aead.Seal(b[:ns], nonce[:], b[ns:], ad)
}

// open reverses seal, appending the plaintext to dst.
func open(aead cipher.AEAD, dst, sealed, ad []byte) ([]byte, error) {
	if len(sealed) < sealOverhead {
		return nil, fmt.Errorf("sealed data of %d bytes is shorter than its %d-byte envelope: %w", len(sealed), sealOverhead, ErrSeal)
	}
	ns := chacha20poly1305.NonceSizeX
	out, err := aead.Open(dst, sealed[:ns], sealed[ns:], ad)
	if err != nil {
		return nil, ErrSeal
	}
	return out, nil
}

// Keys are the unlocked secrets of one store.
type Keys struct {
	storeID string
	idKey   []byte      // keyed BLAKE3 for chunk IDs
	blob    cipher.AEAD // chunks and trees
	meta    cipher.AEAD // snapshot configs and pack indexes
	sign    signingKey
	secrets *secrets
	gear    *GearTable
	hashers sync.Pool // *blake3.Hasher keyed with idKey
}

// StoreID returns the random ID of the store these keys belong to.
func (k *Keys) StoreID() string { return k.storeID }

func deriveKeys(storeID string, s *secrets, sign signingKey) (*Keys, error) {
	master := s.master[:]
	sub := func(label string) []byte {
		out := make([]byte, 32)
		r := hkdf.New(sha256.New, master, []byte(storeID), []byte("dvpc v1 "+label))
		if _, err := io.ReadFull(r, out); err != nil {
			panic(err) // hkdf cannot fail for 32 bytes
		}
		return out
	}
	blobAEAD, err := chacha20poly1305.NewX(sub("blob seal"))
	if err != nil {
		return nil, err
	}
	metaAEAD, err := chacha20poly1305.NewX(sub("meta seal"))
	if err != nil {
		return nil, err
	}
	return &Keys{storeID: storeID, idKey: sub("chunk id"), blob: blobAEAD, meta: metaAEAD, sign: sign, secrets: s, gear: NewGearTable(sub("gear table"))}, nil
}

// ChunkID returns the keyed hash of a chunk's plaintext.
func (k *Keys) ChunkID(data []byte) ChunkID {
	h, _ := k.hashers.Get().(*blake3.Hasher)
	if h == nil {
		var err error
		if h, err = blake3.NewKeyed(k.idKey); err != nil {
			panic(err) // key length is fixed
		}
	}
	h.Write(data)
	var id ChunkID
	h.Sum(id[:0])
	h.Reset()
	k.hashers.Put(h)
	return id
}
