package image

import (
	"bytes"
	"errors"
	"testing"
)

// rotatedKeyBlob makes a key blob of epoch 2 with one code burnt.
func rotatedKeyBlob(f *testing.F) ([]byte, []string) {
	kf, codes, keys, err := NewKeyFile([]byte(fzPass), fzArgon)
	if err != nil {
		f.Fatal(err)
	}
	kf, keys, _, err = kf.Rotate(keys, RotateOptions{HighSeq: 3})
	if err != nil {
		f.Fatal(err)
	}
	kf, _, _, err = kf.Rotate(keys, RotateOptions{Burn: []string{"2"}, HighSeq: 7})
	if err != nil {
		f.Fatal(err)
	}
	b, err := kf.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	return b, codes
}

func FuzzParseRotatedKeyFile(f *testing.F) {
	blob, codes := rotatedKeyBlob(f)
	for _, b := range fzTruncations(blob) {
		f.Add(b)
	}
	f.Add(bytes.Replace(blob, []byte(`"epoch": 2`), []byte(`"epoch": 1`), 1))
	f.Add(bytes.Replace(blob, []byte(`high-seq 7`), []byte(`high-seq 2`), 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		defer fzNoPanic(t)
		kf, err := ParseKeyFile(b)
		if err != nil {
			if kf != nil {
				t.Fatal("ParseKeyFile returned a key file with an error")
			}
			return
		}
		chain := kf.Epochs()
		if len(chain) != int(kf.Epoch)+1 || chain[len(chain)-1].Key != kf.SigningPublic {
			t.Fatalf("accepted a key blob whose chain does not end at its key: %+v", chain)
		}
		for i, e := range chain[:len(chain)-1] {
			if !e.Ended || (i > 0 && e.End < chain[i-1].End) {
				t.Fatalf("epoch %d: %+v", i, e)
			}
			if _, err := kf.SignerFor("", e.End+1); i == 0 && !errors.Is(err, ErrEpoch) {
				t.Fatalf("epoch 0's key accepted after its end: %v", err)
			}
		}
		if bytes.Equal(b, blob) {
			if _, err := kf.Unlock([]byte(fzPass)); err != nil {
				t.Fatalf("the real key blob does not unlock: %v", err)
			}
		}
		if kf.Argon2.Time > 2 || kf.Argon2.MemoryKiB > 16<<10 || kf.Argon2.Threads > 4 {
			kf.Argon2 = fzArgon
		}
		// A burnt code never opens it, whatever was changed.
		if u, err := kf.Unlock([]byte(codes[1])); err == nil || u != nil {
			t.Fatal("the burnt code opened a changed key blob")
		}
	})
}

func FuzzParseRotationStatement(f *testing.F) {
	blob, _ := rotatedKeyBlob(f)
	kf, err := ParseKeyFile(blob)
	if err != nil {
		f.Fatal(err)
	}
	for _, r := range kf.Rotations {
		f.Add([]byte(r.Statement))
		for _, b := range fzTruncations([]byte(r.Statement)) {
			f.Add(b)
		}
	}
	f.Add([]byte(rotationHeader + "\n"))
	rot := kf.Rotations[0]
	f.Fuzz(func(t *testing.T, b []byte) {
		defer fzNoPanic(t)
		s, err := ParseRotationStatement(b)
		if err != nil {
			if s != nil || !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v with %v", err, s)
			}
			return
		}
		if !bytes.Equal(s.Marshal(), b) || s.Epoch == 0 {
			t.Fatalf("accepted a statement that is not canonical: %q", b)
		}
		// Only the signed bytes verify under the real signatures.
		r := Rotation{Statement: string(b), PreviousSignature: rot.PreviousSignature, Signature: rot.Signature}
		if _, err := r.Verify(); (err == nil) != (string(b) == rot.Statement) {
			t.Fatalf("statement %q: verify gave %v", b, err)
		}
	})
}
