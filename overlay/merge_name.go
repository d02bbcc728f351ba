package overlay

import (
	"strconv"
	"strings"
	"time"
)

// maxNameLen is the longest file name most file systems take, in bytes.
const maxNameLen = 255

// ConflictName returns the name under which a version of the file name,
// made on host at t, is kept beside the other version:
// NAME.conflict-HOST-YYYYMMDD-HHMMSS.EXT, with t in UTC and EXT the last
// extension (none for a dotfile without one, such as .bashrc).
func ConflictName(name, host string, t time.Time) string {
	return conflictName(name, host, t, 1)
}

// conflictName is ConflictName with -n added to the time for n > 1, when
// the first name is taken.
func conflictName(name, host string, t time.Time, n int) string {
	stem, ext := name, ""
	if i := strings.LastIndexByte(name, '.'); i > 0 && i < len(name)-1 {
		stem, ext = name[:i], name[i:]
	}
	tag := ".conflict-" + hostTag(host) + "-" + t.UTC().Format("20060102-150405")
	if n > 1 {
		tag += "-" + strconv.Itoa(n)
	}
	if over := len(stem) + len(tag) + len(ext) - maxNameLen; over > 0 {
		if over < len(stem) {
			stem = stem[:len(stem)-over]
		} else {
			stem, ext = stem[:1], ""
		}
	}
	return stem + tag + ext
}

// hostTag is a host name as it may appear in a file name: letters, digits,
// '.', '_' and '-' kept, anything else '-', at most 64 bytes.
func hostTag(host string) string {
	if host == "" {
		return "unknown"
	}
	b := []byte(host)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}
