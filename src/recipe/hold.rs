//! The hold lifecycle of `elect` and `sema` (docs/fencing.md), written once:
//! the lease session, one child, the stop reason, signals, a loss,
//! `--timeout`/`--nonblock`, `--restart`, resign and exit, the deadline,
//! the holder record, the base `CONCH_*` environment and the retry and
//! canceled-watch handling. What differs between the two is only how the
//! hold is acquired: an [`Acquire`] part that speaks its own keys and
//! reports "ahead", "won", "gone" or "failed".

use std::time::Duration;

pub use super::hold_part::{find_own, Acquire, Common, Config, Deletions, Report, Retry, Won};
use super::hold_run::Run;
use crate::etcd::{Error, ErrorKind, EventKind, WatchEvent};
use crate::keys::lease_hex;
use crate::kit::backoff::Backoff;
use crate::kit::fence::Gone;
use crate::kit::machine::{Action, Input, Level, Machine, SpawnSpec, Tag};
use crate::kit::session::Session;
use crate::kit::wait::Wait;
use crate::record::Holder;

/// Pause before retrying an idempotent request etcd did not answer.
const RETRY: Duration = Duration::from_millis(250);
/// Pause before a `--restart` wrapper asks again for what etcd refused.
pub(super) const AGAIN: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Then {
    Exit(i32),
    Campaign,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Life<R> {
    ExpectLease,
    /// The part waits for its answers and its turn.
    Acquiring,
    /// The child runs, or is being stopped.
    Holding,
    /// Held under `--restart`, between two runs.
    ExpectRestart {
        at: Duration,
    },
    ExpectRetry {
        at: Duration,
        what: Retry<R>,
    },
    ExpectRevoke {
        then: Then,
    },
    Done,
}

/// A hold: the lifecycle around an acquisition part `A`.
pub struct Hold<A: Acquire> {
    pub(super) cfg: Common,
    pub(super) part: A,
    pub(super) life: Life<A::Retry>,
    pub(super) session: Session,
    pub(super) run: Run,
    pub(super) backoff: Backoff,
    pub(super) won: Option<Won>,
    /// The lease being revoked, kept for a retry.
    pub(super) revoking: Option<i64>,
}

impl<A: Acquire> Hold<A> {
    pub fn new(cfg: Config<A::Settings>) -> Hold<A> {
        let part = A::new(&cfg.hold.name, cfg.schema, cfg.part);
        Hold::with(cfg.hold, part)
    }

    pub fn with(cfg: Common, part: A) -> Hold<A> {
        Hold {
            run: Run::new(cfg.kill_after),
            backoff: Backoff::new(cfg.seed),
            session: Session::new(cfg.ttl, cfg.kill_after),
            cfg,
            part,
            life: Life::Done,
            won: None,
            revoking: None,
        }
    }

    pub(super) fn log(out: &mut Vec<Action>, level: Level, msg: String) {
        out.push(Action::Log(level, msg));
    }

    fn lease(&self) -> i64 {
        self.session.lease().unwrap_or_default()
    }

    pub(super) fn over(&self) -> bool {
        matches!(self.life, Life::ExpectRevoke { .. } | Life::Done)
    }

    fn holder_json(&self, now: Duration) -> String {
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
            lease: Some(lease_hex(self.lease())),
        }
        .to_json()
    }

    pub(super) fn campaign(&mut self, now: Duration, out: &mut Vec<Action>) {
        self.part.reset();
        self.won = None;
        self.run.forget_stop();
        self.life = Life::ExpectLease;
        self.session.grant(now, out);
    }

    fn join(&mut self, now: Duration, out: &mut Vec<Action>) {
        self.life = Life::Acquiring;
        let record = self.holder_json(now);
        self.part.join(self.lease(), record, out);
    }

    fn resync(&mut self, out: &mut Vec<Action>) {
        if !self.part.held() {
            self.life = Life::Acquiring;
        }
        self.part.resync(out);
    }

    fn on_granted(
        &mut self,
        r: Result<crate::etcd::Lease, Error>,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        if self.life != Life::ExpectLease {
            return;
        }
        match r {
            Ok(l) => {
                self.session.granted(l, now, out);
                self.join(now, out);
            }
            Err(e) if self.cfg.restart && e.is_unavailable() => {
                Self::log(
                    out,
                    Level::Info,
                    format!("etcd unavailable ({e}); campaigning again in 1s"),
                );
                self.life = Life::ExpectRetry {
                    at: now + AGAIN,
                    what: Retry::Grant,
                };
            }
            Err(e) => {
                Self::log(out, Level::Error, format!("cannot grant a lease: {e}"));
                self.life = Life::Done;
                out.push(Action::Exit(crate::kit::exit::EXIT_UNAVAILABLE));
            }
        }
    }

    fn on_report(&mut self, r: Report<A::Retry>, now: Duration, out: &mut Vec<Action>) {
        match r {
            Report::Ahead(words) if self.cfg.wait == Wait::Nonblock => {
                Self::log(
                    out,
                    Level::Info,
                    format!("not acquired: {words} (--nonblock)"),
                );
                self.resign(Then::Exit(crate::kit::exit::EXIT_NOT_ACQUIRED), now, out);
            }
            Report::Ahead(_) => self.part.wait_turn(out),
            Report::Won(won) => self.on_won(won, now, out),
            Report::Gone(why) => self.on_lost(why, now, out),
            Report::Failed(e, what) => self.on_request_error(e, what, now, out),
            Report::Broken(e) => self.start_reconnect(&e, now, out),
        }
    }

    fn on_won(&mut self, won: Won, now: Duration, out: &mut Vec<Action>) {
        self.run.acquired();
        Self::log(
            out,
            Level::Info,
            format!(
                "acquired {}rev={} lease={} key={}",
                won.label,
                won.rev,
                lease_hex(self.lease()),
                won.key
            ),
        );
        self.won = Some(won);
        self.start_child(now, out);
    }

    fn start_child(&mut self, now: Duration, out: &mut Vec<Action>) {
        let Some(won) = &self.won else { return };
        let mut env = vec![
            ("CONCH_NAME".into(), self.cfg.name.clone()),
            ("CONCH_KEY".into(), won.key.clone()),
            ("CONCH_LEASE".into(), lease_hex(self.lease())),
            ("CONCH_REV".into(), won.rev.to_string()),
        ];
        env.extend(won.env.iter().cloned());
        let spec = SpawnSpec {
            argv: self.cfg.argv.clone(),
            env,
        };
        self.life = Life::Holding;
        self.run.child_mut().spawn(spec, now, out);
    }

    /// A request etcd did not answer: retry if it may help, else give up.
    fn on_request_error(
        &mut self,
        e: Error,
        what: Retry<A::Retry>,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        if e.is_unavailable() || e.kind == ErrorKind::Compacted {
            Self::log(out, Level::Debug, format!("{e}; retrying"));
            self.life = Life::ExpectRetry {
                at: now + RETRY,
                what,
            };
            return;
        }
        Self::log(out, Level::Error, format!("etcd refused: {e}"));
        if self.run.child().is_idle() {
            let code = if self.part.held() {
                crate::kit::exit::EXIT_LOST
            } else {
                crate::kit::exit::EXIT_UNAVAILABLE
            };
            self.resign(Then::Exit(code), now, out);
        } else {
            self.on_lost(Gone("etcd refused a request".into()), now, out);
        }
    }

    pub(super) fn start_reconnect(&mut self, why: &Error, now: Duration, out: &mut Vec<Action>) {
        self.part.unwatch(out);
        self.session.start_reconnect(why, now, out);
    }

    fn on_reconnected(&mut self, r: Result<(), Error>, now: Duration, out: &mut Vec<Action>) {
        if !self.session.on_reconnected(r, now, out) {
            return;
        }
        if self.part.joined() {
            self.resync(out);
        } else {
            // The create never landed (or its answer was lost): a re-read
            // would not find our key, and the create is safe to repeat.
            self.join(now, out);
        }
    }

    fn on_watch(
        &mut self,
        tag: Tag,
        r: Result<WatchEvent, Error>,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        if self.session.lease().is_none() || self.session.reconnecting() || self.over() {
            return;
        }
        match r {
            Err(e) => self.start_reconnect(&e, now, out),
            Ok(WatchEvent::Events { revision, events }) => {
                if !events.iter().any(|e| e.kind == EventKind::Delete) {
                    return;
                }
                let seen = Deletions {
                    tag,
                    revision,
                    events: &events,
                };
                if let Some(r) = self.part.deleted(seen, out) {
                    self.on_report(r, now, out);
                }
            }
            Ok(WatchEvent::Progress { .. }) => {}
            Ok(WatchEvent::Compacted { .. }) => self.resync(out),
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

    fn on_answer(&mut self, input: Input, now: Duration, out: &mut Vec<Action>) {
        // Answers matter while acquiring or holding; one left over from
        // before a pause or a resign is stale.
        if !matches!(
            self.life,
            Life::Acquiring | Life::Holding | Life::ExpectRestart { .. }
        ) {
            return;
        }
        if let Some(r) = self.part.answer(input, out) {
            self.on_report(r, now, out);
        }
    }

    /// Everything that depends on time alone; runs after every input.
    fn on_time(&mut self, now: Duration, out: &mut Vec<Action>) {
        if self.over() {
            return;
        }
        if let Some(why) = self.session.on_time(now, out) {
            self.on_lost(why, now, out);
        }
        if self.over() {
            return;
        }
        if let Some(code) = self.run.on_time(now, out) {
            self.resign(Then::Exit(code), now, out);
            return;
        }
        match self.life {
            Life::ExpectRestart { at } if now >= at && !self.session.is_lost() => {
                let rev = self.won.as_ref().map_or(0, |w| w.rev);
                Self::log(out, Level::Info, format!("restarting child rev={rev}"));
                self.start_child(now, out);
            }
            Life::ExpectRetry { at, what } if now >= at => match what {
                Retry::Grant => self.campaign(now, out),
                Retry::Join => self.join(now, out),
                Retry::Revoke(id) => {
                    self.life = Life::ExpectRevoke {
                        then: Then::Campaign,
                    };
                    out.push(Action::Revoke(id));
                }
                Retry::Part(what) => {
                    self.life = Life::Acquiring;
                    self.part.retry(what, out);
                }
            },
            _ => {}
        }
    }

    /// The timers of a hold, by name: the deadline is their minimum.
    fn timers(&self) -> [(&'static str, Option<Duration>); 4] {
        let pause = match self.life {
            Life::ExpectRestart { at } | Life::ExpectRetry { at, .. } => Some(at),
            _ => None,
        };
        [
            ("session", self.session.deadline()),
            ("child", self.run.child().deadline()),
            ("timeout", self.run.timeout_deadline()),
            ("pause", pause),
        ]
    }
}

impl<A: Acquire> Machine for Hold<A> {
    fn step(&mut self, input: Input, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Start => {
                self.run.start_waiting(self.cfg.wait, now);
                self.campaign(now, &mut out);
            }
            Input::Granted(r) => self.on_granted(r, now, &mut out),
            Input::Txn(..) | Input::Range(..) => self.on_answer(input, now, &mut out),
            Input::Revoked(r) => self.on_revoked(r, now, &mut out),
            Input::Watch(tag, r) => self.on_watch(tag, r, now, &mut out),
            Input::KeepAlive(r) => {
                if r.is_err() {
                    self.part.unwatch(&mut out);
                }
                if let Some(why) = self.session.on_keepalive(r, now, &mut out) {
                    self.on_lost(why, now, &mut out);
                }
            }
            Input::Reconnected(r) => self.on_reconnected(r, now, &mut out),
            Input::Spawned(_, _) => self.run.child_mut().spawned(now),
            Input::SpawnFailed(_, code, why) => {
                Self::log(&mut out, Level::Error, why);
                let ended = self.run.child_mut().spawn_failed(code);
                self.on_child_ended(ended, now, &mut out);
            }
            Input::ChildExited(_, status) => self.run.child_mut().exited(status, now, &mut out),
            Input::ChildrenGone(_) => {
                if let Some(ended) = self.run.child_mut().gone() {
                    self.on_child_ended(ended, now, &mut out);
                }
            }
            Input::Signal(sig) => self.on_signal(sig, now, &mut out),
            Input::Timer | Input::ClockStep(_) => {}
        }
        self.on_time(now, &mut out);
        out
    }

    fn must_act_by(&self) -> Option<Duration> {
        self.session
            .stop_at()
            .into_iter()
            .chain(self.run.child().deadline())
            .min()
    }

    fn deadline(&self) -> Option<Duration> {
        if self.over() {
            return None;
        }
        self.timers().iter().filter_map(|t| t.1).min()
    }
}

#[cfg(test)]
#[path = "hold_tests.rs"]
mod tests;
