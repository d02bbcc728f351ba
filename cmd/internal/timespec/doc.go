// Package timespec turns the TIME argument of "dvpc restore --at TIME" and
// "dvpc log" into a point in time.
//
// The caller then picks the newest snapshot taken at or before that point,
// so a time in the future simply selects the newest snapshot.
//
// Input is case-insensitive, surrounding white space is ignored and runs of
// white space count as one space. Times without an explicit UTC offset are
// read in the location of the now argument, and every result is returned in
// that location. The accepted forms are:
//
//	2024-05-01T09:00:00Z         RFC 3339, fractional seconds optional
//	2024-05-01T09:00:00.5+02:00  (the T may also be a space)
//	2024-05-01 09:00:05          local wall-clock time
//	2024-05-01 09:00             local wall-clock time
//	2024-05-01                   the END of that day (23:59:59.999999999)
//	now, today                   now
//	yesterday                    the end of yesterday
//	yesterday 09:00              yesterday at 09:00
//	today 09:00, 09:00           today at 09:00 (seconds may be added: 09:00:30)
//	3 days ago                   also minutes, hours, weeks, months, years,
//	3d ago, 2h ago, 90m ago      seconds; singular, and short forms s m h d w mo y
//	last monday                  the end of the most recent Monday strictly
//	                             before today
//	last monday 09:00            that Monday at 09:00
//	monday, monday 09:00         today if today is a Monday (now, or today at
//	                             09:00), otherwise the same as last monday
//
// A bare date means the end of that day so that "restore as of 2024-05-01"
// includes every snapshot taken on that day; use 2024-05-01 00:00 for its
// start. Likewise "yesterday" and "last monday" mean the end of that day.
// Weekday names may be abbreviated to three letters (mon, tue, ...).
//
// Seconds, minutes and hours ago are elapsed time. Days and weeks ago keep
// the wall-clock time across daylight-saving changes. Months and years ago
// keep the day of the month, clamped to the last day of a shorter month, so
// one month before 31 March is the end of February at the same clock time.
//
// Forms built only from words and "ago" amounts never lie after now. Forms
// that name a clock time or a date (2024-05-01, today 09:00, 09:00) denote
// that instant even when it is later than now.
package timespec
