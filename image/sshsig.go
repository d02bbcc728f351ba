package image

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// SignatureNamespace is the SSHSIG namespace of snapshot signatures, as
// given to `ssh-keygen -Y verify -n`.
const SignatureNamespace = "dvpc-snapshot"

// ErrBadSignature means a snapshot signature does not verify under the
// store's public signing key.
var ErrBadSignature = errors.New("bad signature")

type signingKey struct {
	priv   ed25519.PrivateKey
	signer ssh.Signer
}

func newSigningKey(seed []byte) signingKey {
	priv := ed25519.NewKeyFromSeed(seed)
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		panic(err) // ed25519 keys are always accepted
	}
	return signingKey{priv: priv, signer: signer}
}

func (k signingKey) authorizedKey() string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k.signer.PublicKey())))
}

// sshsigSignedHash is the byte string that SSHSIG signs for a message whose
// SHA-512 is h.
func sshsigSignedHash(namespace string, h []byte) []byte {
	return append([]byte("SSHSIG"), ssh.Marshal(struct {
		Namespace, Reserved, HashAlg string
		Hash                         []byte
	}{namespace, "", "sha512", h})...)
}

type sshsigBlob struct {
	Version   uint32
	PublicKey []byte
	Namespace string
	Reserved  string
	HashAlg   string
	Signature []byte
}

// signSSHSIG signs msg and returns an armored SSHSIG signature, the format
// `ssh-keygen -Y sign` writes.
func (k signingKey) signSSHSIG(msg []byte) ([]byte, error) {
	return k.signSSHSIGIn(SignatureNamespace, msg)
}

// signSSHSIGIn signs msg in an SSHSIG namespace.
func (k signingKey) signSSHSIGIn(namespace string, msg []byte) ([]byte, error) {
	h := sha512.Sum512(msg)
	return k.signSSHSIGHash(namespace, h[:])
}

// signSSHSIGHash signs, in namespace, the message whose SHA-512 is h.
func (k signingKey) signSSHSIGHash(namespace string, h []byte) ([]byte, error) {
	sig, err := k.signer.Sign(rand.Reader, sshsigSignedHash(namespace, h))
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	blob := append([]byte("SSHSIG"), ssh.Marshal(sshsigBlob{
		Version: 1, PublicKey: k.signer.PublicKey().Marshal(), Namespace: namespace,
		HashAlg: "sha512", Signature: ssh.Marshal(sig),
	})...)
	enc := base64.StdEncoding.EncodeToString(blob)
	var b bytes.Buffer
	b.WriteString("-----BEGIN SSH SIGNATURE-----\n")
	for len(enc) > 70 {
		b.WriteString(enc[:70] + "\n")
		enc = enc[70:]
	}
	b.WriteString(enc + "\n-----END SSH SIGNATURE-----\n")
	return b.Bytes(), nil
}

// VerifySSHSIG checks an armored SSHSIG signature of msg against the public
// key in authorized_keys form. It wraps [ErrBadSignature] on any mismatch.
func VerifySSHSIG(authorizedKey string, msg, armored []byte) error {
	return verifySSHSIGIn(SignatureNamespace, authorizedKey, msg, armored)
}

// verifySSHSIGIn checks an armored SSHSIG signature of msg in namespace.
func verifySSHSIGIn(namespace, authorizedKey string, msg, armored []byte) error {
	h := sha512.Sum512(msg)
	return verifySSHSIGHash(authorizedKey, namespace, h[:], armored)
}

// verifySSHSIGHash checks an armored SSHSIG signature, in namespace, of the
// message whose SHA-512 is h.
func verifySSHSIGHash(authorizedKey, namespace string, h, armored []byte) error {
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(authorizedKey))
	if err != nil {
		return fmt.Errorf("parse public key: %w", err)
	}
	s := strings.TrimSpace(string(armored))
	s, ok1 := strings.CutPrefix(s, "-----BEGIN SSH SIGNATURE-----")
	s, ok2 := strings.CutSuffix(s, "-----END SSH SIGNATURE-----")
	if !ok1 || !ok2 {
		return fmt.Errorf("signature is not an armored SSH signature: %w", ErrBadSignature)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		return fmt.Errorf("decode signature: %v: %w", err, ErrBadSignature)
	}
	rest, ok := bytes.CutPrefix(raw, []byte("SSHSIG"))
	if !ok {
		return fmt.Errorf("signature lacks the SSHSIG magic: %w", ErrBadSignature)
	}
	var blob sshsigBlob
	if err := ssh.Unmarshal(rest, &blob); err != nil {
		return fmt.Errorf("parse signature: %v: %w", err, ErrBadSignature)
	}
	if blob.Version != 1 || blob.Namespace != namespace || blob.HashAlg != "sha512" {
		return fmt.Errorf("signature version %d, namespace %q, hash %q: want 1, %q, sha512: %w",
			blob.Version, blob.Namespace, blob.HashAlg, namespace, ErrBadSignature)
	}
	if !bytes.Equal(blob.PublicKey, pub.Marshal()) {
		return fmt.Errorf("signed by another key: %w", ErrBadSignature)
	}
	var sig ssh.Signature
	if err := ssh.Unmarshal(blob.Signature, &sig); err != nil {
		return fmt.Errorf("parse signature: %v: %w", err, ErrBadSignature)
	}
	if err := pub.Verify(sshsigSignedHash(namespace, h), &sig); err != nil {
		return fmt.Errorf("%v: %w", err, ErrBadSignature)
	}
	return nil
}

// AllowedSigners returns the OpenSSH allowed_signers line for the store's
// public key, for `ssh-keygen -Y verify -f FILE -I PRINCIPAL -n dvpc-snapshot`.
func AllowedSigners(principal, authorizedKey string) string {
	return fmt.Sprintf("%s namespaces=%q %s", principal, SignatureNamespace, authorizedKey)
}
