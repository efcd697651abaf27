//! A machine's deadline as one minimum over named timers, as quinn-proto's
//! `poll_timeout`: each part says when it wants to be woken and why, and
//! the earliest wins. The names make "which timer fired" answerable.

use std::time::Duration;

/// One wake-up a part of a machine wants: its name, and its instant if
/// armed.
pub type Timer = (&'static str, Option<Duration>);

/// The earliest armed timer and its name; on a tie, the first listed.
pub fn earliest(timers: impl IntoIterator<Item = Timer>) -> Option<(&'static str, Duration)> {
    timers
        .into_iter()
        .filter_map(|(name, at)| at.map(|at| (name, at)))
        .fold(None, |best, (name, at)| match best {
            Some((_, b)) if b <= at => best,
            _ => Some((name, at)),
        })
}

/// The instant of the earliest armed timer.
pub fn deadline(timers: impl IntoIterator<Item = Timer>) -> Option<Duration> {
    earliest(timers).map(|(_, at)| at)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn the_earliest_armed_timer_wins_and_ties_go_to_the_first_listed() {
        assert_eq!(earliest([("a", None), ("b", None)]), None);
        assert_eq!(
            earliest([("a", Some(S(3))), ("b", None), ("c", Some(S(2)))]),
            Some(("c", S(2)))
        );
        assert_eq!(
            earliest([("a", Some(S(2))), ("b", Some(S(2)))]),
            Some(("a", S(2)))
        );
        assert_eq!(deadline([("a", Some(S(5))), ("b", Some(S(4)))]), Some(S(4)));
        assert_eq!(deadline([]), None);
    }
}
