package media

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/dvpc/dvpc/image"
)

// Medium is one opened medium, read-only.
type Medium struct {
	Path  string
	Kind  string // "iso", "usb", "dir"
	Label string
	Store image.Source
	Set   *SetListing // for discs of a spanned set
	close func() error
	// For images and devices: their files, and where they end and should
	// end (see [Medium.Damage]).
	fsys      fs.FS
	end, want int64
	// programs are the file systems that carry a program folder, by
	// where they are on the medium ("" for the one holding the store).
	programs []programFS
}

type programFS struct {
	where string
	fsys  fs.FS
}

// Close releases the medium.
func (m *Medium) Close() error {
	if m.close != nil {
		return m.close()
	}
	return nil
}

// ErrUnknownMedium means a path is none of the media dvpc reads.
var ErrUnknownMedium = errors.New("not a dvpc medium")

// Open opens an ISO image, a USB image, a block device or a directory (a
// mounted medium or an extracted one) and its store, without mounting.
func Open(p string) (*Medium, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return openDir(p)
	}
	kind, err := sniff(p)
	if err != nil {
		return nil, err
	}
	var fsys fs.FS
	m := &Medium{Path: p, Kind: kind}
	switch kind {
	case "iso":
		iso, err := OpenISO(p)
		if err != nil {
			return nil, err
		}
		fsys, m.Label, m.close = iso.FS(), iso.Label(), iso.Close
		m.end, m.want = iso.Size()
	case "usb":
		usb, err := OpenUSB(p)
		if err != nil {
			return nil, err
		}
		fsys, m.Label, m.close = usb.FS(), "DVPC", usb.Close
		m.end, m.want = usb.Size()
		m.programs = append(m.programs, programFS{where: "EFI partition", fsys: usb.ESPFS()})
	}
	m.fsys = fsys
	m.programs = append([]programFS{{fsys: fsys}}, m.programs...)
	if err := m.attachFS(fsys); err != nil {
		m.Close()
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	m.Store = salvageSource{m.Store.(*image.FSSource)}
	return m, nil
}

func openDir(p string) (*Medium, error) {
	m := &Medium{Path: p, Kind: "dir", Label: filepath.Base(p)}
	if _, err := os.Stat(filepath.Join(p, "oci-layout")); err == nil {
		lay, err := image.OpenLayout(p)
		if err != nil {
			return nil, err
		}
		m.Store = lay
		return m, nil
	}
	fsys, err := openDirFS(p)
	if err != nil {
		return nil, err
	}
	m.close = fsys.Close
	if err := m.attachFS(fsys); err != nil {
		fsys.Close()
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	m.programs = []programFS{{fsys: fsys}}
	return m, nil
}

// CheckPrograms checks the signature of every program the medium carries
// (on a USB key, on both partitions) against signer, the store's public
// signing key as its unlocked key blob gives it (see [CheckClients]). It
// returns the programs that passed and an error for each file that did
// not, its path prefixed with the partition it is on when that is not
// the one holding the store.
func (m *Medium) CheckPrograms(signer string) (good []string, bad []*ClientError, err error) {
	for _, p := range m.programs {
		g, b, err := CheckClients(p.fsys, signer)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", m.Path, err)
		}
		for i := range g {
			if p.where != "" {
				g[i] = p.where + ": " + g[i]
			}
		}
		for _, e := range b {
			if p.where != "" {
				e.Path = p.where + ": " + e.Path
			}
		}
		good, bad = append(good, g...), append(bad, b...)
	}
	return good, bad, nil
}

func (m *Medium) attachFS(fsys fs.FS) error {
	if _, err := fs.Stat(fsys, path.Join(StoreDir, "oci-layout")); errors.Is(err, ErrDamaged) {
		return fmt.Errorf("read the store: %w", err)
	}
	src, err := image.OpenFSSource(fsys, StoreDir)
	if err != nil {
		return fmt.Errorf("%w: no store/ with an OCI layout: %v", ErrUnknownMedium, err)
	}
	m.Store = src
	b, err := readListing(fsys, SetFile)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s is not a valid set listing: %w", SetFile, err)
	}
	if err == nil {
		var l SetListing
		if err := json.Unmarshal(b, &l); err != nil || l.Discs < 1 || l.Discs > maxSetDiscs || l.Disc < 1 || l.Disc > l.Discs {
			return fmt.Errorf("%s is not a valid set listing", SetFile)
		}
		m.Set = &l
	}
	return nil
}

// maxSetDiscs bounds the discs a set listing may claim: a found disc that
// claims billions must not make attach loop over them.
const maxSetDiscs = 10000

// maxListing bounds how much of a set listing is read.
const maxListing = 1 << 20

// readListing reads a small file of a medium, refusing one over maxListing
// without reading it whole.
func readListing(fsys fs.FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxListing+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxListing {
		return nil, fmt.Errorf("%s is over %d bytes", name, maxListing)
	}
	return b, nil
}

// sniff tells an ISO 9660 image from a GPT disk by their magic numbers.
func sniff(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf := make([]byte, 34*1024)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", err
	}
	buf = buf[:n]
	switch {
	case len(buf) >= 0x8006 && string(buf[0x8001:0x8006]) == "CD001":
		return "iso", nil
	case len(buf) >= 520 && string(buf[512:520]) == "EFI PART":
		return "usb", nil
	}
	return "", fmt.Errorf("%s: %w (neither an ISO 9660 image nor a GPT disk)", p, ErrUnknownMedium)
}

// OpenSet opens several media as one store: the discs of a spanned set, in
// any order. It returns the store and the media to close.
func OpenSet(paths []string) (image.Source, []*Medium, error) {
	var ms []*Medium
	closeAll := func() {
		for _, m := range ms {
			m.Close()
		}
	}
	for _, p := range paths {
		m, err := Open(p)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		ms = append(ms, m)
	}
	if len(ms) == 1 && ms[0].Set == nil {
		return ms[0].Store, ms, nil
	}
	var listing *SetListing
	var parts []image.Source
	var discs []int
	for _, m := range ms {
		if m.Set == nil {
			closeAll()
			return nil, nil, fmt.Errorf("%s is not a disc of a set; name only the discs of one set", m.Path)
		}
		if listing == nil || m.Set.Disc == 1 {
			listing = m.Set
		}
		if m.Set.Label != ms[0].Set.Label {
			closeAll()
			return nil, nil, fmt.Errorf("%s belongs to set %s, not %s", m.Path, m.Set.Label, ms[0].Set.Label)
		}
		parts = append(parts, m.Store)
		discs = append(discs, m.Set.Disc)
	}
	return NewUnion(parts, listing, discs), ms, nil
}
