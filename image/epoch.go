package image

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
)

// RotationNamespace is the SSHSIG namespace of rotation statements.
const RotationNamespace = "dvpc-key-rotation"

// AnnotationEpoch is the snapshot manifest annotation naming the key epoch
// whose signing key signed it. A snapshot without it is of epoch 0.
const AnnotationEpoch = "dev.dvpc.epoch"

// ErrEpoch means a snapshot's signer does not fit the chain of key epochs:
// an epoch this key blob does not know, or an old epoch's key used after
// that epoch ended. It wraps [ErrBadSignature].
var ErrEpoch = fmt.Errorf("key epoch: %w", ErrBadSignature)

// rotationHeader is the first line of a rotation statement.
const rotationHeader = "dvpc key rotation v1"

// RotationStatement says that a store's signing key changed: from epoch
// Epoch on, snapshots are signed by Key, and the previous key signs no
// snapshot with a sequence number above HighSeq.
type RotationStatement struct {
	StoreID  string
	Epoch    uint32
	Key      string // new signing key, authorized_keys form
	Previous string // signing key of epoch Epoch-1
	HighSeq  uint64
}

// Marshal renders the statement as the text both keys sign.
func (s *RotationStatement) Marshal() []byte {
	return fmt.Appendf(nil, "%s\nstore %s\nepoch %d\nkey %s\nprevious %s\nhigh-seq %d\n",
		rotationHeader, s.StoreID, s.Epoch, s.Key, s.Previous, s.HighSeq)
}

// ParseRotationStatement reads a statement as [RotationStatement.Marshal]
// writes it, and nothing else: the bytes must be exactly what Marshal
// would give back.
func ParseRotationStatement(b []byte) (*RotationStatement, error) {
	fail := func(what string) (*RotationStatement, error) {
		return nil, fmt.Errorf("parse rotation statement: %s: %w", what, ErrFormat)
	}
	if len(b) > 4096 {
		return fail("too long")
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) != 7 || lines[6] != "" || lines[0] != rotationHeader {
		return fail("not a dvpc rotation statement")
	}
	field := func(i int, name string) (string, bool) {
		return strings.CutPrefix(lines[i], name+" ")
	}
	var s RotationStatement
	var ok bool
	if s.StoreID, ok = field(1, "store"); !ok || s.StoreID == "" {
		return fail("no store")
	}
	ep, ok := field(2, "epoch")
	n, err := strconv.ParseUint(ep, 10, 32)
	if !ok || err != nil || n == 0 {
		return fail("bad epoch")
	}
	s.Epoch = uint32(n)
	if s.Key, ok = field(3, "key"); !ok || !isEd25519Key(s.Key) {
		return fail("bad key")
	}
	if s.Previous, ok = field(4, "previous"); !ok || !isEd25519Key(s.Previous) {
		return fail("bad previous key")
	}
	hs, ok := field(5, "high-seq")
	if s.HighSeq, err = strconv.ParseUint(hs, 10, 64); !ok || err != nil {
		return fail("bad high-seq")
	}
	if string(s.Marshal()) != string(b) {
		return fail("not in canonical form")
	}
	return &s, nil
}

func isEd25519Key(s string) bool {
	pub, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(s))
	return err == nil && len(rest) == 0 && pub.Type() == ssh.KeyAlgoED25519 &&
		strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) == s
}

// Rotation is a signed rotation statement, as the key blob carries it.
type Rotation struct {
	Statement string `json:"statement"`
	// PreviousSignature and Signature are armored SSHSIG signatures of
	// Statement in [RotationNamespace], by the previous and the new key.
	PreviousSignature string `json:"previous_signature"`
	Signature         string `json:"signature"`
}

// newRotation signs a statement with the previous and the new key.
func newRotation(s *RotationStatement, prev, next signingKey) (Rotation, error) {
	msg := s.Marshal()
	ps, err := prev.signSSHSIGIn(RotationNamespace, msg)
	if err != nil {
		return Rotation{}, err
	}
	ns, err := next.signSSHSIGIn(RotationNamespace, msg)
	if err != nil {
		return Rotation{}, err
	}
	return Rotation{Statement: string(msg), PreviousSignature: string(ps), Signature: string(ns)}, nil
}

// Verify parses the statement and checks both signatures.
func (r *Rotation) Verify() (*RotationStatement, error) {
	s, err := ParseRotationStatement([]byte(r.Statement))
	if err != nil {
		return nil, err
	}
	if err := verifySSHSIGIn(RotationNamespace, s.Previous, []byte(r.Statement), []byte(r.PreviousSignature)); err != nil {
		return nil, fmt.Errorf("rotation to epoch %d: signature of the previous key: %w", s.Epoch, err)
	}
	if err := verifySSHSIGIn(RotationNamespace, s.Key, []byte(r.Statement), []byte(r.Signature)); err != nil {
		return nil, fmt.Errorf("rotation to epoch %d: signature of the new key: %w", s.Epoch, err)
	}
	return s, nil
}

// EpochInfo is what the chain of rotations says about one epoch.
type EpochInfo struct {
	Epoch uint32
	Key   string // signing key, authorized_keys form
	// End is the highest sequence number the epoch's key may sign; the
	// current epoch has none (Ended false).
	End   uint64
	Ended bool
}

// verifyChain checks the key blob's rotations from epoch 0 to its current
// epoch and returns every epoch's signing key and end.
func (kf *KeyFile) verifyChain() ([]EpochInfo, error) {
	if len(kf.Rotations) != int(kf.Epoch) {
		return nil, fmt.Errorf("key blob of epoch %d carries %d rotation statements, want %d: %w", kf.Epoch, len(kf.Rotations), kf.Epoch, ErrFormat)
	}
	if kf.Epoch == 0 {
		return []EpochInfo{{Epoch: 0, Key: kf.SigningPublic}}, nil
	}
	var out []EpochInfo
	for i := range kf.Rotations {
		s, err := kf.Rotations[i].Verify()
		if err != nil {
			return nil, err
		}
		if s.StoreID != kf.StoreID || s.Epoch != uint32(i+1) {
			return nil, fmt.Errorf("rotation %d names store %s epoch %d: %w", i+1, s.StoreID, s.Epoch, ErrEpoch)
		}
		if i == 0 {
			out = append(out, EpochInfo{Epoch: 0, Key: s.Previous})
		}
		prev := &out[len(out)-1]
		if s.Previous != prev.Key {
			return nil, fmt.Errorf("rotation to epoch %d does not follow from epoch %d's key: %w", s.Epoch, prev.Epoch, ErrEpoch)
		}
		if i > 0 && s.HighSeq < out[i-1].End {
			return nil, fmt.Errorf("rotation to epoch %d ends epoch %d before epoch %d began: %w", s.Epoch, i, i-1, ErrEpoch)
		}
		prev.End, prev.Ended = s.HighSeq, true
		out = append(out, EpochInfo{Epoch: s.Epoch, Key: s.Key})
	}
	if out[len(out)-1].Key != kf.SigningPublic {
		return nil, fmt.Errorf("the key blob's signing key is not the one its last rotation names: %w", ErrEpoch)
	}
	return out, nil
}

// Epochs returns the key epochs from 0 to the current one, as the verified
// chain of rotation statements gives them.
func (kf *KeyFile) Epochs() []EpochInfo { return append([]EpochInfo(nil), kf.chain...) }

// RootSigner is epoch 0's signing key: the store's identity, which every
// later key descends from through signed rotations.
func (kf *KeyFile) RootSigner() string { return kf.chain[0].Key }

// SignerFor returns the public key (authorized_keys form) that must have
// signed a snapshot of the given epoch (its [AnnotationEpoch], "" for
// epoch 0) and sequence number. It refuses, with [ErrEpoch], an epoch the
// key blob does not know and an old epoch's key signing after its end.
// It is the one place that decides which key verifies a snapshot.
func (kf *KeyFile) SignerFor(epoch string, seq uint64) (string, error) {
	var e uint64
	if epoch != "" {
		var err error
		if e, err = strconv.ParseUint(epoch, 10, 32); err != nil || strconv.FormatUint(e, 10) != epoch {
			return "", fmt.Errorf("epoch %q is not a number: %w", epoch, ErrEpoch)
		}
	}
	if e >= uint64(len(kf.chain)) {
		return "", fmt.Errorf("signed in key epoch %d, but this key blob ends at epoch %d; the store's newer key blob is needed: %w", e, kf.Epoch, ErrEpoch)
	}
	info := kf.chain[e]
	if info.Ended && seq > info.End {
		return "", fmt.Errorf("signed by the key of epoch %d with sequence %d, after that key was rotated out at %d: %w", e, seq, info.End, ErrEpoch)
	}
	return info.Key, nil
}

// SignerOf is [KeyFile.SignerFor] for a snapshot manifest's annotations.
func (kf *KeyFile) SignerOf(ann map[string]string) (string, error) {
	seq, err := strconv.ParseUint(ann[AnnotationSeq], 10, 64)
	if err != nil {
		return "", fmt.Errorf("sequence %q: %w", ann[AnnotationSeq], ErrFormat)
	}
	return kf.SignerFor(ann[AnnotationEpoch], seq)
}

// Extends reports whether next is this key blob's store at a later or the
// same epoch, along the same chain: every epoch this blob knows has the
// same key and end in next. A rival chain (a fork signed by an old key)
// gives an error wrapping [ErrEpoch].
func (kf *KeyFile) Extends(next *KeyFile) (bool, error) {
	if next.StoreID != kf.StoreID {
		return false, fmt.Errorf("key blob of store %s, not %s: %w", next.StoreID, kf.StoreID, ErrEpoch)
	}
	if next.Epoch < kf.Epoch {
		return false, nil
	}
	for i, e := range kf.chain {
		n := next.chain[i]
		if n.Key != e.Key || (e.Ended && (n.End != e.End || !n.Ended)) {
			return false, fmt.Errorf("the key blob's epoch %d differs from this store's: a rival rotation: %w", i, ErrEpoch)
		}
	}
	return next.Epoch > kf.Epoch, nil
}

var errNoEpochKeys = errors.New("keys of that epoch are not held")
