package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// unknownCommand refuses a command name under parent ("" for dvpc
// itself), suggesting the nearest one.
func unknownCommand(cmds []*cli.Command, parent, name string) error {
	full := strings.TrimSpace("dvpc " + parent)
	var names []string
	for _, c := range cmds {
		if !c.Hidden {
			names = append(names, c.Names()...)
		}
	}
	if s := closest(name, names); s != "" {
		return fmt.Errorf("%s has no command %q; did you mean `%s %s`?", full, name, full, s)
	}
	return fmt.Errorf("%s has no command %q", full, name)
}

// unknownFlag refuses a flag the command at path ("" for dvpc itself)
// does not have, suggesting the nearest one.
func unknownFlag(flags []cli.Flag, path, arg string) error {
	full := strings.TrimSpace("dvpc " + path)
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	var names []string
	for _, f := range flags {
		names = append(names, f.Names()...)
	}
	if s := closest(name, names); s != "" {
		return flagError{fmt.Errorf("%s has no flag %s; did you mean %s?", full, dashed(arg), dashed(s))}
	}
	return flagError{fmt.Errorf("%s has no flag %s", full, dashed(arg))}
}

// dashed shows a flag the way help does: --name, or -n for a one-letter
// name.
func dashed(arg string) string {
	name, val, hasVal := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	d := "--"
	if len(name) == 1 {
		d = "-"
	}
	if hasVal {
		return d + name + "=" + val
	}
	return d + name
}

func isHelpFlag(arg string) bool {
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	return name == "help" || name == "h" || name == "generate-bash-completion"
}

func isVersionFlag(arg string) bool {
	name := strings.TrimLeft(arg, "-")
	return name == "version" || name == "v"
}

// closest returns the name nearest to word, or "" when none is near: at
// most a third of its letters edited (at least one, at most three), or a
// name it starts.
func closest(word string, names []string) string {
	best, bestD := "", 0
	limit := min(max(len(word)/3, 1), 3)
	for _, n := range names {
		d := editDistance(word, n)
		if len(word) >= 3 && strings.HasPrefix(n, word) {
			d = min(d, 1)
		}
		if d <= limit && (best == "" || d < bestD) {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, with a
// swap of two neighbouring letters counted as one edit.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
