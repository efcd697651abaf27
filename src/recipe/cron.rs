//! `conchd` as a sans-IO machine (docs/cron.md): one lease and a node key,
//! every job read once and then watched, one create-only claim per tick so
//! that exactly one daemon of the fleet runs it, results recorded and
//! history trimmed. Runs are not self-fenced: a claimed tick is claimed for
//! good, so a lost lease is re-granted and the run markers put back on it.
//!
//! This file holds the state and the event dispatch; the ideas live beside
//! it: jobs and ticks (`cron_jobs.rs`), the claim (`cron_claim.rs`), who
//! claims (`cron_rank.rs`), requests sent together (`cron_batch.rs`),
//! results and trimming (`cron_results.rs`), the daemon's lease
//! (`cron_lease.rs`), stopping (`cron_stop.rs`).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use crate::etcd::{
    CmpOp, Compare, Error, EventKind, KeyValue, Op, Range, Target, Txn, TxnResult, WatchEvent,
    WatchSpec,
};
use crate::keys::{lease_hex, parse_tick, Schema, TickKind};
use crate::kit::machine::{Action, ChildStatus, Input, Level, Machine, SpawnSpec, Tag};
use crate::kit::session::Session;
use crate::kit::signal;
use crate::kit::supervise::{Ended, Supervisor};
use crate::record::cron::{Cause, Claim, Job, Node, Outcome, RunResult};
use crate::schedule::{fmt_rfc3339_utc, next_tick, Schedule, Zone};

/// Request tags; answers come back in the order requests were made, so a
/// queue per tag pairs them with what they were for.
const REGISTER: Tag = 1;
const CLAIM: Tag = 2;
const FINISH: Tag = 3;
const TRIM: Tag = 4;
const JOBS: Tag = 5;
/// A run marker put back on the lease that replaced its claim's.
const MARKER: Tag = 6;
/// The node prefix read again after its watch ended.
const NODES: Tag = 7;
/// A backup's read of a fire key at its turn (cron_rank.rs).
const CHECK: Tag = 8;
/// The watches: job definitions, and the live daemons.
/// Run markers read as they were before a daemon's lease went, and the
/// create-only zombie records (cron_zombie.rs).
const ZOMBIES: Tag = 10;
const ZOMBIE: Tag = 11;
const WATCH_JOBS: Tag = 1;
/// `cron run` requests: read once, then watched.
const MANUAL: Tag = 9;
const WATCH_MANUAL: Tag = 2;
const WATCH_NODES: Tag = 3;

const MAX_GRACE_SECS: i64 = 30;
/// The least time a blocking call is given, even when something is due.
const CALL_FLOOR: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub struct Config {
    pub schema: Schema,
    pub node: String,
    pub host: String,
    pub pid: u32,
    pub ttl: Duration,
    pub kill_after: Duration,
    /// Unix ms minus BOOTTIME ms, measured at start; updated by
    /// `Input::ClockStep`.
    pub wall_offset_ms: i64,
    /// `conchd --label KEY=VALUE`, sorted: registered with the node and
    /// matched against each job's placement.
    pub labels: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub(super) struct JobState {
    job: Job,
    mod_rev: i64,
    schedule: Schedule,
    zone: Zone,
    /// The next tick to claim (unix seconds).
    next: Option<i64>,
}

#[derive(Debug)]
struct Run {
    name: String,
    tick: i64,
    start_ms: i64,
    keep: u32,
    child: Supervisor,
    timeout_at: Option<Duration>,
    timed_out: bool,
    /// The job's `--on-failure` argv, run once if this run ends badly.
    on_failure: Vec<String>,
    /// This is a failure hook, not a run: no marker, no result.
    hook: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    ExpectLease,
    ExpectRegister,
    Serving,
    ExpectRevoke,
    Done,
}

pub struct Cron {
    cfg: Config,
    state: State,
    session: Session,
    jobs: BTreeMap<String, JobState>,
    runs: BTreeMap<Tag, Run>,
    /// Claims (and cleanups) in flight, in the order they were sent: one
    /// request each, or several batched into one (`flush_claims`).
    claims: VecDeque<Vec<Pending>>,
    /// Claims of this step, sent together at its end.
    outbox: Vec<(Txn, Pending)>,
    /// Claims waiting to be sent again, with when.
    retries: Vec<(Duration, Pending)>,
    /// Results in flight: one request each, or several batched into one.
    finishes: VecDeque<Vec<Finish>>,
    /// Results held to go with the others of this daemon, and since when.
    ended: Vec<Finish>,
    ended_since: Option<Duration>,
    /// Results etcd did not take, with when to try again.
    unrecorded: Vec<(Duration, Finish)>,
    shutting_down: Option<i32>,
    started_ms: i64,
    /// 0, or 69 once etcd refused the daemon for good.
    exit_code: i32,
    /// Failed grants in a row, and when to ask again.
    grant_attempts: u32,
    grant_at: Option<Duration>,
    /// The latest wall time (unix ms) at which ticks were considered.
    seen_ms: i64,
    /// The `now` of the latest step.
    stepped_at: Duration,
    /// `cron run` requests seen and not yet deleted: (job, tick).
    manual: std::collections::BTreeSet<(String, i64)>,
    stats: Stats,
    /// The live daemons by node ID, this one included once registered.
    nodes: BTreeMap<String, Node>,
    /// Ticks this daemon claims only if the daemons ranked before it did
    /// not, with the wall ms of its turn.
    staggered: Vec<(i64, Pending)>,
    /// Those whose fire key is being read, in the order asked.
    checks: VecDeque<Pending>,
    /// Per job: (its next tick, its mod revision) and the wall ms of this
    /// daemon's turn at that tick, `None` for no turn; the daemon wakes
    /// only for its turns.
    turns: BTreeMap<String, ((i64, i64), Option<i64>)>,
    /// The node set changed since the turns were computed.
    nodes_changed: bool,
    /// The number of jobs when the turns were computed (it sets the claim
    /// groups, cron_rank.rs).
    turns_jobs: usize,
    /// Gone daemons whose run markers are being read, in the order asked.
    zombie_reads: VecDeque<String>,
    /// Zombie records sent: (job, tick, the gone daemon).
    zombie_txns: VecDeque<(String, i64, String)>,
}

impl Cron {
    pub fn new(cfg: Config) -> Cron {
        Cron {
            session: Session::new(cfg.ttl, cfg.kill_after),
            started_ms: 0,
            exit_code: 0,
            cfg,
            state: State::Done,
            jobs: BTreeMap::new(),
            runs: BTreeMap::new(),
            claims: VecDeque::new(),
            outbox: Vec::new(),
            retries: Vec::new(),
            grant_attempts: 0,
            grant_at: None,
            finishes: VecDeque::new(),
            ended: Vec::new(),
            ended_since: None,
            unrecorded: Vec::new(),
            shutting_down: None,
            seen_ms: i64::MIN,
            stepped_at: Duration::ZERO,
            manual: Default::default(),
            stats: Stats::default(),
            nodes: BTreeMap::new(),
            staggered: Vec::new(),
            checks: VecDeque::new(),
            turns: BTreeMap::new(),
            nodes_changed: false,
            turns_jobs: 0,
            zombie_reads: VecDeque::new(),
            zombie_txns: VecDeque::new(),
        }
    }

    fn log(out: &mut Vec<Action>, level: Level, msg: String) {
        out.push(Action::Log(level, msg));
    }

    fn wall_ms(&self, now: Duration) -> i64 {
        now.as_millis() as i64 + self.cfg.wall_offset_ms
    }

    /// The latest wall time seen, in whole seconds. Every tick up to it was
    /// claimed, missed, or due before its job was known, so next ticks come
    /// after it even when the wall clock is stepped back: a tick claimed
    /// twice by one daemon would pass for a retried claim and run twice.
    fn seen_s(&mut self, now: Duration) -> i64 {
        self.seen_ms = self.seen_ms.max(self.wall_ms(now));
        self.seen_ms.div_euclid(1000)
    }

    /// The value of a fire key or run marker made with `lease`.
    fn marker_on(&self, lease: i64, now: Duration) -> String {
        self.marker_for(lease, now, Default::default())
    }

    /// The same, saying why the tick was claimed.
    fn marker_for(&self, lease: i64, now: Duration, cause: Cause) -> String {
        Claim {
            node: self.cfg.node.clone(),
            pid: u64::from(self.cfg.pid),
            lease: lease_hex(lease),
            at_ms: u64::try_from(self.wall_ms(now)).unwrap_or(0),
            cause,
        }
        .to_json()
    }

    fn free_tag(&self) -> Option<Tag> {
        (1..=Tag::MAX).find(|t| !self.runs.contains_key(t))
    }

    fn run_by_tag(&mut self, tag: Tag) -> Option<&mut Run> {
        self.runs.get_mut(&tag)
    }

    /// What this daemon counted since it started.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Registered, with a lease etcd still confirms.
    pub fn serving(&self) -> bool {
        self.state == State::Serving && !self.session.is_lost()
    }

    pub fn runs_in_progress(&self) -> usize {
        self.runs.len()
    }
}

impl Machine for Cron {
    fn step(&mut self, input: Input, now: Duration) -> Vec<Action> {
        self.stepped_at = now;
        let mut out = Vec::new();
        match input {
            Input::Start => {
                self.started_ms = self.wall_ms(now);
                self.state = State::ExpectLease;
                self.session.grant(now, &mut out);
            }
            Input::Granted(r) if self.state == State::ExpectLease => {
                self.on_granted(r, now, &mut out)
            }
            Input::Txn(REGISTER, r) if self.state == State::ExpectRegister => match r {
                Ok(t) => {
                    self.state = State::Serving;
                    if let Some(nodes) = t.range(2).cloned() {
                        self.on_nodes(&nodes.kvs, nodes.revision, &mut out);
                    }
                    if let Some(jobs) = t.range(1).cloned() {
                        self.on_jobs(&jobs.kvs, jobs.revision, now, &mut out);
                    }
                    self.catch_up(now, &mut out);
                    self.read_manual(&mut out);
                    Self::log(
                        &mut out,
                        Level::Info,
                        format!("node {} serving {} job(s)", self.cfg.node, self.jobs.len()),
                    );
                }
                Err(e) => {
                    Self::log(&mut out, Level::Error, format!("cannot register: {e}"));
                    self.on_read_error(&e, now, &mut out);
                }
            },
            Input::Txn(CLAIM, r) => self.on_claim(r, now, &mut out),
            Input::Txn(MARKER, Err(e)) => Self::log(
                &mut out,
                Level::Error,
                format!("cannot put a run marker on the new lease: {e}"),
            ),
            Input::Txn(FINISH, r) => {
                self.on_finished(r, now, &mut out);
                self.maybe_exit(&mut out);
            }
            Input::Range(JOBS, Ok(r)) => self.on_jobs(&r.kvs, r.revision, now, &mut out),
            Input::Range(JOBS, Err(e)) => self.on_read_error(&e, now, &mut out),
            Input::Range(MANUAL, r) => self.on_manual_read(r, now, &mut out),
            Input::Watch(WATCH_MANUAL, r) => self.on_manual_watch(r, now, &mut out),
            Input::Range(NODES, Ok(r)) => self.on_nodes(&r.kvs, r.revision, &mut out),
            Input::Range(NODES, Err(e)) => self.on_read_error(&e, now, &mut out),
            Input::Range(CHECK, r) => self.on_check(r, now, &mut out),
            Input::Range(ZOMBIES, r) => self.on_zombie_read(r, now, &mut out),
            Input::Txn(ZOMBIE, r) => self.on_zombie_recorded(r, now, &mut out),
            Input::Watch(WATCH_JOBS, r) => self.on_watch(r, now, &mut out),
            Input::Watch(WATCH_NODES, r) => self.on_node_watch(r, now, &mut out),
            Input::KeepAlive(r) => {
                if let Some(why) = self.session.on_keepalive(r, now, &mut out) {
                    self.on_lease_lost(&why.0, now, &mut out);
                }
            }
            Input::Reconnected(r) => {
                let back = self.session.on_reconnected(r, now, &mut out);
                if back {
                    self.stats.reconnected();
                }
                if back && self.state == State::ExpectRegister {
                    // The register txn failed: send it again.
                    self.register(now, &mut out);
                } else if back {
                    out.push(Action::Range(
                        JOBS,
                        Range::prefix(self.cfg.schema.cron_job_dir()),
                    ));
                    self.read_manual(&mut out);
                    out.push(Action::Range(
                        NODES,
                        Range::prefix(self.cfg.schema.cron_node_dir()),
                    ));
                }
            }
            Input::Revoked(_) if self.state == State::ExpectRevoke => {
                Self::log(&mut out, Level::Info, "stopped".into());
                self.state = State::Done;
                out.push(Action::Exit(self.exit_code));
            }
            Input::Spawned(tag, _) => {
                if let Some(run) = self.run_by_tag(tag) {
                    run.child.spawned(now);
                }
            }
            Input::SpawnFailed(tag, code, why) => {
                Self::log(&mut out, Level::Error, why);
                if let Some(run) = self.run_by_tag(tag) {
                    let ended = run.child.spawn_failed(code);
                    self.on_run_ended(tag, ended, now, &mut out);
                }
            }
            Input::ChildExited(tag, status) => {
                if let Some(run) = self.run_by_tag(tag) {
                    run.child.exited(status, now, &mut out);
                }
            }
            Input::ChildrenGone(tag) => {
                if let Some(ended) = self.run_by_tag(tag).and_then(|r| r.child.gone()) {
                    self.on_run_ended(tag, ended, now, &mut out);
                }
            }
            Input::Signal(sig) => self.on_signal(sig, now, &mut out),
            Input::ClockStep(offset) => {
                Self::log(
                    &mut out,
                    Level::Info,
                    format!(
                        "wall clock stepped by {}ms; recomputing ticks",
                        offset - self.cfg.wall_offset_ms
                    ),
                );
                self.cfg.wall_offset_ms = offset;
                let now_s = self.seen_s(now);
                for js in self.jobs.values_mut() {
                    js.next = next_tick(&js.schedule, &js.zone, now_s);
                }
            }
            Input::Granted(_)
            | Input::Txn(..)
            | Input::Range(..)
            | Input::Revoked(_)
            | Input::Watch(..)
            | Input::Timer => {}
        }
        self.on_time(now, &mut out);
        // After every input, every request it made: the claims of one step
        // go out together.
        self.flush_claims(&mut out);
        out
    }

    fn deadline(&self) -> Option<Duration> {
        self.wake_at()
    }

    fn must_act_by(&self) -> Option<Duration> {
        self.calls_end_by()
    }
}

#[path = "cron_batch.rs"]
mod batch;
#[path = "cron_catchup.rs"]
mod catchup;
#[path = "cron_claim.rs"]
mod claim;
#[path = "cron_hook.rs"]
mod hook;
#[path = "cron_jobs.rs"]
mod jobs;
#[path = "cron_lease.rs"]
mod lease;
#[path = "cron_manual.rs"]
mod manual;
#[path = "cron_nodes.rs"]
mod nodes;
#[path = "cron_rank.rs"]
pub mod rank;
#[path = "cron_results.rs"]
mod results;
#[path = "cron_stats.rs"]
pub mod stats;
#[path = "cron_stop.rs"]
mod stop;
#[path = "cron_time.rs"]
mod time;
#[path = "cron_zombie.rs"]
mod zombie;

use batch::FINISH_HOLD;
use claim::Pending;
use results::Finish;
pub use results::SKEW_BOUND_SECS;
use stats::Stats;

#[cfg(test)]
#[path = "cron_tests.rs"]
mod tests;
