//! The cron values: job definitions, tick claims, run markers, results and
//! daemon registrations (docs/keys.md, docs/cron.md).

use miniserde::json::{self, Number, Object, Value};

use super::{get_i64, get_str, get_str_array, get_u64, parse_object, put_str, put_u64, VERSION};

fn object() -> Object {
    let mut o = Object::new();
    o.insert("v".into(), Value::Number(Number::U64(VERSION)));
    o
}

fn text(o: Object) -> String {
    json::to_string(&Value::Object(o))
}

/// A job definition, as `cron add` stores it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Job {
    pub schedule: String,
    pub tz: String,
    pub argv: Vec<String>,
    pub overlap_allow: bool,
    pub timeout_ms: Option<u64>,
    pub kill_after_ms: u64,
    pub keep: u32,
    pub added_by: String,
    pub added_at_ms: u64,
    /// Daemons claim no tick of a suspended job (`cron suspend`).
    pub suspended: bool,
    /// Unix ms of the last `suspend` or `resume`: catch-up never reaches
    /// back past it, so a resume never replays the suspension's ticks.
    pub paused_at_ms: Option<u64>,
    /// `--catch-up D`: how old the most recent unclaimed tick may be for one
    /// catch-up run (none when absent).
    pub catch_up_ms: Option<u64>,
    /// `--on-failure CMD...`: run once by the runner when a tick ends badly.
    pub on_failure: Vec<String>,
    /// `--where KEY=VALUE`: only daemons carrying every label claim.
    pub placement: Vec<(String, String)>,
}

impl Job {
    pub fn to_json(&self) -> String {
        let mut o = object();
        put_str(&mut o, "schedule", &Some(self.schedule.clone()));
        put_str(&mut o, "tz", &Some(self.tz.clone()));
        let argv = self.argv.iter().map(|a| Value::String(a.clone())).collect();
        o.insert("argv".into(), Value::Array(argv));
        let overlap = if self.overlap_allow { "allow" } else { "skip" };
        put_str(&mut o, "overlap", &Some(overlap.into()));
        put_u64(&mut o, "timeout_ms", self.timeout_ms);
        put_u64(&mut o, "kill_after_ms", Some(self.kill_after_ms));
        put_u64(&mut o, "keep", Some(u64::from(self.keep)));
        put_str(&mut o, "added_by", &Some(self.added_by.clone()));
        put_u64(&mut o, "added_at", Some(self.added_at_ms));
        // Optional fields are written only when set, so a job that uses none
        // of them reads the same to a reader that predates them.
        if self.suspended {
            o.insert("suspended".into(), Value::Bool(true));
        }
        put_u64(&mut o, "paused_at", self.paused_at_ms);
        put_u64(&mut o, "catch_up_ms", self.catch_up_ms);
        if !self.on_failure.is_empty() {
            let argv = self
                .on_failure
                .iter()
                .map(|a| Value::String(a.clone()))
                .collect();
            o.insert("on_failure".into(), Value::Array(argv));
        }
        if !self.placement.is_empty() {
            o.insert(
                "where".into(),
                Value::Object(labels_object(&self.placement)),
            );
        }
        text(o)
    }

    /// Reads a stored job; the error says what is wrong with it, for
    /// `cron ls` and the daemon's log line.
    pub fn from_json(bytes: &[u8]) -> Result<Job, String> {
        let o = parse_object(bytes).ok_or("not a JSON object")?;
        let schedule = get_str(&o, "schedule").ok_or("no schedule")?;
        let argv = get_str_array(&o, "argv");
        if argv.is_empty() {
            return Err("no command".into());
        }
        Ok(Job {
            schedule,
            tz: get_str(&o, "tz").unwrap_or_else(|| "UTC".into()),
            argv,
            overlap_allow: get_str(&o, "overlap").as_deref() == Some("allow"),
            timeout_ms: get_u64(&o, "timeout_ms"),
            kill_after_ms: get_u64(&o, "kill_after_ms").unwrap_or(3000),
            keep: get_u64(&o, "keep")
                .and_then(|k| u32::try_from(k).ok())
                .filter(|k| *k > 0)
                .unwrap_or(100),
            added_by: get_str(&o, "added_by").unwrap_or_default(),
            added_at_ms: get_u64(&o, "added_at").unwrap_or(0),
            suspended: matches!(o.get("suspended"), Some(Value::Bool(true))),
            paused_at_ms: get_u64(&o, "paused_at"),
            catch_up_ms: get_u64(&o, "catch_up_ms"),
            on_failure: get_str_array(&o, "on_failure"),
            placement: get_labels(&o, "where"),
        })
    }
}

/// Why a tick was claimed: its schedule, a `cron run`, or a catch-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cause {
    #[default]
    Schedule,
    Manual,
    CatchUp,
}

impl Cause {
    /// The word stored in the fire key (absent for `Schedule`) and shown by
    /// `cron ls`.
    pub fn word(self) -> Option<&'static str> {
        match self {
            Cause::Schedule => None,
            Cause::Manual => Some("manual"),
            Cause::CatchUp => Some("catch-up"),
        }
    }

    fn from_word(w: Option<&str>) -> Cause {
        match w {
            Some("manual") => Cause::Manual,
            Some("catch-up") => Cause::CatchUp,
            _ => Cause::Schedule,
        }
    }
}

/// Who claimed a tick (the permanent fire key) or runs it (the run marker).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Claim {
    pub node: String,
    pub pid: u64,
    pub lease: String,
    pub at_ms: u64,
    pub cause: Cause,
}

impl Claim {
    pub fn to_json(&self) -> String {
        let mut o = object();
        put_str(&mut o, "node", &Some(self.node.clone()));
        put_u64(&mut o, "pid", Some(self.pid));
        put_str(&mut o, "lease", &Some(self.lease.clone()));
        put_u64(&mut o, "at", Some(self.at_ms));
        put_str(&mut o, "cause", &self.cause.word().map(String::from));
        text(o)
    }

    pub fn from_json(bytes: &[u8]) -> Claim {
        let o = parse_object(bytes).unwrap_or_default();
        Claim {
            node: get_str(&o, "node").unwrap_or_else(|| "?".into()),
            pid: get_u64(&o, "pid").unwrap_or(0),
            lease: get_str(&o, "lease").unwrap_or_default(),
            at_ms: get_u64(&o, "at").unwrap_or(0),
            cause: Cause::from_word(get_str(&o, "cause").as_deref()),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed(i32),
    Killed(i32),
    Timeout,
    Skipped,
    /// Written by another daemon after the runner's lease expired with the
    /// run unfinished: the runner is presumed dead. Its true result, if it
    /// was only cut off and lives on, overwrites this one.
    Zombie,
}

impl Outcome {
    /// The status word of `cron ls`.
    pub fn label(self) -> String {
        match self {
            Outcome::Ok => "ok".into(),
            Outcome::Failed(n) => format!("failed({n})"),
            Outcome::Killed(s) => format!("killed({})", signal_name(s)),
            Outcome::Timeout => "timeout".into(),
            Outcome::Skipped => "skipped".into(),
            Outcome::Zombie => "zombie".into(),
        }
    }
}

pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        1 => "HUP",
        2 => "INT",
        3 => "QUIT",
        6 => "ABRT",
        9 => "KILL",
        13 => "PIPE",
        14 => "ALRM",
        15 => "TERM",
        _ => return sig.to_string(),
    };
    name.to_string()
}

/// A tick's result record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunResult {
    pub outcome: Outcome,
    pub start_ms: u64,
    pub end_ms: u64,
    pub node: String,
}

impl RunResult {
    pub fn to_json(&self) -> String {
        let mut o = object();
        let (status, exit, signal) = match self.outcome {
            Outcome::Ok => ("ok", Some(0), None),
            Outcome::Failed(n) => ("failed", Some(n), None),
            Outcome::Killed(s) => ("killed", None, Some(s)),
            Outcome::Timeout => ("timeout", None, None),
            Outcome::Skipped => ("skipped", None, None),
            Outcome::Zombie => ("zombie", None, None),
        };
        put_str(&mut o, "status", &Some(status.into()));
        if let Some(e) = exit {
            o.insert("exit".into(), Value::Number(Number::I64(i64::from(e))));
        }
        if let Some(s) = signal {
            o.insert("signal".into(), Value::Number(Number::I64(i64::from(s))));
        }
        put_u64(&mut o, "start", Some(self.start_ms));
        put_u64(&mut o, "end", Some(self.end_ms));
        put_str(&mut o, "node", &Some(self.node.clone()));
        text(o)
    }

    /// `None` for a value that is not a result at all.
    pub fn from_json(bytes: &[u8]) -> Option<RunResult> {
        let o = parse_object(bytes)?;
        let int = |k| get_i64(&o, k).and_then(|v| i32::try_from(v).ok());
        let outcome = match get_str(&o, "status")?.as_str() {
            "ok" => Outcome::Ok,
            "failed" => Outcome::Failed(int("exit").unwrap_or(-1)),
            "killed" => Outcome::Killed(int("signal").unwrap_or(0)),
            "timeout" => Outcome::Timeout,
            "skipped" => Outcome::Skipped,
            "zombie" => Outcome::Zombie,
            _ => return None,
        };
        Some(RunResult {
            outcome,
            start_ms: get_u64(&o, "start").unwrap_or(0),
            end_ms: get_u64(&o, "end").unwrap_or(0),
            node: get_str(&o, "node").unwrap_or_else(|| "?".into()),
        })
    }
}

/// A daemon's registration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Node {
    pub host: String,
    pub pid: u64,
    pub version: String,
    pub started_ms: u64,
    /// `conchd --label KEY=VALUE`, matched against a job's `--where`.
    pub labels: Vec<(String, String)>,
}

impl Node {
    pub fn to_json(&self) -> String {
        let mut o = object();
        put_str(&mut o, "host", &Some(self.host.clone()));
        put_u64(&mut o, "pid", Some(self.pid));
        put_str(&mut o, "version", &Some(self.version.clone()));
        put_u64(&mut o, "started", Some(self.started_ms));
        if !self.labels.is_empty() {
            o.insert("labels".into(), Value::Object(labels_object(&self.labels)));
        }
        text(o)
    }

    /// `None` for a value that is not a registration at all.
    pub fn from_json(bytes: &[u8]) -> Option<Node> {
        let o = parse_object(bytes)?;
        Some(Node {
            host: get_str(&o, "host").unwrap_or_else(|| "?".into()),
            pid: get_u64(&o, "pid").unwrap_or(0),
            version: get_str(&o, "version").unwrap_or_default(),
            started_ms: get_u64(&o, "started").unwrap_or(0),
            labels: get_labels(&o, "labels"),
        })
    }

    /// Whether this daemon may claim a job placed with `placement`.
    pub fn matches(&self, placement: &[(String, String)]) -> bool {
        placement.iter().all(|p| self.labels.contains(p))
    }
}

fn labels_object(labels: &[(String, String)]) -> Object {
    let mut o = Object::new();
    for (k, v) in labels {
        o.insert(k.clone(), Value::String(v.clone()));
    }
    o
}

/// Labels as sorted pairs; non-string values are dropped.
fn get_labels(o: &Object, k: &str) -> Vec<(String, String)> {
    match o.get(k) {
        Some(Value::Object(m)) => m
            .iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) => Some((k.clone(), s.clone())),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A `cron run` request: who asked, when, and until when a daemon may
/// still claim it (a request whose CLI died is never run days later).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    pub by: String,
    pub at_ms: u64,
    pub until_ms: u64,
}

impl Request {
    pub fn to_json(&self) -> String {
        let mut o = object();
        put_str(&mut o, "by", &Some(self.by.clone()));
        put_u64(&mut o, "at", Some(self.at_ms));
        put_u64(&mut o, "until", Some(self.until_ms));
        text(o)
    }

    /// `None` for a value that is not a request; a missing `until` never
    /// expires.
    pub fn from_json(bytes: &[u8]) -> Option<Request> {
        let o = parse_object(bytes)?;
        Some(Request {
            by: get_str(&o, "by").unwrap_or_else(|| "?".into()),
            at_ms: get_u64(&o, "at").unwrap_or(0),
            until_ms: get_u64(&o, "until").unwrap_or(u64::MAX),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        Job {
            schedule: "*/5 * * * *".into(),
            tz: "Europe/Berlin".into(),
            argv: vec!["backup".into(), "--all".into()],
            overlap_allow: false,
            timeout_ms: Some(60_000),
            kill_after_ms: 3000,
            keep: 7,
            added_by: "ops@h1".into(),
            added_at_ms: 1_764_000_000_000,
            suspended: false,
            paused_at_ms: None,
            catch_up_ms: None,
            on_failure: vec![],
            placement: vec![],
        }
    }

    #[test]
    fn optional_job_fields_round_trip_and_stay_out_when_unset() {
        let plain = job().to_json();
        for k in [
            "suspended",
            "paused_at",
            "catch_up_ms",
            "on_failure",
            "where",
        ] {
            assert!(!plain.contains(k), "{k} in {plain}");
        }
        let j = Job {
            suspended: true,
            paused_at_ms: Some(9),
            catch_up_ms: Some(600_000),
            on_failure: vec!["page".into(), "ops".into()],
            placement: vec![("dc".into(), "x".into()), ("role".into(), "db".into())],
            ..job()
        };
        assert_eq!(Job::from_json(j.to_json().as_bytes()), Ok(j));
    }

    #[test]
    fn nodes_round_trip_and_match_placement() {
        let n = Node {
            host: "db1".into(),
            pid: 7,
            version: "0.1.0".into(),
            started_ms: 3,
            labels: vec![("role".into(), "db".into())],
        };
        assert_eq!(Node::from_json(n.to_json().as_bytes()), Some(n.clone()));
        assert!(n.matches(&[]));
        assert!(n.matches(&[("role".into(), "db".into())]));
        assert!(!n.matches(&[("role".into(), "web".into())]));
        assert!(!n.matches(&[("role".into(), "db".into()), ("dc".into(), "x".into())]));
    }

    #[test]
    fn job_round_trips() {
        let j = job();
        assert_eq!(Job::from_json(j.to_json().as_bytes()), Ok(j));
    }

    #[test]
    fn broken_jobs_say_what_is_wrong() {
        assert_eq!(Job::from_json(b"{"), Err("not a JSON object".into()));
        assert_eq!(
            Job::from_json(br#"{"argv":["x"]}"#),
            Err("no schedule".into())
        );
        assert_eq!(
            Job::from_json(br#"{"schedule":"@daily","argv":[]}"#),
            Err("no command".into())
        );
    }

    #[test]
    fn results_round_trip_with_labels() {
        for (o, label) in [
            (Outcome::Ok, "ok"),
            (Outcome::Failed(3), "failed(3)"),
            (Outcome::Killed(9), "killed(KILL)"),
            (Outcome::Timeout, "timeout"),
            (Outcome::Skipped, "skipped"),
            (Outcome::Zombie, "zombie"),
        ] {
            let r = RunResult {
                outcome: o,
                start_ms: 1,
                end_ms: 2,
                node: "n".into(),
            };
            assert_eq!(RunResult::from_json(r.to_json().as_bytes()), Some(r));
            assert_eq!(o.label(), label);
        }
        assert_eq!(RunResult::from_json(b"garbage"), None);
    }

    #[test]
    fn requests_round_trip() {
        let r = Request {
            by: "ops@h".into(),
            at_ms: 1,
            until_ms: 2,
        };
        assert_eq!(Request::from_json(r.to_json().as_bytes()), Some(r));
        assert_eq!(Request::from_json(b"x"), None);
    }

    #[test]
    fn claims_tolerate_garbage() {
        let c = Claim::from_json(b"\xff");
        assert_eq!(c.node, "?");
        let c = Claim {
            node: "n1".into(),
            pid: 4,
            lease: "00000000000000aa".into(),
            at_ms: 5,
            cause: Cause::Manual,
        };
        assert_eq!(Claim::from_json(c.to_json().as_bytes()), c);
    }
}
