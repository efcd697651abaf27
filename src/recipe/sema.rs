//! `conch sema` (docs/usage.md): the acquisition part of a [`Hold`]. Join the
//! queue of `--max N`, wait for fewer than N live keys ahead (one read,
//! then deletions only), claim the lowest free slot. The lifecycle around
//! it (the child, losses, signals, resign) is `hold.rs`.

use std::collections::BTreeSet;

use super::hold::{find_own, Acquire, Deletions, Hold, Report, Retry, Won};
use super::queue::{lowest_free, Queue};
use crate::etcd::{
    CmpOp, Compare, Error, ErrorKind, EventKind, Op, Range, RangeResult, Target, Txn, TxnResult,
    WatchSpec,
};
use crate::keys::{lease_hex, Schema};
use crate::kit::fence::Gone;
use crate::kit::machine::{Action, Input, Level, Tag};

/// Watch tags.
const QUEUE: Tag = 1;
const OWN: Tag = 2;
const SLOTS: Tag = 3;
/// Request tags.
const JOIN: Tag = 1;
const CLAIM: Tag = 2;
const REREAD: Tag = 3;

/// The sema recipe: one of `--max N` slots of a name.
pub type Sema = Hold<Slots>;
/// `part` is `--max N`; `hold.restart` does not apply to a slot.
pub type Config = super::hold::Config<u32>;

/// What sema retries on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Again {
    Claim,
    Reread,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
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
}

/// A queue of contenders and the N slots they claim.
pub struct Slots {
    name: String,
    schema: Schema,
    max: u32,
    state: State,
    queue: Option<Queue>,
    key: String,
    lease: i64,
    own_rev: i64,
    slot: Option<(u32, i64)>,
    /// Slots known taken, from the last read.
    taken: BTreeSet<u32>,
    /// The revision of that read: a wait for a free slot starts after it.
    slots_rev: i64,
    shown_rank: Option<usize>,
    /// The queue read's revision and our rank, until we wait for the turn.
    pending: Option<(i64, usize)>,
}

impl Slots {
    fn queue_dir(&self) -> String {
        self.schema.sema_queue_dir(&self.name, self.max)
    }

    fn slot_dir(&self) -> String {
        self.schema.sema_slot_dir(&self.name, self.max)
    }

    fn slot_key(&self, i: u32) -> String {
        self.schema.sema_slot_key(&self.name, self.max, i)
    }

    /// The queue (in order) and the slots, read in one request.
    fn read_ops(&self) -> Vec<Op> {
        vec![
            Op::Get(Range::prefix(self.queue_dir()).by_create()),
            Op::Get(Range::prefix(self.slot_dir())),
        ]
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
        let lease = self.lease;
        let Some(i) = lowest_free(&self.taken, self.max) else {
            self.state = State::ExpectFreeSlot;
            out.push(Action::Watch(
                SLOTS,
                WatchSpec::prefix(self.slot_dir())
                    .from_revision(self.slots_rev + 1)
                    .deletes_only(),
            ));
            return;
        };
        let slot_key = self.slot_key(i);
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
                success: vec![Op::put(slot_key, lease_hex(lease), lease)],
                failure: vec![
                    Op::Get(Range::prefix(self.slot_dir())),
                    Op::Get(Range::key(self.key.clone())),
                ],
            },
        ));
    }

    /// Reads slots: ours (by lease) is adopted, the rest are taken.
    fn learn_slots(&mut self, slots: &RangeResult) -> Option<(u32, i64)> {
        let mine = lease_hex(self.lease);
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

    fn on_read(
        &mut self,
        t: &TxnResult,
        offset: usize,
        out: &mut Vec<Action>,
    ) -> Option<Report<Again>> {
        let (Some(q), Some(slots)) = (t.range(offset), t.range(offset + 1)) else {
            let e = Error::new(ErrorKind::Other, "txn", "answer without the queue read");
            return Some(Report::Failed(e, Retry::Join));
        };
        let Some(rev) = find_own(q, &self.key, OWN, out) else {
            return Some(Report::Gone(Gone("own queue key is gone".into())));
        };
        self.own_rev = rev;
        let adopted = self.learn_slots(slots);
        if let Some((i, _)) = self.slot {
            if adopted.map(|a| a.0) != Some(i) {
                return Some(Report::Gone(Gone(format!("slot {i} is no longer ours"))));
            }
            self.watch_slot(i, q.revision, out);
            return None;
        }
        let queue = Queue::from_read(&q.kvs, self.own_rev, self.max as usize);
        let rank = queue.rank();
        let holds = queue.holds();
        self.queue = Some(queue);
        if let Some((i, rev)) = adopted {
            // A claim whose answer was lost did go through: it is ours.
            return Some(self.hold(i, rev, q.revision, out));
        }
        if holds {
            self.claim(out);
            return None;
        }
        self.pending = Some((q.revision, rank));
        Some(Report::Ahead(format!("{rank} ahead, max {}", self.max)))
    }

    fn watch_slot(&self, i: u32, revision: i64, out: &mut Vec<Action>) {
        out.push(Action::Watch(
            SLOTS,
            WatchSpec::key(self.slot_key(i))
                .from_revision(revision + 1)
                .deletes_only(),
        ));
    }

    fn hold(&mut self, i: u32, rev: i64, revision: i64, out: &mut Vec<Action>) -> Report<Again> {
        self.slot = Some((i, rev));
        self.state = State::Holding;
        out.push(Action::Unwatch(QUEUE));
        self.watch_slot(i, revision, out);
        Report::Won(Won {
            key: self.slot_key(i),
            rev,
            label: format!("slot={i} "),
            env: vec![
                ("CONCH_SLOT".into(), i.to_string()),
                ("CONCH_MAX".into(), self.max.to_string()),
            ],
        })
    }

    fn on_claim(
        &mut self,
        r: Result<TxnResult, Error>,
        out: &mut Vec<Action>,
    ) -> Option<Report<Again>> {
        let t = match r {
            Ok(t) => t,
            Err(e) => return Some(Report::Failed(e, Retry::Part(Again::Claim))),
        };
        if t.succeeded {
            let State::ExpectSlot { index } = self.state else {
                return None;
            };
            // Created by this transaction: its revision is the slot key's
            // create revision, the fencing token.
            return Some(self.hold(index, t.revision, t.revision, out));
        }
        let (Some(slots), Some(own)) = (t.range(0), t.range(1)) else {
            let e = Error::new(ErrorKind::Other, "txn", "claim answer without reads");
            return Some(Report::Failed(e, Retry::Part(Again::Claim)));
        };
        if own.kvs.is_empty() {
            return Some(Report::Gone(Gone("own queue key is gone".into())));
        }
        let slots = slots.clone();
        match self.learn_slots(&slots) {
            Some((i, rev)) => Some(self.hold(i, rev, t.revision, out)),
            None => {
                self.claim(out);
                None
            }
        }
    }

    /// A batch of deletions in the queue while we wait for our turn.
    fn queue_moved(&mut self, gone: &[&[u8]], revision: i64, out: &mut Vec<Action>) {
        let Some(q) = self.queue.as_mut() else { return };
        let mut moved = false;
        for k in gone {
            moved |= q.deleted(k);
        }
        if q.holds() {
            out.push(Action::Unwatch(QUEUE));
            // Slots learned at join time may be stale: the claim's
            // else-branch corrects them.
            self.claim(out);
        } else if moved && self.shown_rank != Some(q.rank()) {
            self.shown_rank = Some(q.rank());
            out.push(Action::Log(
                Level::Debug,
                format!("rank {} at revision {revision}", q.rank()),
            ));
        }
    }
}

impl Acquire for Slots {
    type Retry = Again;
    type Settings = u32;

    fn new(name: &str, schema: Schema, max: u32) -> Slots {
        Slots {
            name: name.to_string(),
            schema,
            max,
            state: State::Idle,
            queue: None,
            key: String::new(),
            lease: 0,
            own_rev: 0,
            slot: None,
            taken: BTreeSet::new(),
            slots_rev: 0,
            shown_rank: None,
            pending: None,
        }
    }

    fn join(&mut self, lease: i64, record: String, out: &mut Vec<Action>) {
        self.lease = lease;
        self.key = self.schema.sema_queue_key(&self.name, self.max, lease);
        self.state = State::ExpectJoin;
        let mut success = vec![Op::put(self.key.clone(), record, lease)];
        success.extend(self.read_ops());
        let txn = Txn {
            compare: vec![Compare::absent(self.key.clone())],
            success,
            failure: self.read_ops(),
        };
        out.push(Action::Txn(JOIN, txn));
    }

    fn joined(&self) -> bool {
        self.own_rev != 0
    }

    fn held(&self) -> bool {
        self.slot.is_some()
    }

    fn reset(&mut self) {
        self.state = State::Idle;
    }

    fn unwatch(&self, out: &mut Vec<Action>) {
        for t in [QUEUE, OWN, SLOTS] {
            out.push(Action::Unwatch(t));
        }
    }

    fn resync(&mut self, out: &mut Vec<Action>) {
        self.reread(out);
    }

    fn retry(&mut self, what: Again, out: &mut Vec<Action>) {
        match what {
            Again::Claim => self.claim(out),
            Again::Reread => self.reread(out),
        }
    }

    fn wait_turn(&mut self, out: &mut Vec<Action>) {
        let Some((revision, rank)) = self.pending.take() else {
            return;
        };
        if self.shown_rank != Some(rank) {
            out.push(Action::Log(
                Level::Info,
                format!("waiting (rank {rank} of max {})", self.max),
            ));
            self.shown_rank = Some(rank);
        }
        self.state = State::ExpectTurn;
        out.push(Action::Watch(
            QUEUE,
            WatchSpec::prefix(self.queue_dir())
                .from_revision(revision + 1)
                .deletes_only(),
        ));
    }

    fn answer(&mut self, input: Input, out: &mut Vec<Action>) -> Option<Report<Again>> {
        match input {
            Input::Txn(JOIN, r) if self.state == State::ExpectJoin => match r {
                Ok(t) => self.on_read(&t, usize::from(t.succeeded), out),
                Err(e) => Some(Report::Failed(e, Retry::Join)),
            },
            Input::Txn(REREAD, r) => match r {
                Ok(t) if self.state == State::ExpectReread || self.slot.is_some() => {
                    self.on_read(&t, 0, out)
                }
                Ok(_) => None,
                Err(e) if self.slot.is_none() => {
                    Some(Report::Failed(e, Retry::Part(Again::Reread)))
                }
                Err(e) => Some(Report::Broken(e)),
            },
            Input::Txn(CLAIM, r) if matches!(self.state, State::ExpectSlot { .. }) => {
                self.on_claim(r, out)
            }
            _ => None,
        }
    }

    fn deleted(&mut self, seen: Deletions<'_>, out: &mut Vec<Action>) -> Option<Report<Again>> {
        let Deletions {
            tag,
            revision,
            events,
        } = seen;
        let gone: Vec<&[u8]> = events
            .iter()
            .filter(|e| e.kind == EventKind::Delete)
            .map(|e| e.kv.key.as_slice())
            .collect();
        match tag {
            OWN => return Some(Report::Gone(Gone("own queue key was deleted".into()))),
            SLOTS if self.slot.is_some() => {
                return Some(Report::Gone(Gone("own slot key was deleted".into())))
            }
            SLOTS if self.state == State::ExpectFreeSlot => {
                for k in &gone {
                    if let Some(i) = Schema::leaf(&self.slot_dir(), k).and_then(|s| s.parse().ok())
                    {
                        self.taken.remove(&i);
                    }
                }
                out.push(Action::Unwatch(SLOTS));
                self.claim(out);
            }
            QUEUE if self.state == State::ExpectTurn => self.queue_moved(&gone, revision, out),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
#[path = "sema_tests.rs"]
mod tests;
