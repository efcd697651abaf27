//! Proleptic Gregorian calendar arithmetic and RFC 3339 timestamps, in
//! whole seconds since the Unix epoch (there is no chrono here).

use super::{ParseError, Zone};

/// Seconds in a day; civil days are exactly this long (no leap seconds).
pub const DAY: i64 = 86_400;

/// First instant the formatter and parser handle: 0001-01-01T00:00:00Z.
pub const MIN_SECS: i64 = -62_135_596_800;

/// Last instant the formatter and parser handle: 9999-12-31T23:59:59Z.
pub const MAX_SECS: i64 = 253_402_300_799;

/// Days since 1970-01-01 of a date (month 1-12, day 1-31).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    // Howard Hinnant's algorithm: years start in March so that the leap
    // day is the last day of the shifted year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date (year, month 1-12, day 1-31) of a day number since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Both casts are in range by construction: day 1-31, month 1-12.
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Day of the week of a day number, 0 = Sunday (1970-01-01 was a Thursday).
pub fn weekday(days: i64) -> u32 {
    (days + 4).rem_euclid(7) as u32
}

/// Whether `year` has a February 29.
pub fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Number of days in a month of a year.
pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `2026-03-08T07:00:00Z`.
pub fn fmt_rfc3339_utc(secs: i64) -> String {
    format!("{}Z", fmt_wall(secs))
}

/// `2026-03-08T03:00:00-04:00`: the wall time in `zone` and its UTC offset.
pub fn fmt_rfc3339_local(secs: i64, zone: &Zone) -> String {
    let off = zone.offset_at(secs);
    let sign = if off < 0 { '-' } else { '+' };
    let a = off.unsigned_abs();
    // Offsets with seconds exist only before 1972 (Africa/Monrovia); RFC
    // 3339 cannot say them, so they get an ISO 8601 seconds field.
    let secs_part = if a.is_multiple_of(60) {
        String::new()
    } else {
        format!(":{:02}", a % 60)
    };
    format!(
        "{}{sign}{:02}:{:02}{secs_part}",
        fmt_wall(secs.saturating_add(i64::from(off))),
        a / 3600,
        a / 60 % 60
    )
}

fn fmt_wall(secs: i64) -> String {
    let (y, mo, d) = civil_from_days(secs.div_euclid(DAY));
    let s = secs.rem_euclid(DAY);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` to Unix seconds; a
/// fraction is dropped, which keeps "strictly after" exact for whole-second
/// ticks.
pub fn parse_rfc3339(s: &str) -> Result<i64, ParseError> {
    let bad = |why: &str| ParseError::new(format!("invalid time {s:?}: {why}"));
    let b = s.as_bytes();
    let shape = "expected e.g. 2026-03-08T07:00:00Z or 2026-03-08T03:00:00-04:00";
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return Err(bad(shape));
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return Err(bad(shape));
    }
    let num = |from: usize, to: usize| -> Result<i64, ParseError> {
        let part = &b[from..to];
        if !part.iter().all(u8::is_ascii_digit) {
            return Err(bad(shape));
        }
        Ok(part.iter().fold(0, |acc, d| acc * 10 + i64::from(d - b'0')))
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, min, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month) {
        return Err(bad("month out of range 01-12"));
    }
    // `month` is 1-12 here, so the cast is lossless.
    let month = month as u32;
    if day < 1 || day > i64::from(days_in_month(year, month)) {
        return Err(bad("no such day in that month"));
    }
    if hour > 23 || min > 59 || sec > 59 {
        return Err(bad("time of day out of range"));
    }
    let mut rest = &b[19..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return Err(bad(shape));
        }
        rest = &frac[n..];
    }
    let offset = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(u8::is_ascii_digit) {
                return Err(bad(shape));
            }
            let v = |i: usize| i64::from(digits[i] - b'0');
            let (oh, om) = (v(0) * 10 + v(1), v(2) * 10 + v(3));
            if oh > 23 || om > 59 {
                return Err(bad("offset out of range"));
            }
            let off = oh * 3600 + om * 60;
            if *sign == b'-' {
                -off
            } else {
                off
            }
        }
        _ => return Err(bad(shape)),
    };
    // `day` is 1-31 here.
    let days = days_from_civil(year, month, day as u32);
    Ok(days * DAY + hour * 3600 + min * 60 + sec - offset)
}
