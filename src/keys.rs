//! The etcd key schema, version 1 (docs/keys.md): every key conch reads or
//! writes is built here, so no other module formats a key by hand.

use std::fmt;

/// Longest NAME accepted, in bytes of UTF-8 before encoding.
pub const MAX_NAME: usize = 255;

/// Why a NAME was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong(usize),
    Dot,
    BadEscape(usize),
    NotUtf8,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => write!(f, "must not be empty"),
            NameError::TooLong(n) => write!(f, "is {n} bytes long, at most {MAX_NAME} allowed"),
            NameError::Dot => write!(f, "must not be \".\" or \"..\""),
            NameError::BadEscape(at) => write!(f, "has a bad %-escape at byte {at}"),
            NameError::NotUtf8 => write!(f, "is not valid UTF-8"),
        }
    }
}

fn is_plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// Checks a NAME as typed by a user.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME {
        return Err(NameError::TooLong(name.len()));
    }
    if name == "." || name == ".." {
        return Err(NameError::Dot);
    }
    Ok(())
}

/// Encodes a NAME into one key segment that can never contain `/`.
pub fn encode_name(name: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(name.len());
    for &b in name.as_bytes() {
        if is_plain(b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
    out
}

/// Decodes a key segment made by [`encode_name`]. Only the canonical form is
/// accepted (uppercase hex, plain bytes never escaped), so every NAME has
/// exactly one segment and a hand-written key cannot alias another.
pub fn decode_name(seg: &str) -> Result<String, NameError> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = seg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let v = match (bytes.get(i + 1), bytes.get(i + 2)) {
                (Some(&h), Some(&l)) => hex(h).zip(hex(l)).map(|(h, l)| h << 4 | l),
                _ => None,
            };
            match v {
                Some(v) if !is_plain(v) => out.push(v),
                _ => return Err(NameError::BadEscape(i)),
            }
            i += 3;
        } else if is_plain(b) {
            out.push(b);
            i += 1;
        } else {
            return Err(NameError::BadEscape(i));
        }
    }
    let name = String::from_utf8(out).map_err(|_| NameError::NotUtf8)?;
    validate_name(&name)?;
    Ok(name)
}

/// A lease ID as it stands in keys and in `CONCH_LEASE`: 16 lowercase hex digits.
pub fn lease_hex(lease: i64) -> String {
    format!("{:016x}", lease as u64)
}

/// Parses [`lease_hex`] output back; anything else is `None`.
pub fn parse_lease_hex(s: &str) -> Option<i64> {
    if s.len() != 16 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u64::from_str_radix(s, 16).ok().map(|v| v as i64)
}

/// The key of the first key past every key that starts with `prefix`, for
/// etcd's `range_end`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): etcd's "\0" means "to the end of the key space".
    vec![0]
}

/// The root of every key of one schema version: `<prefix>/v1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    root: String,
}

impl Schema {
    /// `prefix` is `--prefix` as given; trailing slashes are dropped so that
    /// `/conch` and `/conch/` name the same keys.
    pub fn new(prefix: &str) -> Schema {
        let p = prefix.trim_end_matches('/');
        Schema {
            root: format!("{p}/v1"),
        }
    }

    /// `<prefix>/v1/elect/<NAME>/`: every candidate of one office.
    pub fn elect_dir(&self, name: &str) -> String {
        format!("{}/elect/{}/", self.root, encode_name(name))
    }

    /// `<prefix>/v1/elect/<NAME>/<LEASE>`: one candidate.
    pub fn elect_key(&self, name: &str, lease: i64) -> String {
        format!("{}{}", self.elect_dir(name), lease_hex(lease))
    }

    /// `<prefix>/v1/sema/<NAME>/`: every queue of one semaphore, any `--max`.
    pub fn sema_dir(&self, name: &str) -> String {
        format!("{}/sema/{}/", self.root, encode_name(name))
    }

    /// `<prefix>/v1/sema/<NAME>/<N>/q/`: the queue of contenders for `--max N`.
    pub fn sema_queue_dir(&self, name: &str, max: u32) -> String {
        format!("{}{max}/q/", self.sema_dir(name))
    }

    /// `<prefix>/v1/sema/<NAME>/<N>/q/<LEASE>`: one contender.
    pub fn sema_queue_key(&self, name: &str, max: u32, lease: i64) -> String {
        format!("{}{}", self.sema_queue_dir(name, max), lease_hex(lease))
    }

    /// `<prefix>/v1/sema/<NAME>/<N>/slot/`: the slots of `--max N`.
    pub fn sema_slot_dir(&self, name: &str, max: u32) -> String {
        format!("{}{max}/slot/", self.sema_dir(name))
    }

    /// `<prefix>/v1/sema/<NAME>/<N>/slot/<I>`.
    pub fn sema_slot_key(&self, name: &str, max: u32, slot: u32) -> String {
        format!("{}{slot}", self.sema_slot_dir(name, max))
    }

    /// `<prefix>/v1/cron/job/` (job definitions) and the key of one job.
    pub fn cron_job_dir(&self) -> String {
        format!("{}/cron/job/", self.root)
    }

    pub fn cron_job_key(&self, name: &str) -> String {
        format!("{}{}", self.cron_job_dir(), encode_name(name))
    }

    /// `<prefix>/v1/cron/<kind>/<NAME>/`, kind one of fire, run, result.
    pub fn cron_tick_dir(&self, kind: TickKind, name: &str) -> String {
        format!(
            "{}/cron/{}/{}/",
            self.root,
            kind.segment(),
            encode_name(name)
        )
    }

    /// `<prefix>/v1/cron/<kind>/`: that kind's keys of every job.
    pub fn cron_kind_dir(&self, kind: TickKind) -> String {
        format!("{}/cron/{}/", self.root, kind.segment())
    }

    /// `<prefix>/v1/cron/<kind>/<NAME>/<TICK>`, TICK zero-padded to 12 digits
    /// so that keys sort by time.
    pub fn cron_tick_key(&self, kind: TickKind, name: &str, tick: i64) -> String {
        format!("{}{tick:012}", self.cron_tick_dir(kind, name))
    }

    /// `<prefix>/v1/cron/node/` and the key of one daemon.
    pub fn cron_node_dir(&self) -> String {
        format!("{}/cron/node/", self.root)
    }

    pub fn cron_node_key(&self, id: &str) -> String {
        format!("{}{}", self.cron_node_dir(), encode_name(id))
    }

    /// `<prefix>/v1/cron/manual/`: the `cron run` requests of every job.
    pub fn cron_manual_dir(&self) -> String {
        format!("{}/cron/manual/", self.root)
    }

    /// `<prefix>/v1/cron/manual/<NAME>/<TICK>`: a request to run the job
    /// once, as tick TICK.
    pub fn cron_manual_key(&self, name: &str, tick: i64) -> String {
        format!("{}{}/{tick:012}", self.cron_manual_dir(), encode_name(name))
    }

    /// The job and tick of a key made by [`Schema::cron_manual_key`].
    pub fn parse_cron_manual_key(&self, key: &[u8]) -> Option<(String, i64)> {
        let rest = key.strip_prefix(self.cron_manual_dir().as_bytes())?;
        let (name, tick) = std::str::from_utf8(rest).ok()?.split_once('/')?;
        Some((decode_name(name).ok()?, parse_tick(tick)?))
    }

    /// The job and tick of a key made by [`Schema::cron_tick_key`].
    pub fn parse_cron_tick_key(&self, kind: TickKind, key: &[u8]) -> Option<(String, i64)> {
        let rest = key.strip_prefix(self.cron_kind_dir(kind).as_bytes())?;
        let (name, tick) = std::str::from_utf8(rest).ok()?.split_once('/')?;
        Some((decode_name(name).ok()?, parse_tick(tick)?))
    }

    /// The last segment of `key` if `key` lies directly in `dir`.
    pub fn leaf<'a>(dir: &str, key: &'a [u8]) -> Option<&'a str> {
        let rest = key.strip_prefix(dir.as_bytes())?;
        let rest = std::str::from_utf8(rest).ok()?;
        (!rest.is_empty() && !rest.contains('/')).then_some(rest)
    }
}

/// The per-tick key families of cron.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickKind {
    Fire,
    Run,
    Result,
}

impl TickKind {
    fn segment(self) -> &'static str {
        match self {
            TickKind::Fire => "fire",
            TickKind::Run => "run",
            TickKind::Result => "result",
        }
    }
}

/// Parses the 12-digit TICK segment of a cron key.
pub fn parse_tick(seg: &str) -> Option<i64> {
    if seg.len() != 12 || !seg.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    seg.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{quickcheck, TestResult};

    #[test]
    fn plain_names_stand_as_they_are() {
        assert_eq!(encode_name("nightly-report_v1.2"), "nightly-report_v1.2");
    }

    #[test]
    fn slash_and_percent_are_escaped() {
        assert_eq!(encode_name("a/b%c d"), "a%2Fb%25c%20d");
        assert_eq!(encode_name("é"), "%C3%A9");
    }

    #[test]
    fn bad_names_are_refused() {
        assert_eq!(validate_name(""), Err(NameError::Empty));
        assert_eq!(validate_name("."), Err(NameError::Dot));
        assert_eq!(validate_name(".."), Err(NameError::Dot));
        assert_eq!(
            validate_name(&"x".repeat(256)),
            Err(NameError::TooLong(256))
        );
        assert_eq!(validate_name(&"x".repeat(255)), Ok(()));
        assert_eq!(validate_name("..."), Ok(()));
    }

    #[test]
    fn decode_refuses_non_canonical_segments() {
        assert!(decode_name("a%2fb").is_err(), "lowercase hex");
        assert!(decode_name("%41").is_err(), "escaped plain byte");
        assert!(decode_name("a/b").is_err(), "raw slash");
        assert!(decode_name("a%2").is_err(), "short escape");
        assert!(decode_name("%FF").is_err(), "not UTF-8");
        assert!(decode_name(".").is_err());
        assert_eq!(decode_name("a%2Fb").as_deref(), Ok("a/b"));
    }

    #[test]
    fn keys_follow_the_schema() {
        let s = Schema::new("/conch/");
        assert_eq!(
            s.elect_key("a/b", 0x694d),
            "/conch/v1/elect/a%2Fb/000000000000694d"
        );
        assert_eq!(
            s.sema_queue_key("gpu", 4, 1),
            "/conch/v1/sema/gpu/4/q/0000000000000001"
        );
        assert_eq!(s.sema_slot_key("gpu", 4, 3), "/conch/v1/sema/gpu/4/slot/3");
        assert_eq!(s.cron_job_key("backup"), "/conch/v1/cron/job/backup");
        assert_eq!(
            s.cron_tick_key(TickKind::Fire, "backup", 1_700_000_000),
            "/conch/v1/cron/fire/backup/001700000000"
        );
        assert_eq!(s.cron_node_key("h:1"), "/conch/v1/cron/node/h%3A1");
        let manual = s.cron_manual_key("a/b", 1_700_000_000);
        assert_eq!(manual, "/conch/v1/cron/manual/a%2Fb/001700000000");
        assert_eq!(
            s.parse_cron_manual_key(manual.as_bytes()),
            Some(("a/b".into(), 1_700_000_000))
        );
        assert_eq!(s.parse_cron_manual_key(b"/conch/v1/cron/manual/a/1"), None);
    }

    #[test]
    fn lease_hex_round_trips_negative_ids() {
        assert_eq!(lease_hex(-1), "ffffffffffffffff");
        assert_eq!(parse_lease_hex("ffffffffffffffff"), Some(-1));
        assert_eq!(parse_lease_hex("FFFFFFFFFFFFFFFF"), None);
        assert_eq!(parse_lease_hex("123"), None);
    }

    #[test]
    fn prefix_end_covers_the_prefix() {
        assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }

    #[test]
    fn leaf_only_matches_direct_children() {
        assert_eq!(Schema::leaf("/p/", b"/p/x"), Some("x"));
        assert_eq!(Schema::leaf("/p/", b"/p/x/y"), None);
        assert_eq!(Schema::leaf("/p/", b"/p/"), None);
        assert_eq!(Schema::leaf("/p/", b"/q/x"), None);
    }

    quickcheck! {
        fn decode_inverts_encode(name: String) -> TestResult {
            if validate_name(&name).is_err() {
                return TestResult::discard();
            }
            TestResult::from_bool(decode_name(&encode_name(&name)).as_deref() == Ok(name.as_str()))
        }

        fn no_name_escapes_its_directory(name: String) -> TestResult {
            if validate_name(&name).is_err() {
                return TestResult::discard();
            }
            let s = Schema::new("/conch");
            let key = s.elect_key(&name, 7);
            let dir = s.elect_dir(&name);
            let seg = encode_name(&name);
            TestResult::from_bool(
                !seg.contains('/')
                    && seg != "."
                    && seg != ".."
                    && key.starts_with("/conch/v1/elect/")
                    && Schema::leaf("/conch/v1/elect/", dir.trim_end_matches('/').as_bytes())
                        == Some(seg.as_str()),
            )
        }

        fn decode_never_panics(seg: String) -> bool {
            let _ = decode_name(&seg);
            true
        }
    }
}
