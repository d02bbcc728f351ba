package profiles

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// LayoutPrefix marks a reference to an OCI image layout directory.
const LayoutPrefix = "oci:"

// Annotations and labels an image may carry for dvpc.
const (
	// AnnotationSettings + OS ("dev.dvpc.settings.linux") is where the app
	// keeps its settings on that OS.
	AnnotationSettings = "dev.dvpc.settings."
	// AnnotationBin + NAME ("dev.dvpc.bin.hello") is a binary to expose,
	// its value the path inside the image.
	AnnotationBin = "dev.dvpc.bin."
	// refNameAnnotation names an image in an OCI layout's index.json.
	refNameAnnotation = "org.opencontainers.image.ref.name"
)

// ErrBadRef means a reference cannot be parsed.
var ErrBadRef = errors.New("bad image reference")

// Image is one platform's image of an app.
type Image struct {
	Platform   Platform
	Digest     v1.Hash // the manifest's
	Entrypoint []string
	// Meta holds the config's labels and the manifest's (then the index's)
	// annotations, the first place that says a key winning.
	Meta map[string]string
}

// Resolved is what a reference names, pinned.
type Resolved struct {
	Ref    string
	Digest v1.Hash // an index or a manifest
	Images []Image // one per platform, in the order the index lists them
}

// Pick returns the image for platform p.
func (r *Resolved) Pick(p Platform) (Image, error) {
	for _, im := range r.Images {
		if im.Platform.Matches(p) {
			return im, nil
		}
	}
	return Image{}, fmt.Errorf("%s offers %s, not %s: %w", r.Ref, platformList(r.Images), p, ErrNoPlatform)
}

func platformList(ims []Image) string {
	var ps []string
	for _, im := range ims {
		ps = append(ps, im.Platform.String())
	}
	if len(ps) == 0 {
		return "no platform"
	}
	return strings.Join(ps, ", ")
}

// location is where a reference's images live: a registry repository or
// an OCI layout directory.
type location struct {
	ref    string
	remote name.Reference // the registry reference, as given
	dir    string         // the layout directory
	tag    string         // in the layout; "" for its only image
	digest string         // in the layout, when pinned
}

// parseLocation reads a registry reference or oci:DIR[:TAG|@DIGEST].
func parseLocation(ref string) (location, error) {
	if rest, ok := strings.CutPrefix(ref, LayoutPrefix); ok {
		l := location{ref: ref, dir: rest}
		if i := strings.LastIndex(rest, "@"); i >= 0 {
			l.dir, l.digest = rest[:i], rest[i+1:]
			if _, err := v1.NewHash(l.digest); err != nil {
				return location{}, fmt.Errorf("%q: %w: %v", ref, ErrBadRef, err)
			}
		} else if i := strings.LastIndex(rest, ":"); i > strings.LastIndex(rest, "/") && i > 1 {
			// A drive letter (C:) is not a tag.
			l.dir, l.tag = rest[:i], rest[i+1:]
		}
		if l.dir == "" {
			return location{}, fmt.Errorf("%q names no directory: %w", ref, ErrBadRef)
		}
		return l, nil
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return location{}, fmt.Errorf("%q: %w: %v", ref, ErrBadRef, err)
	}
	return location{ref: ref, remote: r}, nil
}

func remoteOptions(ctx context.Context) []remote.Option {
	return []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}
}

// Resolve pins what ref names now: an image, or every platform of an index.
func Resolve(ctx context.Context, ref string) (*Resolved, error) {
	loc, err := parseLocation(ref)
	if err != nil {
		return nil, err
	}
	res := &Resolved{Ref: ref}
	if loc.remote != nil {
		desc, err := remote.Get(loc.remote, remoteOptions(ctx)...)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", ref, err)
		}
		if err := checkBytes(desc.Manifest, desc.Digest, "manifest"); err != nil {
			return nil, fmt.Errorf("resolve %s: %w", ref, err)
		}
		res.Digest = desc.Digest
		if desc.MediaType.IsIndex() {
			idx, err := desc.ImageIndex()
			if err != nil {
				return nil, fmt.Errorf("resolve %s: %w", ref, err)
			}
			return res, res.addIndex(ctx, idx, func(h v1.Hash) (v1.Image, error) { return idx.Image(h) })
		}
		img, err := desc.Image()
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", ref, err)
		}
		return res, res.addImage(img, desc.Digest, nil, nil)
	}
	p, err := layout.FromPath(loc.dir)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", ref, err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", ref, err)
	}
	desc, err := loc.pickLayoutEntry(top)
	if err != nil {
		return nil, err
	}
	res.Digest = desc.Digest
	if desc.MediaType.IsIndex() {
		idx, err := top.ImageIndex(desc.Digest)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", ref, err)
		}
		raw, err := idx.RawManifest()
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", ref, err)
		}
		if err := checkBytes(raw, desc.Digest, "index"); err != nil {
			return nil, fmt.Errorf("resolve %s: %w", ref, err)
		}
		return res, res.addIndex(ctx, idx, idx.Image)
	}
	img, err := p.Image(desc.Digest)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", ref, err)
	}
	return res, res.addImage(img, desc.Digest, desc.Platform, nil)
}

// pickLayoutEntry finds the entry of a layout's index.json the location
// names: by digest, by tag, or the only one.
func (l location) pickLayoutEntry(top v1.ImageIndex) (v1.Descriptor, error) {
	im, err := top.IndexManifest()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("resolve %s: %w", l.ref, err)
	}
	var found []v1.Descriptor
	for _, d := range im.Manifests {
		switch {
		case l.digest != "":
			if d.Digest.String() == l.digest {
				found = append(found, d)
			}
		case l.tag != "":
			if d.Annotations[refNameAnnotation] == l.tag {
				found = append(found, d)
			}
		default:
			found = append(found, d)
		}
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) == 0 && l.digest != "":
		// A digest the index.json does not name may still be a blob.
		h, _ := v1.NewHash(l.digest)
		return v1.Descriptor{Digest: h, MediaType: "application/vnd.oci.image.manifest.v1+json"}, nil
	case len(found) == 0:
		return v1.Descriptor{}, fmt.Errorf("resolve %s: no image tagged %q in %s: %w", l.ref, l.tag, l.dir, ErrBadRef)
	}
	return v1.Descriptor{}, fmt.Errorf("resolve %s: %s holds %d images; name one with oci:DIR:TAG or oci:DIR@DIGEST: %w", l.ref, l.dir, len(found), ErrBadRef)
}

// addIndex adds every platform image of an index. Entries without a
// platform, or for "unknown/unknown" (attestations), are passed over.
func (r *Resolved) addIndex(ctx context.Context, idx v1.ImageIndex, image func(v1.Hash) (v1.Image, error)) error {
	im, err := idx.IndexManifest()
	if err != nil {
		return fmt.Errorf("resolve %s: %w", r.Ref, err)
	}
	for _, d := range im.Manifests {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.MediaType.IsImage() || d.Platform == nil || d.Platform.OS == "unknown" {
			continue
		}
		img, err := image(d.Digest)
		if err != nil {
			return fmt.Errorf("resolve %s (%s): %w", r.Ref, d.Platform.OS+"/"+d.Platform.Architecture, err)
		}
		if err := r.addImage(img, d.Digest, d.Platform, im.Annotations); err != nil {
			return err
		}
	}
	if len(r.Images) == 0 {
		return fmt.Errorf("resolve %s: the index lists no platform image: %w", r.Ref, ErrNoPlatform)
	}
	return nil
}

// addImage reads one image's manifest and config, checked against their
// digests.
func (r *Resolved) addImage(img v1.Image, h v1.Hash, plat *v1.Platform, indexAnn map[string]string) error {
	m, cfg, err := readImage(img, h)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", r.Ref, err)
	}
	p := Platform{OS: cfg.OS, Arch: cfg.Architecture, Variant: cfg.Variant}
	if plat != nil && plat.OS != "" {
		p = Platform{OS: plat.OS, Arch: plat.Architecture, Variant: plat.Variant}
	}
	if p.OS == "" || p.Arch == "" {
		return fmt.Errorf("resolve %s: image %s names no platform: %w", r.Ref, h, ErrNoPlatform)
	}
	meta := map[string]string{}
	for _, src := range []map[string]string{indexAnn, m.Annotations, cfg.Config.Labels} {
		for k, v := range src {
			meta[k] = v
		}
	}
	ep := slices.Concat(cfg.Config.Entrypoint, cfg.Config.Cmd)
	r.Images = append(r.Images, Image{Platform: p, Digest: h, Entrypoint: ep, Meta: meta})
	return nil
}

// readImage reads an image's manifest and config, each checked against its
// digest: the manifest against h, the config against the manifest.
func readImage(img v1.Image, h v1.Hash) (*v1.Manifest, *v1.ConfigFile, error) {
	raw, err := img.RawManifest()
	if err != nil {
		return nil, nil, fmt.Errorf("manifest %s: %w", h, err)
	}
	if err := checkBytes(raw, h, "manifest"); err != nil {
		return nil, nil, err
	}
	m, err := v1.ParseManifest(strings.NewReader(string(raw)))
	if err != nil {
		return nil, nil, fmt.Errorf("manifest %s: %w", h, err)
	}
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return nil, nil, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	if err := checkBytes(rawCfg, m.Config.Digest, "config"); err != nil {
		return nil, nil, err
	}
	cfg, err := v1.ParseConfigFile(strings.NewReader(string(rawCfg)))
	if err != nil {
		return nil, nil, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	return m, cfg, nil
}

// DigestError means fetched bytes do not hash to the digest that names them.
type DigestError struct {
	What string // "manifest", "config", "layer"
	Want v1.Hash
	Got  string
}

func (e *DigestError) Error() string {
	return fmt.Sprintf("%s %s is corrupt: its content hashes to %s", e.What, e.Want, e.Got)
}

func checkBytes(b []byte, want v1.Hash, what string) error {
	if want.Algorithm != "sha256" {
		return fmt.Errorf("%s %s: only sha256 digests are taken", what, want)
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != want.Hex {
		return &DigestError{What: what, Want: want, Got: "sha256:" + got}
	}
	return nil
}
