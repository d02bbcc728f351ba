package media

import (
	"bytes"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/dvpc/dvpc/image"
)

// ClientsDir is the folder of a medium that holds the dvpc programs, the
// signature of each next to it (dvpc-linux-amd64.sig) and the
// allowed_signers file that lets OpenSSH check them.
const ClientsDir = "dvpc"

// AllowedSignersFile is the allowed_signers file in [ClientsDir].
const AllowedSignersFile = "allowed_signers"

// sigSuffix ends the name of a program's signature.
const sigSuffix = ".sig"

// maxSigFile bounds what is read of a signature or allowed_signers file on
// a medium: both are a few hundred bytes.
const maxSigFile = 64 << 10

// ClientVerifyLine is the command, typed in [ClientsDir], with which
// OpenSSH checks the program named client against allowed_signers.
func ClientVerifyLine(client string) string {
	return fmt.Sprintf("ssh-keygen -Y verify -f %s -I %s -n %s -s %s%s < %s",
		AllowedSignersFile, image.ClientPrincipal, image.ClientNamespace, client, sigSuffix, client)
}

// ClientSigner signs the programs a medium carries; an unlocked
// [image.Repo] is one.
type ClientSigner interface {
	// ClientSigner is the public key the signatures verify with.
	ClientSigner() string
	SignClient(r io.Reader) ([]byte, [sha512.Size]byte, error)
}

var _ ClientSigner = (*image.Repo)(nil)

// signClients signs each program. It returns the programs, whose bytes are
// checked again as they are written (a program that changes after it was
// signed fails the write), and their signatures with allowed_signers.
func signClients(clients []Entry, s ClientSigner) (signed, sigs []Entry, err error) {
	if len(clients) == 0 {
		return nil, nil, nil
	}
	for _, c := range clients {
		rc, err := c.Open()
		if err != nil {
			return nil, nil, fmt.Errorf("sign %s: %w", c.Path, err)
		}
		sig, sum, err := s.SignClient(io.LimitReader(rc, c.Size+1))
		rc.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("sign %s: %w", c.Path, err)
		}
		open := c.Open
		c.Open = func() (io.ReadCloser, error) {
			rc, err := open()
			if err != nil {
				return nil, err
			}
			return &sumReader{r: rc, h: sha512.New(), want: sum, size: c.Size, path: c.Path}, nil
		}
		signed = append(signed, c)
		sigs = append(sigs, bytesEntry(c.Path+sigSuffix, sig))
	}
	sigs = append(sigs, bytesEntry(path.Join(ClientsDir, AllowedSignersFile), []byte(image.ClientAllowedSigners(s.ClientSigner()))))
	return signed, sigs, nil
}

// sumReader fails at EOF when the bytes read are not those signed.
type sumReader struct {
	r    io.ReadCloser
	h    hash.Hash
	n    int64
	size int64
	want [sha512.Size]byte
	path string
}

func (s *sumReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.h.Write(p[:n])
	s.n += int64(n)
	if err == io.EOF && (s.n != s.size || !bytes.Equal(s.h.Sum(nil), s.want[:])) {
		return n, fmt.Errorf("%s changed after it was signed", s.path)
	}
	return n, err
}

func (s *sumReader) Close() error { return s.r.Close() }

// ClientError names a file in a medium's program folder that must not be
// run: a program whose bytes or signature do not match the store's signing
// key, or one that carries no signature. It wraps [image.ErrBadSignature]
// or the error that kept the file from being read.
type ClientError struct {
	Path string // such as "dvpc/dvpc-linux-amd64", or "EFI partition: dvpc/…"
	Err  error
}

func (e *ClientError) Error() string {
	return fmt.Sprintf("program %s: %v; do not run it", e.Path, e.Err)
}

func (e *ClientError) Unwrap() error { return e.Err }

// CheckClients checks every file in fsys's program folder against signer
// (the store's public signing key, as the unlocked key blob gives it):
// every program's signature, and that allowed_signers names signer. It
// returns the programs that passed and one *ClientError for each file that
// did not. A medium with no program folder carries no programs.
func CheckClients(fsys fs.FS, signer string) (good []string, bad []*ClientError, err error) {
	ents, err := fs.ReadDir(fsys, ClientsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		// A medium cut short or damaged: its programs cannot be checked.
		return nil, []*ClientError{{Path: ClientsDir, Err: err}}, nil
	}
	names := map[string]bool{}
	for _, e := range ents {
		names[e.Name()] = true
	}
	for _, e := range ents {
		name := e.Name()
		p := path.Join(ClientsDir, name)
		switch {
		case name == AllowedSignersFile:
			b, err := readSmall(fsys, p)
			if err == nil && string(b) != image.ClientAllowedSigners(signer) {
				err = fmt.Errorf("it does not name the store's signing key: %w", image.ErrBadSignature)
			}
			if err != nil {
				bad = append(bad, &ClientError{Path: p, Err: err})
			}
		case strings.HasSuffix(name, sigSuffix) && names[strings.TrimSuffix(name, sigSuffix)]:
			// checked with its program
		case !e.Type().IsRegular():
			bad = append(bad, &ClientError{Path: p, Err: fmt.Errorf("not a regular file: %w", image.ErrBadSignature)})
		default:
			if err := checkClient(fsys, p, signer); err != nil {
				bad = append(bad, &ClientError{Path: p, Err: err})
			} else {
				good = append(good, p)
			}
		}
	}
	if len(good) > 0 && !names[AllowedSignersFile] {
		bad = append(bad, &ClientError{Path: path.Join(ClientsDir, AllowedSignersFile),
			Err: fmt.Errorf("missing, so OpenSSH cannot check the programs: %w", image.ErrBadSignature)})
	}
	slices.Sort(good)
	return good, bad, nil
}

func checkClient(fsys fs.FS, p, signer string) error {
	sig, err := readSmall(fsys, p+sigSuffix)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("it carries no signature (%s): %w", path.Base(p)+sigSuffix, image.ErrBadSignature)
	}
	if err != nil {
		return err
	}
	f, err := fsys.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return image.VerifyClient(signer, f, sig)
}

// readSmall reads a file of at most maxSigFile bytes.
func readSmall(fsys fs.FS, p string) ([]byte, error) {
	f, err := fsys.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSigFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxSigFile {
		return nil, fmt.Errorf("%s is over %d bytes: %w", p, maxSigFile, image.ErrBadSignature)
	}
	return b, nil
}
