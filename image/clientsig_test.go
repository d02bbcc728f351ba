package image

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzVerifyClient checks a program's signature, as read from a medium:
// any bytes verify or fail with ErrBadSignature; a real signature verifies
// for its program only, and never as a snapshot signature, nor a
// snapshot's signature as a program's.
func FuzzVerifyClient(f *testing.F) {
	fx := newFzFixture(f)
	signer := fx.repo.ClientSigner()
	if signer != fx.repo.KeyFile().SigningPublic {
		f.Fatalf("programs are signed by %s, the store by %s", signer, fx.repo.KeyFile().SigningPublic)
	}
	sig, _, err := fx.repo.SignClient(bytes.NewReader([]byte("a program")))
	if err != nil {
		f.Fatal(err)
	}
	for _, b := range fzTruncations(sig) {
		f.Add([]byte("a program"), b)
	}
	f.Add(fx.snap.RawManifest(), fx.signature)
	f.Fuzz(func(t *testing.T, prog, sig []byte) {
		defer fzNoPanic(t)
		if err := VerifyClient(signer, bytes.NewReader(prog), sig); err != nil && !errors.Is(err, ErrBadSignature) {
			t.Fatalf("error %v does not wrap ErrBadSignature", err)
		}
		good, _, err := fx.repo.SignClient(bytes.NewReader(prog))
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifyClient(signer, bytes.NewReader(prog), good); err != nil {
			t.Fatalf("a valid signature fails: %v", err)
		}
		if err := VerifyClient(signer, bytes.NewReader(append(bytes.Clone(prog), 0)), good); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("a signature verifies for a changed program: %v", err)
		}
		if err := VerifySSHSIG(signer, prog, good); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("a program's signature verifies as a snapshot's: %v", err)
		}
		snap, err := fx.repo.keys.sign.signSSHSIG(prog)
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifyClient(signer, bytes.NewReader(prog), snap); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("a snapshot's signature verifies as a program's: %v", err)
		}
	})
}
