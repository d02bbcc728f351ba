package image

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"
	"golang.org/x/crypto/ssh"
)

// ErrWrongPassphrase means neither the passphrase nor any recovery code
// unlocked the store.
var ErrWrongPassphrase = errors.New("wrong passphrase or recovery code")

// KeyFileMediaType is the media type of the key blob.
const KeyFileMediaType = "application/vnd.dvpc.keys.v1+json"

// RecoveryCodes is how many one-time recovery codes init makes.
const RecoveryCodes = 8

// Argon2Params are the argon2id parameters of a passphrase wrapper.
type Argon2Params struct {
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
}

// DefaultArgon2 costs about a quarter of a second on a 2-core PC.
var DefaultArgon2 = Argon2Params{Time: 3, MemoryKiB: 64 << 10, Threads: 2}

func (p Argon2Params) validate() error {
	if p.Time < 1 || p.Time > 20 || p.MemoryKiB < 8<<10 || p.MemoryKiB > 1<<20 || p.Threads < 1 || p.Threads > 16 {
		return fmt.Errorf("argon2id parameters %+v out of range (time 1-20, memory 8 MiB-1 GiB, threads 1-16)", p)
	}
	return nil
}

// wrapper is the store's secrets sealed under one key-encryption key.
type wrapper struct {
	ID     string `json:"id"`
	Salt   []byte `json:"salt"`
	Sealed []byte `json:"sealed"`
}

// KeyFile is the key blob of a store. Only the public signing key is
// readable without a passphrase or recovery code.
type KeyFile struct {
	Version       int          `json:"version"`
	StoreID       string       `json:"store_id"`
	SigningPublic string       `json:"signing_public"` // OpenSSH authorized_keys form
	Argon2        Argon2Params `json:"argon2"`
	Passphrase    wrapper      `json:"passphrase"`
	Recovery      []wrapper    `json:"recovery"`
}

// secrets is what every wrapper seals: the master key and the signing seed.
type secrets struct {
	master [32]byte
	seed   [ed25519.SeedSize]byte
}

func (s *secrets) bytes() []byte { return append(s.master[:], s.seed[:]...) }

func (kf *KeyFile) ad(kind string) []byte {
	return []byte("dvpc keys v1 " + kf.StoreID + " " + kind)
}

func sealWrapper(kek []byte, plaintext, ad []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(kek)
	if err != nil {
		return nil, err
	}
	return seal(aead, nil, plaintext, ad), nil
}

func openWrapper(kek []byte, sealed, ad []byte) (*secrets, error) {
	aead, err := chacha20poly1305.NewX(kek)
	if err != nil {
		return nil, err
	}
	pt, err := open(aead, nil, sealed, ad)
	if err != nil {
		return nil, err
	}
	if len(pt) != 64 {
		return nil, fmt.Errorf("key wrapper holds %d bytes, want 64", len(pt))
	}
	var s secrets
	copy(s.master[:], pt[:32])
	copy(s.seed[:], pt[32:])
	return &s, nil
}

func passphraseKEK(pass []byte, salt []byte, p Argon2Params) []byte {
	return argon2.IDKey(pass, salt, p.Time, p.MemoryKiB, p.Threads, 32)
}

func recoveryKEK(code []byte, salt []byte) []byte {
	out := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, code, salt, []byte("dvpc v1 recovery code")), out); err != nil {
		panic(err)
	}
	return out
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("dvpc: no randomness: " + err.Error())
	}
	return b
}

var codeEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewKeyFile makes fresh keys for a new store, wrapped by passphrase and by
// RecoveryCodes one-time codes, which it returns for the person to write
// down. They are shown once and cannot be recovered later.
func NewKeyFile(passphrase []byte, p Argon2Params) (*KeyFile, []string, *Keys, error) {
	if len(passphrase) == 0 {
		return nil, nil, nil, errors.New("empty passphrase: choose a passphrase")
	}
	if err := p.validate(); err != nil {
		return nil, nil, nil, err
	}
	var s secrets
	copy(s.master[:], randomBytes(32))
	copy(s.seed[:], randomBytes(ed25519.SeedSize))
	kf := &KeyFile{Version: 1, StoreID: codeEncoding.EncodeToString(randomBytes(10)), Argon2: p}
	sk := newSigningKey(s.seed[:])
	kf.SigningPublic = sk.authorizedKey()
	if err := kf.setPassphrase(&s, passphrase); err != nil {
		return nil, nil, nil, err
	}
	var codes []string
	for i := 1; i <= RecoveryCodes; i++ {
		raw := randomBytes(16)
		code := formatCode(i, raw)
		salt := randomBytes(16)
		id := strconv.Itoa(i)
		sealed, err := sealWrapper(recoveryKEK(raw, salt), s.bytes(), kf.ad("recovery "+id))
		if err != nil {
			return nil, nil, nil, err
		}
		kf.Recovery = append(kf.Recovery, wrapper{ID: id, Salt: salt, Sealed: sealed})
		codes = append(codes, code)
	}
	keys, err := deriveKeys(kf.StoreID, &s, sk)
	return kf, codes, keys, err
}

func (kf *KeyFile) setPassphrase(s *secrets, passphrase []byte) error {
	salt := randomBytes(16)
	sealed, err := sealWrapper(passphraseKEK(passphrase, salt, kf.Argon2), s.bytes(), kf.ad("passphrase"))
	if err != nil {
		return err
	}
	kf.Passphrase = wrapper{ID: "passphrase", Salt: salt, Sealed: sealed}
	return nil
}

// formatCode renders a recovery code as "<n>-XXXXX-XXXXX-…": the number says
// which wrapper it opens, so unlocking tries one, not eight.
func formatCode(n int, raw []byte) string {
	enc := codeEncoding.EncodeToString(raw)
	var b strings.Builder
	b.WriteString(strconv.Itoa(n))
	for i := 0; i < len(enc); i += 5 {
		b.WriteByte('-')
		b.WriteString(enc[i:min(i+5, len(enc))])
	}
	return b.String()
}

// parseCode recognises a recovery code typed in place of a passphrase.
func parseCode(s string) (id string, raw []byte, ok bool) {
	s = strings.ToUpper(strings.Join(strings.Fields(s), ""))
	n, rest, found := strings.Cut(s, "-")
	if !found || len(n) == 0 || len(n) > 2 {
		return "", nil, false
	}
	if _, err := strconv.Atoi(n); err != nil {
		return "", nil, false
	}
	raw, err := codeEncoding.DecodeString(strings.ReplaceAll(rest, "-", ""))
	if err != nil || len(raw) != 16 {
		return "", nil, false
	}
	return n, raw, true
}

// Unlocked is the result of [KeyFile.Unlock].
type Unlocked struct {
	Keys *Keys
	// RecoveryID is the wrapper a recovery code opened, "" for the
	// passphrase. The caller must burn it with [KeyFile.BurnRecovery] and
	// save the key file.
	RecoveryID string
}

// Unlock opens the key file with a passphrase or a recovery code.
func (kf *KeyFile) Unlock(secret []byte) (*Unlocked, error) {
	if err := kf.Argon2.validate(); err != nil {
		return nil, fmt.Errorf("key blob: %w", err)
	}
	var s *secrets
	var recID string
	if id, raw, ok := parseCode(string(secret)); ok {
		for _, w := range kf.Recovery {
			if w.ID != id {
				continue
			}
			if got, err := openWrapper(recoveryKEK(raw, w.Salt), w.Sealed, kf.ad("recovery "+id)); err == nil {
				s, recID = got, id
			}
		}
	}
	if s == nil {
		got, err := openWrapper(passphraseKEK(secret, kf.Passphrase.Salt, kf.Argon2), kf.Passphrase.Sealed, kf.ad("passphrase"))
		if err != nil {
			return nil, ErrWrongPassphrase
		}
		s = got
	}
	sk := newSigningKey(s.seed[:])
	if sk.authorizedKey() != kf.SigningPublic {
		return nil, errors.New("key blob: the public signing key does not match the sealed one; the key blob was altered")
	}
	keys, err := deriveKeys(kf.StoreID, s, sk)
	if err != nil {
		return nil, err
	}
	return &Unlocked{Keys: keys, RecoveryID: recID}, nil
}

// BurnRecovery removes a used recovery code and returns how many remain.
func (kf *KeyFile) BurnRecovery(id string) int {
	out := kf.Recovery[:0]
	for _, w := range kf.Recovery {
		if w.ID != id {
			out = append(out, w)
		}
	}
	kf.Recovery = out
	return len(out)
}

// SetPassphrase rewraps the secrets of k under a new passphrase; data stays
// as it is. The old passphrase stops working once the key file is saved.
func (kf *KeyFile) SetPassphrase(k *Keys, newPass []byte) error {
	if len(newPass) == 0 {
		return errors.New("empty passphrase: choose a passphrase")
	}
	if k.storeID != kf.StoreID || k.secrets == nil {
		return errors.New("set passphrase: keys belong to another store")
	}
	return kf.setPassphrase(k.secrets, newPass)
}

// Marshal encodes the key file as its blob.
func (kf *KeyFile) Marshal() ([]byte, error) { return json.MarshalIndent(kf, "", "  ") }

// ParseKeyFile decodes a key blob. It checks the structure, not the secrets.
func ParseKeyFile(b []byte) (*KeyFile, error) {
	var kf KeyFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&kf); err != nil {
		return nil, fmt.Errorf("parse key blob: %w", err)
	}
	if dec.More() {
		return nil, errors.New("parse key blob: trailing data after the key object")
	}
	if kf.Version != 1 {
		return nil, fmt.Errorf("parse key blob: version %d is not supported (want 1); a newer dvpc may read it", kf.Version)
	}
	if kf.StoreID == "" {
		return nil, errors.New("parse key blob: no store id")
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(kf.SigningPublic))
	if err != nil || pub.Type() != ssh.KeyAlgoED25519 {
		return nil, fmt.Errorf("parse key blob: signing key %q is not an ssh-ed25519 public key", kf.SigningPublic)
	}
	if err := kf.Argon2.validate(); err != nil {
		return nil, fmt.Errorf("parse key blob: %w", err)
	}
	return &kf, nil
}
