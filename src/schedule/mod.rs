//! Cron schedules, time zones and tick computation (docs/cron.md): pure
//! logic, no clock and no files, so that every daemon of a fleet computes
//! the same ticks from the same job.
//!
//! Instants are whole seconds since the Unix epoch (UTC). Wall times are
//! "local seconds": the same count on the zone's clock.

mod civil;
mod next;
mod parse;
mod past;
mod posix;
mod zone;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_brute;
#[cfg(test)]
mod tests_dst;

use std::fmt;

pub use civil::{
    civil_from_days, days_from_civil, days_in_month, fmt_rfc3339_local, fmt_rfc3339_utc, is_leap,
    parse_rfc3339, weekday, MAX_SECS, MIN_SECS,
};
pub use past::{grace_secs, last_ticks, MAX_GRACE_SECS};
pub use zone::{tzdata_version, LocalResult, Zone};

/// A malformed schedule, zone name or timestamp; displays as one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    message: String,
}

impl ParseError {
    fn new(message: String) -> ParseError {
        ParseError { message }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParseError {}

/// A parsed schedule: five cron fields, a macro, or `@every D`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    text: String,
    kind: parse::Kind,
}

impl Schedule {
    /// Parses a schedule; never panics, whatever the input.
    pub fn parse(text: &str) -> Result<Schedule, ParseError> {
        let kind = parse::parse(text)?;
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        Ok(Schedule { text, kind })
    }

    /// Interval-like (minute or hour field begins with `*`, e.g. `@hourly`)
    /// rather than fixed-time; false for `@every`, which ignores zones.
    pub fn is_interval_like(&self) -> bool {
        match &self.kind {
            parse::Kind::Cron(c) => c.interval,
            parse::Kind::Every(_) => false,
        }
    }

    /// The period of an `@every` schedule, in seconds.
    pub fn every_secs(&self) -> Option<i64> {
        match self.kind {
            parse::Kind::Every(d) => Some(d),
            parse::Kind::Cron(_) => None,
        }
    }

    /// True when no date matches, e.g. `0 0 30 2 *` (`cron add` refuses it).
    pub fn never_fires(&self) -> bool {
        match &self.kind {
            parse::Kind::Cron(c) => next::never_fires(c),
            parse::Kind::Every(_) => false,
        }
    }
}

impl fmt::Display for Schedule {
    /// The schedule as written, with runs of blanks squeezed to one space.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The first tick strictly after the instant `after`; `None` for a cron
/// schedule with no tick before the year 10000 or `after` outside years
/// 1-9999, or for an `@every` tick beyond the range of `i64`.
pub fn next_tick(schedule: &Schedule, zone: &Zone, after: i64) -> Option<i64> {
    match &schedule.kind {
        parse::Kind::Every(d) => after.div_euclid(*d).checked_add(1)?.checked_mul(*d),
        parse::Kind::Cron(c) => next::next_cron(c, zone, after),
    }
}

/// A schedule and zone as `cron add`, `cron next` and `cron apply` accept
/// them: the error is the one line to print (exit 64).
pub fn checked(spec: &str, tz: &str) -> Result<(Schedule, Zone), String> {
    let sched = Schedule::parse(spec).map_err(|e| format!("schedule {spec:?}: {e}"))?;
    if sched.never_fires() {
        return Err(format!(
            "schedule {spec:?}: schedule never fires (no date matches it)"
        ));
    }
    let zone = Zone::parse(tz).map_err(|e| format!("--tz: {e}"))?;
    Ok((sched, zone))
}
