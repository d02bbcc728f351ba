// Package initramfs builds the small initramfs a bootable dvpc medium
// carries: a newc cpio archive holding the static dvpc binary as /init, the
// kernel modules the medium needs and /dev/console, made in Go with no root
// and no host tools.
//
// # Archive
//
// [Writer] streams a newc ("070701") cpio: each entry is a 110-byte ASCII
// header, the NUL-terminated name padded to 4 bytes, then the data padded to
// 4 bytes, and the archive ends with a "TRAILER!!!" entry. A device node is
// only a header, so /dev/console needs no mknod. [Reader] reads such an
// archive back.
//
// # Module closure
//
// [Closure] turns wanted module names into the module files to carry, each
// after the modules it depends on. The dependencies come from modules.dep,
// or, when the tree has none, from the depends= field of each module's
// .modinfo, read inside .ko, .ko.xz and .ko.zst files.
package initramfs
