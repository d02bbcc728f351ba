// Package ignore decides which paths of a snapshot are excluded by
// .dvpcignore files and --exclude PATTERN flags, using gitignore syntax.
//
// # Patterns
//
// Each pattern line follows gitignore(5):
//
//   - A blank line matches nothing. A line starting with # is a comment; use
//     \# for a pattern that starts with a hash.
//   - Trailing spaces are removed unless escaped with a backslash ("foo\ ").
//     Leading spaces and trailing tabs are part of the pattern.
//   - A leading ! negates the pattern: a path it matches is included again.
//     Use \! for a pattern that starts with an exclamation mark.
//   - A trailing / makes the pattern match directories only.
//   - A pattern containing no other / is matched against the last element
//     of a path at any depth below the pattern's base directory.
//   - A pattern with a leading or inner / is anchored: it is matched against
//     the path relative to its base directory. A leading / is dropped.
//   - * matches any run of bytes other than /, ? matches one character
//     other than /, and [...] matches one character from a class: ranges
//     (a-z), negation ([!...] or [^...]), POSIX classes ([[:digit:]]) and
//     backslash escapes; a ] right after the opening [ (or [!) is literal.
//     A backslash makes any other character literal.
//   - A leading **/ matches in all directories, a trailing /** matches
//     everything inside a directory (but not the directory itself), and
//     /**/ matches zero or more directories. Any other ** is like *.
//
// Patterns that can never match, such as one with an unterminated [ class,
// an unknown [:name:] class or a trailing unescaped backslash, are dropped,
// as git never matches them either.
//
// Path names are byte strings: they may hold newlines and need not be valid
// UTF-8. Literal text is compared byte for byte. Where git's ? and [...]
// match a single byte, here they match one UTF-8 encoded character, or a
// single byte that is not part of valid UTF-8, as path.Match does. Matching
// is case-sensitive.
//
// # Bases and precedence
//
// Patterns from a .dvpcignore file apply only below the directory that holds
// the file, as in git; --exclude flags normally use the snapshot root as
// their base. When several patterns match a path, the one added last
// decides, so a directory's .dvpcignore should be added after its parent's,
// as a walk from the root does naturally; patterns from different bases
// only compete when one base lies inside the other.
//
// # Excluded directories
//
// As in git, a path cannot be included again by a negated pattern when one
// of its parent directories is excluded. Match does not look at parent
// directories to enforce this: the caller does not descend into a directory
// for which Match reports true, so nothing below it is ever asked about.
package ignore
