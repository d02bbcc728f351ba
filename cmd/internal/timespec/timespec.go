package timespec

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ErrUnknown is wrapped by the error Parse returns for input that matches
// none of the accepted forms.
var ErrUnknown = errors.New("unknown time")

const usage = `use RFC 3339 (2024-05-01T09:00:00Z), a date (2024-05-01), or forms like "yesterday 09:00", "3 days ago", "last monday"`

// Parse returns the point in time that s names, relative to now. Times
// without an explicit UTC offset are read in now.Location(), and the result
// is always in that location. The package documentation lists the accepted
// forms.
func Parse(s string, now time.Time) (time.Time, error) {
	loc := now.Location()
	fields := strings.Fields(strings.ToLower(s))
	if len(fields) == 0 {
		return time.Time{}, unknown(s)
	}

	// Absolute date or date-time; the date and the clock may be separated
	// by a space instead of a T.
	if isDate(fields[0]) {
		var abs string
		switch len(fields) {
		case 1:
			abs = fields[0]
		case 2:
			abs = fields[0] + "t" + fields[1]
		default:
			return time.Time{}, unknown(s)
		}
		t, err := parseAbsolute(abs, loc)
		if err != nil {
			if errors.Is(err, errShape) {
				return time.Time{}, unknown(s)
			}
			return time.Time{}, fmt.Errorf("invalid time %q: %w", s, err)
		}
		return t, nil
	}

	t, err := parseRelative(fields, now)
	if err != nil {
		if errors.Is(err, errShape) {
			return time.Time{}, unknown(s)
		}
		return time.Time{}, fmt.Errorf("invalid time %q: %w", s, err)
	}
	return t, nil
}

func unknown(s string) error {
	return fmt.Errorf("%w %q: %s", ErrUnknown, s, usage)
}

// errShape reports input that does not have the shape of any accepted form;
// Parse replaces it with the ErrUnknown message.
var errShape = errors.New("unrecognised form")

// parseRelative handles every form that does not start with a date.
func parseRelative(f []string, now time.Time) (time.Time, error) {
	if len(f) >= 2 && f[len(f)-1] == "ago" {
		return parseAgo(f[:len(f)-1], now)
	}
	// Optional trailing clock time, as in "yesterday 09:00".
	var c *clock
	if n := len(f); isClockShape(f[n-1]) {
		cl, err := parseClock(f[n-1])
		if err != nil {
			return time.Time{}, err
		}
		c = &cl
		f = f[:n-1]
	}
	y, m, d := now.Date()
	switch {
	case len(f) == 0:
		// "09:00"
		return c.on(y, m, d, now.Location()), nil
	case len(f) == 1 && f[0] == "now" && c == nil:
		return now, nil
	case len(f) == 1 && f[0] == "today":
		if c == nil {
			return now, nil
		}
		return c.on(y, m, d, now.Location()), nil
	case len(f) == 1 && f[0] == "yesterday":
		return c.on(y, m, d-1, now.Location()), nil
	case len(f) == 1:
		wd, ok := weekday(f[0])
		if !ok {
			return time.Time{}, errShape
		}
		if wd == now.Weekday() {
			if c == nil {
				return now, nil
			}
			return c.on(y, m, d, now.Location()), nil
		}
		return c.on(y, m, d-daysBack(now.Weekday(), wd), now.Location()), nil
	case len(f) == 2 && f[0] == "last":
		wd, ok := weekday(f[1])
		if !ok {
			return time.Time{}, errShape
		}
		return c.on(y, m, d-daysBack(now.Weekday(), wd), now.Location()), nil
	}
	return time.Time{}, errShape
}

// daysBack is how many days before a day of weekday today the most recent
// earlier day of weekday wd is: 1 to 7.
func daysBack(today, wd time.Weekday) int {
	n := (int(today) - int(wd) + 7) % 7
	if n == 0 {
		n = 7
	}
	return n
}

var weekdays = map[string]time.Weekday{
	"sunday": time.Sunday, "sun": time.Sunday,
	"monday": time.Monday, "mon": time.Monday,
	"tuesday": time.Tuesday, "tue": time.Tuesday,
	"wednesday": time.Wednesday, "wed": time.Wednesday,
	"thursday": time.Thursday, "thu": time.Thursday,
	"friday": time.Friday, "fri": time.Friday,
	"saturday": time.Saturday, "sat": time.Saturday,
}

func weekday(s string) (time.Weekday, bool) {
	wd, ok := weekdays[s]
	return wd, ok
}

type unit struct {
	name string        // plural, for messages
	dur  time.Duration // elapsed-time units; 0 for calendar units
	days int           // calendar units counted in days
	mons int           // calendar units counted in months
	max  int64         // largest accepted amount
}

var (
	unitSecond = unit{name: "seconds", dur: time.Second, max: math.MaxInt64 / int64(time.Second)}
	unitMinute = unit{name: "minutes", dur: time.Minute, max: math.MaxInt64 / int64(time.Minute)}
	unitHour   = unit{name: "hours", dur: time.Hour, max: math.MaxInt64 / int64(time.Hour)}
	// Calendar units are capped at roughly 10,000 years.
	unitDay   = unit{name: "days", days: 1, max: 3652425}
	unitWeek  = unit{name: "weeks", days: 7, max: 3652425 / 7}
	unitMonth = unit{name: "months", mons: 1, max: 120000}
	unitYear  = unit{name: "years", mons: 12, max: 10000}
)

var units = map[string]unit{
	"s": unitSecond, "sec": unitSecond, "secs": unitSecond, "second": unitSecond, "seconds": unitSecond,
	"m": unitMinute, "min": unitMinute, "mins": unitMinute, "minute": unitMinute, "minutes": unitMinute,
	"h": unitHour, "hr": unitHour, "hrs": unitHour, "hour": unitHour, "hours": unitHour,
	"d": unitDay, "day": unitDay, "days": unitDay,
	"w": unitWeek, "wk": unitWeek, "wks": unitWeek, "week": unitWeek, "weeks": unitWeek,
	"mo": unitMonth, "mos": unitMonth, "month": unitMonth, "months": unitMonth,
	"y": unitYear, "yr": unitYear, "yrs": unitYear, "year": unitYear, "years": unitYear,
}

// parseAgo handles "N unit" and "Nunit", the words before "ago".
func parseAgo(f []string, now time.Time) (time.Time, error) {
	var num, name string
	switch len(f) {
	case 1:
		i := 0
		for i < len(f[0]) && isDigit(f[0][i]) {
			i++
		}
		num, name = f[0][:i], f[0][i:]
	case 2:
		num, name = f[0], f[1]
	default:
		return time.Time{}, errShape
	}
	u, ok := units[name]
	if !ok || num == "" || !allDigits(num) {
		return time.Time{}, errShape
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > u.max {
		return time.Time{}, fmt.Errorf("%s %s ago is too far back: use at most %d %s", num, u.name, u.max, u.name)
	}
	if n == 0 {
		return now, nil
	}
	switch {
	case u.dur != 0:
		return now.Add(-time.Duration(n) * u.dur), nil
	case u.days != 0:
		return now.AddDate(0, 0, -int(n)*u.days), nil
	default:
		return monthsBefore(now, int(n)*u.mons), nil
	}
}

// monthsBefore moves now back n calendar months, keeping the clock time and
// clamping the day to the length of the target month.
func monthsBefore(now time.Time, n int) time.Time {
	y, m, d := now.Date()
	total := y*12 + int(m) - 1 - n
	ty, tm := total/12, total%12
	if tm < 0 {
		ty, tm = ty-1, tm+12
	}
	month := time.Month(tm + 1)
	if last := daysIn(ty, month); d > last {
		d = last
	}
	hh, mm, ss := now.Clock()
	return time.Date(ty, month, d, hh, mm, ss, now.Nanosecond(), now.Location())
}

func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// clock is a wall-clock time of day.
type clock struct {
	h, m, s, ns int
}

// on returns the clock time on the given day, or the end of that day when c
// is nil. Day numbers outside the month are normalised as by time.Date.
func (c *clock) on(y int, m time.Month, d int, loc *time.Location) time.Time {
	if c == nil {
		return endOfDay(y, m, d, loc)
	}
	return time.Date(y, m, d, c.h, c.m, c.s, c.ns, loc)
}

// endOfDay returns the last instant of the given day: one nanosecond before
// the next day starts. Day numbers outside the month are normalised as by
// time.Date.
func endOfDay(y int, m time.Month, d int, loc *time.Location) time.Time {
	return startOfDay(y, m, d+1, loc).Add(-1)
}

// startOfDay returns the first instant of the given day. Where the clocks
// jump over midnight, that is the moment of the jump: time.Date may resolve
// the missing midnight to an instant that still belongs to the day before.
func startOfDay(y int, m time.Month, d int, loc *time.Location) time.Time {
	t := time.Date(y, m, d, 0, 0, 0, 0, loc)
	wy, wm, wd := time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Date()
	if ty, tm, td := t.Date(); ty != wy || tm != wm || td != wd {
		_, end := t.ZoneBounds()
		if !end.IsZero() {
			t = end
		}
	}
	return t
}

// isClockShape reports whether s looks like H:MM..., so that it is parsed
// (and its errors reported) as a clock time.
func isClockShape(s string) bool {
	i := 0
	for i < len(s) && i < 2 && isDigit(s[i]) {
		i++
	}
	return i > 0 && i < len(s) && s[i] == ':'
}

// parseClock parses H:MM, HH:MM, HH:MM:SS and HH:MM:SS.fraction.
func parseClock(s string) (clock, error) {
	c, rest, err := scanClock(s)
	if err != nil {
		return clock{}, err
	}
	if rest != "" {
		return clock{}, errShape
	}
	return c, nil
}

// scanClock parses a clock time at the start of s and returns the rest.
func scanClock(s string) (clock, string, error) {
	var c clock
	i := 0
	for i < len(s) && i < 2 && isDigit(s[i]) {
		i++
	}
	if i == 0 || i >= len(s) || s[i] != ':' {
		return c, "", errShape
	}
	c.h = atoi(s[:i])
	s = s[i+1:]
	if len(s) < 2 || !allDigits(s[:2]) {
		return c, "", errShape
	}
	c.m, s = atoi(s[:2]), s[2:]
	if len(s) > 0 && s[0] == ':' {
		if len(s) < 3 || !allDigits(s[1:3]) {
			return c, "", errShape
		}
		c.s, s = atoi(s[1:3]), s[3:]
		if len(s) > 0 && (s[0] == '.' || s[0] == ',') {
			j := 1
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			if j == 1 {
				return c, "", errShape
			}
			frac := s[1:j]
			if len(frac) > 9 {
				frac = frac[:9]
			}
			c.ns = atoi(frac + strings.Repeat("0", 9-len(frac)))
			s = s[j:]
		}
	}
	switch {
	case c.h > 23:
		return c, "", fmt.Errorf("hour %d is out of range: use 00-23", c.h)
	case c.m > 59:
		return c, "", fmt.Errorf("minute %d is out of range: use 00-59", c.m)
	case c.s > 59:
		return c, "", fmt.Errorf("second %d is out of range: use 00-59", c.s)
	}
	return c, s, nil
}

// isDate reports whether s starts with YYYY-MM-DD.
func isDate(s string) bool {
	return len(s) >= 10 && allDigits(s[:4]) && s[4] == '-' && allDigits(s[5:7]) && s[7] == '-' && allDigits(s[8:10])
}

// parseAbsolute parses YYYY-MM-DD, optionally followed by "t", a clock time
// and a UTC offset ("z" or ±HH:MM). s is lower case.
func parseAbsolute(s string, loc *time.Location) (time.Time, error) {
	y, mon, d := atoi(s[:4]), atoi(s[5:7]), atoi(s[8:10])
	if mon < 1 || mon > 12 {
		return time.Time{}, fmt.Errorf("month %d is out of range: use 01-12", mon)
	}
	if last := daysIn(y, time.Month(mon)); d < 1 || d > last {
		return time.Time{}, fmt.Errorf("day %d is out of range for %s: use 01-%02d", d, s[:7], last)
	}
	s = s[10:]
	if s == "" {
		return endOfDay(y, time.Month(mon), d, loc), nil
	}
	if s[0] != 't' {
		return time.Time{}, errShape
	}
	c, rest, err := scanClock(s[1:])
	if err != nil {
		return time.Time{}, err
	}
	if rest == "" {
		return time.Date(y, time.Month(mon), d, c.h, c.m, c.s, c.ns, loc), nil
	}
	var off int
	switch {
	case rest == "z":
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && allDigits(rest[1:3]) && rest[3] == ':' && allDigits(rest[4:6]):
		oh, om := atoi(rest[1:3]), atoi(rest[4:6])
		if oh > 23 || om > 59 {
			return time.Time{}, fmt.Errorf("UTC offset %s is out of range: use -23:59 to +23:59", rest)
		}
		off = oh*3600 + om*60
		if rest[0] == '-' {
			off = -off
		}
	default:
		return time.Time{}, errShape
	}
	utc := time.Date(y, time.Month(mon), d, c.h, c.m, c.s, c.ns, time.UTC)
	return utc.Add(-time.Duration(off) * time.Second).In(loc), nil
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// atoi converts a short run of ASCII digits.
func atoi(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}
