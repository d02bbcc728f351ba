package image

import (
	"crypto/sha512"
	"fmt"
	"io"
)

// ClientNamespace is the SSHSIG namespace of the signatures of the dvpc
// programs a medium carries, as given to `ssh-keygen -Y verify -n`. It
// differs from [SignatureNamespace], so a program's signature is never
// taken for a snapshot's, nor the other way round.
const ClientNamespace = "dvpc-client"

// ClientSigner returns the public key, in authorized_keys form, that
// [Repo.SignClient] signs with: the store's current signing key.
func (r *Repo) ClientSigner() string { return r.keys.sign.authorizedKey() }

// SignClient reads a program to its end and returns its armored SSHSIG
// signature in [ClientNamespace], made with the key [Repo.ClientSigner]
// names, and the SHA-512 of the bytes it signed.
func (r *Repo) SignClient(rd io.Reader) (sig []byte, sum [sha512.Size]byte, err error) {
	h := sha512.New()
	if _, err := io.Copy(h, rd); err != nil {
		return nil, sum, fmt.Errorf("sign program: read: %w", err)
	}
	h.Sum(sum[:0])
	sig, err = r.keys.sign.signSSHSIGHash(ClientNamespace, sum[:])
	if err != nil {
		return nil, sum, fmt.Errorf("sign program: %w", err)
	}
	return sig, sum, nil
}

// VerifyClient reads a program to its end and checks its armored SSHSIG
// signature in [ClientNamespace] against the public key signer. It wraps
// [ErrBadSignature] on any mismatch.
func VerifyClient(signer string, rd io.Reader, armored []byte) error {
	h := sha512.New()
	if _, err := io.Copy(h, rd); err != nil {
		return fmt.Errorf("read program: %w", err)
	}
	return verifySSHSIGHash(signer, ClientNamespace, h.Sum(nil), armored)
}

// ClientAllowedSigners returns the OpenSSH allowed_signers line with which
// `ssh-keygen -Y verify -I dvpc -n dvpc-client` checks a program signed by
// signer.
func ClientAllowedSigners(signer string) string {
	return fmt.Sprintf("%s namespaces=%q %s\n", ClientPrincipal, ClientNamespace, signer)
}

// ClientPrincipal is the principal of a medium's allowed_signers file.
const ClientPrincipal = "dvpc"
