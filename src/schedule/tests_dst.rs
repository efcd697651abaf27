//! Tick tests: the examples of docs/cron.md, DST edges, odd dates.

use super::*;

fn t(s: &str) -> i64 {
    parse_rfc3339(s).unwrap()
}

/// The next `n` ticks after `after`, as RFC 3339 UTC strings.
fn ticks(zone: &str, sched: &str, after: &str, n: usize) -> Vec<String> {
    let z = Zone::parse(zone).unwrap();
    let s = Schedule::parse(sched).unwrap();
    let mut at = t(after);
    let mut out = Vec::new();
    for _ in 0..n {
        match next_tick(&s, &z, at) {
            Some(next) => {
                assert!(next > at);
                out.push(fmt_rfc3339_utc(next));
                at = next;
            }
            None => break,
        }
    }
    out
}

#[test]
fn spec_examples_and_dst_edges() {
    let cases: &[(&str, &str, &str, &[&str])] = &[
        // The table of docs/cron.md.
        (
            "America/New_York",
            "30 2 * * *",
            "2026-03-08T05:00:00Z",
            &["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"],
        ),
        (
            "America/New_York",
            "30 1 * * *",
            "2026-11-01T04:00:00Z",
            &["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"],
        ),
        (
            "Europe/Berlin",
            "30 2 * * *",
            "2026-10-24T23:00:00Z",
            &["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"],
        ),
        (
            "Europe/Berlin",
            "*/30 2 * * *",
            "2026-10-25T00:00:00Z",
            &[
                "2026-10-25T00:30:00Z",
                "2026-10-25T01:00:00Z",
                "2026-10-25T01:30:00Z",
                "2026-10-26T01:00:00Z",
            ],
        ),
        // Several skipped matches coalesce into one tick at the jump...
        (
            "America/New_York",
            "0,30 2 * * *",
            "2026-03-08T00:00:00Z",
            &["2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z"],
        ),
        // ...and so does a real match at the jump instant.
        (
            "America/New_York",
            "30 2,3 * * *",
            "2026-03-08T00:00:00Z",
            &[
                "2026-03-08T07:00:00Z",
                "2026-03-08T07:30:00Z",
                "2026-03-09T06:30:00Z",
            ],
        ),
        (
            "America/New_York",
            "0 3 * * *",
            "2026-03-08T00:00:00Z",
            &["2026-03-08T07:00:00Z", "2026-03-09T07:00:00Z"],
        ),
        // Interval-like jobs have no ticks in the gap.
        (
            "America/New_York",
            "*/30 * * * *",
            "2026-03-08T06:00:00Z",
            &[
                "2026-03-08T06:30:00Z",
                "2026-03-08T07:00:00Z",
                "2026-03-08T07:30:00Z",
            ],
        ),
        (
            "America/New_York",
            "*/30 2 * * *",
            "2026-03-08T00:00:00Z",
            &["2026-03-09T06:00:00Z", "2026-03-09T06:30:00Z"],
        ),
        (
            "Europe/Berlin",
            "*/30 2 * * *",
            "2026-03-28T00:00:00Z",
            &[
                "2026-03-28T01:00:00Z",
                "2026-03-28T01:30:00Z",
                "2026-03-30T00:00:00Z",
            ],
        ),
        (
            "Europe/Berlin",
            "15 2 * * *",
            "2026-03-28T12:00:00Z",
            &["2026-03-29T01:00:00Z", "2026-03-30T00:15:00Z"],
        ),
        (
            "Europe/Berlin",
            "@hourly",
            "2026-03-29T00:30:00Z",
            &["2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"],
        ),
        // Fall back: fixed-time once, interval-like in both passes.
        (
            "America/New_York",
            "30 1 * * *",
            "2026-11-01T05:30:00Z",
            &["2026-11-02T06:30:00Z"],
        ),
        (
            "America/New_York",
            "0 * * * *",
            "2026-11-01T04:30:00Z",
            &[
                "2026-11-01T05:00:00Z",
                "2026-11-01T06:00:00Z",
                "2026-11-01T07:00:00Z",
            ],
        ),
        (
            "America/New_York",
            "*/20 1 * * *",
            "2026-11-01T05:00:00Z",
            &[
                "2026-11-01T05:20:00Z",
                "2026-11-01T05:40:00Z",
                "2026-11-01T06:00:00Z",
                "2026-11-01T06:20:00Z",
                "2026-11-01T06:40:00Z",
                "2026-11-02T06:00:00Z",
            ],
        ),
        (
            "Europe/Berlin",
            "@daily",
            "2026-10-24T12:00:00Z",
            &["2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z"],
        ),
        (
            "Europe/Berlin",
            "0 2 * * *",
            "2026-10-24T12:00:00Z",
            &["2026-10-25T00:00:00Z", "2026-10-26T01:00:00Z"],
        ),
        // Leap days, day 31, and the dom/dow either rule.
        (
            "UTC",
            "0 0 29 2 *",
            "2026-01-01T00:00:00Z",
            &["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"],
        ),
        (
            "UTC",
            "0 0 31 * *",
            "2026-03-31T00:00:00Z",
            &[
                "2026-05-31T00:00:00Z",
                "2026-07-31T00:00:00Z",
                "2026-08-31T00:00:00Z",
                "2026-10-31T00:00:00Z",
            ],
        ),
        (
            "UTC",
            "0 0 13 * FRI",
            "2026-03-01T00:00:00Z",
            &[
                "2026-03-06T00:00:00Z",
                "2026-03-13T00:00:00Z",
                "2026-03-20T00:00:00Z",
            ],
        ),
        (
            "UTC",
            "0 0 */13 * FRI",
            "2026-01-01T00:00:00Z",
            &["2026-02-27T00:00:00Z", "2026-03-27T00:00:00Z"],
        ),
        (
            "UTC",
            "0 12 * * 7",
            "2026-03-01T12:00:00Z",
            &["2026-03-08T12:00:00Z"],
        ),
        (
            "America/New_York",
            "0 9 * * MON-FRI",
            "2026-03-06T15:00:00Z",
            &["2026-03-09T13:00:00Z"],
        ),
        // Far apart: a Sunday February 29, next after 2004 in 2032.
        (
            "UTC",
            "0 0 29 2 */7",
            "2004-03-01T00:00:00Z",
            &[
                "2032-02-29T00:00:00Z",
                "2060-02-29T00:00:00Z",
                "2088-02-29T00:00:00Z",
                "2128-02-29T00:00:00Z",
            ],
        ),
        // @every ignores the zone and counts from the epoch.
        (
            "America/New_York",
            "@every 90s",
            "2026-03-08T06:59:59Z",
            &["2026-03-08T07:00:00Z", "2026-03-08T07:01:30Z"],
        ),
        (
            "UTC",
            "@every 7",
            "1970-01-01T00:00:00Z",
            &["1970-01-01T00:00:07Z"],
        ),
        (
            "UTC",
            "@every 1h",
            "1969-12-31T22:30:00Z",
            &["1969-12-31T23:00:00Z", "1970-01-01T00:00:00Z"],
        ),
        // Samoa skipped 2011-12-30: its noon fires at the jump.
        (
            "Pacific/Apia",
            "0 12 * * *",
            "2011-12-29T12:00:00Z",
            &[
                "2011-12-29T22:00:00Z",
                "2011-12-30T10:00:00Z",
                "2011-12-30T22:00:00Z",
            ],
        ),
        (
            "UTC",
            "59 23 31 12 *",
            "9999-01-01T00:00:00Z",
            &["9999-12-31T23:59:00Z"],
        ),
    ];
    for (zone, sched, after, want) in cases {
        let got = ticks(zone, sched, after, want.len());
        assert_eq!(&got, want, "{zone} {sched:?} after {after}");
    }
}

#[test]
fn impossible_dates_and_range_limits() {
    let z = Zone::parse("Europe/Berlin").unwrap();
    for s in ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 2,4 *"] {
        let sched = Schedule::parse(s).unwrap();
        assert_eq!(next_tick(&sched, &z, 0), None, "{s}");
    }
    let daily = Schedule::parse("@daily").unwrap();
    assert_eq!(next_tick(&daily, &z, MAX_SECS), None);
    assert_eq!(next_tick(&daily, &z, i64::MAX), None);
    assert_eq!(next_tick(&daily, &z, i64::MIN), None);
    assert_eq!(
        next_tick(&daily, &Zone::utc(), MIN_SECS),
        Some(MIN_SECS + 86_400)
    );
    let every = Schedule::parse("@every 10").unwrap();
    assert_eq!(next_tick(&every, &z, i64::MAX), None);
    assert_eq!(next_tick(&every, &z, -15), Some(-10));
    assert_eq!(next_tick(&every, &z, i64::MIN), Some(i64::MIN + 8));
}
