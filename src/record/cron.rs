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
#[derive(Debug, Clone, PartialEq, Eq)]
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
        })
    }
}

/// Who claimed a tick (the permanent fire key) or runs it (the run marker).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Claim {
    pub node: String,
    pub pid: u64,
    pub lease: String,
    pub at_ms: u64,
}

impl Claim {
    pub fn to_json(&self) -> String {
        let mut o = object();
        put_str(&mut o, "node", &Some(self.node.clone()));
        put_u64(&mut o, "pid", Some(self.pid));
        put_str(&mut o, "lease", &Some(self.lease.clone()));
        put_u64(&mut o, "at", Some(self.at_ms));
        text(o)
    }

    pub fn from_json(bytes: &[u8]) -> Claim {
        let o = parse_object(bytes).unwrap_or_default();
        Claim {
            node: get_str(&o, "node").unwrap_or_else(|| "?".into()),
            pid: get_u64(&o, "pid").unwrap_or(0),
            lease: get_str(&o, "lease").unwrap_or_default(),
            at_ms: get_u64(&o, "at").unwrap_or(0),
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub host: String,
    pub pid: u64,
    pub version: String,
    pub started_ms: u64,
}

impl Node {
    pub fn to_json(&self) -> String {
        let mut o = object();
        put_str(&mut o, "host", &Some(self.host.clone()));
        put_u64(&mut o, "pid", Some(self.pid));
        put_str(&mut o, "version", &Some(self.version.clone()));
        put_u64(&mut o, "started", Some(self.started_ms));
        text(o)
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
        }
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
    fn claims_tolerate_garbage() {
        let c = Claim::from_json(b"\xff");
        assert_eq!(c.node, "?");
        let c = Claim {
            node: "n1".into(),
            pid: 4,
            lease: "00000000000000aa".into(),
            at_ms: 5,
        };
        assert_eq!(Claim::from_json(c.to_json().as_bytes()), c);
    }
}
