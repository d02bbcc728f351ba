package image

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/hkdf"
)

// Kinds of [Recipient]. A recipient is an X25519 public key to which each
// epoch's secrets are sealed; the kinds differ only in where the secret
// half comes from.
const (
	// RecipientPassphrase: the secret is argon2id of the passphrase.
	RecipientPassphrase = "passphrase"
	// RecipientRecovery: the secret is HKDF of a one-time recovery code.
	RecipientRecovery = "recovery"
	// RecipientX25519: someone else's key (a reader of a shared folder,
	// a help desk), held outside the store.
	RecipientX25519 = "x25519"
)

// Recipient is one party that can open the current epoch: its X25519
// public key, and the epoch's secrets sealed to it.
type Recipient struct {
	Kind  string `json:"kind"`
	ID    string `json:"id"`
	Label string `json:"label,omitempty"`
	// Public is the X25519 public key.
	Public []byte `json:"public"`
	// Salt is the argon2id or HKDF salt that turns the passphrase or
	// code into the secret key; empty for other people's keys.
	Salt []byte `json:"salt,omitempty"`
	// Sealed is the ephemeral X25519 public key, then the epoch's
	// secrets sealed with XChaCha20-Poly1305 under HKDF of the shared
	// secret.
	Sealed []byte `json:"sealed"`
}

// identity is the secret half of a recipient.
type identity [32]byte

func (id *identity) public() []byte {
	pub, err := curve25519.X25519(id[:], curve25519.Basepoint)
	if err != nil {
		panic(err) // a 32-byte scalar is always accepted
	}
	return pub
}

func passphraseIdentity(pass, salt []byte, p Argon2Params) *identity {
	var id identity
	copy(id[:], argon2.IDKey(pass, salt, p.Time, p.MemoryKiB, p.Threads, 32))
	return &id
}

func recoveryIdentity(raw, salt []byte) *identity {
	var id identity
	if _, err := io.ReadFull(hkdf.New(sha256.New, raw, salt, []byte("dvpc v2 recovery recipient")), id[:]); err != nil {
		panic(err)
	}
	return &id
}

// recipientKey derives the key that seals to or opens from a recipient.
func recipientKey(shared, ephPub, pub []byte) ([]byte, error) {
	if isZero(shared) {
		return nil, errors.New("recipient: low-order public key")
	}
	salt := append(append([]byte{}, ephPub...), pub...)
	key := make([]byte, chacha20poly1305.KeySize)
	if _, err := io.ReadFull(hkdf.New(sha256.New, shared, salt, []byte("dvpc v2 recipient")), key); err != nil {
		return nil, err
	}
	return key, nil
}

func isZero(b []byte) bool {
	var acc byte
	for _, c := range b {
		acc |= c
	}
	return acc == 0
}

// sealTo seals plaintext to the X25519 public key pub: a fresh ephemeral
// key pair, HKDF-SHA256 of the shared secret and both public keys, and
// XChaCha20-Poly1305 with ad.
func sealTo(pub, plaintext, ad []byte) ([]byte, error) {
	if len(pub) != curve25519.PointSize {
		return nil, fmt.Errorf("recipient: public key of %d bytes, want %d", len(pub), curve25519.PointSize)
	}
	eph := randomBytes(curve25519.ScalarSize)
	ephPub, err := curve25519.X25519(eph, curve25519.Basepoint)
	if err != nil {
		return nil, err
	}
	shared, err := curve25519.X25519(eph, pub)
	if err != nil {
		return nil, fmt.Errorf("recipient: %w", err)
	}
	key, err := recipientKey(shared, ephPub, pub)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	return seal(aead, ephPub, plaintext, ad), nil
}

// openFrom opens what sealTo sealed to id's public key.
func (id *identity) openFrom(sealed, ad []byte) ([]byte, error) {
	if len(sealed) < curve25519.PointSize+sealOverhead {
		return nil, ErrSeal
	}
	ephPub := sealed[:curve25519.PointSize]
	shared, err := curve25519.X25519(id[:], ephPub)
	if err != nil {
		return nil, ErrSeal
	}
	key, err := recipientKey(shared, ephPub, id.public())
	if err != nil {
		return nil, ErrSeal
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	return open(aead, nil, sealed[curve25519.PointSize:], ad)
}

// UnlockX25519 opens the key blob with the secret half of someone else's
// recipient (kind x25519), added with [RotateOptions].AddX25519.
func (kf *KeyFile) UnlockX25519(secret []byte) (*Keys, error) {
	if len(secret) != curve25519.ScalarSize {
		return nil, fmt.Errorf("x25519 identity of %d bytes, want %d", len(secret), curve25519.ScalarSize)
	}
	id := identity(secret)
	for i := range kf.Recipients {
		r := &kf.Recipients[i]
		if r.Kind != RecipientX25519 {
			continue
		}
		if s, err := kf.openRecipient(r, &id); err == nil {
			return kf.keysOf(s)
		}
	}
	return nil, ErrWrongPassphrase
}
