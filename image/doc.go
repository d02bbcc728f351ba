// Package image is the session image: the store format of dvpc and the engine
// that writes and reads it.
//
// # Store
//
// A store is an OCI image layout (see [Layout]). Everything in it is a blob
// named by its SHA-256 [Digest]; index.json names the manifests by tag:
//
//   - "keys": the key blob (passphrase and recovery-code wrappers of the
//     master key and of the ed25519 signing key, whose public half is clear);
//   - "snap-<seq>-<id>": one manifest per snapshot, whose config is the sealed
//     snapshot config and whose layers are every blob needed to restore it;
//   - "sha256-<hex>.sig": the SSHSIG signature of a snapshot manifest.
//
// # Chunks, packs and indexes
//
// File contents are cut by a gear-hash content-defined [Chunker] (about
// 1 MiB on average). A chunk is named by its [ChunkID], a keyed BLAKE3 hash
// of its plaintext, so equal content is stored once and the store reveals
// nothing through IDs. Each chunk is compressed with zstd (kept raw when that
// does not shrink it) and sealed with XChaCha20-Poly1305; directory trees are
// encoded (see [Tree]) and sealed the same way. Sealed chunks are gathered
// into packs of tens of MiB; each pack ends with its own sealed table of
// contents, and each snapshot run writes a sealed index blob that maps chunk
// IDs to pack, offset and length.
//
// # Snapshots
//
// A snapshot manifest lists its config, every index blob and every pack it
// needs. What another store lacks for a snapshot is therefore a set
// difference of digests. Manifests are signed with the store's ed25519 key
// in the SSHSIG format, so `ssh-keygen -Y verify` can check them too.
// [VerifySnapshot] is the one check of a snapshot read from anywhere (a
// store, a disc, a mirror): signature first, then store and tag; a tag is
// what [SnapshotRef] rebuilds from the signed manifest, or it is refused
// ([ErrTagMismatch]). [ParseSnapshotRef] reads the tags a store wrote.
//
// # Homes, heads and the trust state
//
// Every snapshot belongs to a home, a named lineage, and names its parents;
// the signed manifest carries the home's ID and the parents in the clear
// ([Signed]). [History] resolves "latest", IDs and times within a home and
// finds its heads; a [Lineage] decides ancestry, so a head only moves to a
// descendant. A [Layout] keeps its [State] (dvpc-state.json) beside
// index.json: the highest seq, each home's heads and the forgotten
// snapshots, which an old index.json cannot lower (docs/design.md).
//
// # Places
//
// A [Source] is any place that holds a store's blobs: a [Layout], a medium
// through [FSSource], a mirror. [Stack] reads one store through several
// places (the local cache, a USB key, a disc, mirrors): each blob from the
// first place that has it, and, where a place serves bad data, from the
// next one, chunk by chunk ([FallbackSource]); writes go to the local
// store. [StackSource.Served] says what each place served, and
// [StackSource.Faults] which place failed or served bad data.
//
// The detailed byte formats are documented in FORMAT.md at the repository
// root.
package image
