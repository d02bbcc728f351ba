package main

import (
	"fmt"
	"strings"

	"github.com/dvpc/dvpc/image"
)

// plural counts a noun for the person: "1 file", "2 files", "0 entries".
// one is the singular; the plural adds "s", or turns a final consonant
// and "y" into "ies".
func plural[N ~int | ~int64 | ~uint64](n N, one string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	many := one + "s"
	if y, ok := strings.CutSuffix(one, "y"); ok && y != "" && !strings.ContainsAny(y[len(y)-1:], "aeiou") {
		many = y + "ies"
	}
	return fmt.Sprintf("%d %s", n, many)
}

// tagID shows a snapshot tag (snap-<seq>-<id>) as its ID, the way log
// and the other commands show snapshots; other tags are shown as they are.
func tagID(tag string) string {
	if _, id, ok := image.ParseSnapshotRef(tag); ok {
		return id
	}
	return tag
}

// known shows a count that may be unknown (negative) as "?".
func known(n *int) string {
	if n == nil {
		return "?"
	}
	return fmt.Sprint(*n)
}
