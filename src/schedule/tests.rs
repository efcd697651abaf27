//! Parsing, calendar and zone tests.

use super::*;

fn t(s: &str) -> i64 {
    parse_rfc3339(s).unwrap()
}

fn err(s: &str) -> String {
    Schedule::parse(s).unwrap_err().to_string()
}

#[test]
fn parse_errors_name_the_field_and_range() {
    let cases = [
        ("61 * * * *", "minute 61 out of range 0-59"),
        ("* 24 * * *", "hour 24 out of range 0-23"),
        ("* * 0 * *", "day-of-month 0 out of range 1-31"),
        ("* * * 13 *", "month 13 out of range 1-12"),
        ("* * * * 8", "day-of-week 8 out of range 0-7"),
        (
            "99999999999 * * * *",
            "minute 99999999999 out of range 0-59",
        ),
        ("* * * *", "expected 5 fields, got 4"),
        ("* * * * * *", "expected 5 fields, got 6"),
        ("", "expected 5 fields, got 0"),
        ("*/0 * * * *", "minute step 0 in \"*/0\""),
        (
            "* */x * * *",
            "hour step \"x\" in \"*/x\" is not a positive number",
        ),
        (
            "@every 0s",
            "@every needs a duration of at least 1s, got \"0s\"",
        ),
        (
            "@every -1m",
            "@every needs a duration of at least 1s, got \"-1m\"",
        ),
        (
            "@every 1500ms",
            "@every needs a duration of at least 1s, got \"1500ms\"",
        ),
        (
            "@every 30s1m",
            "@every needs a duration of at least 1s, got \"30s1m\"",
        ),
        (
            "@every",
            "@every needs a duration of at least 1s, e.g. @every 90s",
        ),
        ("@every 1s 2s", "unexpected \"2s\" after @every 1s"),
        ("@daily now", "unexpected \"now\" after @daily"),
        ("@reboot", "unknown macro @reboot"),
        ("5-1 * * * *", "minute range 5-1 is reversed (allowed 0-59)"),
        ("MON * * * *", "minute \"MON\" is not a number in 0-59"),
        (
            "* * * MON *",
            "month \"MON\" is not a number in 1-12 or JAN-DEC",
        ),
        (
            "* * * * JAN",
            "day-of-week \"JAN\" is not a number in 0-7 or SUN-SAT",
        ),
        ("1,,2 * * * *", "minute list \"1,,2\" has an empty item"),
        ("-5 * * * *", "minute \"-5\" is not a number in 0-59"),
        ("1-2-3 * * * *", "minute \"2-3\" is not a number in 0-59"),
    ];
    for (input, want) in cases {
        assert_eq!(err(input), want, "{input:?}");
    }
}

#[test]
fn parser_survives_junk() {
    let junk = [
        "*/",
        "/",
        "-",
        ",",
        "*/*",
        "1-",
        "-1",
        "é * * * *",
        "* * * * é",
        "@",
        "@é",
        "@every é",
        "@every 99999999999999999999h",
        "@every 9223372036854775807h",
        "0/0 * * * *",
        "*-* * * * *",
        "1/99999999999 * * * *",
        "\u{0} \u{0} \u{0} \u{0} \u{0}",
        "@EVERY 5",
    ];
    for s in junk {
        let _ = Schedule::parse(s);
    }
    // Every string over a small alphabet, up to 4 bytes, in every field.
    let alphabet = ["*", "/", "-", ",", "0", "7", "9", "M", "é"];
    let mut items = vec![String::new()];
    for _ in 0..4 {
        let prev = items.clone();
        for p in prev.iter() {
            for a in alphabet {
                items.push(format!("{p}{a}"));
            }
        }
    }
    for item in &items {
        for pos in 0..5 {
            let mut fields = ["0"; 5].map(String::from);
            fields[pos] = item.clone();
            let _ = Schedule::parse(&fields.join(" "));
        }
    }
}

fn cron(s: &str) -> parse::Cron {
    match Schedule::parse(s).unwrap().kind {
        parse::Kind::Cron(c) => c,
        parse::Kind::Every(_) => panic!("not cron"),
    }
}

fn bits(v: &[u32]) -> u64 {
    v.iter().fold(0, |acc, b| acc | 1 << b)
}

#[test]
fn fields_lists_ranges_steps_names() {
    let c = cron("*/15 0 * * *");
    assert_eq!(c.minutes, bits(&[0, 15, 30, 45]));
    let c = cron("10-50/20 */6 5/10 JAN-mar,Dec sun,7,Fri-SAT");
    assert_eq!(c.minutes, bits(&[10, 30, 50]));
    assert_eq!(u64::from(c.hours), bits(&[0, 6, 12, 18]));
    assert_eq!(u64::from(c.doms), bits(&[5, 15, 25]));
    assert_eq!(u64::from(c.months), bits(&[1, 2, 3, 12]));
    assert_eq!(u64::from(c.dows), bits(&[0, 5, 6]));
    assert!(!c.day_and);
    assert!(c.interval);
    let c = cron("0 0 * * 5-7");
    assert_eq!(u64::from(c.dows), bits(&[0, 5, 6]));
    let c = cron("0 0 * * 7");
    assert_eq!(u64::from(c.dows), bits(&[0]));
    let c = cron("0 0 */2 * MON");
    assert!(c.day_and, "a day field starting with * makes the rule AND");
}

#[test]
fn macros_expand_and_classify() {
    let cases = [
        ("@yearly", "0 0 1 1 *", false),
        ("@annually", "0 0 1 1 *", false),
        ("@monthly", "0 0 1 * *", false),
        ("@weekly", "0 0 * * 0", false),
        ("@daily", "0 0 * * *", false),
        ("@midnight", "0 0 * * *", false),
        ("@hourly", "0 * * * *", true),
        ("@DAILY", "0 0 * * *", false),
    ];
    for (m, expansion, interval) in cases {
        let s = Schedule::parse(m).unwrap();
        assert_eq!(s.kind, Schedule::parse(expansion).unwrap().kind, "{m}");
        assert_eq!(s.is_interval_like(), interval, "{m}");
    }
}

#[test]
fn interval_like_rule() {
    let cases = [
        ("*/15 * * * *", true),
        ("0 * * * *", true),
        ("*/30 2 * * *", true),
        ("* 2 * * *", true),
        ("30 2 * * *", false),
        ("0 9 * * MON-FRI", false),
        ("0,30 1-5 * * *", false),
        ("@every 1m", false),
    ];
    for (s, want) in cases {
        assert_eq!(Schedule::parse(s).unwrap().is_interval_like(), want, "{s}");
    }
}

#[test]
fn every_durations() {
    let cases = [
        ("1s", 1),
        ("90s", 90),
        ("1m30s", 90),
        ("2h", 7200),
        ("45", 45),
        ("1h1s", 3601),
    ];
    for (d, want) in cases {
        let s = Schedule::parse(&format!("@every {d}")).unwrap();
        assert_eq!(s.every_secs(), Some(want), "{d}");
    }
    assert_eq!(Schedule::parse("@daily").unwrap().every_secs(), None);
}

#[test]
fn display_keeps_the_text() {
    let s = Schedule::parse("  0  3 *\t* *  ").unwrap();
    assert_eq!(s.to_string(), "0 3 * * *");
}

#[test]
fn never_fires() {
    for s in [
        "0 0 30 2 *",
        "0 0 31 4 *",
        "0 0 31 2,4,6,9,11 *",
        "0 0 30,31 FEB *",
    ] {
        assert!(Schedule::parse(s).unwrap().never_fires(), "{s}");
    }
    for s in [
        "0 0 29 2 *",
        "0 0 31 * *",
        "0 0 30 2 MON",
        "0 0 31 4 */7",
        "@every 1s",
    ] {
        let sched = Schedule::parse(s).unwrap();
        let fires = s != "0 0 31 4 */7";
        assert_eq!(!sched.never_fires(), fires, "{s}");
    }
}

#[test]
fn civil_round_trip() {
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    assert_eq!(civil_from_days(-1), (1969, 12, 31));
    assert_eq!(weekday(days_from_civil(2026, 3, 8)), 0);
    for day in (-800_000..800_000).step_by(7) {
        let (y, m, d) = civil_from_days(day);
        assert!(d <= days_in_month(y, m));
        assert_eq!(days_from_civil(y, m, d), day);
    }
    assert!(is_leap(2000) && is_leap(2028) && !is_leap(2100) && !is_leap(2026));
}

#[test]
fn rfc3339_format_and_parse() {
    let ny = Zone::parse("America/New_York").unwrap();
    let s = t("2026-03-08T07:00:00Z");
    assert_eq!(s, 1_772_953_200);
    assert_eq!(fmt_rfc3339_utc(s), "2026-03-08T07:00:00Z");
    assert_eq!(fmt_rfc3339_local(s, &ny), "2026-03-08T03:00:00-04:00");
    assert_eq!(fmt_rfc3339_local(s - 1, &ny), "2026-03-08T01:59:59-05:00");
    assert_eq!(
        fmt_rfc3339_local(s, &Zone::utc()),
        "2026-03-08T07:00:00+00:00"
    );
    let kolkata = Zone::parse("Asia/Kolkata").unwrap();
    assert_eq!(fmt_rfc3339_local(s, &kolkata), "2026-03-08T12:30:00+05:30");
    assert_eq!(fmt_rfc3339_utc(0), "1970-01-01T00:00:00Z");
    assert_eq!(fmt_rfc3339_utc(-1), "1969-12-31T23:59:59Z");
    assert_eq!(fmt_rfc3339_utc(MAX_SECS), "9999-12-31T23:59:59Z");
    assert_eq!(fmt_rfc3339_utc(MIN_SECS), "0001-01-01T00:00:00Z");
    assert_eq!(t("2026-03-08T03:00:00-04:00"), s);
    assert_eq!(t("2026-03-08t12:30:00.999+05:30"), s);
    assert_eq!(t("2026-03-08 07:00:00z"), s);
    assert_eq!(t("2028-02-29T00:00:00Z"), 1_835_395_200);
    let bad = [
        "",
        "2026-03-08",
        "2026-03-08T07:00:00",
        "2026-02-29T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-03-08T24:00:00Z",
        "2026-03-08T07:00:60Z",
        "2026-03-08T07:00:00+0400",
        "2026-03-08T07:00:00+24:00",
        "2026-03-08T07:00:00.Z",
        "2026-03-08X07:00:00Z",
        "+026-03-08T07:00:00Z",
        "2026-03-08T07:00:00Zjunk",
        "2026-03-08T07:00:00+é:00",
        "éééééééééééééééééééééé",
    ];
    for b in bad {
        assert!(parse_rfc3339(b).is_err(), "{b:?}");
    }
    assert_eq!(
        parse_rfc3339("2026-02-29T00:00:00Z")
            .unwrap_err()
            .to_string(),
        "invalid time \"2026-02-29T00:00:00Z\": no such day in that month"
    );
}

#[test]
fn zones_by_name() {
    for name in [
        "UTC",
        "Etc/UTC",
        "America/New_York",
        "Europe/Berlin",
        "US/Eastern",
        "GMT",
    ] {
        assert_eq!(Zone::parse(name).unwrap().name(), name);
    }
    assert_eq!(
        Zone::parse("europe/berlin").unwrap().name(),
        "Europe/Berlin"
    );
    assert_eq!(Zone::parse("utc").unwrap().name(), "UTC");
    for bad in ["Mars/Olympus", "", "Europe/Berlin ", "/", "Europe/Berlin/x"] {
        let e = Zone::parse(bad).unwrap_err().to_string();
        assert!(e.starts_with(&format!("unknown zone {bad:?}")), "{e}");
    }
    assert_eq!(
        Zone::parse("UTC")
            .unwrap()
            .offset_at(t("2026-07-01T00:00:00Z")),
        0
    );
}

#[test]
fn every_bundled_zone_loads() {
    let names = zone::all_names();
    assert!(names.len() >= 598, "{}", names.len());
    for name in names {
        let z = Zone::parse(&name).unwrap_or_else(|e| panic!("{name}: {e}"));
        // Exercise the footer far beyond the table.
        let _ = z.offset_at(4_102_444_800);
        let _ = z.local_to_utc(4_102_444_800);
    }
}

#[test]
fn offsets_of_assorted_zones() {
    // (zone, instant, offset): table years, footer years, southern
    // hemisphere, half-hour DST, negative DST, quarter-hour offsets.
    let cases = [
        ("America/New_York", "2026-03-08T06:59:59Z", -5 * 3600),
        ("America/New_York", "2026-03-08T07:00:00Z", -4 * 3600),
        ("America/New_York", "2026-11-01T05:59:59Z", -4 * 3600),
        ("America/New_York", "2026-11-01T06:00:00Z", -5 * 3600),
        ("America/New_York", "2087-07-01T00:00:00Z", -4 * 3600),
        ("America/New_York", "1974-01-15T00:00:00Z", -4 * 3600),
        ("Europe/Berlin", "2026-03-29T01:00:00Z", 2 * 3600),
        ("Europe/Berlin", "2026-10-25T00:59:59Z", 2 * 3600),
        ("Europe/Berlin", "2026-10-25T01:00:00Z", 3600),
        ("Australia/Sydney", "2026-01-15T00:00:00Z", 11 * 3600),
        ("Australia/Sydney", "2026-07-15T00:00:00Z", 10 * 3600),
        ("Australia/Lord_Howe", "2026-01-15T00:00:00Z", 11 * 3600),
        ("Australia/Lord_Howe", "2026-07-15T00:00:00Z", 37_800),
        ("Europe/Dublin", "2026-01-15T00:00:00Z", 0),
        ("Europe/Dublin", "2026-07-15T00:00:00Z", 3600),
        ("Pacific/Chatham", "2026-07-15T00:00:00Z", 45_900),
        ("Asia/Kathmandu", "2026-07-15T00:00:00Z", 20_700),
        ("America/Nuuk", "2026-07-15T00:00:00Z", -3600),
        ("America/Nuuk", "2026-01-15T00:00:00Z", -7200),
        ("Africa/Casablanca", "2026-07-15T00:00:00Z", 3600),
        ("Pacific/Apia", "2011-12-30T09:59:59Z", -36_000),
        ("Pacific/Apia", "2011-12-30T10:00:00Z", 50_400),
    ];
    for (zone, at, want) in cases {
        let z = Zone::parse(zone).unwrap();
        assert_eq!(z.offset_at(t(at)), want, "{zone} at {at}");
    }
}

#[test]
fn local_to_utc_gaps_and_folds() {
    let ny = Zone::parse("America/New_York").unwrap();
    let wall = |s: &str| t(s);
    assert_eq!(
        ny.local_to_utc(wall("2026-03-08T02:30:00Z")),
        LocalResult::Gap(t("2026-03-08T07:00:00Z"))
    );
    assert_eq!(
        ny.local_to_utc(wall("2026-03-08T03:00:00Z")),
        LocalResult::Single(t("2026-03-08T07:00:00Z"))
    );
    assert_eq!(
        ny.local_to_utc(wall("2026-03-08T01:59:59Z")),
        LocalResult::Single(t("2026-03-08T06:59:59Z"))
    );
    assert_eq!(
        ny.local_to_utc(wall("2026-11-01T01:30:00Z")),
        LocalResult::Fold(t("2026-11-01T05:30:00Z"), t("2026-11-01T06:30:00Z"))
    );
    assert_eq!(
        ny.local_to_utc(wall("2026-11-01T02:00:00Z")),
        LocalResult::Single(t("2026-11-01T07:00:00Z"))
    );
    // Samoa skipped 2011-12-30 entirely.
    let apia = Zone::parse("Pacific/Apia").unwrap();
    assert_eq!(
        apia.local_to_utc(wall("2011-12-30T12:00:00Z")),
        LocalResult::Gap(t("2011-12-30T10:00:00Z"))
    );
    assert_eq!(Zone::utc().local_to_utc(42), LocalResult::Single(42));
}
