//! The schedule syntax of docs/cron.md: five cron fields, macros, `@every D`.

use super::ParseError;

/// A five-field schedule as sets of allowed values, one bit per value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cron {
    pub minutes: u64,
    pub hours: u32,
    /// Bits 1-31.
    pub doms: u32,
    /// Bits 1-12.
    pub months: u16,
    /// Bits 0-6, Sunday = 0.
    pub dows: u8,
    /// Day-of-month or day-of-week begins with `*`: days must match both
    /// fields; otherwise either (Vixie cron).
    pub day_and: bool,
    /// Minute or hour begins with `*` (the DST rules differ).
    pub interval: bool,
}

/// What a schedule string means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Cron(Cron),
    /// `@every`: a period in seconds, at least 1.
    Every(i64),
}

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    /// Names of the values from `min` on (`JAN` is 1, `SUN` is 0).
    names: &'static [&'static str],
    names_hint: &'static str,
}

const MINUTE: Field = field("minute", 0, 59);
const HOUR: Field = field("hour", 0, 23);
const DOM: Field = field("day-of-month", 1, 31);
const MONTH: Field = Field {
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
    names_hint: " or JAN-DEC",
    ..field("month", 1, 12)
};
const DOW: Field = Field {
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    names_hint: " or SUN-SAT",
    ..field("day-of-week", 0, 7)
};

const fn field(name: &'static str, min: u32, max: u32) -> Field {
    Field {
        name,
        min,
        max,
        names: &[],
        names_hint: "",
    }
}

/// Parses a schedule; the error is one line naming the field at fault.
pub(crate) fn parse(text: &str) -> Result<Kind, ParseError> {
    let tokens: Vec<&str> = text.split_whitespace().collect();
    let Some(first) = tokens.first() else {
        return Err(ParseError::new("expected 5 fields, got 0".to_string()));
    };
    if first.starts_with('@') {
        let expansion = match first.to_ascii_lowercase().as_str() {
            "@every" => return parse_every(&tokens),
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            _ => return Err(ParseError::new(format!("unknown macro {first}"))),
        };
        if let Some(extra) = tokens.get(1) {
            return Err(ParseError::new(format!(
                "unexpected {extra:?} after {first}"
            )));
        }
        return parse(expansion);
    }
    let [minute, hour, dom, month, dow] = tokens[..] else {
        let n = tokens.len();
        return Err(ParseError::new(format!("expected 5 fields, got {n}")));
    };
    let dows = parse_field(dow, &DOW)?;
    // Day-of-week 7 is another name for Sunday.
    let dows = ((dows | dows >> 7) & 0x7f) as u8;
    Ok(Kind::Cron(Cron {
        minutes: parse_field(minute, &MINUTE)?,
        // The masks fit their types: values are below 24, 32 and 13.
        hours: parse_field(hour, &HOUR)? as u32,
        doms: parse_field(dom, &DOM)? as u32,
        months: parse_field(month, &MONTH)? as u16,
        dows,
        day_and: dom.starts_with('*') || dow.starts_with('*'),
        interval: minute.starts_with('*') || hour.starts_with('*'),
    }))
}

/// A comma list of `*`, `N`, `N-M`, each optionally `/STEP`, as a bit set.
fn parse_field(text: &str, f: &Field) -> Result<u64, ParseError> {
    let name = f.name;
    let mut bits = 0u64;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(ParseError::new(format!(
                "{name} list {text:?} has an empty item"
            )));
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        let (lo, hi) = if range == "*" {
            (f.min, f.max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (lo, hi) = (value(a, item, f)?, value(b, item, f)?);
            if lo > hi {
                return Err(ParseError::new(format!(
                    "{name} range {range} is reversed (allowed {}-{})",
                    f.min, f.max
                )));
            }
            (lo, hi)
        } else {
            let v = value(range, item, f)?;
            // `5/10` means 5-max/10, as in Vixie cron.
            (v, if step.is_some() { f.max } else { v })
        };
        let step = match step {
            None => 1,
            Some(s) => match s.parse::<u32>() {
                Ok(0) => return Err(ParseError::new(format!("{name} step 0 in {item:?}"))),
                Ok(n) => n,
                Err(_) => {
                    return Err(ParseError::new(format!(
                        "{name} step {s:?} in {item:?} is not a positive number"
                    )))
                }
            },
        };
        // `step` is at least 1 and the values are at most 59: no overflow.
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v = v.saturating_add(step);
        }
    }
    Ok(bits)
}

/// One value: a number in the field's range or, for months and days of
/// the week, a three-letter English name in any case.
fn value(token: &str, item: &str, f: &Field) -> Result<u32, ParseError> {
    let (name, min, max) = (f.name, f.min, f.max);
    if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) {
        return match token.parse::<u32>() {
            Ok(v) if (min..=max).contains(&v) => Ok(v),
            _ => Err(ParseError::new(format!(
                "{name} {token} out of range {min}-{max}"
            ))),
        };
    }
    if let Some(i) = f.names.iter().position(|n| n.eq_ignore_ascii_case(token)) {
        // At most 12 names.
        return Ok(f.min + i as u32);
    }
    let shown = if token.is_empty() { item } else { token };
    Err(ParseError::new(format!(
        "{name} {shown:?} is not a number in {min}-{max}{}",
        f.names_hint
    )))
}

/// `@every D`, D as in docs/fencing.md (`90s`, `1m30s`, `2h`, bare seconds) but
/// whole seconds only.
fn parse_every(tokens: &[&str]) -> Result<Kind, ParseError> {
    let need = "@every needs a duration of at least 1s";
    let d = match tokens {
        [_] => return Err(ParseError::new(format!("{need}, e.g. @every 90s"))),
        [_, d] => *d,
        [_, d, extra, ..] => {
            return Err(ParseError::new(format!(
                "unexpected {extra:?} after @every {d}"
            )))
        }
        [] => return Err(ParseError::new(need.to_string())),
    };
    match duration_secs(d) {
        Some(n) if n >= 1 => Ok(Kind::Every(n)),
        _ => Err(ParseError::new(format!("{need}, got {d:?}"))),
    }
}

/// Whole seconds in `2h`, `1m30s`, `90s`, `90`; units largest first, each
/// at most once. `None` when malformed or too large.
fn duration_secs(s: &str) -> Option<i64> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    let mut rest = s;
    let mut total: i64 = 0;
    let mut last_rank = usize::MAX;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let n: i64 = rest.get(..digits)?.parse().ok()?;
        rest = &rest[digits..];
        let (unit, rank) = match rest.bytes().next()? {
            b'h' => (3600, 2),
            b'm' if !rest.starts_with("ms") => (60, 1),
            b's' => (1, 0),
            _ => return None,
        };
        if rank >= last_rank {
            return None;
        }
        last_rank = rank;
        rest = &rest[1..];
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    Some(total)
}
