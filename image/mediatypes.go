package image

import "github.com/google/go-containerregistry/pkg/v1/types"

// Media types of what dvpc stores.
const (
	SnapshotArtifactType  = "application/vnd.dvpc.snapshot.v1"
	SnapshotConfigType    = "application/vnd.dvpc.snapshot.config.v1+sealed"
	PackType              = "application/vnd.dvpc.pack.v1"
	IndexType             = "application/vnd.dvpc.index.v1+sealed"
	SignatureArtifactType = "application/vnd.dvpc.signature.v1"
	SignatureType         = "application/vnd.dvpc.signature.v1+sshsig"
	KeysArtifactType      = "application/vnd.dvpc.keys.v1"
	EmptyConfigType       = "application/vnd.oci.empty.v1+json"
	ManifestType          = string(types.OCIManifestSchema1)
)

func mediaTypeOf(s string) types.MediaType { return types.MediaType(s) }
