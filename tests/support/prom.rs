//! A strict reader of the Prometheus text exposition format (0.0.4), for
//! tests that check what conchd writes with `--metrics-file`.

use std::collections::BTreeMap;

/// One sample of a Prometheus text exposition.
pub type Series = BTreeMap<(String, Vec<(String, String)>), f64>;

/// A strict reader of the text format (version 0.0.4): every sample has a
/// `# TYPE` before it, names and label names are valid, label values are
/// escaped, values are numbers, no series appears twice, and the text ends
/// with a newline (a file cut short would not).
pub fn parse_prometheus(text: &str) -> Result<Series, String> {
    fn name_ok(n: &str, colon: bool) -> bool {
        let mut cs = n.chars();
        cs.next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
            && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
    }
    if !text.ends_with('\n') {
        return Err("does not end with a newline".into());
    }
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Series::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut w = rest.splitn(3, ' ');
            match (w.next(), w.next(), w.next()) {
                (Some("HELP"), Some(n), Some(_)) if name_ok(n, true) => {}
                (Some("TYPE"), Some(n), Some(t)) if name_ok(n, true) => {
                    if !["counter", "gauge", "untyped", "summary", "histogram"].contains(&t) {
                        return Err(format!("bad type: {line}"));
                    }
                    if typed.insert(n.to_string(), t.to_string()).is_some() {
                        return Err(format!("TYPE twice: {line}"));
                    }
                }
                _ => return Err(format!("bad comment: {line}")),
            }
            continue;
        }
        let (name, mut rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => return Err(format!("no value: {line}")),
        };
        if !name_ok(name, true) || !typed.contains_key(name) {
            return Err(format!("sample without TYPE or bad name: {line}"));
        }
        if typed[name] == "counter" && !(name.ends_with("_total") || name.ends_with("_sum")) {
            return Err(format!("counter not named _total: {line}"));
        }
        let mut labels = Vec::new();
        if let Some(r) = rest.strip_prefix('{') {
            let mut r = r;
            loop {
                if let Some(after) = r.strip_prefix('}') {
                    r = after;
                    break;
                }
                let eq = r.find('=').ok_or(format!("bad labels: {line}"))?;
                let lname = &r[..eq];
                if !name_ok(lname, false) {
                    return Err(format!("bad label name: {line}"));
                }
                let mut chars = r[eq + 1..]
                    .strip_prefix('"')
                    .ok_or(format!("unquoted: {line}"))?
                    .char_indices();
                let mut value = String::new();
                let end = loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, '\\')) => value.push('\\'),
                            Some((_, '"')) => value.push('"'),
                            Some((_, 'n')) => value.push('\n'),
                            _ => return Err(format!("bad escape: {line}")),
                        },
                        Some((i, '"')) => break i,
                        Some((_, c)) => value.push(c),
                        None => return Err(format!("unterminated: {line}")),
                    }
                };
                labels.push((lname.to_string(), value));
                r = &r[eq + 1 + 1 + end + 1..];
                r = r.strip_prefix(',').unwrap_or(r);
            }
            rest = r;
        }
        let value = rest.strip_prefix(' ').ok_or(format!("no space: {line}"))?;
        let v: f64 = value.parse().map_err(|_| format!("bad value: {line}"))?;
        if out.insert((name.to_string(), labels), v).is_some() {
            return Err(format!("series twice: {line}"));
        }
    }
    Ok(out)
}

pub fn get(s: &Series, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let key = (
        name.to_string(),
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    s.get(&key).copied()
}
