// Package sourcetest is the conformance suite that every [image.Source]
// and [image.Store] of dvpc runs: a local layout, a medium read through
// [image.FSSource] (an ISO image, a USB image), a set of discs, a stack of
// places, a registry mirror and a local mirror.
//
// [Run] hands a factory a set of blobs and refs; the factory puts them in
// its place exactly as given and returns the place as a Source. The suite
// then pins down what every place must do:
//
//   - OpenBlob and StatBlob of a blob the place does not hold return an
//     error that wraps [image.ErrNotFound], and nothing else does;
//   - an intact blob has its size, reads back byte for byte at any offset,
//     also from several goroutines at once, and a read that reaches its end
//     returns the bytes up to it and [io.EOF];
//   - Refs gives the refs, by name, manifest digest and size;
//   - a damaged blob (a byte flipped) and a torn one (cut short) are never
//     "not found" and never pass: [image.VerifyBlob] and [image.ReadBlob]
//     fail with an [*image.DigestError], whether the place serves the bytes
//     and the check finds them wrong (a layout, a medium) or the place
//     checks them itself and refuses them (a registry);
//   - a place that holds nothing has no refs and no blobs, and says so
//     without an error.
//
// Which of the two a place does with a damaged or torn blob:
//
//   - it serves the bytes, and the check finds them wrong: a layout, a
//     local mirror, [image.FSSource] on a directory, an ISO image or a USB
//     image, a set of discs (media.Union), a stack ([image.StackSource],
//     after every place that holds the blob failed the check);
//   - it refuses to open the blob, with an *image.DigestError: a registry
//     mirror (delta.Registry downloads and checks a blob before serving
//     it), and a medium cut short for a blob past the cut.
//
// The blobs include one damaged and one torn blob: the map holds, under
// their digests, bytes that do not hash to them. A factory must store those
// bytes as they are, writing files directly where its API would refuse them.
//
// [RunStore] pins down writing: CreateBlob then Commit names a blob by its
// digest and is idempotent, Abort leaves nothing, Abort after Commit does
// nothing, UpdateRefs replaces the refs atomically and leaves them as they
// were when its function fails, and the lock can be taken again once
// released.
package sourcetest
