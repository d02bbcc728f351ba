package image

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
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

// ErrWeakArgon2 means argon2id parameters below the floor for new keys.
var ErrWeakArgon2 = errors.New("argon2id parameters below the floor")

// ErrLegacyKeys means a version-1 key blob, whose wrappers are not public
// keys, cannot start a new epoch without the new passphrase.
var ErrLegacyKeys = errors.New("the key blob is of version 1: a new key epoch needs a new passphrase (`dvpc key passwd`)")

// KeyFileMediaType is the media type of the key blob. Version 2 blobs keep
// it: the version is inside.
const KeyFileMediaType = "application/vnd.dvpc.keys.v1+json"

// KeyFileVersion is the version of key blob this dvpc writes.
const KeyFileVersion = 2

// RecoveryCodes is how many one-time recovery codes init makes.
const RecoveryCodes = 8

// Argon2Params are the argon2id parameters of a passphrase wrapper.
type Argon2Params struct {
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
}

// DefaultArgon2 is the floor for new keys; init calibrates upwards from it
// (see [CalibrateArgon2]).
var DefaultArgon2 = Argon2Params{Time: 2, MemoryKiB: 64 << 10, Threads: 2}

// The floor for new passphrase keys: below it, a guess costs an attacker
// with a GPU too little.
const (
	Argon2MinMemoryKiB = 64 << 10
	Argon2MinTime      = 2
)

// validate checks the range dvpc opens: stores made before the floor was
// raised included.
func (p Argon2Params) validate() error {
	if p.Time < 1 || p.Time > 20 || p.MemoryKiB < 8<<10 || p.MemoryKiB > 1<<20 || p.Threads < 1 || p.Threads > 16 {
		return fmt.Errorf("argon2id parameters %+v out of range (time 1-20, memory 8 MiB-1 GiB, threads 1-16)", p)
	}
	return nil
}

// Weak reports whether p is below the floor for new keys: such a store
// still opens, but its passphrase should be set again (`dvpc key passwd`).
func (p Argon2Params) Weak() bool { return p.MemoryKiB < Argon2MinMemoryKiB || p.Time < Argon2MinTime }

// ValidateNew checks parameters for a new passphrase key: the range, and
// the floor. Only test builds (a go test binary, or dvpc built with the
// tag dvpc_unsafe_test) accept weaker ones, so that tests run fast; they
// enforce the floor too when DVPC_TEST_ARGON2_FLOOR=enforce. A dvpc built
// for users always enforces it.
func (p Argon2Params) ValidateNew() error {
	if err := p.validate(); err != nil {
		return err
	}
	if p.Weak() && Argon2FloorEnforced() {
		return fmt.Errorf("argon2id with %d MiB and time %d: %w (at least %d MiB and time %d)",
			p.MemoryKiB>>10, p.Time, ErrWeakArgon2, Argon2MinMemoryKiB>>10, Argon2MinTime)
	}
	return nil
}

// Argon2FloorEnforced reports whether new keys must meet the argon2id
// floor: always, except in test builds (see [Argon2Params.ValidateNew]).
func Argon2FloorEnforced() bool {
	return !(testing.Testing() || unsafeTestBuild) || os.Getenv("DVPC_TEST_ARGON2_FLOOR") == "enforce"
}

// CalibrateArgon2 returns parameters at or above the floor that take about
// target on this machine, measured with one hash at the floor and scaled
// (memory first, up to 256 MiB, then time, up to 10 passes). It hashes once; measure returns
// how long one hash with the given parameters takes.
func CalibrateArgon2(target time.Duration, threads int, measure func(Argon2Params) time.Duration) Argon2Params {
	p := DefaultArgon2
	p.Threads = uint8(min(max(threads, 1), 4))
	if measure == nil {
		measure = func(p Argon2Params) time.Duration {
			start := time.Now()
			argon2.IDKey([]byte("calibrate"), make([]byte, 16), p.Time, p.MemoryKiB, p.Threads, 32)
			return time.Since(start)
		}
	}
	d := measure(p)
	if d <= 0 || d >= target {
		return p
	}
	scale := float64(target) / float64(d)
	mem := min(float64(p.MemoryKiB)*scale, 256<<10)
	scale /= mem / float64(p.MemoryKiB)
	p.MemoryKiB = uint32(mem) &^ 1023
	p.Time = uint32(min(max(float64(p.Time)*scale, Argon2MinTime), 10))
	return p
}

// wrapper is the store's secrets sealed under one key-encryption key, as
// version 1 key blobs hold them.
type wrapper struct {
	ID     string `json:"id"`
	Salt   []byte `json:"salt"`
	Sealed []byte `json:"sealed"`
}

// KeyFile is the key blob of a store. Only public keys and the chain of
// rotation statements are readable without a passphrase or recovery code.
//
// Version 1 held one set of keys wrapped under symmetric keys
// (Passphrase, Recovery). Version 2 holds the current key epoch sealed to
// each of Recipients, the rotations that led to it, and the older epochs'
// keys sealed under the current one (History).
type KeyFile struct {
	Version       int          `json:"version"`
	StoreID       string       `json:"store_id"`
	Epoch         uint32       `json:"epoch,omitempty"`
	SigningPublic string       `json:"signing_public"` // the current epoch's, OpenSSH authorized_keys form
	Argon2        Argon2Params `json:"argon2"`

	Passphrase *wrapper  `json:"passphrase,omitempty"` // version 1
	Recovery   []wrapper `json:"recovery,omitempty"`   // version 1

	Recipients []Recipient `json:"recipients,omitempty"` // version 2
	Rotations  []Rotation  `json:"rotations,omitempty"`  // version 2: epoch 1 to Epoch
	History    []byte      `json:"history,omitempty"`    // version 2: older epochs' keys

	// used records when each burnt recovery code was used. It is kept in
	// the key manifest's annotations, not in the key blob, so that
	// versions of dvpc that do not know it still read the blob.
	used map[string]time.Time
	// byCode is set when the current epoch was started where a recovery
	// code unlocked the store (a PC that is maybe not the person's own,
	// and that knows this epoch's keys). Kept, like used, in the key
	// manifest's annotations: the next passphrase unlock of a writable
	// store starts an epoch that PC never saw ([Open]).
	byCode bool
	// chain is the verified chain of epochs, 0 to Epoch.
	chain []EpochInfo
}

// secrets are the unlocked secrets of a key epoch and the epochs before.
type secrets struct {
	epoch  uint32
	master [32]byte
	seed   [ed25519.SeedSize]byte
	older  map[uint32][32]byte // masters of the epochs before
}

func (s *secrets) bytes() []byte { return append(s.master[:], s.seed[:]...) }

// storeMaster is epoch 0's master key, from which the keys that belong to
// the store rather than to an epoch derive: chunk IDs, gear table, home IDs.
func (s *secrets) storeMaster() []byte {
	if s.epoch == 0 {
		return s.master[:]
	}
	m := s.older[0]
	return m[:]
}

func (kf *KeyFile) ad(kind string) []byte {
	return []byte("dvpc keys v1 " + kf.StoreID + " " + kind)
}

// recipientAD binds a recipient's sealed secrets to the store, the epoch,
// the recipient and the epoch's signing key.
func (kf *KeyFile) recipientAD(r *Recipient) []byte {
	return fmt.Appendf(nil, "dvpc keys v2 %s epoch %d %s %s %s", kf.StoreID, kf.Epoch, r.Kind, r.ID, kf.SigningPublic)
}

func sealWrapper(kek []byte, plaintext, ad []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(kek)
	if err != nil {
		return nil, err
	}
	return seal(aead, nil, plaintext, ad), nil
}

func parseSecrets(pt []byte, epoch uint32) (*secrets, error) {
	if len(pt) != 64 {
		return nil, fmt.Errorf("key wrapper holds %d bytes, want 64", len(pt))
	}
	s := secrets{epoch: epoch}
	copy(s.master[:], pt[:32])
	copy(s.seed[:], pt[32:])
	return &s, nil
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
	return parseSecrets(pt, 0)
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

func newSecrets(epoch uint32) *secrets {
	s := &secrets{epoch: epoch}
	copy(s.master[:], randomBytes(32))
	copy(s.seed[:], randomBytes(ed25519.SeedSize))
	return s
}

// NewKeyFile makes fresh keys for a new store, epoch 0, sealed to the
// passphrase and to RecoveryCodes one-time codes, which it returns for the
// person to write down. They are shown once and cannot be recovered later.
func NewKeyFile(passphrase []byte, p Argon2Params) (*KeyFile, []string, *Keys, error) {
	if len(passphrase) == 0 {
		return nil, nil, nil, errors.New("empty passphrase: choose a passphrase")
	}
	if err := p.ValidateNew(); err != nil {
		return nil, nil, nil, err
	}
	s := newSecrets(0)
	sk := newSigningKey(s.seed[:])
	kf := &KeyFile{Version: KeyFileVersion, StoreID: codeEncoding.EncodeToString(randomBytes(10)), Argon2: p, SigningPublic: sk.authorizedKey()}
	kf.chain = []EpochInfo{{Epoch: 0, Key: kf.SigningPublic}}
	rs := []Recipient{passphraseRecipient(passphrase, p)}
	recs, codes := newRecoveryRecipients()
	rs = append(rs, recs...)
	if err := kf.sealRecipients(s, rs); err != nil {
		return nil, nil, nil, err
	}
	keys, err := deriveKeys(kf.StoreID, s, sk)
	return kf, codes, keys, err
}

// newKeyFileV1 makes a key blob of version 1, as dvpc wrote before key
// epochs; tests use it to show that such stores keep working.
func newKeyFileV1(passphrase []byte, p Argon2Params) (*KeyFile, []string, *Keys, error) {
	if err := p.validate(); err != nil {
		return nil, nil, nil, err
	}
	s := newSecrets(0)
	kf := &KeyFile{Version: 1, StoreID: codeEncoding.EncodeToString(randomBytes(10)), Argon2: p}
	sk := newSigningKey(s.seed[:])
	kf.SigningPublic = sk.authorizedKey()
	kf.chain = []EpochInfo{{Epoch: 0, Key: kf.SigningPublic}}
	salt := randomBytes(16)
	sealed, err := sealWrapper(passphraseKEK(passphrase, salt, kf.Argon2), s.bytes(), kf.ad("passphrase"))
	if err != nil {
		return nil, nil, nil, err
	}
	kf.Passphrase = &wrapper{ID: "passphrase", Salt: salt, Sealed: sealed}
	var codes []string
	for i := 1; i <= RecoveryCodes; i++ {
		raw := randomBytes(16)
		salt := randomBytes(16)
		id := strconv.Itoa(i)
		sealed, err := sealWrapper(recoveryKEK(raw, salt), s.bytes(), kf.ad("recovery "+id))
		if err != nil {
			return nil, nil, nil, err
		}
		kf.Recovery = append(kf.Recovery, wrapper{ID: id, Salt: salt, Sealed: sealed})
		codes = append(codes, formatCode(i, raw))
	}
	keys, err := deriveKeys(kf.StoreID, s, sk)
	return kf, codes, keys, err
}

func passphraseRecipient(pass []byte, p Argon2Params) Recipient {
	salt := randomBytes(16)
	return Recipient{Kind: RecipientPassphrase, ID: RecipientPassphrase, Public: passphraseIdentity(pass, salt, p).public(), Salt: salt}
}

// newRecoveryRecipients makes RecoveryCodes fresh codes and their
// recipients.
func newRecoveryRecipients() ([]Recipient, []string) {
	var rs []Recipient
	var codes []string
	for i := 1; i <= RecoveryCodes; i++ {
		raw := randomBytes(codeBytes)
		salt := randomBytes(16)
		rs = append(rs, Recipient{Kind: RecipientRecovery, ID: strconv.Itoa(i), Public: recoveryIdentity(raw, salt).public(), Salt: salt})
		codes = append(codes, formatCode(i, raw))
	}
	return rs, codes
}

// sealRecipients seals the epoch's secrets s to each recipient and makes
// them the key blob's.
func (kf *KeyFile) sealRecipients(s *secrets, rs []Recipient) error {
	for i := range rs {
		sealed, err := sealTo(rs[i].Public, s.bytes(), kf.recipientAD(&rs[i]))
		if err != nil {
			return fmt.Errorf("seal to recipient %s %s: %w", rs[i].Kind, rs[i].ID, err)
		}
		rs[i].Sealed = sealed
	}
	kf.Recipients = rs
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
	// RecoveryID is the recovery code that opened the key blob, "" for
	// the passphrase. On a writable store the caller retires it by
	// starting a new epoch without it ([Repo.Rotate]).
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
		got, err := kf.openPassphrase(secret)
		if err != nil {
			if codeErr != nil {
				return nil, codeErr
			}
			return nil, err
		}
		s = got
	}
	keys, err := kf.keysOf(s)
	if err != nil {
		return nil, err
	}
	return &Unlocked{Keys: keys, RecoveryID: recID}, nil
}

// keysOf checks the current epoch's secrets against the key blob, opens
// the older epochs' and derives the keys.
func (kf *KeyFile) keysOf(s *secrets) (*Keys, error) {
	sk := newSigningKey(s.seed[:])
	if sk.authorizedKey() != kf.SigningPublic {
		return nil, errors.New("key blob: the public signing key does not match the sealed one; the key blob was altered")
	}
	if kf.Version >= 2 {
		older, err := kf.openHistory(s)
		if err != nil {
			return nil, err
		}
		s.older = older
	}
	return deriveKeys(kf.StoreID, s, sk)
}

func (kf *KeyFile) openPassphrase(pass []byte) (*secrets, error) {
	if kf.Version == 1 {
		s, err := openWrapper(passphraseKEK(pass, kf.Passphrase.Salt, kf.Argon2), kf.Passphrase.Sealed, kf.ad("passphrase"))
		if err != nil {
			return nil, ErrWrongPassphrase
		}
		return s, nil
	}
	for i := range kf.Recipients {
		r := &kf.Recipients[i]
		if r.Kind != RecipientPassphrase {
			continue
		}
		id := passphraseIdentity(pass, r.Salt, kf.Argon2)
		if s, err := kf.openRecipient(r, id); err == nil {
			return s, nil
		}
	}
	return nil, ErrWrongPassphrase
}

func (kf *KeyFile) openRecipient(r *Recipient, id *identity) (*secrets, error) {
	if !bytes.Equal(id.public(), r.Public) {
		return nil, ErrWrongPassphrase
	}
	pt, err := id.openFrom(r.Sealed, kf.recipientAD(r))
	if err != nil {
		return nil, err
	}
	return parseSecrets(pt, kf.Epoch)
}

// historyKey seals the older epochs' masters under the current epoch.
func historyAEAD(storeID string, s *secrets) (aeadKey []byte, ad []byte) {
	key := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, s.master[:], []byte(storeID), []byte("dvpc v2 history")), key); err != nil {
		panic(err)
	}
	return key, fmt.Appendf(nil, "dvpc keys v2 %s history %d", storeID, s.epoch)
}

// sealHistory seals the masters of epochs 0 to s.epoch-1: 32 bytes each,
// in epoch order.
func sealHistory(storeID string, s *secrets) ([]byte, error) {
	if s.epoch == 0 {
		return nil, nil
	}
	var pt []byte
	for e := uint32(0); e < s.epoch; e++ {
		m, ok := s.older[e]
		if !ok {
			return nil, fmt.Errorf("seal history: epoch %d: %w", e, errNoEpochKeys)
		}
		pt = append(pt, m[:]...)
	}
	key, ad := historyAEAD(storeID, s)
	return sealWrapper(key, pt, ad)
}

func (kf *KeyFile) openHistory(s *secrets) (map[uint32][32]byte, error) {
	if s.epoch == 0 {
		return nil, nil
	}
	key, ad := historyAEAD(kf.StoreID, s)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	pt, err := open(aead, nil, kf.History, ad)
	if err != nil {
		return nil, fmt.Errorf("key blob: older epochs' keys: %w", err)
	}
	if len(pt) != 32*int(s.epoch) {
		return nil, fmt.Errorf("key blob: older epochs' keys hold %d bytes, want %d: %w", len(pt), 32*s.epoch, ErrFormat)
	}
	older := map[uint32][32]byte{}
	for e := uint32(0); e < s.epoch; e++ {
		older[e] = [32]byte(pt[32*e : 32*e+32])
	}
	return older, nil
}

// openRecovery opens the wrapper or recipient of a well-formed recovery
// code.
func (kf *KeyFile) openRecovery(c *recoveryCode) (*secrets, error) {
	if kf.Version == 1 {
		for _, w := range kf.Recovery {
			if w.ID != c.id {
				continue
			}
			if s, err := openWrapper(recoveryKEK(c.raw, w.Salt), w.Sealed, kf.ad("recovery "+c.id)); err == nil {
				return s, nil
			}
			return nil, &CodeError{Reason: CodeForeign, N: c.id, Unchecked: !c.checked}
		}
	} else {
		for i := range kf.Recipients {
			r := &kf.Recipients[i]
			if r.Kind != RecipientRecovery || r.ID != c.id {
				continue
			}
			if s, err := kf.openRecipient(r, recoveryIdentity(c.raw, r.Salt)); err == nil {
				return s, nil
			}
			return nil, &CodeError{Reason: CodeForeign, N: c.id, Unchecked: !c.checked}
		}
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

// RecoveryLeft returns how many recovery codes still open the key blob.
func (kf *KeyFile) RecoveryLeft() int {
	if kf.Version == 1 {
		return len(kf.Recovery)
	}
	n := 0
	for _, r := range kf.Recipients {
		if r.Kind == RecipientRecovery {
			n++
		}
	}
	return n
}

// HasRecovery reports whether recovery code id still opens the key blob.
func (kf *KeyFile) HasRecovery(id string) bool {
	if kf.Version == 1 {
		return slices.ContainsFunc(kf.Recovery, func(w wrapper) bool { return w.ID == id })
	}
	return slices.ContainsFunc(kf.Recipients, func(r Recipient) bool { return r.Kind == RecipientRecovery && r.ID == id })
}

// burnV1 removes a used recovery code from a version-1 key blob, which
// cannot start an epoch without the passphrase, records when it was used,
// and returns how many remain. Older copies of the blob still hold it.
func (kf *KeyFile) burnV1(id string) int {
	kf.markUsed(id)
	out := kf.Recovery[:0]
	for _, w := range kf.Recovery {
		if w.ID != id {
			out = append(out, w)
		}
	}
	kf.Recovery = out
	return len(out)
}

func (kf *KeyFile) markUsed(id string) {
	if kf.used == nil {
		kf.used = map[string]time.Time{}
	}
	kf.used[id] = time.Now().UTC().Truncate(time.Second)
}

// RotateOptions say who may open the new epoch.
type RotateOptions struct {
	// Burn lists recovery codes (by number) the new epoch is not sealed
	// to; they are recorded as used.
	Burn []string
	// NewPassphrase, when set, replaces the passphrase recipient, with
	// Argon2 as its parameters (the key blob's when zero).
	NewPassphrase []byte
	Argon2        Argon2Params
	// HighSeq is the highest sequence number the store holds: the old
	// signing key signs nothing above it.
	HighSeq uint64
	// AddX25519 are other people's keys (a reader of a shared folder, a
	// help desk) to seal the new epoch to as well; each needs its
	// X25519 public key and a label.
	AddX25519 []Recipient
	// ByCode records that a recovery code unlocked the store for this
	// rotation (see KeyFile.byCode).
	ByCode bool
}

// Rotate starts the next key epoch: new sealing keys and a new signing
// key, sealed to the current recipients less the burnt codes (and to a new
// passphrase if given), a rotation statement signed by the old and the new
// key, and the older epochs' keys sealed under the new one. k must be the
// key blob's current keys. It returns the new key blob and keys, and new
// recovery codes when the old ones could not be carried over (a version 1
// key blob: its codes are not public keys).
func (kf *KeyFile) Rotate(k *Keys, opts RotateOptions) (*KeyFile, *Keys, []string, error) {
	if k.storeID != kf.StoreID || k.secrets == nil || k.secrets.epoch != kf.Epoch || k.sign.authorizedKey() != kf.SigningPublic {
		return nil, nil, nil, errors.New("rotate keys: the keys are not this key blob's current ones")
	}
	nkf := &KeyFile{Version: KeyFileVersion, StoreID: kf.StoreID, Epoch: kf.Epoch + 1, Argon2: kf.Argon2, used: map[string]time.Time{}}
	var rs []Recipient
	var codes []string
	if kf.Version == 1 {
		if opts.NewPassphrase == nil {
			return nil, nil, nil, ErrLegacyKeys
		}
		rs, codes = newRecoveryRecipients()
	} else {
		for id, t := range kf.used {
			nkf.used[id] = t
		}
		for _, r := range kf.Recipients {
			if r.Kind == RecipientRecovery && slices.Contains(opts.Burn, r.ID) {
				continue
			}
			if r.Kind == RecipientPassphrase && opts.NewPassphrase != nil {
				continue
			}
			r.Sealed = nil
			rs = append(rs, r)
		}
	}
	for _, id := range opts.Burn {
		if _, ok := nkf.used[id]; !ok {
			nkf.used[id] = time.Now().UTC().Truncate(time.Second)
		}
	}
	if opts.NewPassphrase != nil {
		if len(opts.NewPassphrase) == 0 {
			return nil, nil, nil, errors.New("empty passphrase: choose a passphrase")
		}
		if opts.Argon2 != (Argon2Params{}) {
			nkf.Argon2 = opts.Argon2
		}
		if err := nkf.Argon2.ValidateNew(); err != nil {
			return nil, nil, nil, err
		}
		rs = append([]Recipient{passphraseRecipient(opts.NewPassphrase, nkf.Argon2)}, rs...)
	}
	for i, r := range opts.AddX25519 {
		if len(r.Public) != 32 {
			return nil, nil, nil, fmt.Errorf("add recipient %q: public key of %d bytes, want 32", r.Label, len(r.Public))
		}
		rs = append(rs, Recipient{Kind: RecipientX25519, ID: fmt.Sprintf("x%d-%d", nkf.Epoch, i+1), Label: r.Label, Public: r.Public})
	}
	if len(rs) == 0 {
		return nil, nil, nil, errors.New("rotate keys: nobody could open the new epoch (no passphrase, no recovery code left)")
	}
	high := opts.HighSeq
	if n := len(kf.chain); n > 1 {
		high = max(high, kf.chain[n-2].End)
	}
	s := newSecrets(nkf.Epoch)
	s.older = map[uint32][32]byte{}
	for e, m := range k.secrets.older {
		s.older[e] = m
	}
	s.older[kf.Epoch] = k.secrets.master
	sk := newSigningKey(s.seed[:])
	nkf.SigningPublic = sk.authorizedKey()
	rot, err := newRotation(&RotationStatement{StoreID: kf.StoreID, Epoch: nkf.Epoch, Key: nkf.SigningPublic, Previous: kf.SigningPublic, HighSeq: high}, k.sign, sk)
	if err != nil {
		return nil, nil, nil, err
	}
	nkf.Rotations = append(slices.Clone(kf.Rotations), rot)
	if nkf.History, err = sealHistory(kf.StoreID, s); err != nil {
		return nil, nil, nil, err
	}
	if err := nkf.sealRecipients(s, rs); err != nil {
		return nil, nil, nil, err
	}
	if nkf.chain, err = nkf.verifyChain(); err != nil {
		return nil, nil, nil, fmt.Errorf("rotate keys: %w", err)
	}
	keys, err := deriveKeys(kf.StoreID, s, sk)
	if err != nil {
		return nil, nil, nil, err
	}
	return nkf, keys, codes, nil
}

// exportVersion is the first byte of [Keys.Export]'s form.
const exportVersion = 2

// Export returns the unlocked secrets of k (the current epoch's master key
// and signing seed, and the older epochs' master keys, after a version
// byte) so that another process of the same user, the unlock agent, can
// keep them for [OpenUnlocked]. They unlock the store as the passphrase
// does: keep them in memory only, never in arguments, the environment,
// files or logs, and wipe them after use.
func (k *Keys) Export() []byte {
	s := k.secrets
	b := []byte{exportVersion}
	b = binary.BigEndian.AppendUint32(b, s.epoch)
	b = append(b, s.master[:]...)
	b = append(b, s.seed[:]...)
	for e := uint32(0); e < s.epoch; e++ {
		m := s.older[e]
		b = append(b, m[:]...)
	}
	return b
}

// unlockExported checks secrets from [Keys.Export] against the key file and
// derives the keys.
func (kf *KeyFile) unlockExported(b []byte) (*Keys, error) {
	bad := errors.New("unlocked keys: not in the form this dvpc exports")
	if len(b) < 5+64 || b[0] != exportVersion {
		return nil, bad
	}
	s := secrets{epoch: binary.BigEndian.Uint32(b[1:5])}
	rest := b[5:]
	if uint64(len(rest)) != 64+32*uint64(s.epoch) {
		return nil, bad
	}
	copy(s.master[:], rest[:32])
	copy(s.seed[:], rest[32:64])
	rest = rest[64:]
	if s.epoch > 0 {
		s.older = map[uint32][32]byte{}
		for e := uint32(0); e < s.epoch; e++ {
			s.older[e] = [32]byte(rest[32*e : 32*e+32])
		}
	}
	sk := newSigningKey(s.seed[:])
	if s.epoch != kf.Epoch || sk.authorizedKey() != kf.SigningPublic {
		return nil, fmt.Errorf("unlocked keys: they are not the current keys of store %s", kf.StoreID)
	}
	return deriveKeys(kf.StoreID, &s, sk)
}

// Marshal encodes the key file as its blob.
func (kf *KeyFile) Marshal() ([]byte, error) { return json.MarshalIndent(kf, "", "  ") }

// maxKeyBlob bounds a key blob: a few hundred recipients and rotations.
const maxKeyBlob = 1 << 20

// ParseKeyFile decodes a key blob. It checks the structure and the chain
// of rotation statements, not the secrets.
func ParseKeyFile(b []byte) (*KeyFile, error) {
	if len(b) > maxKeyBlob {
		return nil, fmt.Errorf("parse key blob: %d bytes, more than %d", len(b), maxKeyBlob)
	}
	var kf KeyFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&kf); err != nil {
		return nil, fmt.Errorf("parse key blob: %w", err)
	}
	if dec.More() {
		return nil, errors.New("parse key blob: trailing data after the key object")
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
	switch kf.Version {
	case 1:
		if kf.Passphrase == nil || kf.Epoch != 0 || kf.Recipients != nil || kf.Rotations != nil || kf.History != nil {
			return nil, errors.New("parse key blob: version 1 with fields it cannot have")
		}
	case 2:
		if kf.Passphrase != nil || kf.Recovery != nil {
			return nil, errors.New("parse key blob: version 2 with version 1 wrappers")
		}
		if (kf.Epoch == 0) != (kf.History == nil) {
			return nil, errors.New("parse key blob: older epochs' keys do not match the epoch")
		}
		seen := map[string]bool{}
		for _, r := range kf.Recipients {
			key := r.Kind + " " + r.ID
			if seen[key] || len(r.Public) != 32 || r.ID == "" ||
				(r.Kind != RecipientPassphrase && r.Kind != RecipientRecovery && r.Kind != RecipientX25519) {
				return nil, fmt.Errorf("parse key blob: bad recipient %q %q", r.Kind, r.ID)
			}
			seen[key] = true
		}
	default:
		return nil, fmt.Errorf("parse key blob: version %d is not supported (want 1 or 2); a newer dvpc may read it", kf.Version)
	}
	if kf.chain, err = kf.verifyChain(); err != nil {
		return nil, fmt.Errorf("parse key blob: %w", err)
	}
	return &kf, nil
}
