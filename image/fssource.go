package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sync"
)

// FSSource is a read-only store in an OCI layout inside any file tree: an
// extracted disc, a disc or disk image read without mounting, a zip.
type FSSource struct {
	fsys fs.FS
	dir  string
}

var _ Source = (*FSSource)(nil)

// OpenFSSource opens the OCI layout at dir inside fsys.
func OpenFSSource(fsys fs.FS, dir string) (*FSSource, error) {
	b, err := fs.ReadFile(fsys, path.Join(dir, "oci-layout"))
	if err != nil {
		return nil, fmt.Errorf("open store %s: no oci-layout file: %w", dir, ErrNotFound)
	}
	if len(b) > 4096 {
		return nil, fmt.Errorf("open store %s: oci-layout is %d bytes: %w", dir, len(b), ErrFormat)
	}
	return &FSSource{fsys: fsys, dir: dir}, nil
}

// Refs implements [Source].
func (s *FSSource) Refs(ctx context.Context) ([]Ref, error) {
	f, err := s.fsys.Open(path.Join(s.dir, "index.json"))
	if err != nil {
		return nil, fmt.Errorf("read index.json: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxMetaBlob+1))
	if err != nil {
		return nil, fmt.Errorf("read index.json: %w", err)
	}
	if len(b) > maxMetaBlob {
		return nil, fmt.Errorf("index.json is over %d bytes: %w", maxMetaBlob, ErrFormat)
	}
	return parseIndex(b)
}

func (s *FSSource) blobName(d Digest) string {
	return path.Join(s.dir, "blobs", "sha256", d.Hex())
}

// StatBlob implements [Source].
func (s *FSSource) StatBlob(ctx context.Context, d Digest) (int64, error) {
	fi, err := fs.Stat(s.fsys, s.blobName(d))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("blob %s: %w", d, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("blob %s: %w", d, err)
	}
	return fi.Size(), nil
}

// OpenBlob implements [Source]. Files that cannot read at an offset are read
// through Seek and Read under a lock.
func (s *FSSource) OpenBlob(ctx context.Context, d Digest) (Blob, error) {
	f, err := s.fsys.Open(s.blobName(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", d, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", d, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open blob %s: %w", d, err)
	}
	if ra, ok := f.(io.ReaderAt); ok {
		return &fsBlob{f: f, ra: ra, size: fi.Size()}, nil
	}
	sk, ok := f.(io.ReadSeeker)
	if !ok {
		f.Close()
		return nil, fmt.Errorf("open blob %s: the file system cannot read at an offset", d)
	}
	return &fsBlob{f: f, ra: &seekReaderAt{rs: sk, size: fi.Size()}, size: fi.Size()}, nil
}

type fsBlob struct {
	f    fs.File
	ra   io.ReaderAt
	size int64
}

// ReadAt never returns bytes past the file's size, whatever the file
// system's reader does.
func (b *fsBlob) ReadAt(p []byte, off int64) (int, error) {
	return io.NewSectionReader(b.ra, 0, b.size).ReadAt(p, off)
}

func (b *fsBlob) Close() error { return b.f.Close() }
func (b *fsBlob) Size() int64  { return b.size }

// seekReaderAt turns a ReadSeeker into a ReaderAt.
type seekReaderAt struct {
	mu   sync.Mutex
	rs   io.ReadSeeker
	size int64
}

func (s *seekReaderAt) ReadAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.rs.Seek(off, io.SeekStart); err != nil {
		return 0, err
	}
	n, err := io.ReadFull(s.rs, p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF
	}
	return n, err
}
