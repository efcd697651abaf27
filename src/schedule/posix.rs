//! The POSIX TZ string in a TZif footer (RFC 8536 section 3.3), which gives
//! the zone's rule for every instant after the last stored transition.

use super::civil::{days_from_civil, days_in_month, is_leap, weekday, DAY};

/// Instants are clamped to about ±140 million years, so that rule
/// arithmetic cannot overflow.
const LIMIT: i64 = 1 << 52;

/// A parsed TZ string such as `EST5EDT,M3.2.0,M11.1.0`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Standard time, seconds east of UTC.
    std: i32,
    dst: Option<Dst>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Dst {
    offset: i32,
    start: (Date, i32),
    end: (Date, i32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Date {
    /// `Jn`: day 1-365, February 29 never counted.
    Julian1(i64),
    /// `n`: day 0-365, February 29 counted.
    Julian0(i64),
    /// `Mm.w.d`: weekday d of week w (5 = last) of month m.
    Mwd(u32, u32, u32),
}

impl Rule {
    /// Parses a TZ string; `None` when it is not one.
    pub fn parse(s: &str) -> Option<Rule> {
        let mut p = Parser { b: s.as_bytes() };
        p.name()?;
        // POSIX offsets count west of UTC, the opposite of TZif's.
        let std = -p.hms(24)?;
        if p.b.is_empty() {
            return Some(Rule { std, dst: None });
        }
        p.name()?;
        let offset = if p.b.first().is_some_and(|c| *c != b',') {
            -p.hms(24)?
        } else {
            std + 3600
        };
        // A DST name without rules has implementation-defined dates; TZif
        // footers always carry them, so refuse rather than guess.
        p.eat(b',')?;
        let start = p.date_time()?;
        p.eat(b',')?;
        let end = p.date_time()?;
        if !p.b.is_empty() {
            return None;
        }
        let dst = Some(Dst { offset, start, end });
        Some(Rule { std, dst })
    }

    /// Offset east of UTC in effect at `t`.
    pub fn offset_at(&self, t: i64) -> i32 {
        let Some(dst) = &self.dst else {
            return self.std;
        };
        let t = t.clamp(-LIMIT, LIMIT);
        let mut off = self.std;
        // Transitions of the neighbouring years may cross into this one.
        let (ev, n) = dst.events(self.std, year_of(t) - 1, 3);
        for &(at, to) in &ev[..n] {
            if at <= t {
                off = to;
            }
        }
        off
    }

    /// The first change of offset strictly after `t`: (instant, old, new).
    pub fn next_change(&self, t: i64) -> Option<(i64, i32, i32)> {
        let dst = self.dst.as_ref()?;
        if t >= LIMIT {
            return None;
        }
        let t = t.max(-LIMIT);
        let cur = self.offset_at(t);
        let y = year_of(t);
        // Two overlapping three-year windows: at least two changes a year
        // unless DST lasts all year, and sorting within a window orders
        // rule times that spill into the next year.
        for first in [y - 1, y + 1] {
            let (ev, n) = dst.events(self.std, first, 3);
            for &(at, to) in &ev[..n] {
                if at > t && to != cur {
                    return Some((at, cur, to));
                }
            }
        }
        None
    }
}

impl Dst {
    /// The transitions of `count` (at most 3) years from `year` as
    /// (instant, new offset), in time order, simultaneous ones merged (DST
    /// all year is written `0/0,J365/25`).
    fn events(&self, std: i32, year: i64, count: usize) -> ([(i64, i32); 6], usize) {
        let mut v = [(0i64, 0u8, 0i32); 6];
        let count = count.min(3);
        for (k, y) in (year..).take(count).enumerate() {
            // Rule times are wall times of the offset in effect before.
            let start = day_of(y, self.start.0) * DAY + i64::from(self.start.1);
            let end = day_of(y, self.end.0) * DAY + i64::from(self.end.1);
            v[2 * k] = (start - i64::from(std), 1, self.offset);
            v[2 * k + 1] = (end - i64::from(self.offset), 0, std);
        }
        let v = &mut v[..2 * count];
        // Ends sort before starts at the same instant, so DST wins a tie.
        v.sort_unstable_by_key(|e| (e.0, e.1));
        let mut out = [(0i64, 0i32); 6];
        let mut n = 0;
        for &(at, _, to) in v.iter() {
            if n > 0 && out[n - 1].0 == at {
                out[n - 1].1 = to;
            } else {
                out[n] = (at, to);
                n += 1;
            }
        }
        (out, n)
    }
}

/// Day number (since 1970-01-01) of a rule date in a year.
fn day_of(year: i64, date: Date) -> i64 {
    let jan1 = days_from_civil(year, 1, 1);
    match date {
        Date::Julian1(n) => jan1 + n - 1 + i64::from(n >= 60 && is_leap(year)),
        Date::Julian0(n) => jan1 + n,
        Date::Mwd(m, w, d) => {
            let first = days_from_civil(year, m, 1);
            let delta = (i64::from(d) - i64::from(weekday(first))).rem_euclid(7);
            let mut day = first + delta + 7 * (i64::from(w) - 1);
            let last = first + i64::from(days_in_month(year, m)) - 1;
            while day > last {
                day -= 7;
            }
            day
        }
    }
}

fn year_of(t: i64) -> i64 {
    super::civil::civil_from_days(t.div_euclid(DAY)).0
}

struct Parser<'a> {
    b: &'a [u8],
}

impl Parser<'_> {
    fn eat(&mut self, c: u8) -> Option<()> {
        let (first, rest) = self.b.split_first()?;
        (*first == c).then(|| self.b = rest)
    }

    fn name(&mut self) -> Option<()> {
        let n = if self.eat(b'<').is_some() {
            let n = self.b.iter().position(|c| *c == b'>')?;
            self.b = &self.b[n + 1..];
            n
        } else {
            let n = self
                .b
                .iter()
                .take_while(|c| c.is_ascii_alphabetic())
                .count();
            self.b = &self.b[n..];
            n
        };
        (n >= 3).then_some(())
    }

    fn num(&mut self, max: i32) -> Option<i32> {
        let n = self.b.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 3 {
            return None;
        }
        let v = self.b[..n]
            .iter()
            .fold(0, |acc, d| acc * 10 + i32::from(d - b'0'));
        self.b = &self.b[n..];
        (v <= max).then_some(v)
    }

    /// `[+-]hh[:mm[:ss]]` in seconds.
    fn hms(&mut self, max_hours: i32) -> Option<i32> {
        let sign = if self.eat(b'-').is_some() {
            -1
        } else {
            let _ = self.eat(b'+');
            1
        };
        let mut v = self.num(max_hours)? * 3600;
        if self.eat(b':').is_some() {
            v += self.num(59)? * 60;
            if self.eat(b':').is_some() {
                v += self.num(59)?;
            }
        }
        Some(sign * v)
    }

    fn date_time(&mut self) -> Option<(Date, i32)> {
        let date = if self.eat(b'J').is_some() {
            let n = self.num(365)?;
            (n >= 1).then_some(Date::Julian1(i64::from(n)))?
        } else if self.eat(b'M').is_some() {
            let m = self.num(12)?;
            self.eat(b'.')?;
            let w = self.num(5)?;
            self.eat(b'.')?;
            let d = self.num(6)?;
            if m < 1 || w < 1 {
                return None;
            }
            // All three are small and non-negative here.
            Date::Mwd(m as u32, w as u32, d as u32)
        } else {
            Date::Julian0(i64::from(self.num(365)?))
        };
        // RFC 8536 widens the hour range of rule times to -167..167.
        let time = if self.eat(b'/').is_some() {
            self.hms(167)?
        } else {
            7200
        };
        Some((date, time))
    }
}
