//! Looking back from an instant: the newest ticks before it, and how long
//! a tick may wait to be claimed (docs/cron.md, "The daemon").

use std::collections::VecDeque;

use super::{next_tick, Schedule, Zone};

/// The longest a tick may wait to be claimed.
pub const MAX_GRACE_SECS: i64 = 30;

/// A bound on schedule ticks walked for one job, so that no schedule,
/// however dense, can hang `last_ticks`.
const WALK_LIMIT: usize = 5_000_000;

/// How long after `tick` it may still be claimed: [`MAX_GRACE_SECS`], or
/// the gap to the schedule's next tick if shorter.
pub fn grace_secs(schedule: &Schedule, zone: &Zone, tick: i64) -> i64 {
    next_tick(schedule, zone, tick).map_or(MAX_GRACE_SECS, |n| (n - tick).min(MAX_GRACE_SECS))
}

/// The newest (at most `n`) ticks in `(lo, hi]`, oldest first. There is no
/// backward step, so it walks forward from ever earlier starts.
pub fn last_ticks(sched: &Schedule, zone: &Zone, lo: i64, hi: i64, n: usize) -> Vec<i64> {
    if hi <= lo || n == 0 {
        return Vec::new();
    }
    let periods = i64::try_from(n).unwrap_or(i64::MAX).saturating_add(1);
    let mut span = sched.every_secs().unwrap_or(60).saturating_mul(periods);
    let mut walked = 0;
    loop {
        let start = hi.saturating_sub(span).max(lo);
        let mut found = VecDeque::with_capacity(n);
        let mut t = start;
        while let Some(next) = next_tick(sched, zone, t).filter(|&x| x <= hi) {
            if found.len() == n {
                found.pop_front();
            }
            found.push_back(next);
            t = next;
            walked += 1;
            if walked > WALK_LIMIT {
                return found.into();
            }
        }
        if found.len() >= n || start == lo {
            return found.into();
        }
        span = span.saturating_mul(4);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_ticks_finds_the_newest() {
        let s = Schedule::parse("*/15 * * * *").expect("schedule");
        let z = Zone::utc();
        // 2026-01-01T00:00Z = 1767225600.
        let t0 = 1_767_225_600;
        let got = last_ticks(&s, &z, t0 - 3600, t0 + 3600, 3);
        assert_eq!(got, vec![t0 + 1800, t0 + 2700, t0 + 3600]);
        let got = last_ticks(&s, &z, t0 + 100, t0 + 3600, 10);
        assert_eq!(got, vec![t0 + 900, t0 + 1800, t0 + 2700, t0 + 3600]);
        // A yearly schedule needs a wide search.
        let y = Schedule::parse("@yearly").expect("schedule");
        let got = last_ticks(&y, &z, 0, t0 + 10, 2);
        assert_eq!(got, vec![t0 - 365 * 86400, t0]);
    }

    #[test]
    fn the_grace_is_thirty_seconds_or_the_gap_to_the_next_tick() {
        let z = Zone::utc();
        let t0 = 1_767_225_600;
        let minutely = Schedule::parse("* * * * *").expect("schedule");
        assert_eq!(grace_secs(&minutely, &z, t0), MAX_GRACE_SECS);
        let every = Schedule::parse("@every 5s").expect("schedule");
        assert_eq!(grace_secs(&every, &z, t0), 5);
    }
}
