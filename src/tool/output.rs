//! Output the tools share: stdout that a closed pipe cannot turn into a
//! panic, aligned tables, JSON values for optional fields, and times and
//! durations as people read them.

use std::io::Write;

use miniserde::json::{Number, Value};

use crate::record::Holder;
use crate::schedule::fmt_rfc3339_utc;

/// Writes `text` to stdout; a closed pipe (`| head`) is not an error worth
/// a panic, so write failures are ignored.
pub fn print(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// JSON output names every field: an unknown one is `null`, not absent.
pub fn opt_str(v: Option<String>) -> Value {
    v.map_or(Value::Null, Value::String)
}

pub fn opt_u64(v: Option<u64>) -> Value {
    v.map_or(Value::Null, |n| Value::Number(Number::U64(n)))
}

pub fn opt_i64(v: Option<i64>) -> Value {
    v.map_or(Value::Null, |n| Value::Number(Number::I64(n)))
}

pub fn opt_i32(v: Option<i32>) -> Value {
    opt_i64(v.map(i64::from))
}

/// A record's Unix milliseconds as an RFC 3339 UTC second.
pub fn rfc3339_ms(ms: u64) -> String {
    fmt_rfc3339_utc((ms / 1000) as i64)
}

/// An unknown table cell, so that columns stay aligned.
pub fn dash(v: Option<String>) -> String {
    v.unwrap_or_else(|| "-".into())
}

/// A table's header row.
pub fn cells(header: &[&str]) -> Vec<String> {
    header.iter().map(|h| h.to_string()).collect()
}

/// A holder record's fields as `--who` prints them: what the record lacks
/// is `?`, so that a record written by another version of conch still reads.
pub struct HolderText {
    pub host: String,
    pub pid: String,
    pub since: String,
    pub cmd: String,
}

impl HolderText {
    pub fn of(h: &Holder) -> HolderText {
        HolderText {
            host: h.host.clone().unwrap_or_else(|| "?".into()),
            pid: h.pid.map_or("?".into(), |p| p.to_string()),
            since: h.since_ms.map_or("?".into(), rfc3339_ms),
            cmd: if h.argv.is_empty() {
                "?".into()
            } else {
                h.argv.join(" ")
            },
        }
    }
}

/// `850ms`, `12.345s`, `3m07s`, `2h05m`.
pub fn human_ms(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms}ms"),
        1000..=59_999 => format!("{}.{:03}s", ms / 1000, ms % 1000),
        60_000..=3_599_999 => format!("{}m{:02}s", ms / 60_000, ms / 1000 % 60),
        _ => format!("{}h{:02}m", ms / 3_600_000, ms / 60_000 % 60),
    }
}

/// Left-aligned columns two spaces apart; the last column is not padded.
pub fn render(table: &[Vec<String>]) -> String {
    let cols = table.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> = (0..cols)
        .map(|c| {
            let w = table.iter().filter_map(|r| r.get(c));
            w.map(|s| s.chars().count()).max().unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in table {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 < row.len() {
                let pad = width[c].saturating_sub(cell.chars().count());
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            } else {
                line.push_str(cell);
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(human_ms(850), "850ms");
        assert_eq!(human_ms(12_345), "12.345s");
        assert_eq!(human_ms(187_000), "3m07s");
        assert_eq!(human_ms(7_500_000), "2h05m");
    }
}
