//! A brute-force cross-check of next_tick against a minute-by-minute
//! reference written independently of next.rs, over weeks around DST
//! transitions.

use std::collections::BTreeSet;

use super::*;

fn t(s: &str) -> i64 {
    parse_rfc3339(s).unwrap()
}

/// Whether a wall time matches, written independently of next.rs.
fn wall_matches(c: &parse::Cron, wall: i64) -> bool {
    if wall.rem_euclid(60) != 0 {
        return false;
    }
    let day = wall.div_euclid(86_400);
    let (_, m, d) = civil_from_days(day);
    let sec = wall.rem_euclid(86_400);
    let bit = |mask: u64, v: i64| mask >> v & 1 == 1;
    let dom = bit(c.doms.into(), d.into());
    let dow = bit(c.dows.into(), weekday(day).into());
    let day_ok = if c.day_and { dom && dow } else { dom || dow };
    bit(c.months.into(), m.into())
        && day_ok
        && bit(c.hours.into(), sec / 3600)
        && bit(c.minutes, sec / 60 % 60)
}

/// Every tick in `[from, to]`, by scanning each minute of UTC.
fn reference_ticks(c: &parse::Cron, z: &Zone, from: i64, to: i64) -> BTreeSet<i64> {
    let mut out = BTreeSet::new();
    let mut u = from - from.rem_euclid(60);
    while u <= to {
        let wall = u + i64::from(z.offset_at(u));
        let earlier = || {
            (1..=180).any(|k| {
                let v = u - 60 * k;
                v + i64::from(z.offset_at(v)) == wall
            })
        };
        if wall_matches(c, wall) && (c.interval || !earlier()) {
            out.insert(u);
        }
        let (before, now) = (z.offset_at(u - 60), z.offset_at(u));
        if now > before && !c.interval {
            // Clocks jumped forward at u: any skipped match fires at u.
            let skipped = u + i64::from(before)..u + i64::from(now);
            if skipped.step_by(60).any(|w| wall_matches(c, w)) {
                out.insert(u);
            }
        }
        u += 60;
    }
    out
}

#[test]
fn brute_force_cross_check() {
    let windows = [
        (
            "America/New_York",
            "2026-02-25T00:00:00Z",
            "2026-03-20T00:00:00Z",
        ),
        (
            "America/New_York",
            "2026-10-20T00:00:00Z",
            "2026-11-12T00:00:00Z",
        ),
        (
            "Europe/Berlin",
            "2026-03-20T00:00:00Z",
            "2026-04-08T00:00:00Z",
        ),
        (
            "Europe/Berlin",
            "2026-10-15T00:00:00Z",
            "2026-11-03T00:00:00Z",
        ),
        (
            "Australia/Lord_Howe",
            "2026-03-28T00:00:00Z",
            "2026-04-12T00:00:00Z",
        ),
        (
            "Australia/Lord_Howe",
            "2026-09-27T00:00:00Z",
            "2026-10-12T00:00:00Z",
        ),
        (
            "Pacific/Apia",
            "2011-12-20T00:00:00Z",
            "2012-01-05T00:00:00Z",
        ),
    ];
    let schedules = [
        "30 2 * * *",
        "0,30 2 * * *",
        "*/30 2 * * *",
        "*/15 * * * *",
        "0 * * * *",
        "* 2 * * *",
        "59 1 * * *",
        "0 3 * * *",
        "15 1-3 * * SUN",
        "0 12 * * *",
        "*/7 1-3 1,8,25,30 * 0",
        "45 2 * 3,4,10 *",
        "10 0 1 * *",
    ];
    for (zone, from, to) in windows {
        let z = Zone::parse(zone).unwrap();
        let (from, to) = (t(from), t(to));
        for text in schedules {
            let s = Schedule::parse(text).unwrap();
            let parse::Kind::Cron(c) = &s.kind else {
                unreachable!()
            };
            let want = reference_ticks(c, &z, from, to);
            let mut afters: Vec<i64> = (from..to).step_by(37 * 60 + 13).collect();
            afters.extend(want.iter().flat_map(|&u| [u - 1, u, u + 1]));
            for after in afters {
                let Some(&expect) = want.range(after + 1..).next() else {
                    continue;
                };
                if after < from {
                    continue;
                }
                let got = next_tick(&s, &z, after);
                assert_eq!(
                    got.map(fmt_rfc3339_utc),
                    Some(fmt_rfc3339_utc(expect)),
                    "{zone} {text:?} after {}",
                    fmt_rfc3339_utc(after)
                );
            }
        }
    }
}
