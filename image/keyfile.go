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
	"time"
	"unicode"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"
	"golang.org/x/crypto/ssh"
)

// ErrWrongPassphrase means neither the passphrase nor any recovery code
// unlocked the store. A recovery code that failed gives a [*CodeError],
// which wraps it.
var ErrWrongPassphrase = errors.New("wrong passphrase")

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

	// used records when each burnt recovery code was used. It is kept in
	// the key manifest's annotations, not in the key blob, so that
	// versions of dvpc that do not know it still read the blob.
	used map[string]time.Time
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

// Recovery codes are written "<n>-XXXXX-XXXXX-XXXXX-XXXXX-XXXXX-XCCCC": the
// number n says which wrapper the code opens, so unlocking tries one, not
// eight; 26 base32 characters carry the 128-bit code and 4 more a checksum
// of the number and the code, so a mistyped code is refused before any key
// is derived. Codes printed before the checksum existed ("<n>-…-X", 26
// characters) are still accepted.
const (
	codeChars   = 26 // base32 characters of the 16 code bytes
	checkChars  = 4  // base32 characters of the checksum (20 bits)
	codeGroup   = 5
	codeBytes   = 16
	checkDomain = "dvpc recovery code checksum v2"
)

const base32Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

// codeChecksum is the checksum of code n: the first 20 bits of SHA-256 over
// a domain string, the number and the code bytes, in 4 base32 characters.
func codeChecksum(n string, raw []byte) string {
	h := sha256.New()
	h.Write([]byte(checkDomain))
	h.Write([]byte{0})
	h.Write([]byte(n))
	h.Write([]byte{0})
	h.Write(raw)
	sum := h.Sum(nil)
	v := (uint32(sum[0])<<16 | uint32(sum[1])<<8 | uint32(sum[2])) >> 4
	out := make([]byte, checkChars)
	for i := range out {
		out[i] = base32Alphabet[(v>>(5*(checkChars-1-i)))&31]
	}
	return string(out)
}

// formatCode renders recovery code n with its checksum.
func formatCode(n int, raw []byte) string {
	id := strconv.Itoa(n)
	enc := codeEncoding.EncodeToString(raw) + codeChecksum(id, raw)
	var b strings.Builder
	b.WriteString(id)
	for i := 0; i < len(enc); i += codeGroup {
		b.WriteByte('-')
		b.WriteString(enc[i:min(i+codeGroup, len(enc))])
	}
	return b.String()
}

// recoveryCode is a recovery code as typed.
type recoveryCode struct {
	id      string
	raw     []byte
	checked bool // its checksum was there and matched
}

// How sure parseCode is that a secret is a recovery code.
type codeShape int

const (
	notCode   codeShape = iota // a passphrase
	maybeCode                  // shaped like a code, but a passphrase could be so too
	isCode                     // a code as dvpc prints them
)

// fixCodeTypos reads the characters base32 leaves out as the letters they
// are mistaken for; only checksummed codes get this, since the checksum
// then says whether the guess was right.
var fixCodeTypos = strings.NewReplacer("0", "O", "1", "I", "8", "B")

// parseCode recognises a recovery code typed in place of a passphrase, in
// any case, with dashes or spaces between the groups. For isCode and
// maybeCode it returns, when the code cannot be right, a [*CodeError]
// saying so: an isCode secret is then refused at once, while a maybeCode
// one is tried as a passphrase first.
func parseCode(s string) (*recoveryCode, codeShape, error) {
	tokens := strings.FieldsFunc(strings.ToUpper(s), func(r rune) bool {
		return r == '-' || unicode.IsSpace(r)
	})
	if len(tokens) < 2 || len(tokens[0]) > 2 || !allIn(tokens[0], "0123456789") || !strings.Contains(s, "-") {
		return nil, notCode, nil
	}
	id := strings.TrimLeft(tokens[0], "0")
	body := strings.Join(tokens[1:], "")
	if !allIn(body, base32Alphabet+"0189") {
		return nil, notCode, nil
	}
	// As printed, in groups of five, or typed without separators.
	grouped := true
	for _, t := range tokens[1:] {
		grouped = grouped && (len(t) == codeGroup || len(tokens) == 2)
	}
	switch {
	case len(body) == codeChars+checkChars && grouped:
		body = fixCodeTypos.Replace(body)
		raw, err := codeEncoding.DecodeString(body[:codeChars])
		if err != nil || len(raw) != codeBytes || codeEncoding.EncodeToString(raw) != body[:codeChars] ||
			codeChecksum(id, raw) != body[codeChars:] {
			return nil, isCode, &CodeError{Reason: CodeMistyped}
		}
		return &recoveryCode{id: id, raw: raw, checked: true}, isCode, nil
	case len(body) == codeChars:
		raw, err := codeEncoding.DecodeString(body)
		// The encoder leaves the last character's two spare bits zero:
		// a code whose bits are not is mistyped.
		if err != nil || len(raw) != codeBytes || codeEncoding.EncodeToString(raw) != body {
			return nil, maybeCode, &CodeError{Reason: CodeMistyped, Detail: "its last group is not one a code can end with"}
		}
		return &recoveryCode{id: id, raw: raw}, isCode, nil
	case len(body) >= 20 && len(body) <= 36:
		return nil, maybeCode, &CodeError{Reason: CodeMistyped,
			Detail: fmt.Sprintf("it has %d characters after its number, a code has %d", len(body), codeChars+checkChars)}
	}
	return nil, notCode, nil
}

func allIn(s, set string) bool {
	for _, r := range s {
		if !strings.ContainsRune(set, r) {
			return false
		}
	}
	return true
}

// CodeReason says why a recovery code did not unlock a store.
type CodeReason int

const (
	// CodeMistyped: the code's checksum or shape fails; it was not tried.
	CodeMistyped CodeReason = iota + 1
	// CodeUsed: the code unlocked the store once and was then burnt.
	CodeUsed
	// CodeForeign: the code is well formed but does not open the store's
	// wrapper of its number: another store's code, or, for codes without
	// a checksum, a mistyped one.
	CodeForeign
)

// CodeError says why a recovery code did not unlock a store. It wraps
// [ErrWrongPassphrase], so callers that only ask whether unlocking failed
// need not know it.
type CodeError struct {
	Reason CodeReason
	// N is the code's number; "" for a mistyped code.
	N string
	// UsedAt is when a used code was used, zero when unknown.
	UsedAt time.Time
	// Unchecked is true for a code of the older form, without a checksum.
	Unchecked bool
	// Detail adds what was wrong with a mistyped code.
	Detail string
}

func (e *CodeError) Error() string {
	switch e.Reason {
	case CodeUsed:
		when := ""
		if !e.UsedAt.IsZero() {
			when = " on " + e.UsedAt.Local().Format("2006-01-02 15:04 MST")
		}
		return fmt.Sprintf("recovery code %s was already used%s; it no longer unlocks anything", e.N, when)
	case CodeForeign:
		if e.Unchecked {
			return fmt.Sprintf("recovery code %s does not unlock this store: it is mistyped (codes of this older form carry no checksum) or belongs to another store", e.N)
		}
		return fmt.Sprintf("recovery code %s does not unlock this store: it belongs to another store", e.N)
	}
	if e.Detail != "" {
		return "wrong passphrase, or a mistyped recovery code (" + e.Detail + "): check each group"
	}
	return "this recovery code is mistyped (checksum fails): check each group"
}

func (e *CodeError) Unwrap() error { return ErrWrongPassphrase }

// Unlocked is the result of [KeyFile.Unlock].
type Unlocked struct {
	Keys *Keys
	// RecoveryID is the wrapper a recovery code opened, "" for the
	// passphrase. The caller must burn it with [KeyFile.BurnRecovery] and
	// save the key file.
	RecoveryID string
}

// Unlock opens the key file with a passphrase or a recovery code. A
// recovery code whose checksum fails is refused before any key is derived.
// When unlocking fails, the error is [ErrWrongPassphrase] or a
// [*CodeError] that wraps it.
func (kf *KeyFile) Unlock(secret []byte) (*Unlocked, error) {
	if err := kf.Argon2.validate(); err != nil {
		return nil, fmt.Errorf("key blob: %w", err)
	}
	code, shape, codeErr := parseCode(string(secret))
	if shape == isCode && codeErr != nil {
		return nil, codeErr
	}
	var s *secrets
	var recID string
	if code != nil {
		s, codeErr = kf.openRecovery(code)
		if s != nil {
			recID = code.id
		} else if code.checked {
			return nil, codeErr
		}
	}
	if s == nil {
		// A passphrase, or something shaped like a code of the older
		// form, which might be a passphrase.
		got, err := openWrapper(passphraseKEK(secret, kf.Passphrase.Salt, kf.Argon2), kf.Passphrase.Sealed, kf.ad("passphrase"))
		if err != nil {
			if codeErr != nil {
				return nil, codeErr
			}
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

// openRecovery opens the wrapper of a well-formed recovery code.
func (kf *KeyFile) openRecovery(c *recoveryCode) (*secrets, error) {
	for _, w := range kf.Recovery {
		if w.ID != c.id {
			continue
		}
		if s, err := openWrapper(recoveryKEK(c.raw, w.Salt), w.Sealed, kf.ad("recovery "+c.id)); err == nil {
			return s, nil
		}
		return nil, &CodeError{Reason: CodeForeign, N: c.id, Unchecked: !c.checked}
	}
	// No wrapper of that number: init makes 1 to RecoveryCodes, and a
	// used one is removed.
	if at, ok := kf.used[c.id]; ok {
		return nil, &CodeError{Reason: CodeUsed, N: c.id, UsedAt: at, Unchecked: !c.checked}
	}
	if n, err := strconv.Atoi(c.id); err == nil && n >= 1 && n <= RecoveryCodes {
		return nil, &CodeError{Reason: CodeUsed, N: c.id, Unchecked: !c.checked}
	}
	return nil, &CodeError{Reason: CodeForeign, N: c.id, Unchecked: !c.checked}
}

// BurnRecovery removes a used recovery code, records when it was used, and
// returns how many remain.
func (kf *KeyFile) BurnRecovery(id string) int {
	if kf.used == nil {
		kf.used = map[string]time.Time{}
	}
	kf.used[id] = time.Now().UTC().Truncate(time.Second)
	out := kf.Recovery[:0]
	for _, w := range kf.Recovery {
		if w.ID != id {
			out = append(out, w)
		}
	}
	kf.Recovery = out
	return len(out)
}

// exportVersion is the first byte of [Keys.Export]'s form.
const exportVersion = 1

// Export returns the unlocked secrets of k (the master key and the signing
// seed, after a version byte) so that another process of the same user, the
// unlock agent, can keep them for [OpenUnlocked]. They unlock the store as
// the passphrase does: keep them in memory only, never in arguments, the
// environment, files or logs, and wipe them after use.
func (k *Keys) Export() []byte {
	b := make([]byte, 0, 1+len(k.secrets.master)+len(k.secrets.seed))
	b = append(b, exportVersion)
	b = append(b, k.secrets.master[:]...)
	return append(b, k.secrets.seed[:]...)
}

// unlockExported checks secrets from [Keys.Export] against the key file and
// derives the keys.
func (kf *KeyFile) unlockExported(b []byte) (*Keys, error) {
	var s secrets
	if len(b) != 1+len(s.master)+len(s.seed) || b[0] != exportVersion {
		return nil, errors.New("unlocked keys: not in the form this dvpc exports")
	}
	copy(s.master[:], b[1:])
	copy(s.seed[:], b[1+len(s.master):])
	sk := newSigningKey(s.seed[:])
	if sk.authorizedKey() != kf.SigningPublic {
		return nil, fmt.Errorf("unlocked keys: they are not the keys of store %s", kf.StoreID)
	}
	return deriveKeys(kf.StoreID, &s, sk)
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
