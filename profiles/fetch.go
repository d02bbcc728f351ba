package profiles

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// BlobPlace is somewhere that may hold an app's blobs (manifests, configs,
// layers) by digest: this PC's cache, an attached medium, a registry.
type BlobPlace interface {
	// OpenBlob opens the blob named d. It wraps fs.ErrNotExist when the
	// place does not hold it.
	OpenBlob(ctx context.Context, d v1.Hash) (io.ReadCloser, error)
	String() string
}

// DirPlace is an OCI image layout directory (a store, a mounted medium's
// store) read as a [BlobPlace]: its blobs/sha256 files.
func DirPlace(dir string) BlobPlace { return dirPlace(dir) }

type dirPlace string

func (d dirPlace) String() string { return string(d) }

func (d dirPlace) OpenBlob(_ context.Context, h v1.Hash) (io.ReadCloser, error) {
	if h.Algorithm != "sha256" || len(h.Hex) != 64 {
		return nil, fmt.Errorf("blob %s: %w", h, fs.ErrNotExist)
	}
	return os.Open(filepath.Join(string(d), "blobs", "sha256", h.Hex))
}

// registryPlace is the repository an app's reference names.
type registryPlace struct{ loc location }

func (r registryPlace) String() string { return r.loc.ref }

func (r registryPlace) OpenBlob(ctx context.Context, h v1.Hash) (io.ReadCloser, error) {
	if r.loc.remote == nil {
		return dirPlace(r.loc.dir).OpenBlob(ctx, h)
	}
	ref := r.loc.remote.Context().Digest(h.String())
	l, err := remote.Layer(ref, remoteOptions(ctx)...)
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed()
	if err != nil {
		// A manifest is not served as a blob by every registry.
		desc, gerr := remote.Get(ref, remoteOptions(ctx)...)
		if gerr != nil {
			return nil, errors.Join(err, gerr)
		}
		return io.NopCloser(strings.NewReader(string(desc.Manifest))), nil
	}
	return rc, nil
}

// Refusal is a blob a place offered whose bytes did not match its digest
// (or could not be read): it was not used, and the next place was tried.
type Refusal struct {
	Place  string
	Digest v1.Hash
	Err    error
}

func (r Refusal) String() string { return fmt.Sprintf("%s from %s: %v", r.Digest, r.Place, r.Err) }

// Fetcher reads an app's blobs from its places in order of preference
// and then from the registry its reference names, each checked against
// its digest; a place that lacks a blob or offers a corrupt one is passed
// over for the next.
type Fetcher struct {
	// Places are tried first, nearest first.
	Places []BlobPlace
	// OnRefused, when set, hears of every blob a place offered and that
	// was not used.
	OnRefused func(Refusal)
}

func (f *Fetcher) places(ref string) ([]BlobPlace, error) {
	loc, err := parseLocation(ref)
	if err != nil {
		return nil, err
	}
	var ps []BlobPlace
	if f != nil {
		ps = append(ps, f.Places...)
	}
	return append(ps, registryPlace{loc}), nil
}

func (f *Fetcher) refused(r Refusal) {
	if f != nil && f.OnRefused != nil {
		f.OnRefused(r)
	}
}

// maxSmallBlob bounds a manifest or config read into memory.
const maxSmallBlob = 4 << 20

// Bytes reads a small blob (a manifest, a config) named d.
func (f *Fetcher) Bytes(ctx context.Context, ref string, d v1.Hash, what string) ([]byte, error) {
	var b []byte
	err := f.fetch(ctx, ref, d, what, func(r io.Reader) error {
		var err error
		b, err = io.ReadAll(io.LimitReader(r, maxSmallBlob+1))
		if err == nil && len(b) > maxSmallBlob {
			err = fmt.Errorf("larger than %d bytes", maxSmallBlob)
		}
		if err == nil {
			err = checkBytes(b, d, what)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, d, err)
	}
	return b, nil
}

// ToFile copies the blob desc names into the empty file f, checking its
// digest and size; f then holds it from its start. Its error does not
// repeat the blob's digest, which the caller names.
func (f *Fetcher) ToFile(ctx context.Context, ref string, desc v1.Descriptor, what string, file *os.File) error {
	return f.fetch(ctx, ref, desc.Digest, what, func(r io.Reader) error {
		if _, err := file.Seek(0, io.SeekStart); err != nil {
			return err
		}
		if err := file.Truncate(0); err != nil {
			return err
		}
		h := sha256.New()
		n, err := io.Copy(io.MultiWriter(file, h), io.LimitReader(r, desc.Size+1))
		if err != nil {
			return err
		}
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != desc.Digest.String() {
			return &DigestError{What: what, Want: desc.Digest, Got: got}
		}
		if n != desc.Size {
			return fmt.Errorf("%s %s: %d bytes, want %d", what, desc.Digest, n, desc.Size)
		}
		_, err = file.Seek(0, io.SeekStart)
		return err
	})
}

// fetch hands the blob d to take from each place in turn until take
// accepts it. It wraps fs.ErrNotExist when no place holds it.
func (f *Fetcher) fetch(ctx context.Context, ref string, d v1.Hash, what string, take func(io.Reader) error) error {
	if d.Algorithm != "sha256" {
		return fmt.Errorf("%s %s: only sha256 digests are taken", what, d)
	}
	ps, err := f.places(ref)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range ps {
		if err := ctx.Err(); err != nil {
			return err
		}
		rc, err := p.OpenBlob(ctx, d)
		if err == nil {
			err = take(rc)
			rc.Close()
			if err == nil {
				return nil
			}
		}
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		errs = append(errs, fmt.Errorf("from %s: %w", p, err))
		if p != ps[len(ps)-1] {
			f.refused(Refusal{Place: p.String(), Digest: d, Err: err})
		}
	}
	if len(errs) == 0 {
		return fmt.Errorf("no place holds it: %w", fs.ErrNotExist)
	}
	return errors.Join(errs...)
}

// Manifest reads the image manifest d and its config, each checked
// against its digest.
func (f *Fetcher) Manifest(ctx context.Context, ref string, d v1.Hash) (*v1.Manifest, *v1.ConfigFile, error) {
	raw, err := f.Bytes(ctx, ref, d, "manifest")
	if err != nil {
		return nil, nil, err
	}
	m, err := v1.ParseManifest(strings.NewReader(string(raw)))
	if err != nil {
		return nil, nil, fmt.Errorf("manifest %s: %w", d, err)
	}
	if !m.MediaType.IsImage() && m.MediaType != "" {
		return nil, nil, fmt.Errorf("manifest %s: %s is not an image", d, m.MediaType)
	}
	rawCfg, err := f.Bytes(ctx, ref, m.Config.Digest, "config")
	if err != nil {
		return nil, nil, err
	}
	cfg, err := v1.ParseConfigFile(strings.NewReader(string(rawCfg)))
	if err != nil {
		return nil, nil, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	return m, cfg, nil
}

// ImageBlobs lists the blobs the image manifest d needs, each with its
// size: the manifest itself, its config and its layers. Only the manifest
// is read (and checked against d).
func (f *Fetcher) ImageBlobs(ctx context.Context, ref string, d v1.Hash) ([]v1.Descriptor, error) {
	raw, err := f.Bytes(ctx, ref, d, "manifest")
	if err != nil {
		return nil, err
	}
	m, err := v1.ParseManifest(strings.NewReader(string(raw)))
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d, err)
	}
	if !m.MediaType.IsImage() && m.MediaType != "" {
		return nil, fmt.Errorf("manifest %s: %s is not an image", d, m.MediaType)
	}
	out := []v1.Descriptor{{Digest: d, Size: int64(len(raw)), MediaType: m.MediaType}, m.Config}
	return append(out, m.Layers...), nil
}
