//! The next tick of a schedule, with the DST rules of docs/cron.md.
//!
//! Candidates are wall times in the zone, found by skipping whole months,
//! days and hours that cannot match; each one is then mapped to UTC
//! (once, twice in a fold, or to the jump instant in a gap).

use super::civil::{
    civil_from_days, days_from_civil, days_in_month, weekday, DAY, MAX_SECS, MIN_SECS,
};
use super::parse::Cron;
use super::zone::{LocalResult, Zone};

/// The Gregorian calendar repeats every 400 years, so a date pattern with
/// no match in that span has none at all.
const HORIZON_DAYS: i64 = 146_097 + 366;

/// The first tick of `c` in `zone` strictly after the instant `after`.
pub(crate) fn next_cron(c: &Cron, zone: &Zone, after: i64) -> Option<i64> {
    if !(MIN_SECS..MAX_SECS).contains(&after) || never_fires(c) {
        return None;
    }
    // A tick after `after` shows a wall time of at least `after` plus the
    // least offset of the next days (farther instants show later walls
    // anyway, offsets being under 26 hours).
    let (lo, _) = zone.offset_range(after, after + 4 * DAY);
    let mut from = after + i64::from(lo);
    let last_day = (from.div_euclid(DAY) + HORIZON_DAYS).min(MAX_SECS.div_euclid(DAY));
    let mut best: Option<i64> = None;
    // Walls at or beyond `stop` can only map to instants after `best`.
    let mut stop = i64::MAX;
    while let Some(wall) = next_wall(c, from, last_day) {
        if wall >= stop {
            break;
        }
        let mut consider = |u: i64| {
            if u > after && best.is_none_or(|b| u < b) {
                best = Some(u);
                // Any earlier tick u' shows a wall below u' + (the greatest
                // offset until u) < u + that offset.
                let (_, hi) = zone.offset_range(after, u);
                stop = u + i64::from(hi);
            }
        };
        match zone.local_to_utc(wall) {
            LocalResult::Single(u) => consider(u),
            // Fixed-time jobs fire at the first pass only.
            LocalResult::Fold(first, second) => {
                consider(first);
                if c.interval {
                    consider(second);
                }
            }
            // Skipped wall times of fixed-time jobs all fire at the jump.
            LocalResult::Gap(jump) => {
                if !c.interval {
                    consider(jump);
                }
            }
        }
        from = wall + 60;
    }
    best
}

/// Whether no date can ever match: day-of-month and month (ANDed with
/// day-of-week, which every date meets in some year) never meet.
pub(crate) fn never_fires(c: &Cron) -> bool {
    if !c.day_and {
        // Either rule: the day-of-week alone matches days of every month.
        return false;
    }
    // 2000 is a leap year: February has its 29th.
    !(1..=12u32).any(|m| {
        let days_mask = (u32::MAX >> (31 - days_in_month(2000, m))) & !1;
        c.months & (1 << m) != 0 && c.doms & days_mask != 0
    })
}

/// Whether the date `day` (days since 1970-01-01) matches the day fields.
fn day_matches(c: &Cron, day: i64, dom: u32) -> bool {
    let by_dom = c.doms & (1 << dom) != 0;
    let by_dow = c.dows & (1 << weekday(day)) != 0;
    if c.day_and {
        by_dom && by_dow
    } else {
        by_dom || by_dow
    }
}

/// The first matching wall time (local seconds, whole minutes) at or after
/// `from`, no later than day number `last_day`.
fn next_wall(c: &Cron, from: i64, last_day: i64) -> Option<i64> {
    let mut day = from.div_euclid(DAY);
    // Round up to a whole minute.
    let mut minute = (from.rem_euclid(DAY) + 59) / 60;
    while day <= last_day {
        let (y, m, d) = civil_from_days(day);
        if c.months & (1 << m) == 0 {
            day = if m == 12 {
                days_from_civil(y + 1, 1, 1)
            } else {
                days_from_civil(y, m + 1, 1)
            };
            minute = 0;
            continue;
        }
        if minute < 1440 && day_matches(c, day, d) {
            if let Some(t) = first_time(c, minute) {
                return Some(day * DAY + t * 60);
            }
        }
        day += 1;
        minute = 0;
    }
    None
}

/// The first matching minute of the day at or after `minute` (0-1439).
fn first_time(c: &Cron, minute: i64) -> Option<i64> {
    let (mut h, mut m) = (minute / 60, minute % 60);
    while h < 24 {
        let hours = c.hours & (u32::MAX << h);
        if hours == 0 {
            return None;
        }
        let next_h = i64::from(hours.trailing_zeros());
        if next_h > h {
            h = next_h;
            m = 0;
        }
        let mins = c.minutes & (u64::MAX << m);
        if mins != 0 {
            return Some(h * 60 + i64::from(mins.trailing_zeros()));
        }
        h += 1;
        m = 0;
    }
    None
}
