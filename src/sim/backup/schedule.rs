//! Calendar events as PVE's job scheduler reads them (`pve-calendar-event`: pve-common
//! `PVE/CalendarEvent.pm` over proxmox-time's `CalendarEvent`, a subset of systemd.time's
//! calendar events): `[WEEKDAYS] [[YEAR-]MONTH-DAY] [HOUR:]MINUTE[:SECOND]` and the keywords
//! `minutely`, `hourly`, `daily`, `weekly`, `monthly`, `yearly`/`annually`, `quarterly`,
//! `semiannually`.
//!
//! Weekdays are names (`mon`, `monday`, any case), lists (`sat,sun`) and ranges (`mon..fri`).
//! Every numeric component is `*`, a value, a range `a..b`, a repetition `v/step` or `*/step`
//! (also `a..b/step`), or a comma list of these. A lone time component is the minute (`*/5`
//! is every five minutes, `30/10` minutes 30, 40 and 50 of every hour); a missing time is
//! `00:00`; a missing second is `0`. The next event is computed strictly after the given time,
//! in the node's time zone (UTC in the simulator), like `compute_next_event`.
//!
//! Not modelled: systemd's `~` (last days of a month), fractional seconds and time zone
//! suffixes. Expressions outside this grammar are refused like invalid ones
//! ("invalid calendar event '...' - unable to parse calendar event"; proxmox-time appends
//! nom's detail of where parsing stopped, which is left out here).

/// One comma-separated entry of a numeric component: `start..=end`, every `step`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
    step: u32,
}

/// A numeric component (`*` is one span over the whole range).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Comp(Vec<Span>);

impl Comp {
    fn any(min: u32, max: u32) -> Comp {
        Comp(vec![Span {
            start: min,
            end: max,
            step: 1,
        }])
    }
    fn one(v: u32) -> Comp {
        Comp(vec![Span {
            start: v,
            end: v,
            step: 1,
        }])
    }
    fn matches(&self, v: u32) -> bool {
        self.0
            .iter()
            .any(|s| v >= s.start && v <= s.end && (v - s.start).is_multiple_of(s.step.max(1)))
    }
    /// The largest value it can match (for finite year specs).
    fn max(&self) -> u32 {
        self.0.iter().map(|s| s.end).max().unwrap_or(0)
    }
}

/// A parsed calendar event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarEvent {
    /// Bit `d` for weekday `d` (0 = Sunday).
    weekdays: u8,
    /// `None` = any year.
    year: Option<Comp>,
    month: Comp,
    day: Comp,
    hour: Comp,
    minute: Comp,
    second: Comp,
}

/// The message PVE's `pve-calendar-event` format check gives for `text`.
pub fn invalid(text: &str) -> String {
    if text.trim().is_empty() {
        format!("invalid calendar event '{text}' - unable to parse calendar event - event is empty")
    } else {
        format!("invalid calendar event '{text}' - unable to parse calendar event")
    }
}

const ALL_DAYS: u8 = 0x7f;
const YEAR_MAX: u32 = 9999;

fn weekday(name: &str) -> Option<u8> {
    let n = name.to_ascii_lowercase();
    let days = [
        ("sun", "sunday"),
        ("mon", "monday"),
        ("tue", "tuesday"),
        ("wed", "wednesday"),
        ("thu", "thursday"),
        ("fri", "friday"),
        ("sat", "saturday"),
    ];
    days.iter()
        .position(|(short, long)| n == *short || n == *long)
        .map(|i| i as u8)
}

/// `mon..fri,sun` -> bit set.
fn parse_weekdays(s: &str) -> Option<u8> {
    let mut bits = 0u8;
    for part in s.split(',') {
        match part.split_once("..") {
            Some((a, b)) => {
                let (a, b) = (weekday(a)?, weekday(b)?);
                // ranges wrap like proxmox-time's (`sat..mon` = sat, sun, mon)
                let mut d = a;
                loop {
                    bits |= 1 << d;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => bits |= 1 << weekday(part)?,
        }
    }
    Some(bits)
}

fn num(s: &str) -> Option<u32> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// A numeric component with values in `min..=max`.
fn parse_comp(s: &str, min: u32, max: u32) -> Option<Comp> {
    let mut spans = Vec::new();
    for part in s.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, st)) => (r, Some(num(st).filter(|v| *v > 0)?)),
            None => (part, None),
        };
        let (start, end) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once("..") {
            (num(a)?, num(b)?)
        } else {
            let v = num(range)?;
            // `v/step` repeats up to the end of the range; a bare value is just itself
            (v, if step.is_some() { max } else { v })
        };
        if start < min || end > max || start > end {
            return None;
        }
        spans.push(Span {
            start,
            end,
            step: step.unwrap_or(1),
        });
    }
    (!spans.is_empty()).then_some(Comp(spans))
}

fn keyword(s: &str) -> Option<CalendarEvent> {
    let base = CalendarEvent {
        weekdays: ALL_DAYS,
        year: None,
        month: Comp::any(1, 12),
        day: Comp::any(1, 31),
        hour: Comp::one(0),
        minute: Comp::one(0),
        second: Comp::one(0),
    };
    Some(match s {
        "minutely" => CalendarEvent {
            hour: Comp::any(0, 23),
            minute: Comp::any(0, 59),
            ..base
        },
        "hourly" => CalendarEvent {
            hour: Comp::any(0, 23),
            ..base
        },
        "daily" => base,
        "weekly" => CalendarEvent {
            weekdays: 1 << 1,
            ..base
        },
        "monthly" => CalendarEvent {
            day: Comp::one(1),
            ..base
        },
        "yearly" | "annually" => CalendarEvent {
            month: Comp::one(1),
            day: Comp::one(1),
            ..base
        },
        "quarterly" => CalendarEvent {
            month: parse_comp("1,4,7,10", 1, 12)?,
            day: Comp::one(1),
            ..base
        },
        "semiannually" | "semi-annually" => CalendarEvent {
            month: parse_comp("1,7", 1, 12)?,
            day: Comp::one(1),
            ..base
        },
        _ => return None,
    })
}

impl CalendarEvent {
    /// Parses an event; `Err` carries PVE's format error for it.
    pub fn parse(text: &str) -> Result<CalendarEvent, String> {
        Self::parse_inner(text).ok_or_else(|| invalid(text))
    }

    fn parse_inner(text: &str) -> Option<CalendarEvent> {
        let t = text.trim();
        if t.is_empty() {
            return None;
        }
        if let Some(k) = keyword(&t.to_ascii_lowercase()) {
            return Some(k);
        }
        let mut tokens: Vec<&str> = t.split_whitespace().collect();
        let weekdays = match tokens.first() {
            Some(w) if w.starts_with(|c: char| c.is_ascii_alphabetic()) => {
                let bits = parse_weekdays(w)?;
                tokens.remove(0);
                bits
            }
            _ => ALL_DAYS,
        };
        let (mut year, mut month, mut day) = (None, Comp::any(1, 12), Comp::any(1, 31));
        if let Some(d) = tokens.first().filter(|d| d.contains('-')) {
            let parts: Vec<&str> = d.split('-').collect();
            let (y, m, dd) = match parts.as_slice() {
                [y, m, dd] => (Some(*y), *m, *dd),
                [m, dd] => (None, *m, *dd),
                _ => return None,
            };
            year = match y {
                Some(y) => Some(parse_comp(y, 1970, YEAR_MAX)?),
                None => None,
            };
            month = parse_comp(m, 1, 12)?;
            day = parse_comp(dd, 1, 31)?;
            tokens.remove(0);
        }
        let (hour, minute, second) = match tokens.as_slice() {
            [] => (Comp::one(0), Comp::one(0), Comp::one(0)),
            [time] => {
                let parts: Vec<&str> = time.split(':').collect();
                match parts.as_slice() {
                    [m] => (Comp::any(0, 23), parse_comp(m, 0, 59)?, Comp::one(0)),
                    [h, m] => (parse_comp(h, 0, 23)?, parse_comp(m, 0, 59)?, Comp::one(0)),
                    [h, m, s] => (
                        parse_comp(h, 0, 23)?,
                        parse_comp(m, 0, 59)?,
                        parse_comp(s, 0, 59)?,
                    ),
                    _ => return None,
                }
            }
            _ => return None,
        };
        Some(CalendarEvent {
            weekdays,
            year,
            month,
            day,
            hour,
            minute,
            second,
        })
    }

    /// The first event strictly after `last` (Unix time), if any within the next ten years.
    pub fn next_after(&self, last: i64) -> Option<i64> {
        let start = last + 1;
        let first_day = start.div_euclid(86_400);
        let from = start.rem_euclid(86_400);
        for offset in 0..(366 * 10) {
            let days = first_day + offset;
            let (y, m, d) = civil_from_days(days);
            if let Some(yc) = &self.year
                && y > i64::from(yc.max())
            {
                return None;
            }
            let yok = self
                .year
                .as_ref()
                .is_none_or(|yc| u32::try_from(y).is_ok_and(|y| yc.matches(y)));
            let wd = (days + 4).rem_euclid(7) as u8;
            if !yok
                || !self.month.matches(m)
                || !self.day.matches(d)
                || self.weekdays & (1 << wd) == 0
            {
                continue;
            }
            let floor = if offset == 0 { from } else { 0 };
            if let Some(t) = self.first_time_from(floor) {
                return Some(days * 86_400 + t);
            }
        }
        None
    }

    /// The earliest matching second of a day at or after `floor` (seconds since midnight).
    fn first_time_from(&self, floor: i64) -> Option<i64> {
        for h in (0..24).filter(|h| self.hour.matches(*h)) {
            if i64::from(h + 1) * 3600 <= floor {
                continue;
            }
            for m in (0..60).filter(|m| self.minute.matches(*m)) {
                let base = i64::from(h) * 3600 + i64::from(m) * 60;
                if base + 59 < floor {
                    continue;
                }
                if let Some(s) = (0..60)
                    .filter(|s| self.second.matches(*s))
                    .map(|s| base + i64::from(s))
                    .find(|t| *t >= floor)
                {
                    return Some(s);
                }
            }
        }
        None
    }

    /// The latest event at or before `t`, searched back over `window` seconds.
    pub fn last_at_or_before(&self, t: i64, window: i64) -> Option<i64> {
        let mut cur = self.next_after(t - window - 1)?;
        if cur > t {
            return None;
        }
        while let Some(n) = self.next_after(cur).filter(|n| *n <= t) {
            cur = n;
        }
        Some(cur)
    }
}

/// `(year, month, day)` of days since 1970-01-01 (H. Hinnant's civil-from-days).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Perl's `scalar(gmtime($t))`: `Thu Dec  3 02:00:00 2026`.
pub fn ctime(t: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{} {} {d:>2} {:02}:{:02}:{:02} {y}",
        DAYS[(days + 4).rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wed 2026-12-02 21:21:49 UTC.
    const NOW: i64 = 1_796_246_509;

    fn next(spec: &str) -> String {
        let ev = CalendarEvent::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
        ev.next_after(NOW).map(ctime).unwrap_or_default()
    }

    #[test]
    fn now_is_what_the_tests_think() {
        assert_eq!(ctime(NOW), "Wed Dec  2 21:21:49 2026");
    }

    #[test]
    fn keywords() {
        assert_eq!(next("daily"), "Thu Dec  3 00:00:00 2026");
        assert_eq!(next("weekly"), "Mon Dec  7 00:00:00 2026");
        assert_eq!(next("hourly"), "Wed Dec  2 22:00:00 2026");
        assert_eq!(next("minutely"), "Wed Dec  2 21:22:00 2026");
        assert_eq!(next("monthly"), "Fri Jan  1 00:00:00 2027");
        assert_eq!(next("yearly"), "Fri Jan  1 00:00:00 2027");
        assert_eq!(next("quarterly"), "Fri Jan  1 00:00:00 2027");
    }

    #[test]
    fn times_of_day() {
        assert_eq!(next("02:00"), "Thu Dec  3 02:00:00 2026");
        assert_eq!(next("22:30"), "Wed Dec  2 22:30:00 2026");
        assert_eq!(next("21:21"), "Thu Dec  3 21:21:00 2026");
        assert_eq!(next("21:22"), "Wed Dec  2 21:22:00 2026");
        assert_eq!(next("*-*-* 03:00"), "Thu Dec  3 03:00:00 2026");
        assert_eq!(next("12:05:30"), "Thu Dec  3 12:05:30 2026");
    }

    #[test]
    fn weekdays() {
        assert_eq!(next("sun 01:00"), "Sun Dec  6 01:00:00 2026");
        assert_eq!(next("mon..fri 02:30"), "Thu Dec  3 02:30:00 2026");
        assert_eq!(next("sat,sun 04:00"), "Sat Dec  5 04:00:00 2026");
        assert_eq!(next("Sat 03:30"), "Sat Dec  5 03:30:00 2026");
        assert_eq!(next("wed 22:00"), "Wed Dec  2 22:00:00 2026");
        assert_eq!(next("wed 21:00"), "Wed Dec  9 21:00:00 2026");
        assert_eq!(next("mon,wed,fri"), "Fri Dec  4 00:00:00 2026");
        assert_eq!(next("sat..mon 05:00"), "Sat Dec  5 05:00:00 2026");
        assert_eq!(next("monday 05:00"), "Mon Dec  7 05:00:00 2026");
    }

    #[test]
    fn steps_ranges_and_lists() {
        assert_eq!(next("*/2:00"), "Wed Dec  2 22:00:00 2026");
        assert_eq!(next("0/2:00"), "Wed Dec  2 22:00:00 2026");
        assert_eq!(next("*/5"), "Wed Dec  2 21:25:00 2026");
        assert_eq!(next("30/10"), "Wed Dec  2 21:30:00 2026");
        assert_eq!(next("fri 12..13:5/20"), "Fri Dec  4 12:05:00 2026");
        assert_eq!(next("12/2:5"), "Wed Dec  2 22:05:00 2026");
        assert_eq!(next("8..17,22:0/15"), "Wed Dec  2 22:00:00 2026");
        assert_eq!(next("*"), "Wed Dec  2 21:22:00 2026");
    }

    #[test]
    fn dates() {
        assert_eq!(next("*-05"), "Sat Dec  5 00:00:00 2026");
        assert_eq!(next("Sat *-1..7 15:00"), "Sat Dec  5 15:00:00 2026");
        assert_eq!(next("*-12-24 18:00"), "Thu Dec 24 18:00:00 2026");
        assert_eq!(next("2027-02-28 01:00"), "Sun Feb 28 01:00:00 2027");
        let past = CalendarEvent::parse("2015-10-21").expect("parses");
        assert_eq!(past.next_after(NOW), None);
        // the 29th of February exists only in leap years
        assert_eq!(next("*-02-29 00:00"), "Tue Feb 29 00:00:00 2028");
    }

    #[test]
    fn invalid_expressions_are_refused_with_pves_prefix() {
        for bad in [
            "",
            "  ",
            "25:00",
            "12:60",
            "funday 02:00",
            "2:00 extra",
            "*-13-01",
            "1..",
            "/5",
            "mon..",
            "02:00:00:00",
            "0/0",
            "~",
        ] {
            let e = CalendarEvent::parse(bad).expect_err(bad);
            assert!(
                e.starts_with(&format!(
                    "invalid calendar event '{bad}' - unable to parse calendar event"
                )),
                "{bad}: {e}"
            );
        }
        assert!(invalid("").ends_with("event is empty"));
    }

    #[test]
    fn the_last_scheduled_run_before_a_time() {
        let ev = CalendarEvent::parse("02:00").expect("parses");
        let last = ev.last_at_or_before(NOW, 8 * 86_400).expect("a run");
        assert_eq!(ctime(last), "Wed Dec  2 02:00:00 2026");
        let weekly = CalendarEvent::parse("sat 03:30").expect("parses");
        let last = weekly.last_at_or_before(NOW, 8 * 86_400).expect("a run");
        assert_eq!(ctime(last), "Sat Nov 28 03:30:00 2026");
        // exactly on an event counts
        assert_eq!(
            ev.last_at_or_before(last_day_2am(), 86_400),
            Some(last_day_2am())
        );
    }

    fn last_day_2am() -> i64 {
        NOW - (21 * 3600 + 21 * 60 + 49) + 2 * 3600
    }
}
