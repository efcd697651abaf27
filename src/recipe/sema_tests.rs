//! The sema machine driven by hand-written event sequences on a virtual
//! clock. Log actions are filtered out: the assertions are on what is done.

use super::*;
use crate::etcd::{KeepAliveAnswer, KeyValue, Lease, OpResult};
use crate::kit::machine::ChildStatus;
use crate::kit::wait::Wait;
use crate::recipe::harness::{assert_env, common, deletes, MS, S};
use crate::recipe::hold::Common;
use crate::record::Holder;
use std::time::Duration;

/// This wrapper's lease, and the other contenders'.
const ME: i64 = 0x694d_0009;
const A: i64 = 0x694d_0001;
const B: i64 = 0x694d_0002;
const C: i64 = 0x694d_0003;
const Z: i64 = 0x694d_00ff;

fn cfg(max: u32) -> Config {
    Config {
        hold: common("gpu", &["train", "--epochs=1"]),
        schema: Schema::new("/conch"),
        part: max,
    }
}

/// The hold's settings of `cfg`, changed by `f`.
fn with(cfg: Config, f: impl FnOnce(&mut Common)) -> Config {
    let mut cfg = cfg;
    f(&mut cfg.hold);
    cfg
}

fn kv(key: String, value: Vec<u8>, create: i64, lease: i64) -> KeyValue {
    KeyValue {
        key: key.into_bytes(),
        value,
        create_revision: create,
        mod_revision: create,
        version: 1,
        lease,
    }
}

fn range(revision: i64, kvs: Vec<KeyValue>) -> RangeResult {
    RangeResult {
        revision,
        count: kvs.len() as i64,
        kvs,
    }
}

fn claimed(revision: i64) -> Input {
    Input::Txn(
        CLAIM,
        Ok(TxnResult {
            revision,
            succeeded: true,
            results: vec![OpResult::Put],
        }),
    )
}

fn unavailable() -> Error {
    Error::new(ErrorKind::Unavailable, "txn", "no leader")
}

fn ka(sent_at: Duration, ttl: i64) -> Input {
    Input::KeepAlive(Ok(KeepAliveAnswer { ttl, sent_at }))
}

fn key_watch(k: &str, from: i64) -> WatchSpec {
    WatchSpec::key(k).from_revision(from).deletes_only()
}

fn resign(lease: i64) -> Vec<Action> {
    vec![
        Action::Unwatch(QUEUE),
        Action::Unwatch(OWN),
        Action::Unwatch(SLOTS),
        Action::KeepAliveClose,
        Action::Revoke(lease),
    ]
}

fn env_of(acts: &[Action]) -> Vec<(String, String)> {
    match acts.iter().find(|a| matches!(a, Action::Spawn(0, _))) {
        Some(Action::Spawn(0, spec)) => spec.env.clone(),
        _ => panic!("no Spawn in {acts:?}"),
    }
}

fn var(acts: &[Action], name: &str) -> String {
    let env = env_of(acts);
    let v = env.iter().find(|(k, _)| k == name);
    v.unwrap_or_else(|| panic!("no {name} in {env:?}"))
        .1
        .clone()
}

fn no_txn(acts: &[Action]) -> bool {
    !acts.iter().any(|a| matches!(a, Action::Txn(..)))
}

type Harness = crate::recipe::harness::Harness<Sema>;

impl Harness {
    fn new(cfg: Config) -> Harness {
        Harness::of(Sema::new(cfg))
    }

    fn qdir(&self) -> String {
        Schema::new("/conch").sema_queue_dir("gpu", self.m.part.max)
    }

    fn qkey(&self, lease: i64) -> String {
        Schema::new("/conch").sema_queue_key("gpu", self.m.part.max, lease)
    }

    fn sdir(&self) -> String {
        Schema::new("/conch").sema_slot_dir("gpu", self.m.part.max)
    }

    fn skey(&self, i: u32) -> String {
        Schema::new("/conch").sema_slot_key("gpu", self.m.part.max, i)
    }

    /// The queue as etcd lists it: (lease, create_revision) per contender.
    fn queue(&self, revision: i64, cands: &[(i64, i64)]) -> RangeResult {
        let kvs = cands
            .iter()
            .map(|&(l, c)| kv(self.qkey(l), b"{}".to_vec(), c, l))
            .collect();
        range(revision, kvs)
    }

    /// The slots: (index, owner lease, create_revision).
    fn slots(&self, revision: i64, slots: &[(u32, i64, i64)]) -> RangeResult {
        let kvs = slots
            .iter()
            .map(|&(i, l, c)| kv(self.skey(i), lease_hex(l).into_bytes(), c, l))
            .collect();
        range(revision, kvs)
    }

    /// A join txn whose create succeeded: Put, then the two reads.
    fn joined(&self, rev: i64, cands: &[(i64, i64)], slots: &[(u32, i64, i64)]) -> Input {
        let results = vec![
            OpResult::Put,
            OpResult::Range(self.queue(rev, cands)),
            OpResult::Range(self.slots(rev, slots)),
        ];
        Input::Txn(
            JOIN,
            Ok(TxnResult {
                revision: rev,
                succeeded: true,
                results,
            }),
        )
    }

    /// A failed claim: its else-branch reads the slots and our queue key.
    fn claim_failed(&self, rev: i64, slots: &[(u32, i64, i64)], own: Option<i64>) -> Input {
        let own: Vec<_> = own.iter().map(|&c| (ME, c)).collect();
        let results = vec![
            OpResult::Range(self.slots(rev, slots)),
            OpResult::Range(self.queue(rev, &own)),
        ];
        Input::Txn(
            CLAIM,
            Ok(TxnResult {
                revision: rev,
                succeeded: false,
                results,
            }),
        )
    }

    /// The claim of slot `i` expected from a contender created at `own_rev`.
    fn claim_txn(&self, i: u32, own_rev: i64) -> Action {
        Action::Txn(
            CLAIM,
            Txn {
                compare: vec![
                    Compare::key(self.qkey(ME), CmpOp::Equal, Target::CreateRevision(own_rev)),
                    Compare::absent(self.skey(i)),
                ],
                success: vec![Op::put(self.skey(i), lease_hex(ME), ME)],
                failure: vec![
                    Op::Get(Range::prefix(self.sdir())),
                    Op::Get(Range::key(self.qkey(ME))),
                ],
            },
        )
    }

    fn queue_watch(&self, from: i64) -> Action {
        let spec = WatchSpec::prefix(self.qdir()).from_revision(from);
        Action::Watch(QUEUE, spec.deletes_only())
    }

    /// Start and grant at `self.now`, then the join answer read at `rev`,
    /// given at `now`: that answer's actions.
    fn join(
        &mut self,
        rev: i64,
        cands: &[(i64, i64)],
        slots: &[(u32, i64, i64)],
        now: Duration,
    ) -> Vec<Action> {
        let ttl = self.m.cfg.ttl.as_secs() as i64;
        assert_eq!(self.step(Input::Start, self.now), [Action::Grant { ttl }]);
        let acts = self.step(Input::Granted(Ok(Lease { id: ME, ttl })), self.now);
        assert_eq!(acts[0], Action::KeepAliveOpen(ME));
        let answer = self.joined(rev, cands, slots);
        self.step(answer, now)
    }

    /// Alone in the queue (created at 10), slot 0 claimed at `rev` at t=0,
    /// child confirmed.
    fn holder(&mut self, rev: i64) -> Vec<Action> {
        let acts = self.join(11, &[(ME, 10)], &[], self.now);
        assert_eq!(acts[1], self.claim_txn(0, 10));
        let acts = self.step(claimed(rev), self.now);
        assert_eq!(var(&acts, "CONCH_REV"), rev.to_string());
        assert!(self.step(Input::Spawned(0, 100), self.now).is_empty());
        acts
    }
}

#[test]
fn uncontended_max_2_claims_slot_0_and_runs_the_child_under_it() {
    let mut h = Harness::new(cfg(2));
    let qkey = "/conch/v1/sema/gpu/2/q/00000000694d0009";
    let skey = "/conch/v1/sema/gpu/2/slot/0";
    assert_eq!((h.qkey(ME).as_str(), h.skey(0).as_str()), (qkey, skey));
    assert_eq!(h.step(Input::Start, S(0)), [Action::Grant { ttl: 10 }]);
    let acts = h.step(Input::Granted(Ok(Lease { id: ME, ttl: 10 })), MS(5));
    let [Action::KeepAliveOpen(ME), Action::Txn(JOIN, txn)] = &acts[..] else {
        panic!("{acts:?}");
    };
    assert_eq!(txn.compare, [Compare::absent(qkey)]);
    let Op::Put { key, value, lease } = &txn.success[0] else {
        panic!("{txn:?}");
    };
    assert_eq!((key.as_slice(), *lease), (qkey.as_bytes(), ME));
    let holder = Holder::from_json(value).expect("holder json");
    assert_eq!((holder.host.as_deref(), holder.pid), (Some("h1"), Some(42)));
    assert_eq!(holder.argv, ["train", "--epochs=1"]);
    let reads = [
        Op::Get(Range::prefix(h.qdir()).by_create()),
        Op::Get(Range::prefix(h.sdir())),
    ];
    assert_eq!(txn.success[1..], reads);
    assert_eq!(txn.failure, reads);

    // Rank 0: the lowest slot, only while our queue key is the one we made.
    let acts = h.step(h.joined(17, &[(ME, 16)], &[]), MS(10));
    assert_eq!(
        acts,
        [Action::Watch(OWN, key_watch(qkey, 18)), h.claim_txn(0, 16)]
    );
    let acts = h.step(claimed(20), MS(15));
    assert_eq!(
        acts[..2],
        [
            Action::Unwatch(QUEUE),
            Action::Watch(SLOTS, key_watch(skey, 21))
        ]
    );
    let Some(Action::Spawn(0, spec)) = acts.last() else {
        panic!("{acts:?}");
    };
    assert_eq!(spec.argv, cfg(2).hold.argv);
    let env = [
        ("CONCH_NAME", "gpu"),
        ("CONCH_KEY", skey),
        ("CONCH_LEASE", "00000000694d0009"),
        ("CONCH_REV", "20"),
        ("CONCH_SLOT", "0"),
        ("CONCH_MAX", "2"),
    ];
    assert_env(&spec.env, &env);
}

#[test]
fn claims_the_lowest_free_slot_and_retries_with_the_next_after_a_conflict() {
    let mut h = Harness::new(cfg(4));
    let acts = h.join(20, &[(A, 10), (ME, 12)], &[(0, A, 11), (2, B, 5)], MS(5));
    assert_eq!(acts[1..], [h.claim_txn(1, 12)]);
    // Someone took slot 1 meanwhile: the else-branch shows 0, 1, 2.
    let lost_race = h.claim_failed(30, &[(0, A, 11), (1, C, 25), (2, B, 5)], Some(12));
    assert_eq!(h.step(lost_race, MS(10)), [h.claim_txn(3, 12)]);
    let acts = h.step(claimed(31), MS(15));
    assert_eq!(var(&acts, "CONCH_SLOT"), "3");
    assert_eq!(var(&acts, "CONCH_REV"), "31");
    assert_eq!(var(&acts, "CONCH_MAX"), "4");
    assert_eq!(var(&acts, "CONCH_KEY"), h.skey(3));
}

#[test]
fn a_failed_claim_adopts_a_slot_that_already_holds_its_lease() {
    let mut h = Harness::new(cfg(2));
    h.join(11, &[(ME, 10)], &[], MS(5));
    // An earlier claim did land (its answer was lost): slot 1 is ours.
    let answer = h.claim_failed(30, &[(0, A, 3), (1, ME, 25)], Some(10));
    let acts = h.step(answer, MS(10));
    assert!(no_txn(&acts), "no second claim: {acts:?}");
    assert_eq!(
        acts[..2],
        [
            Action::Unwatch(QUEUE),
            Action::Watch(SLOTS, key_watch(&h.skey(1), 31))
        ]
    );
    assert_eq!(var(&acts, "CONCH_SLOT"), "1");
    assert_eq!(var(&acts, "CONCH_REV"), "25", "the slot's create revision");
}

#[test]
fn a_failed_claim_with_the_own_queue_key_gone_is_a_loss_exit_70() {
    let mut h = Harness::new(cfg(2));
    h.join(11, &[(ME, 10)], &[], MS(5));
    let answer = h.claim_failed(30, &[], None);
    assert_eq!(h.step(answer, MS(10)), resign(ME));
    assert_eq!(h.step(Input::Revoked(Ok(())), MS(20)), [Action::Exit(70)]);
}

#[test]
fn every_slot_taken_watches_slot_deletes_and_claims_the_one_freed() {
    let mut h = Harness::new(cfg(2));
    // Rank 0, yet both slots are held (an overlap window).
    let acts = h.join(12, &[(ME, 10)], &[(0, A, 3), (1, B, 4)], MS(5));
    let slot_watch = WatchSpec::prefix(h.sdir()).from_revision(13);
    assert_eq!(
        acts,
        [
            Action::Watch(OWN, key_watch(&h.qkey(ME), 13)),
            Action::Watch(SLOTS, slot_watch.deletes_only())
        ]
    );
    let acts = h.step(deletes(SLOTS, &[h.skey(1)], 15), S(1));
    assert_eq!(acts, [Action::Unwatch(SLOTS), h.claim_txn(1, 10)]);
}

#[test]
fn a_waiter_watches_queue_deletes_from_the_read_and_never_reads_per_event() {
    let mut h = Harness::new(cfg(2));
    let cands = [(A, 10), (B, 11), (ME, 12), (Z, 13)];
    let acts = h.join(16, &cands, &[(0, A, 14), (1, B, 15)], MS(5));
    assert_eq!(
        acts,
        [
            Action::Watch(OWN, key_watch(&h.qkey(ME), 17)),
            h.queue_watch(17)
        ]
    );
    let Action::Watch(QUEUE, spec) = &acts[1] else {
        unreachable!()
    };
    assert!(spec.no_put && !spec.no_delete, "deletes only (NOPUT)");
    // A key behind mine leaving changes nothing.
    assert!(h.step(deletes(QUEUE, &[h.qkey(Z)], 18), S(1)).is_empty());
    // A holder leaving promotes me. Its slot, known taken since the read, is
    // awaited on the slot prefix from that read on, so its delete replays.
    let acts = h.step(deletes(QUEUE, &[h.qkey(B)], 20), S(2));
    let slot_watch = WatchSpec::prefix(h.sdir()).from_revision(17);
    assert_eq!(
        acts,
        [
            Action::Unwatch(QUEUE),
            Action::Watch(SLOTS, slot_watch.deletes_only())
        ]
    );
    let acts = h.step(deletes(SLOTS, &[h.skey(1)], 20), S(2));
    assert_eq!(acts, [Action::Unwatch(SLOTS), h.claim_txn(1, 12)]);
}

#[test]
fn watching_only_the_key_at_rank_minus_n_is_not_enough() {
    // max 2, rank 3: A and B hold, C waits ahead of me. Watching B alone
    // would stall when A leaves first and then C.
    let mut h = Harness::new(cfg(2));
    let cands = [(A, 10), (B, 11), (C, 12), (ME, 13)];
    h.join(20, &cands, &[], MS(5));
    assert!(h.step(deletes(QUEUE, &[h.qkey(A)], 21), S(1)).is_empty());
    let acts = h.step(deletes(QUEUE, &[h.qkey(C)], 22), S(2));
    assert_eq!(acts, [Action::Unwatch(QUEUE), h.claim_txn(0, 13)]);
}

#[test]
fn several_deletions_in_one_batch_all_count() {
    let mut h = Harness::new(cfg(2));
    let cands = [(A, 10), (B, 11), (C, 12), (ME, 13), (Z, 14)];
    h.join(20, &cands, &[], MS(5));
    let batch = [h.qkey(Z), h.qkey(A)];
    assert!(h.step(deletes(QUEUE, &batch, 21), S(1)).is_empty());
    let batch = [h.qkey(B), h.qkey(C)];
    let acts = h.step(deletes(QUEUE, &batch, 22), S(2));
    assert_eq!(acts, [Action::Unwatch(QUEUE), h.claim_txn(0, 13)]);
}

#[test]
fn nonblock_when_full_withdraws_and_exits_75_without_watching_the_queue() {
    let mut h = Harness::new(with(cfg(1), |c| c.wait = Wait::Nonblock));
    let acts = h.join(12, &[(A, 10), (ME, 11)], &[(0, A, 10)], MS(5));
    assert!(!acts.iter().any(|a| matches!(a, Action::Watch(QUEUE, _))));
    assert!(no_txn(&acts));
    assert_eq!(acts[acts.len() - 5..], resign(ME));
    assert_eq!(h.step(Input::Revoked(Ok(())), MS(20)), [Action::Exit(75)]);
}

#[test]
fn timeout_when_full_withdraws_and_exits_75() {
    let mut h = Harness::new(with(cfg(1), |c| c.wait = Wait::Timeout(S(1))));
    h.join(12, &[(A, 10), (ME, 11)], &[(0, A, 10)], MS(5));
    assert_eq!(h.deadline(), Some(S(1)), "the timeout comes first");
    assert!(h.timer(MS(999)).is_empty());
    assert_eq!(h.timer(S(1)), resign(ME));
    assert_eq!(h.deadline(), None);
    assert_eq!(h.step(Input::Revoked(Ok(())), S(1)), [Action::Exit(75)]);
}

#[path = "sema_tests_faults.rs"]
mod faults;
#[path = "sema_tests_prop.rs"]
mod prop;

#[test]
fn timeout_while_every_slot_is_taken_withdraws_and_exits_75() {
    let mut h = Harness::new(with(cfg(1), |c| c.wait = Wait::Timeout(S(1))));
    // Rank 0, yet slot 0 is held by a stale holder (an overlap window).
    let acts = h.join(12, &[(ME, 10)], &[(0, A, 3)], MS(5));
    assert!(acts.iter().any(|a| matches!(a, Action::Watch(SLOTS, _))));
    assert_eq!(h.deadline(), Some(S(1)), "the timeout still applies");
    assert!(h.timer(MS(999)).is_empty());
    assert_eq!(h.timer(S(1)), resign(ME));
    assert_eq!(h.step(Input::Revoked(Ok(())), S(1)), [Action::Exit(75)]);
}

#[test]
fn timeout_while_the_claim_is_retried_withdraws_and_exits_75() {
    let mut h = Harness::new(with(cfg(1), |c| c.wait = Wait::Timeout(S(1))));
    let acts = h.join(11, &[(ME, 10)], &[], MS(5));
    assert_eq!(acts[1], h.claim_txn(0, 10));
    // etcd does not answer the claim; retries go on past the timeout.
    let acts = h.step(Input::Txn(CLAIM, Err(unavailable())), MS(900));
    assert!(acts.is_empty(), "{acts:?}");
    assert_eq!(h.timer(S(1)), resign(ME));
    assert_eq!(h.step(Input::Revoked(Ok(())), S(1)), [Action::Exit(75)]);
}
