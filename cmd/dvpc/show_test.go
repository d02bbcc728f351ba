package main

import "testing"

func TestPlural(t *testing.T) {
	for _, c := range []struct {
		n    int
		one  string
		want string
	}{
		{0, "file", "0 files"},
		{1, "file", "1 file"},
		{2, "mirror", "2 mirrors"},
		{1, "entry", "1 entry"},
		{3, "entry", "3 entries"},
		{2, "day", "2 days"},
	} {
		if got := plural(c.n, c.one); got != c.want {
			t.Errorf("plural(%d, %q) = %q, want %q", c.n, c.one, got, c.want)
		}
	}
}

func TestClosest(t *testing.T) {
	names := []string{"snapshot", "restore", "verify", "log", "ls", "exclude", "no-parent", "host"}
	for _, c := range []struct{ word, want string }{
		{"snapshto", "snapshot"},
		{"snap", "snapshot"},
		{"restroe", "restore"},
		{"exlcude", "exclude"},
		{"exclud", "exclude"},
		{"lg", "log"},
		{"xyzzy", ""},
		{"backup", ""},
	} {
		if got := closest(c.word, names); got != c.want {
			t.Errorf("closest(%q) = %q, want %q", c.word, got, c.want)
		}
	}
}

func TestTwoDashes(t *testing.T) {
	for in, want := range map[string]string{
		`invalid value "many" for flag -keep-last: parse error`: `invalid value "many" for flag --keep-last: parse error`,
		`flag needs an argument: -to`:                           `flag needs an argument: --to`,
		`invalid value "-1" for flag --keep-last`:               `invalid value "-1" for flag --keep-last`,
	} {
		if got := twoDashes(in); got != want {
			t.Errorf("twoDashes(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTagID(t *testing.T) {
	for in, want := range map[string]string{
		"snap-00000012-0123456789ab": "0123456789ab",
		"keys":                       "keys",
		"":                           "",
	} {
		if got := tagID(in); got != want {
			t.Errorf("tagID(%q) = %q, want %q", in, got, want)
		}
	}
}
