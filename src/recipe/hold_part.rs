//! What a hold is told, and the contract between the hold lifecycle
//! (`hold.rs`) and an acquisition part (elect's office, sema's slots): the
//! part speaks only its own keys and reports "ahead", "won", "gone" or
//! "failed".

use std::ffi::OsString;
use std::time::Duration;

use crate::etcd::{Error, Event, RangeResult, WatchSpec};
use crate::keys::Schema;
use crate::kit::fence::Gone;
use crate::kit::machine::{Action, Input, Tag};
use crate::kit::wait::Wait;

/// What every hold is told, fixed for its life.
#[derive(Debug, Clone)]
pub struct Common {
    pub name: String,
    pub ttl: Duration,
    pub kill_after: Duration,
    pub wait: Wait,
    /// Campaign again after a loss, restart the child after it exits.
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

/// A recipe's settings: the hold's, the key schema, and the part's own.
#[derive(Debug, Clone)]
pub struct Config<P> {
    pub hold: Common,
    pub schema: Schema,
    pub part: P,
}

/// What to redo after a pause: the part's own requests, or the lifecycle's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry<R> {
    Grant,
    /// Create (or find) our key again; the create is idempotent.
    Join,
    /// The old lease, before campaigning again under `--restart`.
    Revoke(i64),
    Part(R),
}

/// The hold is ours: what the child is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Won {
    /// The key that is held (`CONCH_KEY`).
    pub key: String,
    /// Its create revision, the fencing token (`CONCH_REV`).
    pub rev: i64,
    /// Words before `rev=` in the "acquired" line.
    pub label: String,
    /// Variables beyond the base `CONCH_*` ones.
    pub env: Vec<(String, String)>,
}

/// What an acquisition part tells the lifecycle.
#[derive(Debug, Clone, PartialEq)]
pub enum Report<R> {
    /// Others are ahead (in words, for the `--nonblock` line).
    Ahead(String),
    Won(Won),
    /// Our key (or slot) is gone: the hold can no longer be trusted.
    Gone(Gone),
    /// A request failed: retry this, or give up if it will not help.
    Failed(Error, Retry<R>),
    /// A holder's re-check failed: the stream recovery retries it.
    Broken(Error),
}

/// One watch answer with at least one deletion in it.
#[derive(Debug, Clone, Copy)]
pub struct Deletions<'a> {
    pub tag: Tag,
    /// The watch answer's revision.
    pub revision: i64,
    pub events: &'a [Event],
}

/// How a hold is acquired: the keys of one recipe and nothing else.
pub trait Acquire {
    type Retry: Copy + Eq + std::fmt::Debug;
    /// What the part is told beyond the name and the schema.
    type Settings;
    fn new(name: &str, schema: Schema, settings: Self::Settings) -> Self;
    /// Creates our key under `lease` (create-only: safe to repeat) with the
    /// holder record as its value, and reads what decides the turn.
    fn join(&mut self, lease: i64, record: String, out: &mut Vec<Action>);
    /// Our key was created and seen.
    fn joined(&self) -> bool;
    fn held(&self) -> bool;
    /// A new campaign under a new lease.
    fn reset(&mut self);
    /// Drops every watch.
    fn unwatch(&self, out: &mut Vec<Action>);
    /// Reads again after a failover or a compaction.
    fn resync(&mut self, out: &mut Vec<Action>);
    fn retry(&mut self, what: Self::Retry, out: &mut Vec<Action>);
    /// After [`Report::Ahead`] when the wrapper waits: watch for the turn.
    fn wait_turn(&mut self, out: &mut Vec<Action>);
    /// A request's answer (`Input::Txn` or `Input::Range`).
    fn answer(&mut self, input: Input, out: &mut Vec<Action>) -> Option<Report<Self::Retry>>;
    /// Deletions seen on one of the part's watches.
    fn deleted(
        &mut self,
        seen: Deletions<'_>,
        out: &mut Vec<Action>,
    ) -> Option<Report<Self::Retry>>;
}

/// Our key in a fresh read: its create revision, and a watch on `tag` for
/// its deletion from just after the read. `None`: the key is gone.
pub fn find_own(read: &RangeResult, key: &str, tag: Tag, out: &mut Vec<Action>) -> Option<i64> {
    let own = read.kvs.iter().find(|kv| kv.key == key.as_bytes())?;
    let spec = WatchSpec::key(key).from_revision(read.revision + 1);
    out.push(Action::Watch(tag, spec.deletes_only()));
    Some(own.create_revision)
}
