package image

import (
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

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

// Keys are the unlocked secrets of one store: the current key epoch's,
// with which everything new is sealed and signed, the older epochs'
// sealing keys, to open what they sealed, and the keys that belong to the
// store across epochs (chunk IDs, gear table, home IDs).
type Keys struct {
	storeID string
	idKey   []byte      // keyed BLAKE3 for chunk IDs
	blob    cipher.AEAD // chunks and trees, current epoch
	meta    cipher.AEAD // snapshot configs, pack headers and indexes, current epoch
	seals   []epochSeal // every epoch's, the current one first
	hint    atomic.Int32
	sign    signingKey
	secrets *secrets
	gear    *GearTable
	hashers sync.Pool // *blake3.Hasher keyed with idKey
}

// epochSeal are the sealing keys of one epoch.
type epochSeal struct {
	epoch      uint32
	blob, meta cipher.AEAD
}

// StoreID returns the random ID of the store these keys belong to.
func (k *Keys) StoreID() string { return k.storeID }

// Epoch returns the current key epoch.
func (k *Keys) Epoch() uint32 { return k.secrets.epoch }

func subKey(master []byte, storeID, label string) []byte {
	out := make([]byte, 32)
	r := hkdf.New(sha256.New, master, []byte(storeID), []byte("dvpc v1 "+label))
	if _, err := io.ReadFull(r, out); err != nil {
		panic(err) // hkdf cannot fail for 32 bytes
	}
	return out
}

func newEpochSeal(epoch uint32, master []byte, storeID string) (epochSeal, error) {
	blobAEAD, err := chacha20poly1305.NewX(subKey(master, storeID, "blob seal"))
	if err != nil {
		return epochSeal{}, err
	}
	metaAEAD, err := chacha20poly1305.NewX(subKey(master, storeID, "meta seal"))
	if err != nil {
		return epochSeal{}, err
	}
	return epochSeal{epoch: epoch, blob: blobAEAD, meta: metaAEAD}, nil
}

// deriveKeys derives the keys of s's epoch and of every older epoch it
// holds. Epoch 0's master also gives the store's own keys, as in version
// 1 key blobs, so chunk IDs stay the same across epochs.
func deriveKeys(storeID string, s *secrets, sign signingKey) (*Keys, error) {
	if s.epoch > 0 && len(s.older) != int(s.epoch) {
		return nil, fmt.Errorf("keys of epoch %d: older epochs' keys: %w", s.epoch, errNoEpochKeys)
	}
	cur, err := newEpochSeal(s.epoch, s.master[:], storeID)
	if err != nil {
		return nil, err
	}
	seals := []epochSeal{cur}
	for e := int(s.epoch) - 1; e >= 0; e-- {
		m := s.older[uint32(e)]
		es, err := newEpochSeal(uint32(e), m[:], storeID)
		if err != nil {
			return nil, err
		}
		seals = append(seals, es)
	}
	store := s.storeMaster()
	return &Keys{storeID: storeID, idKey: subKey(store, storeID, "chunk id"), blob: cur.blob, meta: cur.meta, seals: seals,
		sign: sign, secrets: s, gear: NewGearTable(subKey(store, storeID, "gear table"))}, nil
}

// openMeta opens a small sealed blob (config, index, pack header) with the
// meta key of whichever epoch sealed it, the current one tried first.
func (k *Keys) openMeta(sealed, ad []byte) ([]byte, error) {
	var err error
	for _, es := range k.seals {
		var pt []byte
		if pt, err = open(es.meta, nil, sealed, ad); err == nil {
			return pt, nil
		}
	}
	return nil, err
}

// openBlobInPlace opens a sealed chunk over itself with the blob key of
// whichever epoch sealed it. With several epochs it keeps a copy of the
// sealed bytes, since a failed open may have overwritten them, and tries
// first the epoch that opened the last chunk: chunks come in runs of one
// epoch.
func (k *Keys) openBlobInPlace(sealed, ad []byte) ([]byte, error) {
	inPlace := func(a cipher.AEAD) ([]byte, error) {
		return open(a, sealed[sealOverhead-16:sealOverhead-16], sealed, ad)
	}
	if len(k.seals) == 1 {
		return inPlace(k.seals[0].blob)
	}
	bp := sealPool.Get()
	defer sealPool.Put(bp)
	keep := append((*bp)[:0], sealed...)
	*bp = keep
	first := int(k.hint.Load())
	var err error
	for i := range k.seals {
		j := (first + i) % len(k.seals)
		if i > 0 {
			copy(sealed, keep)
		}
		var pt []byte
		if pt, err = inPlace(k.seals[j].blob); err == nil {
			k.hint.Store(int32(j))
			return pt, nil
		}
	}
	return nil, err
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
