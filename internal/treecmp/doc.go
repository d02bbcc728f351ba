// Package treecmp compares two directory trees and reports every way in which
// the second differs from the first.
//
// It exists to check restores: a tree restored from a snapshot must equal the
// tree that was backed up. [Compare] walks both trees without following
// symlinks and checks, for every entry, its type, permission bits (including
// setuid, setgid and sticky), mtime to the nanosecond, user.* extended
// attributes, and by type: file size and contents, symlink targets and device
// numbers. It also checks that regular files are hard-linked together in the
// same groups in both trees. Ownership, atime, ctime, directory sizes and
// disk allocation (sparseness) are not compared.
//
// Entry names are arbitrary bytes; names with newlines or invalid UTF-8 are
// handled like any other, and [Difference.String] quotes them.
package treecmp
