//! The JSON values conch stores in etcd (docs/keys.md). Writers emit every
//! field; readers take each field on its own, so an unknown field, a missing
//! one or a garbage value degrades to "unknown", never to an error.

pub mod cron;

use miniserde::json::{self, Array, Number, Object, Value};

/// Schema version carried by every value as `"v"`.
pub const VERSION: u64 = 1;

/// Who holds (or waits for) an office, a slot or a queue place.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Holder {
    pub host: Option<String>,
    /// The wrapper's pid: the process that keeps the lease.
    pub pid: Option<u64>,
    /// Unix milliseconds at creation.
    pub since_ms: Option<u64>,
    pub argv: Vec<String>,
    pub ttl: Option<u64>,
    pub lease: Option<String>,
}

impl Holder {
    pub fn to_json(&self) -> String {
        let mut o = Object::new();
        o.insert("v".into(), Value::Number(Number::U64(VERSION)));
        put_str(&mut o, "host", &self.host);
        put_u64(&mut o, "pid", self.pid);
        put_u64(&mut o, "since", self.since_ms);
        let mut argv = Array::new();
        argv.extend(self.argv.iter().map(|a| Value::String(a.clone())));
        o.insert("argv".into(), Value::Array(argv));
        put_u64(&mut o, "ttl", self.ttl);
        put_str(&mut o, "lease", &self.lease);
        json::to_string(&Value::Object(o))
    }

    /// Reads a stored value; `None` when it is not a JSON object at all (an
    /// "unknown holder" to the caller).
    pub fn from_json(bytes: &[u8]) -> Option<Holder> {
        let o = parse_object(bytes)?;
        Some(Holder {
            host: get_str(&o, "host"),
            pid: get_u64(&o, "pid"),
            since_ms: get_u64(&o, "since"),
            argv: get_str_array(&o, "argv"),
            ttl: get_u64(&o, "ttl"),
            lease: get_str(&o, "lease"),
        })
    }
}

/// Parses bytes as one JSON object, or `None`.
pub fn parse_object(bytes: &[u8]) -> Option<Object> {
    let text = std::str::from_utf8(bytes).ok()?;
    match json::from_str::<Value>(text).ok()? {
        Value::Object(o) => Some(o),
        _ => None,
    }
}

pub fn put_str(o: &mut Object, k: &str, v: &Option<String>) {
    if let Some(v) = v {
        o.insert(k.into(), Value::String(v.clone()));
    }
}

pub fn put_u64(o: &mut Object, k: &str, v: Option<u64>) {
    if let Some(v) = v {
        o.insert(k.into(), Value::Number(Number::U64(v)));
    }
}

pub fn get_str(o: &Object, k: &str) -> Option<String> {
    match o.get(k)? {
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

pub fn get_u64(o: &Object, k: &str) -> Option<u64> {
    match o.get(k)? {
        Value::Number(Number::U64(n)) => Some(*n),
        Value::Number(Number::I64(n)) => u64::try_from(*n).ok(),
        _ => None,
    }
}

pub fn get_i64(o: &Object, k: &str) -> Option<i64> {
    match o.get(k)? {
        Value::Number(Number::U64(n)) => i64::try_from(*n).ok(),
        Value::Number(Number::I64(n)) => Some(*n),
        _ => None,
    }
}

pub fn get_str_array(o: &Object, k: &str) -> Vec<String> {
    match o.get(k) {
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                _ => "?".to_string(),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Escapes a string as a JSON string literal, for hand-built output lines.
pub fn quote(s: &str) -> String {
    json::to_string(&Value::String(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Holder {
        Holder {
            host: Some("web-1".into()),
            pid: Some(4242),
            since_ms: Some(1_764_000_000_000),
            argv: vec!["./report.sh".into(), "a b\"c".into()],
            ttl: Some(10),
            lease: Some("000000000000694d".into()),
        }
    }

    #[test]
    fn holder_round_trips() {
        let h = sample();
        let text = h.to_json();
        assert!(text.contains("\"v\":1"), "{text}");
        assert_eq!(Holder::from_json(text.as_bytes()), Some(h));
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let text = r#"{"v":1,"host":"h","pid":7,"future":{"x":[1,2]},"argv":["true"]}"#;
        let h = Holder::from_json(text.as_bytes()).expect("object");
        assert_eq!(h.host.as_deref(), Some("h"));
        assert_eq!(h.pid, Some(7));
        assert_eq!(h.argv, vec!["true".to_string()]);
    }

    #[test]
    fn garbage_values_degrade_field_by_field() {
        let text = r#"{"host":12,"pid":"x","since":-5,"argv":[1,"a"],"ttl":1.5}"#;
        let h = Holder::from_json(text.as_bytes()).expect("object");
        assert_eq!(h.host, None);
        assert_eq!(h.pid, None);
        assert_eq!(h.since_ms, None);
        assert_eq!(h.argv, vec!["?".to_string(), "a".to_string()]);
        assert_eq!(h.ttl, None);
    }

    #[test]
    fn non_objects_are_unknown_holders() {
        for bad in [&b"not json"[..], b"[1]", b"\xff\xfe", b"", b"null", b"{"] {
            assert_eq!(Holder::from_json(bad), None, "{bad:?}");
        }
    }

    quickcheck::quickcheck! {
        fn from_json_never_panics(bytes: Vec<u8>) -> bool {
            let _ = Holder::from_json(&bytes);
            true
        }
    }
}
