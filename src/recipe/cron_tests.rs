//! The cron machine driven by hand-written inputs on a virtual BOOTTIME
//! clock. Wall time is `now + T0` seconds, so boot time 0 is the unix second
//! `T0` (itself a tick of every `@every` job below). Keep-alives are answered
//! at once by the harness; log lines are kept apart from the actions.

use super::*;
use crate::etcd::{Event, KeepAliveAnswer, Lease, OpResult, RangeResult};

const S: fn(u64) -> Duration = Duration::from_secs;
const MS: fn(u64) -> Duration = Duration::from_millis;
/// The unix second at boot time 0: 2027-01-15T08:00:00Z, a whole minute.
const T0: i64 = 1_800_000_000;
const L1: i64 = 0x00c0_0001;
const L2: i64 = 0x00c0_0002;
const NODE: &str = "n1";

fn schema() -> Schema {
    Schema::new("/conch")
}

fn cfg() -> Config {
    Config {
        schema: schema(),
        node: NODE.into(),
        host: "h1".into(),
        pid: 42,
        ttl: S(60),
        kill_after: S(3),
        wall_offset_ms: T0 * 1000,
        labels: vec![],
    }
}

fn job(schedule: &str) -> Job {
    Job {
        schedule: schedule.into(),
        tz: "UTC".into(),
        argv: vec!["backup".into(), "--all".into()],
        overlap_allow: false,
        timeout_ms: None,
        kill_after_ms: 2000,
        keep: 100,
        added_by: "ops@h1".into(),
        added_at_ms: 0,
        ..Default::default()
    }
}

fn allow(mut j: Job) -> Job {
    j.overlap_allow = true;
    j
}

fn tick_key(kind: TickKind, name: &str, tick: i64) -> String {
    schema().cron_tick_key(kind, name, tick)
}

fn fire(name: &str, tick: i64) -> String {
    tick_key(TickKind::Fire, name, tick)
}

fn job_kv(name: &str, value: &str, mod_rev: i64) -> KeyValue {
    KeyValue {
        key: schema().cron_job_key(name).into_bytes(),
        value: value.as_bytes().to_vec(),
        create_revision: mod_rev,
        mod_revision: mod_rev,
        version: 1,
        lease: 0,
    }
}

/// The register txn's answer: the node put, then the job prefix read at
/// `revision` (then the run markers put back, if any).
fn registered(revision: i64, kvs: Vec<KeyValue>) -> Input {
    let jobs = RangeResult {
        revision,
        count: kvs.len() as i64,
        kvs,
    };
    Input::Txn(
        REGISTER,
        Ok(TxnResult {
            revision,
            succeeded: true,
            results: vec![OpResult::Put, OpResult::Range(jobs)],
        }),
    )
}

/// The answer to the read of `cron run` requests: none.
fn no_requests(revision: i64) -> Input {
    Input::Range(
        MANUAL,
        Ok(RangeResult {
            revision,
            count: 0,
            kvs: vec![],
        }),
    )
}

fn won(revision: i64) -> Input {
    Input::Txn(
        CLAIM,
        Ok(TxnResult {
            revision,
            succeeded: true,
            results: vec![OpResult::Put, OpResult::Put],
        }),
    )
}

/// A claim whose compares failed: whether its nested skip txn succeeded,
/// and the fire key as read back.
fn lost(revision: i64, skipped: bool, fire_kv: Option<KeyValue>) -> Input {
    let nested = TxnResult {
        revision,
        succeeded: skipped,
        results: if skipped {
            vec![OpResult::Put, OpResult::Put]
        } else {
            vec![]
        },
    };
    let kvs: Vec<KeyValue> = fire_kv.into_iter().collect();
    let read = RangeResult {
        revision,
        count: kvs.len() as i64,
        kvs,
    };
    Input::Txn(
        CLAIM,
        Ok(TxnResult {
            revision,
            succeeded: false,
            results: vec![OpResult::Txn(nested), OpResult::Range(read)],
        }),
    )
}

fn fire_kv(name: &str, tick: i64, value: &[u8], create: i64) -> KeyValue {
    KeyValue {
        key: fire(name, tick).into_bytes(),
        value: value.to_vec(),
        create_revision: create,
        mod_revision: create,
        version: 1,
        lease: 0,
    }
}

fn other_node(at_ms: u64) -> Vec<u8> {
    Claim {
        node: "n2".into(),
        pid: 7,
        lease: lease_hex(0x0d00_0001),
        at_ms,
        cause: Default::default(),
    }
    .to_json()
    .into_bytes()
}

/// The FINISH txn's answer, with the job's fire keys at `ticks`.
fn finished(revision: i64, name: &str, ticks: &[i64]) -> Input {
    let kvs: Vec<KeyValue> = ticks
        .iter()
        .map(|&t| fire_kv(name, t, b"{}", revision - 1))
        .collect();
    let fires = RangeResult {
        revision,
        count: kvs.len() as i64,
        kvs,
    };
    Input::Txn(
        FINISH,
        Ok(TxnResult {
            revision,
            succeeded: true,
            results: vec![
                OpResult::Put,
                OpResult::Delete { deleted: 1 },
                OpResult::Range(fires),
            ],
        }),
    )
}

fn put_event(name: &str, j: &Job, mod_rev: i64) -> Input {
    let kv = job_kv(name, &j.to_json(), mod_rev);
    let events = vec![Event {
        kind: EventKind::Put,
        kv,
        prev: None,
    }];
    Input::Watch(
        WATCH_JOBS,
        Ok(WatchEvent::Events {
            revision: mod_rev,
            events,
        }),
    )
}

fn delete_event(name: &str, revision: i64) -> Input {
    let kv = KeyValue {
        key: schema().cron_job_key(name).into_bytes(),
        mod_revision: revision,
        ..KeyValue::default()
    };
    let events = vec![Event {
        kind: EventKind::Delete,
        kv,
        prev: None,
    }];
    Input::Watch(WATCH_JOBS, Ok(WatchEvent::Events { revision, events }))
}

/// The claim txns among `acts`, those batched into one request included.
fn claims(acts: &[Action]) -> Vec<&Txn> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Txn(CLAIM, t) => Some(t),
            _ => None,
        })
        .flat_map(batch::unbatch)
        .collect()
}

/// The (job, tick) a claim txn is for, from its fire-key compare.
fn claim_target(t: &Txn) -> (String, i64) {
    let dir = schema().cron_job_dir().replace("/cron/job/", "/cron/fire/");
    let key = std::str::from_utf8(&t.compare[1].key).expect("utf-8");
    let (name, tick) = key
        .strip_prefix(&dir)
        .and_then(|r| r.split_once('/'))
        .expect("a fire key");
    let name = crate::keys::decode_name(name).expect("name");
    (name, parse_tick(tick).expect("tick"))
}

fn claimed(acts: &[Action]) -> Vec<(String, i64)> {
    claims(acts).into_iter().map(claim_target).collect()
}

/// The value the claim wrote to its fire key.
fn fire_value(t: &Txn) -> Vec<u8> {
    match &t.success[0] {
        Op::Put { value, .. } => value.clone(),
        op => panic!("not a put: {op:?}"),
    }
}

fn the_spawn(acts: &[Action]) -> (Tag, SpawnSpec) {
    let spawns: Vec<_> = acts
        .iter()
        .filter_map(|a| match a {
            Action::Spawn(tag, spec) => Some((*tag, spec.clone())),
            _ => None,
        })
        .collect();
    let [one] = &spawns[..] else {
        panic!("not exactly one Spawn in {acts:?}");
    };
    one.clone()
}

fn has_spawn(acts: &[Action]) -> bool {
    acts.iter().any(|a| matches!(a, Action::Spawn(..)))
}

fn env<'a>(spec: &'a SpawnSpec, k: &str) -> &'a str {
    let (_, v) = spec.env.iter().find(|(n, _)| n == k).expect(k);
    v
}

/// The one FINISH txn among `acts`, and the result it records.
fn the_finish(acts: &[Action]) -> (Txn, RunResult) {
    let [Action::Txn(FINISH, t)] = acts else {
        panic!("not one FINISH: {acts:?}");
    };
    let Op::Put { value, lease, .. } = &t.success[0] else {
        panic!("{t:?}");
    };
    assert_eq!(*lease, 0, "results are permanent");
    (t.clone(), RunResult::from_json(value).expect("a result"))
}

/// The machines' one harness, with what a daemon's tests add: its log
/// lines kept for `logged`, keep-alives answered at once.
struct Harness {
    inner: crate::recipe::harness::Harness<Cron>,
    logs: Vec<String>,
}

impl std::ops::Deref for Harness {
    type Target = crate::recipe::harness::Harness<Cron>;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl std::ops::DerefMut for Harness {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

impl Harness {
    fn new(cfg: Config) -> Harness {
        Harness {
            inner: crate::recipe::harness::Harness::of(Cron::new(cfg)),
            logs: Vec::new(),
        }
    }

    /// Start, lease `L1`, and the register answer at t=0 with `jobs` (mod
    /// revisions 5, 6, ...; store revision 20).
    fn serving(cfg: Config, jobs: &[(&str, &Job)]) -> Harness {
        let mut h = Harness::new(cfg);
        h.step(Input::Start, S(0));
        let ttl = h.ttl();
        h.step(Input::Granted(Ok(Lease { id: L1, ttl })), S(0));
        let kvs = jobs
            .iter()
            .zip(5..)
            .map(|((n, j), rev)| job_kv(n, &j.to_json(), rev))
            .collect();
        let acts = h.step(registered(20, kvs), S(0));
        assert!(
            matches!(
                acts[..],
                [Action::Watch(WATCH_JOBS, _), Action::Range(MANUAL, _)]
            ),
            "{acts:?}"
        );
        let acts = h.step(no_requests(20), S(0));
        assert!(
            matches!(acts[..], [Action::Watch(WATCH_MANUAL, _)]),
            "{acts:?}"
        );
        h.logs.clear();
        h
    }

    fn ttl(&self) -> i64 {
        self.m.cfg.ttl.as_secs() as i64
    }

    fn raw(&mut self, input: Input, now: Duration) -> Vec<Action> {
        let (acts, logs) = self.inner.step_logged(input, now);
        self.logs.extend(logs);
        acts
    }

    /// One input at `now`: its actions without log lines; a keep-alive it
    /// sends is answered at once (and left out).
    fn step(&mut self, input: Input, now: Duration) -> Vec<Action> {
        let mut acts = self.raw(input, now);
        while let Some(i) = acts.iter().position(|a| *a == Action::KeepAliveSend) {
            acts.remove(i);
            let answer = KeepAliveAnswer {
                ttl: self.ttl(),
                sent_at: now,
            };
            let more = self.raw(Input::KeepAlive(Ok(answer)), now);
            acts.extend(more);
        }
        acts
    }

    /// Timers at every deadline before `t`, then one at `t`: all actions.
    fn run_to(&mut self, t: Duration) -> Vec<Action> {
        let mut acts = Vec::new();
        while let Some(d) = self.m.deadline().filter(|d| *d > self.now && *d < t) {
            acts.extend(self.step(Input::Timer, d));
        }
        acts.extend(self.step(Input::Timer, t));
        acts
    }

    fn logged(&mut self, what: &str) -> bool {
        let hit = self.logs.iter().any(|l| l.contains(what));
        self.logs.clear();
        hit
    }

    /// The tick's claim is made at its instant and won at revision `rev`:
    /// the child's tag, confirmed as started.
    fn win(&mut self, at: Duration, rev: i64) -> Tag {
        let acts = self.run_to(at);
        assert_eq!(claims(&acts).len(), 1, "{acts:?}");
        let (tag, _) = the_spawn(&self.step(won(rev), at));
        self.step(Input::Spawned(tag, 1000 + u32::from(tag)), at);
        tag
    }

    fn next_of(&self, name: &str) -> Option<i64> {
        self.m.jobs[name].next
    }
}

#[test]
fn start_registers_reads_the_jobs_and_watches_from_the_next_revision() {
    let mut h = Harness::new(cfg());
    assert_eq!(h.step(Input::Start, S(0)), [Action::Grant { ttl: 60 }]);
    let acts = h.step(Input::Granted(Ok(Lease { id: L1, ttl: 60 })), S(0));
    let [Action::KeepAliveOpen(L1), Action::Txn(REGISTER, txn)] = &acts[..] else {
        panic!("{acts:?}");
    };
    assert!(txn.compare.is_empty());
    let [Op::Put { key, value, lease }, Op::Get(jobs), Op::Get(nodes)] = &txn.success[..] else {
        panic!("{txn:?}");
    };
    assert_eq!(key, schema().cron_node_key(NODE).as_bytes());
    assert_eq!(*lease, L1, "the node key lives on the lease");
    let node = String::from_utf8(value.clone()).expect("utf-8");
    assert!(node.contains(r#""host":"h1""#) && node.contains(r#""pid":42"#));
    assert_eq!(*jobs, Range::prefix(schema().cron_job_dir()));
    assert_eq!(*nodes, Range::prefix(schema().cron_node_dir()));

    let kvs = vec![
        job_kv("tenner", &job("@every 10s").to_json(), 5),
        job_kv("broken", "{not json", 6),
    ];
    // The jobs are read at exactly T0, itself a tick: it was due at start.
    let acts = h.step(registered(20, kvs), S(0));
    let spec = WatchSpec::prefix(schema().cron_job_dir()).from_revision(21);
    let requests = Range::prefix(schema().cron_manual_dir());
    assert_eq!(
        acts,
        [
            Action::Watch(WATCH_JOBS, spec),
            Action::Range(MANUAL, requests)
        ]
    );
    assert!(h.logged("job broken skipped: invalid definition"));
    assert_eq!(h.m.jobs.keys().collect::<Vec<_>>(), ["tenner"]);
    assert_eq!(h.m.deadline(), Some(S(10)), "the first tick after now");
    assert!(h.run_to(S(10) - MS(1)).is_empty(), "T0 is never claimed");
}

#[test]
fn at_the_tick_one_claim_guards_the_definition_the_fire_key_and_the_runs() {
    let mut h = Harness::serving(cfg(), &[("backup", &job("@every 10s"))]);
    let acts = h.run_to(S(10));
    let [Action::Txn(CLAIM, t)] = &acts[..] else {
        panic!("{acts:?}");
    };
    let tick = T0 + 10;
    let (f, run) = (
        fire("backup", tick),
        tick_key(TickKind::Run, "backup", tick),
    );
    let definition = Compare::key(
        schema().cron_job_key("backup"),
        CmpOp::Equal,
        Target::ModRevision(5),
    );
    let no_run = Compare::prefix_empty(schema().cron_tick_dir(TickKind::Run, "backup"));
    assert_eq!(t.compare, [definition, Compare::absent(f.clone()), no_run]);
    let [Op::Put {
        key: k1,
        value: v1,
        lease: 0,
    }, Op::Put {
        key: k2,
        value: v2,
        lease: L1,
    }] = &t.success[..]
    else {
        panic!("fire key without a lease, run marker on it: {t:?}");
    };
    assert_eq!((k1, k2), (&f.clone().into_bytes(), &run.into_bytes()));
    let marker = Claim {
        node: NODE.into(),
        pid: 42,
        lease: lease_hex(L1),
        at_ms: (tick * 1000) as u64,
        cause: Default::default(),
    };
    assert_eq!((Claim::from_json(v1), v2), (marker, v1));

    let [Op::Txn(skip), Op::Get(read), Op::Get(read_result)] = &t.failure[..] else {
        panic!("{t:?}");
    };
    assert_eq!(*read, Range::key(f.clone()));
    assert_eq!(
        *read_result,
        Range::key(tick_key(TickKind::Result, "backup", tick)),
        "a retry tells its own recorded skip from its own claim"
    );
    assert_eq!(skip.compare, t.compare[..2], "no run-prefix guard inside");
    assert!(skip.failure.is_empty());
    let [Op::Put {
        key: k1,
        value: v,
        lease: 0,
    }, Op::Put {
        key: k2,
        value: r,
        lease: 0,
    }] = &skip.success[..]
    else {
        panic!("{skip:?}");
    };
    assert_eq!((k1, v), (&f.into_bytes(), v1));
    assert_eq!(k2, tick_key(TickKind::Result, "backup", tick).as_bytes());
    let r = RunResult::from_json(r).expect("result");
    assert_eq!((r.outcome, r.node.as_str()), (Outcome::Skipped, NODE));

    assert!(h.step(Input::Timer, S(10)).is_empty(), "one claim per tick");
    assert_eq!(h.next_of("backup"), Some(T0 + 20));
}

#[test]
fn overlap_allow_claims_without_the_run_guard_and_without_a_nested_skip() {
    let mut h = Harness::serving(cfg(), &[("backup", &allow(job("@every 10s")))]);
    let acts = h.run_to(S(10));
    let [Action::Txn(CLAIM, t)] = &acts[..] else {
        panic!("{acts:?}");
    };
    let f = fire("backup", T0 + 10);
    assert_eq!(t.compare.len(), 2);
    assert_eq!(t.compare[1], Compare::absent(f.clone()));
    assert_eq!(
        t.failure,
        [
            Op::Get(Range::key(f)),
            Op::Get(Range::key(tick_key(TickKind::Result, "backup", T0 + 10)))
        ]
    );
}

#[path = "cron_tests_batch.rs"]
mod batch;
#[path = "cron_tests_claim.rs"]
mod claim;
#[path = "cron_tests_faults.rs"]
mod faults;
#[path = "cron_tests_fleet.rs"]
mod fleet;
#[path = "cron_tests_life.rs"]
mod life;
#[path = "cron_tests_ops.rs"]
mod ops;
#[path = "cron_tests_prop.rs"]
mod prop;
#[path = "cron_tests_stats.rs"]
mod stats;
#[path = "cron_tests_zombie.rs"]
mod zombie;
