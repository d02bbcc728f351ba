package timespec

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the DST tests need zones that may be missing on the host
)

// zone is a fixed UTC+2 location, so wall-clock expectations are exact.
var zone = time.FixedZone("UTC+2", 2*3600)

// now is Wednesday 2024-05-15 14:30:45.5 in zone.
var now = time.Date(2024, 5, 15, 14, 30, 45, 500000000, zone)

func at(y int, m time.Month, d, hh, mm, ss, ns int) time.Time {
	return time.Date(y, m, d, hh, mm, ss, ns, zone)
}

func endOf(y int, m time.Month, d int) time.Time {
	return time.Date(y, m, d, 23, 59, 59, 999999999, zone)
}

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		now  time.Time // zero means now
		want time.Time
	}{
		// RFC 3339.
		{in: "2024-05-01T09:00:00Z", want: time.Date(2024, 5, 1, 9, 0, 0, 0, time.UTC)},
		{in: "2024-05-01T09:00:00.123456789Z", want: time.Date(2024, 5, 1, 9, 0, 0, 123456789, time.UTC)},
		{in: "2024-05-01T09:00:00.1234567891234Z", want: time.Date(2024, 5, 1, 9, 0, 0, 123456789, time.UTC)},
		{in: "2024-05-01T09:00:00.5+02:00", want: at(2024, 5, 1, 9, 0, 0, 500000000)},
		{in: "2024-05-01T09:00:00-07:30", want: time.Date(2024, 5, 1, 16, 30, 0, 0, time.UTC)},
		{in: "2024-05-01T09:00:00+00:00", want: time.Date(2024, 5, 1, 9, 0, 0, 0, time.UTC)},
		{in: "2024-05-01 09:00:00Z", want: time.Date(2024, 5, 1, 9, 0, 0, 0, time.UTC)},
		{in: "2024-05-01 09:00:00.25Z", want: time.Date(2024, 5, 1, 9, 0, 0, 250000000, time.UTC)},
		{in: "2024-05-01t09:00:00z", want: time.Date(2024, 5, 1, 9, 0, 0, 0, time.UTC)},
		{in: "2024-05-01T09:00Z", want: time.Date(2024, 5, 1, 9, 0, 0, 0, time.UTC)},
		{in: "2024-05-01T23:59:59Z", want: time.Date(2024, 5, 1, 23, 59, 59, 0, time.UTC)},
		{in: "2030-01-01T00:00:00Z", want: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)},
		// Local date-times.
		{in: "2024-05-01 09:00", want: at(2024, 5, 1, 9, 0, 0, 0)},
		{in: "2024-05-01 09:00:05", want: at(2024, 5, 1, 9, 0, 5, 0)},
		{in: "2024-05-01 9:00", want: at(2024, 5, 1, 9, 0, 0, 0)},
		{in: "2024-05-01T09:00", want: at(2024, 5, 1, 9, 0, 0, 0)},
		{in: "2024-05-01T09:00:05", want: at(2024, 5, 1, 9, 0, 5, 0)},
		{in: "2024-05-01   09:00", want: at(2024, 5, 1, 9, 0, 0, 0)},
		{in: "2024-05-01 00:00", want: at(2024, 5, 1, 0, 0, 0, 0)},
		// A date is the end of that day.
		{in: "2024-05-01", want: endOf(2024, 5, 1)},
		{in: "  2024-05-01\t\n", want: endOf(2024, 5, 1)},
		{in: "2024-02-29", want: endOf(2024, 2, 29)},
		{in: "2024-12-31", want: endOf(2024, 12, 31)},
		{in: "2024-05-15", want: endOf(2024, 5, 15)}, // today: after now
		// Words.
		{in: "now", want: now},
		{in: "NOW", want: now},
		{in: " today ", want: now},
		{in: "Today", want: now},
		{in: "yesterday", want: endOf(2024, 5, 14)},
		{in: "YESTERDAY", want: endOf(2024, 5, 14)},
		{in: "yesterday 09:00", want: at(2024, 5, 14, 9, 0, 0, 0)},
		{in: "yesterday  9:00", want: at(2024, 5, 14, 9, 0, 0, 0)},
		{in: "yesterday 09:00:30", want: at(2024, 5, 14, 9, 0, 30, 0)},
		{in: "yesterday 23:59:59.75", want: at(2024, 5, 14, 23, 59, 59, 750000000)},
		{in: "today 09:00", want: at(2024, 5, 15, 9, 0, 0, 0)},
		{in: "today 18:00", want: at(2024, 5, 15, 18, 0, 0, 0)}, // after now
		{in: "09:00", want: at(2024, 5, 15, 9, 0, 0, 0)},
		{in: "9:05", want: at(2024, 5, 15, 9, 5, 0, 0)},
		{in: "00:00", want: at(2024, 5, 15, 0, 0, 0, 0)},
		{in: "23:59:59", want: at(2024, 5, 15, 23, 59, 59, 0)},
		// Yesterday across a month and a year boundary.
		{in: "yesterday", now: at(2024, 3, 1, 8, 0, 0, 0), want: endOf(2024, 2, 29)},
		{in: "yesterday 12:00", now: at(2024, 1, 1, 8, 0, 0, 0), want: at(2023, 12, 31, 12, 0, 0, 0)},
		// Amounts ago.
		{in: "30s ago", want: now.Add(-30 * time.Second)},
		{in: "1 second ago", want: now.Add(-time.Second)},
		{in: "45 secs ago", want: now.Add(-45 * time.Second)},
		{in: "90m ago", want: now.Add(-90 * time.Minute)},
		{in: "90 minutes ago", want: now.Add(-90 * time.Minute)},
		{in: "1 minute ago", want: now.Add(-time.Minute)},
		{in: "5 mins ago", want: now.Add(-5 * time.Minute)},
		{in: "5 min ago", want: now.Add(-5 * time.Minute)},
		{in: "2h ago", want: now.Add(-2 * time.Hour)},
		{in: "2 hours ago", want: now.Add(-2 * time.Hour)},
		{in: "1 hour ago", want: now.Add(-time.Hour)},
		{in: "2 hrs ago", want: now.Add(-2 * time.Hour)},
		{in: "3d ago", want: at(2024, 5, 12, 14, 30, 45, 500000000)},
		{in: "3 days ago", want: at(2024, 5, 12, 14, 30, 45, 500000000)},
		{in: "3 DAYS AGO", want: at(2024, 5, 12, 14, 30, 45, 500000000)},
		{in: "3days ago", want: at(2024, 5, 12, 14, 30, 45, 500000000)},
		{in: "1 day ago", want: at(2024, 5, 14, 14, 30, 45, 500000000)},
		{in: "  3   days   ago  ", want: at(2024, 5, 12, 14, 30, 45, 500000000)},
		{in: "1w ago", want: at(2024, 5, 8, 14, 30, 45, 500000000)},
		{in: "2 weeks ago", want: at(2024, 5, 1, 14, 30, 45, 500000000)},
		{in: "1 week ago", want: at(2024, 5, 8, 14, 30, 45, 500000000)},
		{in: "1 month ago", want: at(2024, 4, 15, 14, 30, 45, 500000000)},
		{in: "3 months ago", want: at(2024, 2, 15, 14, 30, 45, 500000000)},
		{in: "5mo ago", want: at(2023, 12, 15, 14, 30, 45, 500000000)},
		{in: "17 months ago", want: at(2022, 12, 15, 14, 30, 45, 500000000)},
		{in: "1 year ago", want: at(2023, 5, 15, 14, 30, 45, 500000000)},
		{in: "2y ago", want: at(2022, 5, 15, 14, 30, 45, 500000000)},
		{in: "0 days ago", want: now},
		{in: "007 days ago", want: at(2024, 5, 8, 14, 30, 45, 500000000)},
		// Months clamp to the end of a shorter month.
		{in: "1 month ago", now: at(2024, 3, 31, 12, 0, 0, 0), want: at(2024, 2, 29, 12, 0, 0, 0)},
		{in: "13 months ago", now: at(2024, 3, 31, 12, 0, 0, 0), want: at(2023, 2, 28, 12, 0, 0, 0)},
		{in: "1 year ago", now: at(2024, 2, 29, 12, 0, 0, 0), want: at(2023, 2, 28, 12, 0, 0, 0)},
		{in: "12 months ago", now: at(2024, 1, 31, 12, 0, 0, 0), want: at(2023, 1, 31, 12, 0, 0, 0)},
		// Weekdays; now is a Wednesday.
		{in: "last monday", want: endOf(2024, 5, 13)},
		{in: "last tuesday", want: endOf(2024, 5, 14)},
		{in: "last wednesday", want: endOf(2024, 5, 8)},
		{in: "last thursday", want: endOf(2024, 5, 9)},
		{in: "last friday", want: endOf(2024, 5, 10)},
		{in: "last saturday", want: endOf(2024, 5, 11)},
		{in: "last sunday", want: endOf(2024, 5, 12)},
		{in: "Last Monday", want: endOf(2024, 5, 13)},
		{in: "last mon", want: endOf(2024, 5, 13)},
		{in: "last monday 09:00", want: at(2024, 5, 13, 9, 0, 0, 0)},
		{in: "last wed 09:00", want: at(2024, 5, 8, 9, 0, 0, 0)},
		{in: "last sunday 23:00", now: at(2024, 5, 12, 1, 0, 0, 0), want: at(2024, 5, 5, 23, 0, 0, 0)},
		{in: "monday", want: endOf(2024, 5, 13)},
		{in: "friday", want: endOf(2024, 5, 10)},
		{in: "thu", want: endOf(2024, 5, 9)},
		{in: "wednesday", want: now},
		{in: "Wed", want: now},
		{in: "wednesday 09:00", want: at(2024, 5, 15, 9, 0, 0, 0)},
		{in: "monday 09:00", want: at(2024, 5, 13, 9, 0, 0, 0)},
		{in: "last monday", now: at(2024, 5, 1, 0, 0, 0, 0), want: endOf(2024, 4, 29)},
	}
	for _, tt := range tests {
		n := tt.now
		if n.IsZero() {
			n = now
		}
		got, err := Parse(tt.in, n)
		if err != nil {
			t.Errorf("Parse(%q, %v): %v", tt.in, n, err)
			continue
		}
		if !got.Equal(tt.want) {
			t.Errorf("Parse(%q, %v) = %v, want %v", tt.in, n, got, tt.want)
		}
		if got.Location() != n.Location() {
			t.Errorf("Parse(%q) location = %v, want %v", tt.in, got.Location(), n.Location())
		}
	}
}

func TestParseErrors(t *testing.T) {
	const hint = `: use RFC 3339 (2024-05-01T09:00:00Z), a date (2024-05-01), or forms like "yesterday 09:00", "3 days ago", "last monday"`
	unknown := []string{
		"", "   ", "xyz", "3 days", "days ago", "ago", "-3 days ago", "+3 days ago",
		"3 fortnights ago", "3.5 days ago", "three days ago", "3 days 2 hours ago",
		"last", "last xyz", "last week", "next monday", "tomorrow", "now 09:00",
		"yesterday 9", "yesterday 09", "yesterday 09:0", "9", "12:3", "09:00.5",
		"09:00:00z", "09:00 pm", "yesterday yesterday", "today monday",
		"2024-5-1", "2024-05-1", "24-05-01", "12024-05-01", "2024-05-01T09",
		"2024-05-01 09:00 extra", "2024-05-01T09:00:00 Z", "2024-05-01x",
		"2024-05-01T09:00:00+0200", "2024-05-01T09:00:00+02", "2024/05/01",
		"2024-05-01T09:00:00.Z", "monday tuesday", "last monday ago",
		"\xff", "mon 3 ago",
	}
	for _, in := range unknown {
		_, err := Parse(in, now)
		if err == nil {
			t.Errorf("Parse(%q) succeeded, want error", in)
			continue
		}
		if !errors.Is(err, ErrUnknown) {
			t.Errorf("Parse(%q) error %q does not wrap ErrUnknown", in, err)
		}
		if want := `unknown time "` + quoteInner(in) + `"` + hint; err.Error() != want {
			t.Errorf("Parse(%q) error\n got %s\nwant %s", in, err, want)
		}
	}

	invalid := []struct{ in, want string }{
		{"2024-13-01", `invalid time "2024-13-01": month 13 is out of range: use 01-12`},
		{"2024-00-10", `invalid time "2024-00-10": month 0 is out of range: use 01-12`},
		{"2024-02-30", `invalid time "2024-02-30": day 30 is out of range for 2024-02: use 01-29`},
		{"2023-02-29", `invalid time "2023-02-29": day 29 is out of range for 2023-02: use 01-28`},
		{"2024-04-00 09:00", `invalid time "2024-04-00 09:00": day 0 is out of range for 2024-04: use 01-30`},
		{"25:00", `invalid time "25:00": hour 25 is out of range: use 00-23`},
		{"24:00", `invalid time "24:00": hour 24 is out of range: use 00-23`},
		{"09:60", `invalid time "09:60": minute 60 is out of range: use 00-59`},
		{"yesterday 09:00:60", `invalid time "yesterday 09:00:60": second 60 is out of range: use 00-59`},
		{"2024-05-01T24:00:00Z", `invalid time "2024-05-01T24:00:00Z": hour 24 is out of range: use 00-23`},
		{"2024-05-01T09:00:00+24:00", `invalid time "2024-05-01T09:00:00+24:00": UTC offset +24:00 is out of range: use -23:59 to +23:59`},
		{"99999999999999999999 days ago", `invalid time "99999999999999999999 days ago": 99999999999999999999 days ago is too far back: use at most 3652425 days`},
		{"3000000 hours ago", `invalid time "3000000 hours ago": 3000000 hours ago is too far back: use at most 2562047 hours`},
		{"10001 years ago", `invalid time "10001 years ago": 10001 years ago is too far back: use at most 10000 years`},
	}
	for _, tt := range invalid {
		_, err := Parse(tt.in, now)
		if err == nil {
			t.Errorf("Parse(%q) succeeded, want error", tt.in)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("Parse(%q) error\n got %s\nwant %s", tt.in, err, tt.want)
		}
		if errors.Is(err, ErrUnknown) {
			t.Errorf("Parse(%q) error %q wraps ErrUnknown, want a range error", tt.in, err)
		}
	}
}

// quoteInner returns s as %q would print it, without the quotes.
func quoteInner(s string) string {
	q := strings.TrimSuffix(strings.TrimPrefix(strconv.Quote(s), `"`), `"`)
	return q
}

func TestParseDST(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	// Summer time began at 02:00 on Sunday 2024-03-31.
	spring := time.Date(2024, 3, 31, 12, 0, 0, 0, berlin)
	// It ended at 03:00 on Sunday 2024-10-27.
	autumn := time.Date(2024, 10, 27, 12, 0, 0, 0, berlin)
	// São Paulo moved its clocks from 00:00 to 01:00 on 2018-11-04.
	saoPaulo, err := time.LoadLocation("America/Sao_Paulo")
	if err != nil {
		t.Fatal(err)
	}
	sp := time.Date(2018, 11, 10, 12, 0, 0, 0, saoPaulo)

	tests := []struct {
		in   string
		now  time.Time
		want time.Time
	}{
		{"1 day ago", spring, time.Date(2024, 3, 30, 12, 0, 0, 0, berlin)},
		{"24h ago", spring, time.Date(2024, 3, 30, 11, 0, 0, 0, berlin)},
		{"1 day ago", autumn, time.Date(2024, 10, 26, 12, 0, 0, 0, berlin)},
		{"24h ago", autumn, time.Date(2024, 10, 26, 13, 0, 0, 0, berlin)},
		{"yesterday", spring, time.Date(2024, 3, 30, 23, 59, 59, 999999999, berlin)},
		{"2024-03-31", spring, time.Date(2024, 3, 31, 23, 59, 59, 999999999, berlin)},
		{"2024-03-31 12:00", spring, spring},
		{"2024-03-31T12:00:00+02:00", spring, spring},
		{"2024-03-31T10:00:00Z", spring, spring},
		{"today 01:00", spring, time.Date(2024, 3, 31, 0, 0, 0, 0, time.UTC)},
		{"today 04:00", spring, time.Date(2024, 3, 31, 2, 0, 0, 0, time.UTC)},
		// The last instant before the clocks jumped past midnight.
		{"2018-11-03", sp, time.Date(2018, 11, 4, 3, 0, 0, 0, time.UTC).Add(-1)},
		{"last saturday", sp, time.Date(2018, 11, 4, 3, 0, 0, 0, time.UTC).Add(-1)},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in, tt.now)
		if err != nil {
			t.Errorf("Parse(%q, %v): %v", tt.in, tt.now, err)
			continue
		}
		if !got.Equal(tt.want) {
			t.Errorf("Parse(%q, %v) = %v, want %v", tt.in, tt.now, got, tt.want)
		}
		if got.Location() != tt.now.Location() {
			t.Errorf("Parse(%q) location = %v, want %v", tt.in, got.Location(), tt.now.Location())
		}
	}
}

// explicit matches input that names a clock time or a calendar date; only
// such input may yield a time after now.
var explicit = regexp.MustCompile(`[0-9]:[0-9]|[0-9]{4}-[0-9]{2}-[0-9]{2}`)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"2024-05-01T09:00:00Z", "2024-05-01 09:00:00.5+02:00", "2024-05-01 09:00",
		"2024-05-01", "now", "today", "yesterday", "yesterday 09:00", "today 09:00",
		"09:00", "3 days ago", "3d ago", "2h ago", "90m ago", "1w ago", "1 month ago",
		"13 months ago", "2 years ago", "last monday", "last sunday 09:00", "monday",
		"wed 23:59:59", "0 days ago", "99999999999 hours ago", "2024-02-30", "xyz",
	} {
		f.Add(s, now.UnixNano())
		f.Add(s, int64(0))
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string, nanos int64) {
		for _, loc := range []*time.Location{time.UTC, zone, berlin} {
			n := time.Unix(0, nanos).In(loc)
			got, err := Parse(s, n)
			if err != nil {
				if msg := err.Error(); !strings.HasPrefix(msg, "unknown time ") && !strings.HasPrefix(msg, "invalid time ") {
					t.Fatalf("Parse(%q) error %q has an unexpected form", s, msg)
				}
				continue
			}
			if got.Location() != loc {
				t.Fatalf("Parse(%q, %v) location = %v, want %v", s, n, got.Location(), loc)
			}
			if got.After(n) && !explicit.MatchString(s) {
				t.Fatalf("Parse(%q, %v) = %v, after now for a relative form", s, n, got)
			}
			again, err := Parse(s, n)
			if err != nil || !again.Equal(got) {
				t.Fatalf("Parse(%q, %v) is not deterministic: %v then %v, %v", s, n, got, again, err)
			}
		}
	})
}
