//! `conch sema` as a sans-IO machine (docs/usage.md): join the queue of
//! `--max N`, wait for fewer than N live keys ahead (one read, then
//! deletions only), claim the lowest free slot, hold while the child runs.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::time::Duration;

use super::hold::{AfterLoss, AfterSignal, Hold};
use super::queue::{lowest_free, Queue};
use crate::cli::Wait;
use crate::etcd::{
    CmpOp, Compare, Error, ErrorKind, EventKind, Op, Range, RangeResult, Target, Txn, TxnResult,
    WatchEvent, WatchSpec,
};
use crate::keys::{lease_hex, Schema};
use crate::kit::fence::Gone;
use crate::kit::machine::{Action, Input, Level, Machine, SpawnSpec, Tag};
use crate::kit::session::Session;
use crate::kit::supervise::Ended;
use crate::record::Holder;

/// Watch tags.
const QUEUE: Tag = 1;
const OWN: Tag = 2;
const SLOTS: Tag = 3;
/// Request tags.
const JOIN: Tag = 1;
const CLAIM: Tag = 2;
const REREAD: Tag = 3;

const RETRY: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
pub struct Config {
    pub name: String,
    pub schema: Schema,
    pub max: u32,
    pub ttl: Duration,
    pub kill_after: Duration,
    pub wait: Wait,
    pub argv: Vec<OsString>,
    pub host: String,
    pub pid: u32,
    pub wall_offset_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    ExpectLease,
    ExpectJoin,
    /// Fewer than N ahead is what we wait for; `Queue` knows who.
    ExpectTurn,
    /// Re-reading queue and slots after a failover or compaction.
    ExpectReread,
    ExpectSlot {
        index: u32,
    },
    /// Every slot taken (only inside an overlap window): wait for one.
    ExpectFreeSlot,
    Holding,
    ExpectRetry {
        at: Duration,
        what: Tag,
    },
    ExpectRevoke {
        code: i32,
    },
    Done,
}

pub struct Sema {
    cfg: Config,
    state: State,
    session: Session,
    /// The child, why it is being stopped, and the wait's `--timeout`.
    hold: Hold,
    queue: Option<Queue>,
    key: String,
    own_rev: i64,
    slot: Option<(u32, i64)>,
    /// Slots known taken, from the last read.
    taken: BTreeSet<u32>,
    /// The revision of that read: a wait for a free slot starts after it.
    slots_rev: i64,
    shown_rank: Option<usize>,
}

impl Sema {
    pub fn new(cfg: Config) -> Sema {
        Sema {
            session: Session::new(cfg.ttl, cfg.kill_after),
            hold: Hold::new(cfg.kill_after),
            cfg,
            state: State::Done,
            queue: None,
            key: String::new(),
            own_rev: 0,
            slot: None,
            taken: BTreeSet::new(),
            slots_rev: 0,
            shown_rank: None,
        }
    }

    fn log(out: &mut Vec<Action>, level: Level, msg: String) {
        out.push(Action::Log(level, msg));
    }

    fn queue_dir(&self) -> String {
        self.cfg.schema.sema_queue_dir(&self.cfg.name, self.cfg.max)
    }

    fn slot_dir(&self) -> String {
        self.cfg.schema.sema_slot_dir(&self.cfg.name, self.cfg.max)
    }

    fn lease(&self) -> i64 {
        self.session.lease().unwrap_or_default()
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

    /// The queue (in order) and the slots, read in one request.
    fn read_ops(&self) -> Vec<Op> {
        vec![
            Op::Get(Range::prefix(self.queue_dir()).by_create()),
            Op::Get(Range::prefix(self.slot_dir())),
        ]
    }

    /// Create-only, keyed by the lease; both branches read queue and slots.
    fn join_txn(&self, now: Duration) -> Txn {
        let mut success = vec![Op::put(
            self.key.clone(),
            self.holder_json(now),
            self.lease(),
        )];
        success.extend(self.read_ops());
        Txn {
            compare: vec![Compare::absent(self.key.clone())],
            success,
            failure: self.read_ops(),
        }
    }

    fn reread(&mut self, out: &mut Vec<Action>) {
        if self.slot.is_none() {
            self.state = State::ExpectReread;
        }
        out.push(Action::Txn(
            REREAD,
            Txn {
                compare: vec![],
                success: self.read_ops(),
                failure: vec![],
            },
        ));
    }

    /// The slot claim: only while our queue key lives, only if slot `i` is
    /// free; the else-branch reads slots and our key back.
    fn claim(&mut self, out: &mut Vec<Action>) {
        let Some(i) = lowest_free(&self.taken, self.cfg.max) else {
            self.state = State::ExpectFreeSlot;
            out.push(Action::Watch(
                SLOTS,
                WatchSpec::prefix(self.slot_dir())
                    .from_revision(self.slots_rev + 1)
                    .deletes_only(),
            ));
            return;
        };
        let slot_key = self
            .cfg
            .schema
            .sema_slot_key(&self.cfg.name, self.cfg.max, i);
        self.state = State::ExpectSlot { index: i };
        out.push(Action::Txn(
            CLAIM,
            Txn {
                compare: vec![
                    Compare::key(
                        self.key.clone(),
                        CmpOp::Equal,
                        Target::CreateRevision(self.own_rev),
                    ),
                    Compare::absent(slot_key.clone()),
                ],
                success: vec![Op::put(slot_key, lease_hex(self.lease()), self.lease())],
                failure: vec![
                    Op::Get(Range::prefix(self.slot_dir())),
                    Op::Get(Range::key(self.key.clone())),
                ],
            },
        ));
    }

    /// Reads slots: ours (by lease) is adopted, the rest are taken.
    fn learn_slots(&mut self, slots: &RangeResult) -> Option<(u32, i64)> {
        let mine = lease_hex(self.lease());
        self.taken.clear();
        self.slots_rev = slots.revision;
        let mut adopted = None;
        for kv in &slots.kvs {
            let Some(i) =
                Schema::leaf(&self.slot_dir(), &kv.key).and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if kv.value == mine.as_bytes() {
                adopted = Some((i, kv.create_revision));
            }
            self.taken.insert(i);
        }
        adopted
    }

    fn on_read(&mut self, t: &TxnResult, offset: usize, now: Duration, out: &mut Vec<Action>) {
        let (Some(q), Some(slots)) = (t.range(offset), t.range(offset + 1)) else {
            let e = Error::new(ErrorKind::Other, "txn", "answer without the queue read");
            return self.on_error(e, JOIN, now, out);
        };
        let Some(own) = q.kvs.iter().find(|kv| kv.key == self.key.as_bytes()) else {
            return self.on_lost(Gone("own queue key is gone".into()), now, out);
        };
        self.own_rev = own.create_revision;
        out.push(Action::Watch(
            OWN,
            WatchSpec::key(self.key.clone())
                .from_revision(q.revision + 1)
                .deletes_only(),
        ));
        let adopted = self.learn_slots(slots);
        if let Some((i, rev)) = self.slot {
            if adopted.map(|a| a.0) != Some(i) {
                self.on_lost(Gone(format!("slot {i} is no longer ours")), now, out);
            } else {
                self.watch_slot(i, rev, q.revision, out);
            }
            return;
        }
        let queue = Queue::from_read(&q.kvs, self.own_rev, self.cfg.max as usize);
        if let Some((i, rev)) = adopted {
            // A claim whose answer was lost did go through: it is ours.
            self.queue = Some(queue);
            return self.hold(i, rev, q.revision, now, out);
        }
        if queue.holds() {
            self.queue = Some(queue);
            return self.claim(out);
        }
        if self.cfg.wait == Wait::Nonblock {
            Self::log(
                out,
                Level::Info,
                format!(
                    "not acquired: {} ahead, max {} (--nonblock)",
                    queue.rank(),
                    self.cfg.max
                ),
            );
            return self.resign(crate::cli::EXIT_NOT_ACQUIRED, now, out);
        }
        if self.shown_rank != Some(queue.rank()) {
            Self::log(
                out,
                Level::Info,
                format!("waiting (rank {} of max {})", queue.rank(), self.cfg.max),
            );
            self.shown_rank = Some(queue.rank());
        }
        self.queue = Some(queue);
        self.state = State::ExpectTurn;
        out.push(Action::Watch(
            QUEUE,
            WatchSpec::prefix(self.queue_dir())
                .from_revision(q.revision + 1)
                .deletes_only(),
        ));
    }

    fn watch_slot(&self, i: u32, _rev: i64, revision: i64, out: &mut Vec<Action>) {
        let key = self
            .cfg
            .schema
            .sema_slot_key(&self.cfg.name, self.cfg.max, i);
        out.push(Action::Watch(
            SLOTS,
            WatchSpec::key(key)
                .from_revision(revision + 1)
                .deletes_only(),
        ));
    }

    fn hold(&mut self, i: u32, rev: i64, revision: i64, now: Duration, out: &mut Vec<Action>) {
        self.slot = Some((i, rev));
        self.hold.acquired();
        out.push(Action::Unwatch(QUEUE));
        self.watch_slot(i, rev, revision, out);
        let key = self
            .cfg
            .schema
            .sema_slot_key(&self.cfg.name, self.cfg.max, i);
        Self::log(
            out,
            Level::Info,
            format!(
                "acquired slot={i} rev={rev} lease={} key={key}",
                lease_hex(self.lease())
            ),
        );
        self.state = State::Holding;
        let spec = SpawnSpec {
            argv: self.cfg.argv.clone(),
            env: vec![
                ("CONCH_NAME".into(), self.cfg.name.clone()),
                ("CONCH_KEY".into(), key),
                ("CONCH_LEASE".into(), lease_hex(self.lease())),
                ("CONCH_REV".into(), rev.to_string()),
                ("CONCH_SLOT".into(), i.to_string()),
                ("CONCH_MAX".into(), self.cfg.max.to_string()),
            ],
        };
        self.hold.child_mut().spawn(spec, now, out);
    }

    fn on_claim(&mut self, r: Result<TxnResult, Error>, now: Duration, out: &mut Vec<Action>) {
        let t = match r {
            Ok(t) => t,
            Err(e) => return self.on_error(e, CLAIM, now, out),
        };
        if t.succeeded {
            let State::ExpectSlot { index } = self.state else {
                return;
            };
            // Created by this transaction: its revision is the slot key's
            // create revision, the fencing token.
            return self.hold(index, t.revision, t.revision, now, out);
        }
        let (Some(slots), Some(own)) = (t.range(0), t.range(1)) else {
            let e = Error::new(ErrorKind::Other, "txn", "claim answer without reads");
            return self.on_error(e, CLAIM, now, out);
        };
        if own.kvs.is_empty() {
            return self.on_lost(Gone("own queue key is gone".into()), now, out);
        }
        let slots = slots.clone();
        match self.learn_slots(&slots) {
            Some((i, rev)) => self.hold(i, rev, t.revision, now, out),
            None => self.claim(out),
        }
    }

    fn on_error(&mut self, e: Error, what: Tag, now: Duration, out: &mut Vec<Action>) {
        if e.is_unavailable() || e.kind == ErrorKind::Compacted {
            Self::log(out, Level::Debug, format!("{e}; retrying"));
            self.state = State::ExpectRetry {
                at: now + RETRY,
                what,
            };
            return;
        }
        Self::log(out, Level::Error, format!("etcd refused: {e}"));
        if self.hold.child().is_idle() {
            self.resign(crate::cli::EXIT_UNAVAILABLE, now, out);
        } else {
            self.on_lost(Gone("etcd refused a request".into()), now, out);
        }
    }

    fn on_lost(&mut self, why: Gone, now: Duration, out: &mut Vec<Action>) {
        if matches!(self.state, State::ExpectRevoke { .. } | State::Done)
            || !self.session.mark_lost()
        {
            return;
        }
        let hard = self.session.hard_deadline();
        if self.hold.on_lost(&why, now, hard, out) == AfterLoss::Idle {
            Self::log(
                out,
                Level::Info,
                format!("lease lost while waiting: {}", why.0),
            );
            self.resign(crate::cli::EXIT_LOST, now, out);
        }
    }

    fn resign(&mut self, code: i32, _now: Duration, out: &mut Vec<Action>) {
        for t in [QUEUE, OWN, SLOTS] {
            out.push(Action::Unwatch(t));
        }
        if self.session.revoke(out) {
            self.state = State::ExpectRevoke { code };
        } else {
            self.state = State::Done;
            out.push(Action::Exit(code));
        }
    }

    fn on_child_ended(&mut self, ended: Ended, now: Duration, out: &mut Vec<Action>) {
        let code = self.hold.exit_code(ended);
        self.resign(code, now, out);
    }

    fn on_signal(&mut self, sig: i32, now: Duration, out: &mut Vec<Action>) {
        if crate::kit::signal::is_fatal(sig)
            && matches!(self.state, State::ExpectRevoke { .. } | State::Done)
        {
            return;
        }
        let hard = self.session.hard_deadline();
        if let AfterSignal::Withdraw(code) = self.hold.on_signal(sig, now, hard, out) {
            self.resign(code, now, out);
        }
    }

    fn on_watch(
        &mut self,
        tag: Tag,
        r: Result<WatchEvent, Error>,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        if self.session.lease().is_none()
            || self.session.reconnecting()
            || matches!(self.state, State::ExpectRevoke { .. } | State::Done)
        {
            return;
        }
        match r {
            Err(e) => self.start_reconnect(&e, now, out),
            Ok(WatchEvent::Events { revision, events }) => {
                let gone: Vec<_> = events
                    .iter()
                    .filter(|e| e.kind == EventKind::Delete)
                    .map(|e| e.kv.key.clone())
                    .collect();
                if gone.is_empty() {
                    return;
                }
                match tag {
                    OWN => self.on_lost(Gone("own queue key was deleted".into()), now, out),
                    SLOTS if self.slot.is_some() => {
                        self.on_lost(Gone("own slot key was deleted".into()), now, out)
                    }
                    SLOTS if self.state == State::ExpectFreeSlot => {
                        for k in &gone {
                            if let Some(i) =
                                Schema::leaf(&self.slot_dir(), k).and_then(|s| s.parse().ok())
                            {
                                self.taken.remove(&i);
                            }
                        }
                        out.push(Action::Unwatch(SLOTS));
                        self.claim(out);
                    }
                    QUEUE if self.state == State::ExpectTurn => {
                        let Some(q) = self.queue.as_mut() else { return };
                        let mut moved = false;
                        for k in &gone {
                            moved |= q.deleted(k);
                        }
                        if q.holds() {
                            out.push(Action::Unwatch(QUEUE));
                            // Slots learned at join time may be stale: the claim's
                            // else-branch corrects them.
                            self.claim(out);
                        } else if moved && self.shown_rank != Some(q.rank()) {
                            self.shown_rank = Some(q.rank());
                            Self::log(
                                out,
                                Level::Debug,
                                format!("rank {} at revision {revision}", q.rank()),
                            );
                        }
                    }
                    _ => {}
                }
            }
            Ok(WatchEvent::Progress { .. }) => {}
            Ok(WatchEvent::Compacted { .. }) => self.reread(out),
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

    fn start_reconnect(&mut self, why: &Error, now: Duration, out: &mut Vec<Action>) {
        for t in [QUEUE, OWN, SLOTS] {
            out.push(Action::Unwatch(t));
        }
        self.session.start_reconnect(why, now, out);
    }

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
            return self.resign(code, now, out);
        }
        if let State::ExpectRetry { at, what } = self.state {
            if now >= at {
                match what {
                    JOIN => {
                        self.state = State::ExpectJoin;
                        out.push(Action::Txn(JOIN, self.join_txn(now)));
                    }
                    CLAIM => self.claim(out),
                    _ => self.reread(out),
                }
            }
        }
    }
}

impl Machine for Sema {
    fn step(&mut self, input: Input, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Start => {
                self.hold.start_waiting(self.cfg.wait, now);
                self.state = State::ExpectLease;
                self.session.grant(now, &mut out);
            }
            Input::Granted(Ok(l)) if self.state == State::ExpectLease => {
                self.session.granted(l, now, &mut out);
                self.key = self
                    .cfg
                    .schema
                    .sema_queue_key(&self.cfg.name, self.cfg.max, l.id);
                self.state = State::ExpectJoin;
                out.push(Action::Txn(JOIN, self.join_txn(now)));
            }
            Input::Granted(Err(e)) => {
                Self::log(&mut out, Level::Error, format!("cannot grant a lease: {e}"));
                self.state = State::Done;
                out.push(Action::Exit(crate::cli::EXIT_UNAVAILABLE));
            }
            Input::Txn(JOIN, r) if self.state == State::ExpectJoin => match r {
                Ok(t) => self.on_read(&t, usize::from(t.succeeded), now, &mut out),
                Err(e) => self.on_error(e, JOIN, now, &mut out),
            },
            Input::Txn(REREAD, r) => match r {
                Ok(t) if self.state == State::ExpectReread || self.slot.is_some() => {
                    self.on_read(&t, 0, now, &mut out)
                }
                Ok(_) => {}
                Err(e) if self.slot.is_none() => self.on_error(e, REREAD, now, &mut out),
                Err(e) => self.start_reconnect(&e, now, &mut out),
            },
            Input::Txn(CLAIM, r) if matches!(self.state, State::ExpectSlot { .. }) => {
                self.on_claim(r, now, &mut out)
            }
            Input::Revoked(r) => {
                if let State::ExpectRevoke { code } = self.state {
                    match r {
                        Ok(()) if self.slot.is_some() => {
                            Self::log(&mut out, Level::Info, "resigned".into())
                        }
                        Ok(()) => Self::log(&mut out, Level::Debug, "withdrew".into()),
                        Err(e) => Self::log(
                            &mut out,
                            Level::Info,
                            format!("revoke failed ({e}); the lease expires within its TTL"),
                        ),
                    }
                    self.state = State::Done;
                    out.push(Action::Exit(code));
                }
            }
            Input::Watch(tag, r) => self.on_watch(tag, r, now, &mut out),
            Input::KeepAlive(r) => {
                if r.is_err() {
                    for t in [QUEUE, OWN, SLOTS] {
                        out.push(Action::Unwatch(t));
                    }
                }
                if let Some(why) = self.session.on_keepalive(r, now, &mut out) {
                    self.on_lost(why, now, &mut out);
                }
            }
            Input::Reconnected(r) => {
                if self.session.on_reconnected(r, now, &mut out) {
                    if self.own_rev == 0 {
                        // Not in the queue yet (the join failed or is
                        // unanswered): join again, the create is idempotent.
                        self.state = State::ExpectJoin;
                        out.push(Action::Txn(JOIN, self.join_txn(now)));
                    } else {
                        self.reread(&mut out);
                    }
                }
            }
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
            Input::Granted(_)
            | Input::Timer
            | Input::ClockStep(_)
            | Input::Txn(..)
            | Input::Range(..) => {}
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
        if let State::ExpectRetry { at, .. } = self.state {
            d.push(at);
        }
        d.into_iter().min()
    }
}

#[cfg(test)]
#[path = "sema_tests.rs"]
mod tests;
