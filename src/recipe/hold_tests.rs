//! The fault contract of a hold (docs/fencing.md), tested once against
//! [`Hold`] with the smallest acquisition part there is: one create that
//! either wins or finds one ahead. elect and sema test only what their
//! keys add.

use super::*;
use crate::etcd::{KeepAliveAnswer, KeyValue, Lease, Txn, TxnResult, WatchSpec};
use crate::kit::machine::ChildStatus;
use crate::recipe::harness::{common, Harness, MS, S};

const L: i64 = 0x694d_0001;
/// Watch tags of the test part.
const MINE: Tag = 1;
const TURN: Tag = 2;

/// Wins when its create succeeds, else waits for one deletion on `TURN`.
#[derive(Default)]
struct Solo {
    joined: bool,
    held: bool,
    waiting: bool,
}

impl Solo {
    fn won(&mut self, rev: i64) -> Option<Report<()>> {
        self.held = true;
        let won = Won {
            key: "k".into(),
            rev,
            label: String::new(),
            env: vec![],
        };
        Some(Report::Won(won))
    }
}

impl Acquire for Solo {
    type Retry = ();
    type Settings = ();

    fn new(_: &str, _: crate::keys::Schema, _: ()) -> Solo {
        Solo::default()
    }

    fn join(&mut self, lease: i64, record: String, out: &mut Vec<Action>) {
        let put = crate::etcd::Op::put("k", record, lease);
        let txn = Txn {
            success: vec![put],
            ..Txn::default()
        };
        out.push(Action::Txn(0, txn));
    }

    fn joined(&self) -> bool {
        self.joined
    }

    fn held(&self) -> bool {
        self.held
    }

    fn reset(&mut self) {
        *self = Solo::default();
    }

    fn unwatch(&self, out: &mut Vec<Action>) {
        out.extend([Action::Unwatch(MINE), Action::Unwatch(TURN)]);
    }

    fn resync(&mut self, _: &mut Vec<Action>) {}

    fn retry(&mut self, _: (), _: &mut Vec<Action>) {}

    fn wait_turn(&mut self, out: &mut Vec<Action>) {
        self.waiting = true;
        out.push(Action::Watch(TURN, WatchSpec::key("pred")));
    }

    fn answer(&mut self, input: Input, _: &mut Vec<Action>) -> Option<Report<()>> {
        match input {
            Input::Txn(0, Ok(t)) if t.succeeded => {
                self.joined = true;
                self.won(t.revision)
            }
            Input::Txn(0, Ok(_)) => {
                self.joined = true;
                Some(Report::Ahead("1 ahead".into()))
            }
            Input::Txn(0, Err(e)) => Some(Report::Failed(e, Retry::Join)),
            _ => None,
        }
    }

    fn deleted(&mut self, seen: Deletions<'_>, _: &mut Vec<Action>) -> Option<Report<()>> {
        match seen.tag {
            MINE => Some(Report::Gone(Gone("own key was deleted".into()))),
            TURN if self.waiting => self.won(seen.revision),
            _ => None,
        }
    }
}

type H = Harness<Hold<Solo>>;

fn with(f: impl FnOnce(&mut Common)) -> H {
    let mut c = common("solo", &["job"]);
    f(&mut c);
    Harness::of(Hold::with(c, Solo::default()))
}

fn created(succeeded: bool) -> Input {
    Input::Txn(
        0,
        Ok(TxnResult {
            revision: 5,
            succeeded,
            results: vec![],
        }),
    )
}

fn ka(sent_at: Duration, ttl: i64) -> Input {
    Input::KeepAlive(Ok(KeepAliveAnswer { ttl, sent_at }))
}

fn deleted(tag: Tag) -> Input {
    let events = vec![crate::etcd::Event {
        kind: EventKind::Delete,
        kv: KeyValue::default(),
        prev: None,
    }];
    Input::Watch(
        tag,
        Ok(WatchEvent::Events {
            revision: 9,
            events,
        }),
    )
}

fn resign() -> Vec<Action> {
    vec![
        Action::Unwatch(MINE),
        Action::Unwatch(TURN),
        Action::KeepAliveClose,
        Action::Revoke(L),
    ]
}

/// Granted at t=0, the create answered at `now`: that answer's actions.
fn join(h: &mut H, succeeded: bool, now: Duration) -> Vec<Action> {
    let ttl = h.m.cfg.ttl.as_secs() as i64;
    assert_eq!(h.step(Input::Start, S(0)), [Action::Grant { ttl }]);
    h.step(Input::Granted(Ok(Lease { id: L, ttl })), S(0));
    h.step(created(succeeded), now)
}

/// Holding since t=0, the child confirmed.
fn holding(f: impl FnOnce(&mut Common)) -> H {
    let mut h = with(f);
    let acts = join(&mut h, true, S(0));
    assert!(matches!(acts.last(), Some(Action::Spawn(0, _))), "{acts:?}");
    h.step(Input::Spawned(0, 100), S(0));
    h
}

/// One ahead, watching for the turn.
fn waiting(f: impl FnOnce(&mut Common)) -> H {
    let mut h = with(f);
    let acts = join(&mut h, false, MS(5));
    assert_eq!(acts, [Action::Watch(TURN, WatchSpec::key("pred"))]);
    h
}

#[test]
fn the_child_gets_the_base_environment_and_its_status_is_the_exit_code() {
    let mut h = with(|_| {});
    let acts = join(&mut h, true, S(0));
    let Some(Action::Spawn(0, spec)) = acts.last() else {
        panic!("{acts:?}");
    };
    let names: Vec<_> = spec.env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["CONCH_NAME", "CONCH_KEY", "CONCH_LEASE", "CONCH_REV"]
    );
    assert_eq!(spec.env[3].1, "5");
    h.step(Input::ChildExited(0, ChildStatus::Exited(3)), S(1));
    assert_eq!(h.step(Input::ChildrenGone(0), S(1)), resign());
    assert_eq!(h.deadline(), None);
    assert_eq!(h.step(Input::Revoked(Ok(())), S(1)), [Action::Exit(3)]);
}

#[test]
fn a_loss_while_holding_stops_the_child_and_exits_70() {
    // Told by etcd (TTL 0) or seen (our key deleted): the same stop.
    for how in ["ttl 0", "key deleted"] {
        let mut h = holding(|_| {});
        let acts = if how == "ttl 0" {
            let sent = h.deadline().expect("keep-alive due");
            assert_eq!(h.timer(sent), [Action::KeepAliveSend]);
            h.step(ka(sent, 0), S(3))
        } else {
            h.step(deleted(MINE), S(3))
        };
        assert_eq!(acts, [Action::SignalChild(0, 15)], "{how}");
        assert_eq!(h.deadline(), Some(S(6)), "SIGKILL after kill_after");
        let acts = h.step(Input::ChildExited(0, ChildStatus::Signaled(15)), S(4));
        assert_eq!(acts, [Action::SignalChild(0, 15)], "the rest of the tree");
        assert_eq!(h.timer(S(6)), [Action::SignalChild(0, 9)]);
        assert_eq!(h.step(Input::ChildrenGone(0), S(6)), resign());
        assert_eq!(h.step(Input::Revoked(Ok(())), S(6)), [Action::Exit(70)]);
    }
}

#[test]
fn a_loss_while_waiting_withdraws_and_exits_70() {
    let mut h = waiting(|_| {});
    let sent = h.deadline().expect("keep-alive due");
    assert_eq!(h.timer(sent), [Action::KeepAliveSend]);
    assert_eq!(h.step(ka(sent, 0), S(3)), resign());
    assert_eq!(h.step(Input::Revoked(Ok(())), S(3)), [Action::Exit(70)]);
}

#[test]
fn a_late_loss_cuts_the_grace_to_the_lease_deadline_and_says_so() {
    let mut h = holding(|_| {});
    // Asleep through the renewal and the stop point, woken before expiry.
    let (acts, logs) = h.step_logged(Input::Timer, MS(8500));
    assert_eq!(acts, [Action::SignalChild(0, 15)]);
    assert!(
        logs.iter().any(|l| l.contains("SIGTERM, SIGKILL in 1.5s")),
        "not the full kill-after: {logs:?}"
    );
    assert_eq!(h.deadline(), Some(S(10)), "not 11.5s: the lease ends");
    assert_eq!(h.timer(S(10)), [Action::SignalChild(0, 9)]);
}

#[test]
fn a_loss_or_a_signal_past_the_lease_deadline_sigkills_at_once_and_says_so() {
    for input in [Input::Timer, Input::Signal(15)] {
        let mut h = holding(|_| {});
        // A signal is handled before the fence in the same step.
        let (acts, logs) = h.step_logged(input.clone(), S(11));
        assert_eq!(acts[0], Action::SignalChild(0, 9), "{input:?}");
        assert!(logs.iter().any(|l| l.contains("SIGKILL now")), "{logs:?}");
        assert!(!logs.iter().any(|l| l.contains("SIGTERM")), "{logs:?}");
    }
}

#[test]
fn a_loss_after_the_child_exited_on_its_own_keeps_the_childs_status() {
    let mut h = holding(|_| {});
    let acts = h.step(Input::ChildExited(0, ChildStatus::Exited(3)), S(1));
    assert_eq!(acts, [Action::SignalChild(0, 15)]);
    let sent = h.deadline().expect("keep-alive due");
    assert_eq!(h.timer(sent), [Action::KeepAliveSend]);
    // The lease goes while the tree drains: the loss stopped nothing.
    assert_eq!(h.step(ka(sent, 0), S(3)), [Action::SignalChild(0, 15)]);
    assert_eq!(h.step(Input::ChildrenGone(0), S(3)), resign());
    assert_eq!(h.step(Input::Revoked(Ok(())), S(3)), [Action::Exit(3)]);
}

#[test]
fn a_loss_while_a_signal_stops_the_child_keeps_the_signals_status() {
    let mut h = holding(|_| {});
    let acts = h.step(Input::Signal(15), S(1));
    assert_eq!(acts, [Action::SignalChild(0, 15)]);
    let acts = h.step(deleted(MINE), S(2));
    assert_eq!(acts, [Action::SignalChild(0, 15)], "hurried, not restarted");
    h.step(Input::ChildExited(0, ChildStatus::Signaled(15)), S(2));
    assert_eq!(h.step(Input::ChildrenGone(0), S(2)), resign());
    assert_eq!(h.step(Input::Revoked(Ok(())), S(2)), [Action::Exit(143)]);
}

#[test]
fn sigterm_while_waiting_withdraws_and_exits_143() {
    let mut h = waiting(|_| {});
    assert_eq!(h.step(Input::Signal(15), S(1)), resign());
    assert_eq!(h.step(Input::Revoked(Ok(())), S(1)), [Action::Exit(143)]);
}

#[test]
fn sigterm_while_holding_is_forwarded_then_sigkill_after_kill_after() {
    let mut h = holding(|c| c.ttl = S(60));
    let acts = h.step(Input::Signal(15), S(1));
    assert_eq!(acts, [Action::SignalChild(0, 15)]);
    assert_eq!(h.deadline(), Some(S(4)));
    assert!(h.timer(MS(3999)).is_empty());
    assert_eq!(h.timer(S(4)), [Action::SignalChild(0, 9)]);
    let acts = h.step(Input::ChildExited(0, ChildStatus::Signaled(9)), S(4));
    assert!(acts.is_empty());
    assert_eq!(h.step(Input::ChildrenGone(0), S(4)), resign());
    assert_eq!(h.step(Input::Revoked(Ok(())), S(4)), [Action::Exit(137)]);
}

#[test]
fn sigterm_while_holding_exits_with_the_childs_status() {
    for (status, code) in [
        (ChildStatus::Signaled(15), 143),
        (ChildStatus::Exited(0), 0),
    ] {
        let mut h = holding(|c| c.ttl = S(60));
        h.step(Input::Signal(15), S(1));
        h.step(Input::ChildExited(0, status), S(2));
        assert_eq!(h.step(Input::ChildrenGone(0), S(2)), resign());
        assert_eq!(h.step(Input::Revoked(Ok(())), S(2)), [Action::Exit(code)]);
    }
}

#[test]
fn sigusr1_is_forwarded_only_while_a_child_runs() {
    let mut h = holding(|c| c.ttl = S(60));
    let acts = h.step(Input::Signal(10), S(1));
    assert_eq!(acts, [Action::SignalChild(0, 10)]);
    assert_eq!(h.deadline(), Some(S(19)), "only the next keep-alive");
    let mut h = waiting(|_| {});
    assert!(h.step(Input::Signal(10), S(1)).is_empty());
    assert_eq!(h.deadline(), Some(S(7) / 3));
}

#[test]
fn a_spawn_failure_resigns_and_exits_with_its_code() {
    let mut h = with(|_| {});
    join(&mut h, true, S(0));
    let acts = h.step(Input::SpawnFailed(0, 127, "job: not found".into()), MS(5));
    assert_eq!(acts, resign());
    assert_eq!(h.step(Input::Revoked(Ok(())), MS(10)), [Action::Exit(127)]);
}

#[test]
fn nonblock_withdraws_and_exits_75_without_watching() {
    let mut h = with(|c| c.wait = Wait::Nonblock);
    assert_eq!(join(&mut h, false, MS(5)), resign());
    assert_eq!(h.step(Input::Revoked(Ok(())), MS(5)), [Action::Exit(75)]);
}

#[test]
fn timeout_while_waiting_or_retrying_withdraws_and_exits_75() {
    let e = Error::new(ErrorKind::Unavailable, "txn", "no leader");
    for answer in [created(false), Input::Txn(0, Err(e))] {
        let mut h = with(|c| c.wait = Wait::Timeout(S(1)));
        assert_eq!(h.step(Input::Start, S(0)), [Action::Grant { ttl: 10 }]);
        h.step(Input::Granted(Ok(Lease { id: L, ttl: 10 })), S(0));
        h.step(answer, MS(900));
        assert_eq!(h.deadline(), Some(S(1)), "the timeout still applies");
        assert!(h.timer(MS(999)).is_empty());
        assert_eq!(h.timer(S(1)), resign());
        assert_eq!(h.step(Input::Revoked(Ok(())), S(1)), [Action::Exit(75)]);
    }
}

#[test]
fn the_timeout_never_limits_the_run() {
    let mut h = holding(|c| c.wait = Wait::Timeout(S(1)));
    assert_ne!(h.deadline(), Some(S(1)));
    let acts = h.drive_until_quiet(S(2));
    assert!(
        !acts.iter().any(|a| matches!(a, Action::Revoke(_))),
        "{acts:?}"
    );
}

#[test]
fn an_unavailable_create_is_retried_after_a_pause_and_a_refused_one_exits_69() {
    let e = Error::new(ErrorKind::Unavailable, "txn", "no leader");
    let mut h = with(|_| {});
    h.step(Input::Start, S(0));
    h.step(Input::Granted(Ok(Lease { id: L, ttl: 10 })), S(0));
    assert!(h.step(Input::Txn(0, Err(e)), MS(100)).is_empty());
    assert_eq!(h.deadline(), Some(MS(350)));
    let acts = h.timer(MS(350));
    assert!(matches!(acts[..], [Action::Txn(0, _)]), "{acts:?}");
    let refused = Error::new(ErrorKind::Auth, "txn", "permission denied");
    assert_eq!(h.step(Input::Txn(0, Err(refused)), MS(400)), resign());
    assert_eq!(h.step(Input::Revoked(Ok(())), MS(400)), [Action::Exit(69)]);
}

#[test]
fn a_canceled_watch_fails_over() {
    let mut h = holding(|_| {});
    let canceled = WatchEvent::Canceled {
        reason: "compacted".into(),
    };
    let acts = h.step(Input::Watch(MINE, Ok(canceled)), S(1));
    assert_eq!(acts[..2], [Action::Unwatch(MINE), Action::Unwatch(TURN)]);
    assert!(
        acts.iter().any(|a| matches!(a, Action::Reconnect { .. })),
        "{acts:?}"
    );
}
