//! The elect machine driven by hand-written event sequences on a virtual
//! clock. Log actions are filtered out: the assertions are on what is done.

use super::*;
use crate::etcd::{KeepAliveAnswer, KeyValue, Lease, OpResult, TxnResult};
use crate::keys::lease_hex;
use crate::kit::machine::ChildStatus;
use crate::kit::machine::Machine;
use crate::kit::wait::Wait;
use crate::recipe::harness::{assert_env, common, deletes, MS, S};
use crate::recipe::hold::Common;
use crate::record::Holder;
use std::time::Duration;

const L1: i64 = 0x694d_0001;
const L2: i64 = 0x694d_0002;
const L3: i64 = 0x694d_0003;
const L4: i64 = 0x694d_0004;

fn cfg() -> Config {
    Config {
        hold: common("office", &["svc", "--port=1"]),
        schema: Schema::new("/conch"),
        part: (),
    }
}

/// `cfg` with the hold's settings changed by `f`.
fn with(mut cfg: Config, f: impl FnOnce(&mut Common)) -> Config {
    f(&mut cfg.hold);
    cfg
}

fn key(lease: i64) -> String {
    Schema::new("/conch").elect_key("office", lease)
}

fn office_range() -> Range {
    Range::prefix(Schema::new("/conch").elect_dir("office")).by_create()
}

/// The office as etcd would list it: (lease, create_revision) per candidate.
fn office(revision: i64, cands: &[(i64, i64)]) -> RangeResult {
    let kvs: Vec<KeyValue> = cands
        .iter()
        .map(|&(lease, create)| KeyValue {
            key: key(lease).into_bytes(),
            create_revision: create,
            mod_revision: create,
            version: 1,
            lease,
            ..KeyValue::default()
        })
        .collect();
    RangeResult {
        revision,
        count: kvs.len() as i64,
        kvs,
    }
}

/// A campaign txn whose create succeeded; both branches end with the read.
fn won(revision: i64, cands: &[(i64, i64)]) -> Input {
    Input::Txn(
        CAMPAIGN,
        Ok(TxnResult {
            revision,
            succeeded: true,
            results: vec![OpResult::Put, OpResult::Range(office(revision, cands))],
        }),
    )
}

/// A delete of the key of `lease` seen on the watch `tag`.
fn deleted_on(tag: Tag, lease: i64, revision: i64) -> Input {
    deletes(tag, &[key(lease)], revision)
}

fn deleted(lease: i64, revision: i64) -> Input {
    deleted_on(PRED, lease, revision)
}

fn own_deleted(lease: i64) -> Input {
    deleted_on(OWN, lease, 1000)
}

fn ka(sent_at: Duration, ttl: i64) -> Input {
    Input::KeepAlive(Ok(KeepAliveAnswer { ttl, sent_at }))
}

fn watch(k: &str, from: i64) -> WatchSpec {
    WatchSpec::key(k).from_revision(from).deletes_only()
}

fn env_of(acts: &[Action]) -> Vec<(String, String)> {
    match acts.iter().find(|a| matches!(a, Action::Spawn(0, _))) {
        Some(Action::Spawn(0, spec)) => spec.env.clone(),
        _ => panic!("no Spawn in {acts:?}"),
    }
}

fn rev_of(acts: &[Action]) -> i64 {
    let env = env_of(acts);
    let rev = env.iter().find(|(k, _)| k == "CONCH_REV").expect("rev");
    rev.1.parse().expect("decimal")
}

fn resign(lease: i64) -> Vec<Action> {
    vec![
        Action::Unwatch(OWN),
        Action::Unwatch(PRED),
        Action::KeepAliveClose,
        Action::Revoke(lease),
    ]
}

type Harness = crate::recipe::harness::Harness<Elect>;

impl Harness {
    fn new(cfg: Config) -> Harness {
        Harness::of(Elect::new(cfg))
    }

    /// Start and grant `lease` at t=0, then answer the campaign with the
    /// office `cands` at `now`: the campaign answer's actions.
    fn campaign(&mut self, lease: i64, cands: &[(i64, i64)], now: Duration) -> Vec<Action> {
        let ttl = self.m.cfg.ttl.as_secs() as i64;
        assert_eq!(self.step(Input::Start, self.now), [Action::Grant { ttl }]);
        let acts = self.step(Input::Granted(Ok(Lease { id: lease, ttl })), self.now);
        assert_eq!(acts[0], Action::KeepAliveOpen(lease));
        let top = cands.iter().map(|c| c.1).max().unwrap_or(1);
        self.step(won(top, cands), now)
    }

    /// Elected alone with create revision `rev` at t=0, child confirmed.
    fn leader(&mut self, lease: i64, rev: i64) -> Vec<Action> {
        let acts = self.campaign(lease, &[(lease, rev)], self.now);
        assert_eq!(rev_of(&acts), rev);
        self.step(Input::Spawned(0, 100), self.now);
        acts
    }
}

#[test]
fn single_candidate_creates_its_key_and_runs_the_child_under_it() {
    let mut h = Harness::new(cfg());
    assert_eq!(h.step(Input::Start, S(0)), [Action::Grant { ttl: 10 }]);
    let acts = h.step(Input::Granted(Ok(Lease { id: L1, ttl: 10 })), MS(5));
    let [Action::KeepAliveOpen(L1), Action::Txn(CAMPAIGN, txn)] = &acts[..] else {
        panic!("{acts:?}");
    };
    assert_eq!(txn.compare, [Compare::absent(key(L1))]);
    let Op::Put {
        key: k,
        value,
        lease,
    } = &txn.success[0]
    else {
        panic!("{txn:?}");
    };
    assert_eq!((k.as_slice(), *lease), (key(L1).as_bytes(), L1));
    let holder = Holder::from_json(value).expect("holder json");
    assert_eq!((holder.host.as_deref(), holder.pid), (Some("h1"), Some(42)));
    assert_eq!(holder.argv, ["svc", "--port=1"]);
    assert_eq!(txn.success[1..], [Op::Get(office_range())]);
    assert_eq!(txn.failure, [Op::Get(office_range())]);

    let acts = h.step(won(17, &[(L1, 17)]), MS(10));
    assert_eq!(acts[0], Action::Watch(OWN, watch(&key(L1), 18)));
    assert!(!acts.iter().any(|a| matches!(a, Action::Watch(PRED, _))));
    let Some(Action::Spawn(0, spec)) = acts.last() else {
        panic!("{acts:?}");
    };
    assert_eq!(spec.argv, cfg().hold.argv);
    let key = key(L1);
    let env = [
        ("CONCH_NAME", "office"),
        ("CONCH_KEY", &key),
        ("CONCH_LEASE", "00000000694d0001"),
        ("CONCH_REV", "17"),
    ];
    assert_env(&spec.env, &env);
}

#[test]
fn a_waiter_watches_only_its_immediate_predecessor_until_it_leads() {
    let mut h = Harness::new(cfg());
    let cands = [(L1, 10), (L2, 20), (L3, 30), (L4, 40)];
    let acts = h.campaign(L3, &cands, MS(10));
    assert_eq!(
        acts,
        [
            Action::Watch(OWN, watch(&key(L3), 41)),
            Action::Watch(PRED, watch(&key(L2), 41)),
        ]
    );
    // The predecessor left: re-read, one is still ahead.
    let acts = h.step(deleted(L2, 45), S(1));
    assert_eq!(acts, [Action::Range(OFFICE, office_range())]);
    let cands = [(L1, 10), (L3, 30), (L4, 40)];
    let acts = h.step(Input::Range(OFFICE, Ok(office(45, &cands))), S(1));
    assert_eq!(
        acts,
        [
            Action::Watch(OWN, watch(&key(L3), 46)),
            Action::Watch(PRED, watch(&key(L1), 46)),
        ]
    );
    let acts = h.step(deleted(L1, 50), S(2));
    assert_eq!(acts, [Action::Range(OFFICE, office_range())]);
    let cands = [(L3, 30), (L4, 40)];
    let acts = h.step(Input::Range(OFFICE, Ok(office(50, &cands))), S(2));
    assert_eq!(
        acts[..2],
        [
            Action::Watch(OWN, watch(&key(L3), 51)),
            Action::Unwatch(PRED)
        ]
    );
    assert_eq!(rev_of(&acts), 30);
}

#[test]
fn own_key_gone_on_a_reread_while_waiting_is_a_loss_exit_70() {
    let mut h = Harness::new(cfg());
    h.campaign(L2, &[(L1, 10), (L2, 20)], MS(10));
    h.step(deleted(L1, 30), S(1));
    let acts = h.step(Input::Range(OFFICE, Ok(office(30, &[]))), S(1));
    assert_eq!(acts, resign(L2));
    assert_eq!(h.step(Input::Revoked(Ok(())), S(1)), [Action::Exit(70)]);
}

#[test]
fn ttl_zero_answer_while_waiting_exits_70_after_revoke() {
    let mut h = Harness::new(cfg());
    h.campaign(L2, &[(L1, 10), (L2, 20)], MS(10));
    let sent = h.deadline().expect("keep-alive due");
    assert_eq!(h.timer(sent), [Action::KeepAliveSend]);
    assert_eq!(h.step(ka(sent, 0), S(3)), resign(L2));
    assert_eq!(h.step(Input::Revoked(Ok(())), S(3)), [Action::Exit(70)]);
}

#[test]
fn own_key_delete_while_holding_stops_the_child_and_exits_70() {
    let mut h = Harness::new(cfg());
    h.leader(L1, 5);
    assert_eq!(h.step(own_deleted(L1), S(1)), [Action::SignalChild(0, 15)]);
    assert_eq!(h.deadline(), Some(S(4)), "SIGKILL after kill_after");
    assert!(h.timer(MS(3999)).is_empty());
    assert_eq!(h.timer(S(4)), [Action::SignalChild(0, 9)]);
    assert_eq!(h.deadline(), None);
    assert!(h
        .step(Input::ChildExited(0, ChildStatus::Signaled(9)), S(4))
        .is_empty());
    assert_eq!(h.step(Input::ChildrenGone(0), S(4)), resign(L1));
    assert_eq!(h.step(Input::Revoked(Ok(())), S(4)), [Action::Exit(70)]);
}

#[test]
fn keep_alive_silence_begins_the_stop_at_deadline_minus_kill_after() {
    let mut h = Harness::new(cfg());
    h.leader(L1, 5);
    let interval = S(7) / 3;
    assert_eq!(h.deadline(), Some(interval));
    assert!(h.timer(interval - MS(1)).is_empty());
    assert_eq!(h.timer(interval), [Action::KeepAliveSend]);
    // Unanswered for a second: the member is presumed hung.
    let overdue = interval + S(1);
    assert_eq!(h.deadline(), Some(overdue));
    assert!(h.timer(overdue - MS(1)).is_empty(), "no second keep-alive");
    let a = h.timer(overdue);
    assert!(
        a.iter().any(|a| matches!(a, Action::Reconnect { .. })),
        "{a:?}"
    );
    assert_eq!(h.deadline(), Some(S(7)), "failing over: only the stop");
    assert!(h.timer(MS(6999)).is_empty());
    assert_eq!(h.timer(S(7)), [Action::SignalChild(0, 15)]);
    assert_eq!(h.deadline(), Some(S(10)));
    assert_eq!(h.timer(S(10)), [Action::SignalChild(0, 9)]);
    assert!(h
        .step(Input::ChildExited(0, ChildStatus::Signaled(9)), S(10))
        .is_empty());
    assert_eq!(h.step(Input::ChildrenGone(0), S(10)), resign(L1));
    assert_eq!(h.step(Input::Revoked(Ok(())), S(10)), [Action::Exit(70)]);
}

#[test]
fn keep_alives_follow_the_schedule_from_the_answered_send_time() {
    let mut h = Harness::new(cfg());
    h.leader(L1, 5);
    let interval = S(7) / 3;
    let mut sent = interval;
    for _ in 0..5 {
        assert_eq!(h.timer(sent), [Action::KeepAliveSend]);
        assert!(h.step(ka(sent, 10), sent + MS(50)).is_empty());
        assert_eq!(h.deadline(), Some(sent + interval));
        sent += interval;
    }
    // The last answer confirmed the lease until its send time + TTL.
    assert_eq!(h.timer(sent), [Action::KeepAliveSend]);
    assert_eq!(h.m.must_act_by(), Some(sent - interval + S(7)));
    assert_eq!(
        h.deadline(),
        Some(sent + S(1)),
        "when the answer is overdue"
    );
}

#[test]
fn waking_up_past_the_deadline_sigkills_at_once() {
    let mut h = Harness::new(cfg());
    h.leader(L1, 5);
    assert_eq!(h.timer(S(11)), [Action::SignalChild(0, 9)]);
    assert_eq!(h.deadline(), None);
    assert!(h
        .step(Input::ChildExited(0, ChildStatus::Signaled(9)), S(11))
        .is_empty());
    assert_eq!(h.step(Input::ChildrenGone(0), S(11)), resign(L1));
}

#[test]
fn a_late_keep_alive_answer_never_cancels_a_stop_that_has_begun() {
    let mut h = Harness::new(cfg());
    h.leader(L1, 5);
    let sent = S(7) / 3;
    assert_eq!(h.timer(sent), [Action::KeepAliveSend]);
    assert_eq!(h.timer(S(7)), [Action::SignalChild(0, 15)]);
    assert!(h.step(ka(sent, 10), MS(7500)).is_empty());
    assert_eq!(h.deadline(), Some(S(10)));
    assert_eq!(h.timer(S(10)), [Action::SignalChild(0, 9)]);
    h.step(Input::ChildExited(0, ChildStatus::Signaled(9)), S(10));
    assert_eq!(h.step(Input::ChildrenGone(0), S(10)), resign(L1));
    assert_eq!(h.step(Input::Revoked(Ok(())), S(10)), [Action::Exit(70)]);
}

#[test]
fn nonblock_while_held_withdraws_and_exits_75_without_waiting() {
    let mut h = Harness::new(with(cfg(), |c| c.wait = Wait::Nonblock));
    let acts = h.campaign(L2, &[(L1, 10), (L2, 20)], MS(10));
    assert!(!acts.iter().any(|a| matches!(a, Action::Watch(PRED, _))));
    assert_eq!(acts[acts.len() - 4..], resign(L2));
    assert_eq!(h.step(Input::Revoked(Ok(())), MS(20)), [Action::Exit(75)]);
}

#[test]
fn timeout_while_held_withdraws_and_exits_75() {
    let mut h = Harness::new(with(cfg(), |c| c.wait = Wait::Timeout(S(1))));
    h.campaign(L2, &[(L1, 10), (L2, 20)], MS(10));
    assert_eq!(h.deadline(), Some(S(1)), "the timeout comes first");
    assert!(h.timer(MS(999)).is_empty());
    assert_eq!(h.timer(S(1)), resign(L2));
    assert_eq!(h.step(Input::Revoked(Ok(())), S(1)), [Action::Exit(75)]);
}

#[path = "elect_tests_restart.rs"]
mod restart;
