//! `conch elect` as a sans-IO machine (docs/usage.md): grant a lease, create
//! the candidate key, wait for the predecessor's deletion, hold while the
//! child runs, resign. States are named for what they wait for.

use std::ffi::OsString;
use std::time::Duration;

use super::hold::{describe, AfterLoss, AfterSignal, Hold, Stop};
use crate::cli::duration::fmt_duration;
use crate::cli::Wait;
use crate::etcd::{
    Compare, Error, ErrorKind, EventKind, Op, Range, RangeResult, Txn, WatchEvent, WatchSpec,
};
use crate::keys::{lease_hex, Schema};
use crate::kit::backoff::Backoff;
use crate::kit::fence::Gone;
use crate::kit::machine::{Action, Input, Level, Machine, SpawnSpec, Tag};
use crate::kit::session::Session;
use crate::kit::supervise::Ended;
use crate::record::Holder;

/// Watch tags.
const OWN: Tag = 1;
const PRED: Tag = 2;
/// Request tags.
const CAMPAIGN: Tag = 1;
const OFFICE: Tag = 2;

/// Pause before retrying an idempotent request etcd did not answer.
const RETRY: Duration = Duration::from_millis(250);

/// Everything the machine needs to know, fixed for its life.
#[derive(Debug, Clone)]
pub struct Config {
    pub name: String,
    pub schema: Schema,
    pub ttl: Duration,
    pub kill_after: Duration,
    pub wait: Wait,
    pub restart: bool,
    pub argv: Vec<OsString>,
    pub host: String,
    /// The wrapper's pid, for the holder record.
    pub pid: u32,
    /// Unix milliseconds minus BOOTTIME milliseconds at start, so that the
    /// holder's `since` needs no clock read.
    pub wall_offset_ms: i64,
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    Exit(i32),
    Campaign,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    Grant,
    Campaign,
    Office,
    /// The old lease, before campaigning again under `--restart`.
    Revoke(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    ExpectLease,
    ExpectCampaign,
    /// Watching the predecessor's key for its deletion.
    ExpectTurn,
    /// Re-reading the office (after a deletion, a reconnect, a compaction).
    ExpectOffice,
    /// Leader: the child runs, or is being stopped.
    Holding,
    /// Leader under `--restart`, between two runs.
    ExpectRestart {
        at: Duration,
    },
    ExpectRetry {
        at: Duration,
        what: Retry,
    },
    ExpectRevoke {
        then: Then,
    },
    Done,
}

/// The elect recipe.
pub struct Elect {
    cfg: Config,
    state: State,
    session: Session,
    leader: bool,
    /// The child, why it is being stopped, and the wait's `--timeout`.
    hold: Hold,
    backoff: Backoff,
    key: String,
    rev: i64,
    ahead: Option<usize>,
    /// The lease being revoked, kept for a retry.
    revoking: Option<i64>,
}

impl Elect {
    pub fn new(cfg: Config) -> Elect {
        Elect {
            hold: Hold::new(cfg.kill_after),
            backoff: Backoff::new(cfg.seed),
            session: Session::new(cfg.ttl, cfg.kill_after),
            cfg,
            state: State::Done,
            leader: false,
            key: String::new(),
            rev: 0,
            ahead: None,
            revoking: None,
        }
    }

    fn log(out: &mut Vec<Action>, level: Level, msg: String) {
        out.push(Action::Log(level, msg));
    }

    fn campaign(&mut self, now: Duration, out: &mut Vec<Action>) {
        self.leader = false;
        self.rev = 0;
        self.hold.forget_stop();
        self.ahead = None;
        self.state = State::ExpectLease;
        self.session.grant(now, out);
    }

    fn holder_json(&self, lease: i64, now: Duration) -> String {
        let since = now.as_millis() as i64 + self.cfg.wall_offset_ms;
        Holder {
            host: Some(self.cfg.host.clone()),
            pid: Some(u64::from(self.cfg.pid)),
            since_ms: u64::try_from(since).ok(),
            argv: self
                .cfg
                .argv
                .iter()
                .map(|a| a.to_string_lossy().to_string())
                .collect(),
            ttl: Some(self.cfg.ttl.as_secs()),
            lease: Some(lease_hex(lease)),
        }
        .to_json()
    }

    fn office(&self) -> Range {
        Range::prefix(self.cfg.schema.elect_dir(&self.cfg.name)).by_create()
    }

    /// Create-only, keyed by the lease, and both branches read the office:
    /// a retry after an unknown outcome is harmless and still answers.
    fn campaign_txn(&self, lease: i64, now: Duration) -> Txn {
        Txn {
            compare: vec![Compare::absent(self.key.clone())],
            success: vec![
                Op::put(self.key.clone(), self.holder_json(lease, now), lease),
                Op::Get(self.office()),
            ],
            failure: vec![Op::Get(self.office())],
        }
    }

    fn on_granted(
        &mut self,
        r: Result<crate::etcd::Lease, Error>,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        if self.state != State::ExpectLease {
            return;
        }
        match r {
            Ok(l) => {
                self.session.granted(l, now, out);
                self.key = self.cfg.schema.elect_key(&self.cfg.name, l.id);
                self.state = State::ExpectCampaign;
                out.push(Action::Txn(CAMPAIGN, self.campaign_txn(l.id, now)));
            }
            Err(e) if self.cfg.restart && e.is_unavailable() => {
                Self::log(
                    out,
                    Level::Info,
                    format!("etcd unavailable ({e}); campaigning again in 1s"),
                );
                self.state = State::ExpectRetry {
                    at: now + Duration::from_secs(1),
                    what: Retry::Grant,
                };
            }
            Err(e) => {
                Self::log(out, Level::Error, format!("cannot grant a lease: {e}"));
                self.state = State::Done;
                out.push(Action::Exit(crate::cli::EXIT_UNAVAILABLE));
            }
        }
    }

    /// A request etcd did not answer: retry if it may help, else give up.
    fn on_request_error(&mut self, e: Error, what: Retry, now: Duration, out: &mut Vec<Action>) {
        if e.is_unavailable() || e.kind == ErrorKind::Compacted {
            Self::log(out, Level::Debug, format!("{e}; retrying"));
            self.state = State::ExpectRetry {
                at: now + RETRY,
                what,
            };
            return;
        }
        Self::log(out, Level::Error, format!("etcd refused: {e}"));
        let code = if self.leader {
            crate::cli::EXIT_LOST
        } else {
            crate::cli::EXIT_UNAVAILABLE
        };
        self.lose_or_resign(Then::Exit(code), now, out);
    }

    /// Re-validates everything from a fresh read of the office.
    fn on_office(&mut self, r: &RangeResult, now: Duration, out: &mut Vec<Action>) {
        let Some(own) = r.kvs.iter().find(|kv| kv.key == self.key.as_bytes()) else {
            self.on_lost(Gone("own candidate key is gone".into()), now, out);
            return;
        };
        self.rev = own.create_revision;
        out.push(Action::Watch(
            OWN,
            WatchSpec::key(self.key.clone())
                .from_revision(r.revision + 1)
                .deletes_only(),
        ));
        if self.leader {
            return;
        }
        let ahead: Vec<_> = r
            .kvs
            .iter()
            .filter(|kv| kv.create_revision < self.rev)
            .collect();
        let Some(pred) = ahead.iter().max_by_key(|kv| kv.create_revision) else {
            self.become_leader(now, out);
            return;
        };
        match self.cfg.wait {
            Wait::Nonblock => {
                Self::log(
                    out,
                    Level::Info,
                    format!("not acquired: {} ahead (--nonblock)", ahead.len()),
                );
                self.resign(Then::Exit(crate::cli::EXIT_NOT_ACQUIRED), now, out);
            }
            _ => {
                if self.ahead != Some(ahead.len()) {
                    Self::log(out, Level::Info, format!("waiting ({} ahead)", ahead.len()));
                    self.ahead = Some(ahead.len());
                }
                out.push(Action::Watch(
                    PRED,
                    WatchSpec::key(pred.key.clone())
                        .from_revision(r.revision + 1)
                        .deletes_only(),
                ));
                self.state = State::ExpectTurn;
            }
        }
    }

    fn spawn_spec(&self) -> SpawnSpec {
        let lease = self.session.lease().unwrap_or_default();
        SpawnSpec {
            argv: self.cfg.argv.clone(),
            env: vec![
                ("CONCH_NAME".into(), self.cfg.name.clone()),
                ("CONCH_KEY".into(), self.key.clone()),
                ("CONCH_LEASE".into(), lease_hex(lease)),
                ("CONCH_REV".into(), self.rev.to_string()),
            ],
        }
    }

    fn become_leader(&mut self, now: Duration, out: &mut Vec<Action>) {
        self.leader = true;
        self.hold.acquired();
        out.push(Action::Unwatch(PRED));
        Self::log(
            out,
            Level::Info,
            format!(
                "acquired rev={} lease={} key={}",
                self.rev,
                lease_hex(self.session.lease().unwrap_or_default()),
                self.key
            ),
        );
        self.start_child(now, out);
    }

    fn start_child(&mut self, now: Duration, out: &mut Vec<Action>) {
        self.state = State::Holding;
        let spec = self.spawn_spec();
        self.hold.child_mut().spawn(spec, now, out);
    }

    /// The lease (or the candidate key) can no longer be trusted.
    fn on_lost(&mut self, why: Gone, now: Duration, out: &mut Vec<Action>) {
        if matches!(self.state, State::ExpectRevoke { .. } | State::Done)
            || !self.session.mark_lost()
        {
            return;
        }
        let hard = self.session.hard_deadline();
        if self.hold.on_lost(&why, now, hard, out) == AfterLoss::Stopping {
            return;
        }
        if self.cfg.restart {
            Self::log(
                out,
                Level::Info,
                format!("lease lost: {}; campaigning again", why.0),
            );
            self.resign(Then::Campaign, now, out);
        } else {
            Self::log(
                out,
                Level::Info,
                format!("lease lost while waiting: {}", why.0),
            );
            self.resign(Then::Exit(crate::cli::EXIT_LOST), now, out);
        }
    }

    fn lose_or_resign(&mut self, then: Then, now: Duration, out: &mut Vec<Action>) {
        if self.hold.child().is_idle() {
            self.resign(then, now, out);
        } else {
            self.on_lost(Gone("etcd refused a request".into()), now, out);
        }
    }

    /// Revokes the lease (its keys go with it), then `then`.
    fn resign(&mut self, then: Then, now: Duration, out: &mut Vec<Action>) {
        out.push(Action::Unwatch(OWN));
        out.push(Action::Unwatch(PRED));
        self.revoking = self.session.lease();
        if self.session.revoke(out) {
            self.state = State::ExpectRevoke { then };
        } else {
            self.then(then, now, out);
        }
    }

    fn then(&mut self, then: Then, now: Duration, out: &mut Vec<Action>) {
        match then {
            Then::Exit(code) => {
                self.state = State::Done;
                out.push(Action::Exit(code));
            }
            Then::Campaign => self.campaign(now, out),
        }
    }

    fn on_child_ended(&mut self, ended: Ended, now: Duration, out: &mut Vec<Action>) {
        let code = self.hold.exit_code(ended);
        match self.hold.stop_reason() {
            Some(Stop::Lost) if self.cfg.restart => self.resign(Then::Campaign, now, out),
            Some(_) => self.resign(Then::Exit(code), now, out),
            None if self.cfg.restart && self.session.is_lost() => {
                self.resign(Then::Campaign, now, out)
            }
            None if self.cfg.restart => {
                let delay = self.backoff.next_delay(ended.ran);
                Self::log(
                    out,
                    Level::Info,
                    format!(
                        "child exited ({}); restarting in {}",
                        describe(ended.status),
                        fmt_duration(delay)
                    ),
                );
                self.state = State::ExpectRestart { at: now + delay };
            }
            None => {
                Self::log(
                    out,
                    Level::Debug,
                    format!("child exited ({})", describe(ended.status)),
                );
                self.resign(Then::Exit(code), now, out);
            }
        }
    }

    fn on_signal(&mut self, sig: i32, now: Duration, out: &mut Vec<Action>) {
        if !crate::kit::signal::is_fatal(sig) {
            self.hold.on_signal(sig, now, None, out);
            return;
        }
        if let State::ExpectRevoke {
            then: then @ Then::Campaign,
        } = &mut self.state
        {
            // Only a signal ends a `--restart` wrapper: do not campaign again.
            *then = Then::Exit(128 + sig);
            return;
        }
        if matches!(self.state, State::ExpectRevoke { .. } | State::Done) {
            return;
        }
        let hard = self.session.hard_deadline();
        if let AfterSignal::Withdraw(code) = self.hold.on_signal(sig, now, hard, out) {
            self.resign(Then::Exit(code), now, out);
        }
    }

    fn start_reconnect(&mut self, why: &Error, now: Duration, out: &mut Vec<Action>) {
        out.push(Action::Unwatch(OWN));
        out.push(Action::Unwatch(PRED));
        self.session.start_reconnect(why, now, out);
    }

    fn on_reconnected(&mut self, r: Result<(), Error>, now: Duration, out: &mut Vec<Action>) {
        if !self.session.on_reconnected(r, now, out) {
            return;
        }
        if self.rev == 0 {
            // The campaign never landed (or its answer was lost): a re-read
            // would not find the key. The create-only campaign is safe to
            // repeat, and it reads the office too.
            self.state = State::ExpectCampaign;
            let lease = self.session.lease().unwrap_or_default();
            out.push(Action::Txn(CAMPAIGN, self.campaign_txn(lease, now)));
            return;
        }
        if !self.leader {
            self.state = State::ExpectOffice;
        }
        out.push(Action::Range(OFFICE, self.office()));
    }

    fn on_watch(
        &mut self,
        tag: Tag,
        r: Result<WatchEvent, Error>,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        if self.session.lease().is_none() || self.session.reconnecting() {
            return;
        }
        match r {
            Err(e) => self.start_reconnect(&e, now, out),
            Ok(WatchEvent::Events { events, .. }) => {
                let Some(at) = events
                    .iter()
                    .find(|e| e.kind == EventKind::Delete)
                    .map(|e| e.kv.mod_revision)
                else {
                    return;
                };
                if tag == OWN {
                    self.on_lost(Gone("own candidate key was deleted".into()), now, out);
                } else if tag == PRED && self.state == State::ExpectTurn {
                    // With a timestamped -v log, this line tells a late
                    // delete (etcd expired the lease late) from a late
                    // promotion.
                    Self::log(
                        out,
                        Level::Debug,
                        format!("predecessor gone at revision {at}; re-reading the office"),
                    );
                    self.state = State::ExpectOffice;
                    out.push(Action::Range(OFFICE, self.office()));
                }
            }
            Ok(WatchEvent::Progress { .. }) => {}
            Ok(WatchEvent::Compacted { .. }) => {
                if !self.leader {
                    self.state = State::ExpectOffice;
                }
                out.push(Action::Range(OFFICE, self.office()));
            }
            Ok(WatchEvent::Canceled { reason }) => {
                let e = Error::new(
                    ErrorKind::Unavailable,
                    "watch",
                    format!("canceled: {reason}"),
                );
                self.start_reconnect(&e, now, out);
            }
        }
    }

    /// Everything that depends on time alone; runs after every input.
    fn on_time(&mut self, now: Duration, out: &mut Vec<Action>) {
        if matches!(self.state, State::ExpectRevoke { .. } | State::Done) {
            return;
        }
        if let Some(why) = self.session.on_time(now, out) {
            self.on_lost(why, now, out);
        }
        if matches!(self.state, State::ExpectRevoke { .. } | State::Done) {
            return;
        }
        if let Some(code) = self.hold.on_time(now, out) {
            self.resign(Then::Exit(code), now, out);
            return;
        }
        match self.state {
            State::ExpectRestart { at } if now >= at && !self.session.is_lost() => {
                Self::log(
                    out,
                    Level::Info,
                    format!("restarting child rev={}", self.rev),
                );
                self.start_child(now, out);
            }
            State::ExpectRetry { at, what } if now >= at => match what {
                Retry::Grant => self.campaign(now, out),
                Retry::Campaign => {
                    self.state = State::ExpectCampaign;
                    let lease = self.session.lease().unwrap_or_default();
                    out.push(Action::Txn(CAMPAIGN, self.campaign_txn(lease, now)));
                }
                Retry::Revoke(id) => {
                    self.state = State::ExpectRevoke {
                        then: Then::Campaign,
                    };
                    out.push(Action::Revoke(id));
                }
                Retry::Office => {
                    self.state = State::ExpectOffice;
                    out.push(Action::Range(OFFICE, self.office()));
                }
            },
            _ => {}
        }
    }
}

impl Machine for Elect {
    fn step(&mut self, input: Input, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Start => {
                self.hold.start_waiting(self.cfg.wait, now);
                self.campaign(now, &mut out);
            }
            Input::Granted(r) => self.on_granted(r, now, &mut out),
            Input::Txn(CAMPAIGN, r) if self.state == State::ExpectCampaign => match r {
                Ok(t) => {
                    let office = if t.succeeded { t.range(1) } else { t.range(0) };
                    match office {
                        Some(o) => {
                            let o = o.clone();
                            self.on_office(&o, now, &mut out);
                        }
                        None => {
                            let e = Error::new(
                                ErrorKind::Other,
                                "txn",
                                "campaign answer without the office read",
                            );
                            self.on_request_error(e, Retry::Campaign, now, &mut out);
                        }
                    }
                }
                Err(e) => self.on_request_error(e, Retry::Campaign, now, &mut out),
            },
            Input::Range(OFFICE, r) => match r {
                Ok(o) if self.state == State::ExpectOffice || self.leader => {
                    self.on_office(&o, now, &mut out)
                }
                Ok(_) => {}
                Err(e) if self.state == State::ExpectOffice => {
                    self.on_request_error(e, Retry::Office, now, &mut out)
                }
                // A holder's re-check failed: the stream recovery will retry.
                Err(e) => self.start_reconnect(&e, now, &mut out),
            },
            Input::Revoked(r) => {
                if let State::ExpectRevoke { then } = self.state {
                    match r {
                        Ok(()) if self.leader => {
                            Self::log(&mut out, Level::Info, "resigned".into())
                        }
                        Ok(()) => Self::log(&mut out, Level::Debug, "withdrew".into()),
                        Err(e) if then == Then::Campaign && e.is_unavailable() => {
                            // Campaigning now would queue behind our own old
                            // key until its lease expires: revoke it first.
                            Self::log(
                                &mut out,
                                Level::Info,
                                format!("revoke failed ({e}); retrying before campaigning again"),
                            );
                            if let Some(id) = self.revoking {
                                self.state = State::ExpectRetry {
                                    at: now + Duration::from_secs(1),
                                    what: Retry::Revoke(id),
                                };
                                self.on_time(now, &mut out);
                                return out;
                            }
                        }
                        Err(e) => Self::log(
                            &mut out,
                            Level::Info,
                            format!("revoke failed ({e}); the lease expires within its TTL"),
                        ),
                    }
                    self.then(then, now, &mut out);
                }
            }
            Input::Watch(tag, r) => self.on_watch(tag, r, now, &mut out),
            Input::KeepAlive(r) => {
                if r.is_err() {
                    out.push(Action::Unwatch(OWN));
                    out.push(Action::Unwatch(PRED));
                }
                if let Some(why) = self.session.on_keepalive(r, now, &mut out) {
                    self.on_lost(why, now, &mut out);
                }
            }
            Input::Reconnected(r) => self.on_reconnected(r, now, &mut out),
            Input::Spawned(_, _) => self.hold.child_mut().spawned(now),
            Input::SpawnFailed(_, code, why) => {
                Self::log(&mut out, Level::Error, why);
                let ended = self.hold.child_mut().spawn_failed(code);
                self.on_child_ended(ended, now, &mut out);
            }
            Input::ChildExited(_, status) => self.hold.child_mut().exited(status, now, &mut out),
            Input::ChildrenGone(_) => {
                if let Some(ended) = self.hold.child_mut().gone() {
                    self.on_child_ended(ended, now, &mut out);
                }
            }
            Input::Signal(sig) => self.on_signal(sig, now, &mut out),
            Input::Timer | Input::ClockStep(_) | Input::Txn(..) | Input::Range(..) => {}
        }
        self.on_time(now, &mut out);
        out
    }

    fn must_act_by(&self) -> Option<Duration> {
        self.session
            .stop_at()
            .into_iter()
            .chain(self.hold.child().deadline())
            .min()
    }

    fn deadline(&self) -> Option<Duration> {
        if matches!(self.state, State::ExpectRevoke { .. } | State::Done) {
            return None;
        }
        let mut d: Vec<Duration> = Vec::new();
        d.extend(self.session.deadline());
        d.extend(self.hold.child().deadline());
        d.extend(self.hold.timeout_deadline());
        match self.state {
            State::ExpectRestart { at } | State::ExpectRetry { at, .. } => d.push(at),
            _ => {}
        }
        d.into_iter().min()
    }
}

#[cfg(test)]
#[path = "elect_tests.rs"]
mod tests;
