// Package profiles resolves apps named by OCI references and keeps the
// person's profile: the list of apps that follows them from PC to PC.
//
// # Resolving
//
// [Resolve] turns a reference (a tag or digest on any registry, or
// oci:DIR[:TAG|@DIGEST] for an OCI image layout) into a pinned digest and,
// for a multi-platform index, the manifest digest of every platform it
// offers. [Pick] chooses this PC's platform ([Current]).
//
// # Installing
//
// [Install] fetches one pinned manifest, its config and its layers through
// a [Fetcher]: from its [BlobPlace]s in order of preference (this PC's
// cache, an attached medium), then from the registry the reference names.
// Each blob is checked against its digest before any byte of it is used;
// a place that lacks a blob, or offers a corrupt one (reported as a
// [Refusal]), is passed over for the next. Install then unpacks
// them in order into a new per-digest directory that is renamed into place
// only when complete. [Unpack] is the hostile-safe layer unpacker:
//
//   - names are cleaned; one that climbs out of the directory (../) is
//     refused;
//   - every symlink is neutralised: its target is resolved as if the
//     directory were the root (an absolute target, or one that climbs
//     above the root, stays inside it) and written relative;
//   - a hard link's target must be inside the directory, or it is refused;
//   - device nodes and FIFOs are skipped, set-user/group-ID and sticky bits
//     dropped, owners ignored;
//   - whiteouts (.wh.NAME, .wh..wh..opq) remove what lower layers put;
//   - every file operation goes through an [os.Root], so that nothing is
//     ever written outside the directory, even through a link a layer made.
//
// # The profile
//
// [Profile] is the document listing the apps: name, reference, the digest
// per platform, entrypoint, binaries and settings paths per OS. It is
// stored sealed and signed by the image package (see [image.Repo.SaveProfile])
// and recorded in every snapshot from then on.
package profiles
