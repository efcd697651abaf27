//! Duration arguments: `250ms`, `10s`, `1m30s`, `2h`, or a bare number of
//! seconds.

use std::time::Duration;

/// Parses one duration argument; the error says what was expected.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let expected = || format!("invalid duration {s:?}: expected e.g. 250ms, 10s, 1m30s, 2h");
    if s.is_empty() {
        return Err(expected());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| expected());
    }
    let mut total_ms: u128 = 0;
    let mut rest = s;
    // Units must appear largest first and at most once, as Go's time.ParseDuration
    // users expect (`1m30s`, not `30s1m`).
    let mut last_rank = usize::MAX;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(expected());
        }
        let n: u128 = rest[..digits].parse().map_err(|_| expected())?;
        rest = &rest[digits..];
        let (unit_ms, len, rank) = if rest.starts_with("ms") {
            (1, 2, 0)
        } else if rest.starts_with('s') {
            (1_000, 1, 1)
        } else if rest.starts_with('m') {
            (60_000, 1, 2)
        } else if rest.starts_with('h') {
            (3_600_000, 1, 3)
        } else {
            return Err(expected());
        };
        if rank >= last_rank {
            return Err(expected());
        }
        last_rank = rank;
        rest = &rest[len..];
        total_ms = total_ms
            .checked_add(n.checked_mul(unit_ms).ok_or_else(expected)?)
            .ok_or_else(expected)?;
    }
    let ms = u64::try_from(total_ms).map_err(|_| expected())?;
    Ok(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        let cases = [
            ("250ms", 250),
            ("10s", 10_000),
            ("1m30s", 90_000),
            ("2h", 7_200_000),
            ("1h2m3s4ms", 3_723_004),
            ("7", 7_000),
            ("0", 0),
            ("0s", 0),
        ];
        for (text, ms) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
    }

    #[test]
    fn refused_forms_say_what_was_expected() {
        for bad in [
            "",
            "s",
            "10x",
            "1.5s",
            "-1s",
            "30s1m",
            "1s1s",
            "10 s",
            "ms",
            "99999999999999999999h",
        ] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(err.contains("expected"), "{bad}: {err}");
        }
    }
}
