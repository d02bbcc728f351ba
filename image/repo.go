package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
)

// KeysRef is the tag of the key manifest.
const KeysRef = "keys"

// Repo is an unlocked store: its keys, its chunk index and the codecs.
type Repo struct {
	src  Source
	st   Store // nil when the source is read-only
	kf   *KeyFile
	keys *Keys

	idx       *Index
	idxMu     sync.Mutex
	idxLoaded map[Digest]bool

	zenc *zstd.Encoder
	zdec *zstd.Decoder

	blobs blobCache
	sums  treeSums // of trees taken over by partial rescans
}

// Init creates the keys of a new store in st and returns the recovery codes.
func Init(ctx context.Context, st Store, passphrase []byte, p Argon2Params) ([]string, *KeyFile, error) {
	refs, err := st.Refs(ctx)
	if err != nil {
		return nil, nil, err
	}
	if len(refs) > 0 {
		return nil, nil, errors.New("init: the store already holds data; it is initialised")
	}
	kf, codes, _, err := NewKeyFile(passphrase, p)
	if err != nil {
		return nil, nil, err
	}
	if err := saveKeyFile(ctx, st, kf); err != nil {
		return nil, nil, err
	}
	return codes, kf, nil
}

var emptyConfig = []byte("{}")

// putArtifact stores a manifest with an empty config and the given layers.
func putArtifact(ctx context.Context, st Store, artifactType string, layers []v1.Descriptor, subject *v1.Descriptor, ann map[string]string) (v1.Descriptor, []byte, error) {
	cfg, err := PutBlob(ctx, st, EmptyConfigType, emptyConfig)
	if err != nil {
		return v1.Descriptor{}, nil, err
	}
	return putManifest(ctx, st, v1.Manifest{
		SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: artifactType,
		Config: cfg, Layers: layers, Subject: subject, Annotations: ann,
	})
}

func putManifest(ctx context.Context, st Store, m v1.Manifest) (v1.Descriptor, []byte, error) {
	if m.Layers == nil {
		m.Layers = []v1.Descriptor{}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return v1.Descriptor{}, nil, err
	}
	d, err := PutBlob(ctx, st, ManifestType, b)
	if err != nil {
		return v1.Descriptor{}, nil, err
	}
	d.ArtifactType = m.ArtifactType
	return d, b, nil
}

func saveKeyFile(ctx context.Context, st Store, kf *KeyFile) error {
	b, err := kf.Marshal()
	if err != nil {
		return err
	}
	kd, err := PutBlob(ctx, st, KeyFileMediaType, b)
	if err != nil {
		return err
	}
	md, _, err := putArtifact(ctx, st, KeysArtifactType, []v1.Descriptor{kd}, nil, kf.usedAnnotations())
	if err != nil {
		return err
	}
	return st.UpdateRefs(ctx, func(refs []Ref) ([]Ref, error) {
		return setRef(refs, Ref{Name: KeysRef, Desc: md}), nil
	})
}

func setRef(refs []Ref, r Ref) []Ref {
	for i := range refs {
		if refs[i].Name == r.Name {
			refs[i] = r
			return refs
		}
	}
	return append(refs, r)
}

func findRef(refs []Ref, name string) (Ref, bool) {
	for _, r := range refs {
		if r.Name == name {
			return r, true
		}
	}
	return Ref{}, false
}

// maxManifest bounds a manifest read into memory, as registries bound what
// they accept (4 MiB): a found disc or a mirror cannot make dvpc read more
// before anything is checked.
const maxManifest = 4 << 20

// readManifest reads and checks a manifest blob.
func readManifest(ctx context.Context, src Source, desc v1.Descriptor) (*v1.Manifest, []byte, error) {
	d, err := DigestFromHash(desc.Digest)
	if err != nil {
		return nil, nil, err
	}
	if desc.Size > maxManifest {
		return nil, nil, fmt.Errorf("manifest %s: %d bytes, over the %d-byte limit: %w", d, desc.Size, maxManifest, ErrFormat)
	}
	b, err := ReadBlob(ctx, src, d, desc.Size)
	if err != nil {
		return nil, nil, err
	}
	var m v1.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, nil, fmt.Errorf("manifest %s: %w: %v", d, ErrFormat, err)
	}
	if m.SchemaVersion != 2 {
		return nil, nil, fmt.Errorf("manifest %s: schema version %d, want 2: %w", d, m.SchemaVersion, ErrFormat)
	}
	return &m, b, nil
}

// ReadKeyFile reads the key blob of a store; it needs no passphrase.
func ReadKeyFile(ctx context.Context, src Source) (*KeyFile, error) {
	refs, err := src.Refs(ctx)
	if err != nil {
		return nil, err
	}
	r, ok := findRef(refs, KeysRef)
	if !ok {
		return nil, fmt.Errorf("store has no key blob (no %q tag); is it a dvpc store? run `dvpc init` to make one: %w", KeysRef, ErrNotFound)
	}
	return ReadKeyFileAt(ctx, src, r.Desc)
}

// ReadKeyFileAt reads the key blob of the key manifest desc names, such as
// one mirror's "keys" tag; it needs no passphrase.
func ReadKeyFileAt(ctx context.Context, src Source, desc v1.Descriptor) (*KeyFile, error) {
	m, _, err := readManifest(ctx, src, desc)
	if err != nil {
		return nil, fmt.Errorf("key manifest: %w", err)
	}
	if len(m.Layers) != 1 || string(m.Layers[0].MediaType) != KeyFileMediaType {
		return nil, fmt.Errorf("key manifest: want one %s layer: %w", KeyFileMediaType, ErrFormat)
	}
	d, err := DigestFromHash(m.Layers[0].Digest)
	if err != nil {
		return nil, err
	}
	b, err := ReadBlob(ctx, src, d, m.Layers[0].Size)
	if err != nil {
		return nil, fmt.Errorf("key blob: %w", err)
	}
	kf, err := ParseKeyFile(b)
	if err != nil {
		return nil, err
	}
	kf.readUsedAnnotations(m.Annotations)
	return kf, nil
}

// usedAnnotationPrefix, followed by a code's number, is the key manifest's
// annotation that says when that recovery code was used (RFC 3339).
const usedAnnotationPrefix = "dev.dvpc.recovery-used."

// byCodeAnnotation on the key manifest names the epoch that was started
// where a recovery code unlocked the store.
const byCodeAnnotation = "dev.dvpc.epoch-by-recovery-code"

func (kf *KeyFile) usedAnnotations() map[string]string {
	if len(kf.used) == 0 && !kf.byCode {
		return nil
	}
	ann := map[string]string{}
	if kf.byCode {
		ann[byCodeAnnotation] = strconv.FormatUint(uint64(kf.Epoch), 10)
	}
	for id, t := range kf.used {
		ann[usedAnnotationPrefix+id] = t.UTC().Format(time.RFC3339)
	}
	return ann
}

// readUsedAnnotations takes what the key manifest says about used codes.
// It is a note for the person, not evidence: what it cannot parse, it skips.
func (kf *KeyFile) readUsedAnnotations(ann map[string]string) {
	if e, err := strconv.ParseUint(ann[byCodeAnnotation], 10, 32); err == nil && uint32(e) == kf.Epoch && kf.Epoch > 0 {
		kf.byCode = true
	}
	for k, v := range ann {
		id, ok := strings.CutPrefix(k, usedAnnotationPrefix)
		if !ok {
			continue
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			continue
		}
		if kf.used == nil {
			kf.used = map[string]time.Time{}
		}
		kf.used[id] = t
	}
}

// OpenInfo says how a store was unlocked.
type OpenInfo struct {
	// RecoveryUsed is true when a recovery code opened the store.
	RecoveryUsed bool
	// RecoveryID is that code's number.
	RecoveryID string
	// Retired is true when the code was retired: on a writable store, a
	// new key epoch was started without it (or, for a version 1 key blob,
	// its wrapper was removed from this copy). On a read-only source the
	// code is not retired; the next writable store it opens retires it.
	Retired bool
	// Legacy is true for a version 1 key blob: a retired code still opens
	// older copies of it until `key passwd` starts a new epoch.
	Legacy       bool
	RecoveryLeft int
	// WeakArgon2 is true when the passphrase key is below today's floor.
	WeakArgon2 bool
	// Rerotated is true when a passphrase unlock started a new key epoch
	// because the current one was started where a recovery code was used.
	Rerotated bool
}

// Open unlocks a store with a passphrase or a recovery code. A recovery
// code that opens a writable [Store] is retired at once: a new key epoch
// is started that it does not open ([Repo.Rotate]).
func Open(ctx context.Context, src Source, secret []byte) (*Repo, OpenInfo, error) {
	kf, err := ReadKeyFile(ctx, src)
	if err != nil {
		return nil, OpenInfo{}, err
	}
	u, err := kf.Unlock(secret)
	if err != nil {
		return nil, OpenInfo{}, err
	}
	info := OpenInfo{RecoveryLeft: kf.RecoveryLeft(), Legacy: kf.Version == 1, WeakArgon2: kf.Argon2.Weak() && Argon2FloorEnforced()}
	r, err := newRepo(src, kf, u.Keys)
	if err != nil {
		return nil, info, err
	}
	if u.RecoveryID == "" {
		// The epoch was made on the PC where a code was used, which
		// knows its keys: the owner's first passphrase unlock of a
		// writable store leaves that PC behind.
		if r.st != nil && kf.byCode {
			if _, err := r.Rotate(ctx, RotateOptions{}); err != nil {
				return nil, info, fmt.Errorf("start a key epoch after a recovery code: %w", err)
			}
			info.Rerotated = true
		}
		return r, info, nil
	}
	info.RecoveryUsed, info.RecoveryID = true, u.RecoveryID
	if r.st == nil {
		return r, info, nil
	}
	if kf.Version == 1 {
		unlock, err := r.st.Lock(ctx)
		if err != nil {
			return nil, info, err
		}
		info.RecoveryLeft = kf.burnV1(u.RecoveryID)
		err = saveKeyFile(ctx, r.st, kf)
		unlock()
		if err != nil {
			return nil, info, fmt.Errorf("burn recovery code: %w", err)
		}
		info.Retired = true
		return r, info, nil
	}
	if _, err := r.Rotate(ctx, RotateOptions{Burn: []string{u.RecoveryID}, ByCode: true}); err != nil {
		return nil, info, fmt.Errorf("retire recovery code %s: %w", u.RecoveryID, err)
	}
	info.Retired, info.RecoveryLeft = true, r.kf.RecoveryLeft()
	return r, info, nil
}

// Rotate starts a new key epoch in the store (see [KeyFile.Rotate]) and
// makes r use it: what r writes from now on is sealed and signed with the
// new keys. It returns new recovery codes when the old ones could not be
// carried over.
func (r *Repo) Rotate(ctx context.Context, opts RotateOptions) ([]string, error) {
	if r.st == nil {
		return nil, fmt.Errorf("rotate keys: %w", ErrReadOnly)
	}
	high, err := r.highSeq(ctx)
	if err != nil {
		return nil, fmt.Errorf("rotate keys: %w", err)
	}
	opts.HighSeq = max(opts.HighSeq, high)
	unlock, err := r.st.Lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	cur, err := ReadKeyFile(ctx, r.st)
	if err != nil {
		return nil, err
	}
	if cur.SigningPublic != r.kf.SigningPublic {
		return nil, errors.New("rotate keys: the store's key blob changed since it was unlocked; unlock again")
	}
	nkf, keys, codes, err := r.kf.Rotate(r.keys, opts)
	if err != nil {
		return nil, err
	}
	nkf.byCode = opts.ByCode
	if err := saveKeyFile(ctx, r.st, nkf); err != nil {
		return nil, fmt.Errorf("rotate keys: %w", err)
	}
	r.kf, r.keys = nkf, keys
	return codes, nil
}

// highSeq is the highest sequence number of a verified snapshot in the
// store or in its trust state.
func (r *Repo) highSeq(ctx context.Context) (uint64, error) {
	snaps, _, err := r.Snapshots(ctx)
	if err != nil {
		return 0, err
	}
	var high uint64
	for _, s := range snaps {
		high = max(high, s.Config.Seq)
	}
	if st, err := r.state(); err == nil && st != nil {
		high = max(high, st.HighSeq)
	}
	return high, nil
}

// OpenWithKeyFile unlocks kf, a newer key blob of src's store found
// elsewhere (a mirror, the USB key), and reads src with it: the current
// passphrase then reads an old disc, whose own key blob it does not open.
// kf must continue src's chain of epochs; src's key blob is not changed,
// and recovery codes are not retired (the source is not written).
func OpenWithKeyFile(ctx context.Context, src Source, kf *KeyFile, secret []byte) (*Repo, error) {
	own, err := ReadKeyFile(ctx, src)
	if err != nil {
		return nil, err
	}
	if _, err := own.Extends(kf); err != nil {
		return nil, err
	}
	if kf.Epoch < own.Epoch {
		return nil, fmt.Errorf("key blob of epoch %d is older than the store's own (epoch %d): %w", kf.Epoch, own.Epoch, ErrEpoch)
	}
	u, err := kf.Unlock(secret)
	if err != nil {
		return nil, err
	}
	return newRepo(readOnly{src}, kf, u.Keys)
}

// readOnly hides that a source can be written.
type readOnly struct{ Source }

// OpenUnlocked opens a store with secrets that unlocked it before, as
// [Keys.Export] gave them (the unlock agent keeps them between commands).
// kf is the store's key file as [ReadKeyFile] read it from src, or nil to
// read it. Secrets that are not the store's are refused.
func OpenUnlocked(ctx context.Context, src Source, kf *KeyFile, secret []byte) (*Repo, error) {
	if kf == nil {
		var err error
		if kf, err = ReadKeyFile(ctx, src); err != nil {
			return nil, err
		}
	}
	keys, err := kf.unlockExported(secret)
	if err != nil {
		return nil, err
	}
	return newRepo(src, kf, keys)
}

func newRepo(src Source, kf *KeyFile, keys *Keys) (*Repo, error) {
	st, _ := src.(Store)
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithWindowSize(MaxChunk), zstd.WithLowerEncoderMem(true))
	if err != nil {
		return nil, err
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxTreeBlob), zstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, err
	}
	return &Repo{src: src, st: st, kf: kf, keys: keys, idx: newIndex(), idxLoaded: map[Digest]bool{},
		zenc: enc, zdec: dec, blobs: blobCache{src: src, open: map[Digest]Blob{}}}, nil
}

// Close releases open blobs.
func (r *Repo) Close() error {
	r.blobs.closeAll()
	r.zdec.Close()
	return nil
}

// Source returns the store the repo reads.
func (r *Repo) Source() Source { return r.src }

// KeyFile returns the store's key file.
func (r *Repo) KeyFile() *KeyFile { return r.kf }

// Keys returns the unlocked keys.
func (r *Repo) Keys() *Keys { return r.keys }

// SetPassphrase starts a new key epoch sealed to a new passphrase (with
// argon2id parameters p, or the key blob's when zero) and the remaining
// recovery codes: the old passphrase opens no copy of the new key blob.
// It returns new recovery codes when a version 1 key blob's could not be
// carried over.
func (r *Repo) SetPassphrase(ctx context.Context, newPass []byte, p Argon2Params) ([]string, error) {
	if len(newPass) == 0 {
		return nil, errors.New("empty passphrase: choose a passphrase")
	}
	return r.Rotate(ctx, RotateOptions{NewPassphrase: newPass, Argon2: p})
}

// blobCache keeps blobs open for range reads.
type blobCache struct {
	src  Source
	mu   sync.Mutex
	open map[Digest]Blob
	// bad are blobs replaced by another place's copy; other readers may
	// still hold them, so they are closed only by closeAll.
	bad []Blob
}

func (c *blobCache) get(ctx context.Context, d Digest) (Blob, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.open[d]; ok {
		return b, nil
	}
	if len(c.open) >= 256 {
		for k, b := range c.open {
			b.Close()
			delete(c.open, k)
			break
		}
	}
	b, err := c.src.OpenBlob(ctx, d)
	if err != nil {
		return nil, err
	}
	c.open[d] = b
	return b, nil
}

// next replaces blob d, whose copy bad failed (why), with the copy of the
// next place that holds it when the source is a [FallbackSource]. When
// another reader replaced bad already, it returns that reader's copy.
func (c *blobCache) next(ctx context.Context, d Digest, bad Blob, why error) (Blob, error) {
	fs, ok := c.src.(FallbackSource)
	if !ok {
		return nil, errors.New("no other place holds the blob")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.open[d]; ok && cur != bad {
		return cur, nil
	}
	b, err := fs.OpenBlobAfter(ctx, bad, why)
	if err != nil {
		return nil, err
	}
	if c.open[d] == bad {
		c.bad = append(c.bad, bad)
	}
	c.open[d] = b
	return b, nil
}

func (c *blobCache) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, b := range c.open {
		b.Close()
		delete(c.open, k)
	}
	for _, b := range c.bad {
		b.Close()
	}
	c.bad = nil
}

// CloseBlobs closes the blobs the repo keeps open for range reads, so that
// later reads see the blobs replaced since (by a repair).
func (r *Repo) CloseBlobs() { r.blobs.closeAll() }
