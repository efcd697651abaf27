//! `conch elect NAME --observe`: follows an office and prints a line each
//! time its leader changes. Read the candidates, watch from the revision
//! after the read; a compacted, canceled or broken watch reads again, after
//! a failover if no member answered.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::etcd::{Error, EventKind, KeyValue, Range, RangeResult, WatchEvent, WatchSpec};
use crate::kit::machine::{Action, Input, Level, Machine, Tag};
use crate::kit::signal;
use crate::record::{self, Holder};

const READ: Tag = 0;
const WATCH: Tag = 1;

pub struct Config {
    pub name: String,
    /// The office's directory: every candidate key is under it.
    pub dir: String,
    pub json: bool,
    /// How long a failover may take (the dial timeout).
    pub dial_timeout: Duration,
    /// Unix ms minus boot ms, for the time printed on each line.
    pub wall_offset_ms: i64,
}

pub struct Observe {
    cfg: Config,
    /// The candidates as last read and watched, by key.
    office: BTreeMap<Vec<u8>, KeyValue>,
    /// The leader's key last printed (`Some(None)`: vacant was printed).
    shown: Option<Option<Vec<u8>>>,
}

impl Observe {
    pub fn new(cfg: Config) -> Observe {
        Observe {
            cfg,
            office: BTreeMap::new(),
            shown: None,
        }
    }

    fn read(&self) -> Action {
        Action::Range(READ, Range::prefix(self.cfg.dir.clone()).by_create())
    }

    fn on_read(&mut self, r: RangeResult, now: Duration, out: &mut Vec<Action>) {
        self.office = r.kvs.into_iter().map(|kv| (kv.key.clone(), kv)).collect();
        self.report(now, out);
        out.push(Action::Watch(
            WATCH,
            WatchSpec::prefix(self.cfg.dir.clone()).from_revision(r.revision + 1),
        ));
    }

    fn on_watch(&mut self, r: Result<WatchEvent, Error>, now: Duration, out: &mut Vec<Action>) {
        match r {
            Ok(WatchEvent::Events { events, .. }) => {
                for e in events {
                    match e.kind {
                        EventKind::Put => {
                            self.office.insert(e.kv.key.clone(), e.kv);
                        }
                        EventKind::Delete => {
                            self.office.remove(&e.kv.key);
                        }
                    }
                }
                self.report(now, out);
            }
            Ok(WatchEvent::Progress { .. }) => {}
            Ok(WatchEvent::Compacted { .. } | WatchEvent::Canceled { .. }) => out.push(self.read()),
            Err(e) if e.is_unavailable() => {
                out.push(Action::Log(Level::Debug, format!("watch: {e}")));
                out.push(Action::Reconnect {
                    budget: self.cfg.dial_timeout,
                });
            }
            Err(e) => {
                out.push(Action::Log(Level::Debug, format!("watch: {e}")));
                out.push(self.read());
            }
        }
    }

    /// Prints a line when the leader (the lowest create revision) differs
    /// from the one printed last.
    fn report(&mut self, now: Duration, out: &mut Vec<Action>) {
        let leader = self.office.values().min_by_key(|kv| kv.create_revision);
        let key = leader.map(|kv| kv.key.clone());
        if self.shown.as_ref() == Some(&key) {
            return;
        }
        let time = crate::schedule::fmt_rfc3339_utc(
            self.cfg.wall_offset_ms.div_euclid(1000) + now.as_secs() as i64,
        );
        out.push(Action::Print(line(
            &self.cfg.name,
            &time,
            leader,
            self.cfg.json,
        )));
        self.shown = Some(key);
    }
}

impl Machine for Observe {
    fn step(&mut self, input: Input, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Start => out.push(self.read()),
            Input::Range(READ, Ok(r)) => self.on_read(r, now, &mut out),
            // The read itself already tried every member.
            Input::Range(READ, Err(e)) => {
                out.push(Action::Log(
                    Level::Error,
                    format!("cannot read the office: {e}"),
                ));
                out.push(Action::Exit(crate::kit::exit::EXIT_UNAVAILABLE));
            }
            Input::Watch(WATCH, r) => self.on_watch(r, now, &mut out),
            Input::Reconnected(Ok(())) => out.push(self.read()),
            Input::Reconnected(Err(e)) => {
                out.push(Action::Log(Level::Error, format!("lost etcd: {e}")));
                out.push(Action::Exit(crate::kit::exit::EXIT_UNAVAILABLE));
            }
            Input::ClockStep(offset) => self.cfg.wall_offset_ms = offset,
            // Until interrupted or nobody reads: as a shell reports a process
            // a signal ended.
            Input::Signal(sig) if signal::is_fatal(sig) || sig == signal::SIGPIPE => {
                out.push(Action::Exit(128 + sig))
            }
            _ => {}
        }
        out
    }

    fn deadline(&self) -> Option<Duration> {
        None
    }
}

/// One `--observe` line: `TIME  leader HOST pid=PID rev=REV`, `TIME  vacant`,
/// or their JSON object.
fn line(name: &str, time: &str, leader: Option<&KeyValue>, json: bool) -> String {
    match (leader, json) {
        (Some(kv), false) => {
            let h = Holder::from_json(&kv.value).unwrap_or_default();
            format!(
                "{time}  leader {} pid={} rev={}",
                h.host.as_deref().unwrap_or("?"),
                h.pid.map_or("?".into(), |p| p.to_string()),
                kv.create_revision
            )
        }
        (None, false) => format!("{time}  vacant"),
        (Some(kv), true) => format!(
            "{{\"time\":{},\"name\":{},\"leader\":{}}}",
            record::quote(time),
            record::quote(name),
            json_holder(kv, None)
        ),
        (None, true) => format!(
            "{{\"time\":{},\"name\":{},\"leader\":null}}",
            record::quote(time),
            record::quote(name)
        ),
    }
}

/// A candidate as JSON: the stored holder fields plus `rev`, `key` and, if
/// given, `waiting`.
pub fn json_holder(kv: &KeyValue, waiting: Option<usize>) -> String {
    // Unknown fields of the stored value are kept: readers of --json see
    // what a newer writer stored.
    let mut o = record::parse_object(&kv.value).unwrap_or_default();
    use miniserde::json::{Number, Value};
    o.insert("rev".into(), Value::Number(Number::I64(kv.create_revision)));
    o.insert(
        "key".into(),
        Value::String(String::from_utf8_lossy(&kv.key).to_string()),
    );
    if let Some(w) = waiting {
        o.insert("waiting".into(), Value::Number(Number::U64(w as u64)));
    }
    miniserde::json::to_string(&Value::Object(o))
}

#[cfg(test)]
#[path = "observe_tests.rs"]
mod tests;
