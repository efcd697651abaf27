//! etcd failures, `--restart` (the backoff, re-campaigns after a loss), and
//! a property over random event sequences.

use super::*;
use crate::recipe::harness::confirm_spawn;
use quickcheck::quickcheck;

#[test]
fn an_unavailable_campaign_is_retried_after_a_pause_with_the_same_create() {
    let mut h = Harness::new(cfg());
    h.create_retried(CAMPAIGN, L1);
    // The first create did land: the failure branch still reads the office.
    let answer = TxnResult {
        revision: 9,
        succeeded: false,
        results: vec![OpResult::Range(office(9, &[(L1, 9)]))],
    };
    let acts = h.step(Input::Txn(CAMPAIGN, Ok(answer)), MS(400));
    assert_eq!(rev_of(&acts), 9);
}

#[test]
fn a_watch_error_while_holding_reconnects_and_rechecks_the_hold() {
    let mut h = Harness::new(cfg());
    h.leader(L1, 5);
    let err = Error::new(ErrorKind::Unavailable, "watch", "stream reset");
    let acts = h.step(Input::Watch(OWN, Err(err)), S(1));
    let [Action::Unwatch(OWN), Action::Unwatch(PRED), Action::KeepAliveClose, Action::Reconnect { budget }] =
        acts[..]
    else {
        panic!("{acts:?}");
    };
    assert!(budget <= S(7) - S(1), "{budget:?}");
    let acts = h.step(Input::Reconnected(Ok(())), S(2));
    let expect = [
        Action::KeepAliveOpen(L1),
        Action::KeepAliveSend,
        Action::Range(OFFICE, office_range()),
    ];
    assert_eq!(acts, expect);
    let acts = h.step(Input::Range(OFFICE, Ok(office(30, &[(L2, 20)]))), MS(2100));
    assert_eq!(acts, [Action::SignalChild(0, 15)], "the own key is gone");
}

/// A long TTL keeps the keep-alive schedule out of the backoff's way.
fn restart_cfg() -> Config {
    with(cfg(), |c| {
        c.restart = true;
        c.ttl = S(120);
    })
}

fn within(d: Duration, base_secs: f64) -> bool {
    let s = d.as_secs_f64();
    s >= base_secs * 0.9 - 1e-9 && s <= base_secs * 1.1 + 1e-9
}

/// The child exits at `at`; checks the restart delay against `base` and that
/// the Spawn waits for the timer. Returns the restart instant.
fn exit_and_restart(h: &mut Harness, at: Duration, status: ChildStatus, base: f64) -> Duration {
    assert_eq!(
        h.step(Input::ChildExited(0, status), at),
        [Action::SignalChild(0, 15)]
    );
    assert!(
        h.step(Input::ChildrenGone(0), at).is_empty(),
        "leadership kept"
    );
    let again = h.deadline().expect("restart timer");
    assert!(within(again - at, base), "{:?} for {base}s", again - at);
    assert!(h.timer(again - MS(1)).is_empty());
    let acts = h.timer(again);
    assert!(matches!(acts[..], [Action::Spawn(0, _)]), "{acts:?}");
    assert_eq!(rev_of(&acts), 5, "same hold, same token");
    h.step(Input::Spawned(0, 101), again);
    again
}

#[test]
fn restart_backs_off_1_2_4_seconds_and_resets_after_a_stable_run() {
    let mut h = Harness::new(restart_cfg());
    h.leader(L1, 5);
    let mut started = S(0);
    for base in [1.0, 2.0, 4.0] {
        started = exit_and_restart(&mut h, started + MS(500), ChildStatus::Exited(3), base);
    }
    // The healthy run outlives a keep-alive interval: renew by hand.
    assert_eq!(h.deadline(), Some(S(39)));
    assert_eq!(h.timer(S(39)), [Action::KeepAliveSend]);
    assert!(h.step(ka(S(39), 120), S(39)).is_empty());
    exit_and_restart(&mut h, started + S(60), ChildStatus::Exited(3), 1.0);
}

#[test]
fn spawn_failure_under_restart_is_retried_with_the_same_backoff() {
    let mut h = Harness::new(restart_cfg());
    h.campaign(L1, &[(L1, 5)], S(0));
    let mut t = MS(100);
    for base in [1.0, 2.0, 4.0] {
        let acts = h.step(Input::SpawnFailed(0, 127, "svc: not found".into()), t);
        assert!(acts.is_empty(), "no resign: {acts:?}");
        let again = h.deadline().expect("restart timer");
        assert!(within(again - t, base), "{:?} for {base}s", again - t);
        assert!(h.timer(again - MS(1)).is_empty());
        assert!(matches!(h.timer(again)[..], [Action::Spawn(0, _)]));
        t = again + MS(100);
    }
}

#[test]
fn ttl_zero_while_waiting_under_restart_revokes_then_campaigns_again() {
    let mut h = Harness::new(with(cfg(), |c| c.restart = true));
    h.campaign(L2, &[(L1, 10), (L2, 20)], MS(10));
    let sent = h.deadline().expect("keep-alive due");
    assert_eq!(h.timer(sent), [Action::KeepAliveSend]);
    assert_eq!(h.step(ka(sent, 0), S(3)), resign(L2));
    let acts = h.step(Input::Revoked(Ok(())), S(3));
    assert_eq!(acts, [Action::Grant { ttl: 10 }]);
}

#[test]
fn restart_after_a_revoked_lease_campaigns_again_with_a_larger_rev() {
    let mut h = Harness::new(with(cfg(), |c| c.restart = true));
    h.leader(L1, 5);
    assert_eq!(h.step(own_deleted(L1), S(1)), [Action::SignalChild(0, 15)]);
    h.step(Input::ChildExited(0, ChildStatus::Signaled(15)), S(2));
    assert_eq!(h.step(Input::ChildrenGone(0), S(2)), resign(L1));
    let gone = Error::new(ErrorKind::LeaseNotFound, "revoke", "lease not found");
    assert_eq!(
        h.step(Input::Revoked(Err(gone)), S(2)),
        [Action::Grant { ttl: 10 }]
    );
    let acts = h.step(Input::Granted(Ok(Lease { id: L2, ttl: 10 })), MS(2100));
    assert!(matches!(
        acts[..],
        [Action::KeepAliveOpen(L2), Action::Txn(CAMPAIGN, _)]
    ));
    assert_eq!(h.deadline(), Some(S(2) + S(7) / 3), "a fresh fence");
    let acts = h.step(won(9, &[(L2, 9)]), MS(2200));
    assert_eq!(rev_of(&acts), 9);
    assert!(env_of(&acts).contains(&("CONCH_LEASE".into(), lease_hex(L2))));
}

#[test]
fn a_signal_during_the_revoke_after_a_loss_ends_a_restart_wrapper() {
    let mut h = Harness::new(with(cfg(), |c| c.restart = true));
    h.leader(L1, 5);
    h.step(own_deleted(L1), S(1));
    h.step(Input::ChildExited(0, ChildStatus::Signaled(15)), S(2));
    assert_eq!(h.step(Input::ChildrenGone(0), S(2)), resign(L1));
    assert!(h.step(Input::Signal(15), MS(2050)).is_empty());
    assert_eq!(
        h.step(Input::Revoked(Ok(())), MS(2100)),
        [Action::Exit(143)]
    );
}

#[test]
fn a_timeout_does_not_end_a_restart_wrapper_once_it_has_led() {
    let mut h = Harness::new(with(cfg(), |c| {
        c.restart = true;
        c.wait = Wait::Timeout(S(1));
    }));
    h.leader(L1, 5);
    h.step(own_deleted(L1), S(2));
    h.step(Input::ChildExited(0, ChildStatus::Signaled(15)), S(2));
    assert_eq!(h.step(Input::ChildrenGone(0), S(2)), resign(L1));
    assert_eq!(
        h.step(Input::Revoked(Ok(())), S(2)),
        [Action::Grant { ttl: 10 }]
    );
}

#[test]
fn a_loss_while_the_tree_drains_under_restart_campaigns_again() {
    let mut h = Harness::new(with(cfg(), |c| c.restart = true));
    h.leader(L1, 5);
    let acts = h.step(Input::ChildExited(0, ChildStatus::Exited(0)), S(1));
    assert_eq!(acts, [Action::SignalChild(0, 15)]);
    h.step(own_deleted(L1), MS(1100));
    assert_eq!(h.step(Input::ChildrenGone(0), MS(1200)), resign(L1));
    let acts = h.step(Input::Revoked(Ok(())), MS(1300));
    assert_eq!(acts, [Action::Grant { ttl: 10 }]);
}

/// What the environment owes the machine, and what the property tracks.
#[derive(Default)]
struct World {
    now: Duration,
    grant: bool,
    txn: bool,
    range: bool,
    revoke: bool,
    keep_alive: Option<Duration>,
    lease: Option<i64>,
    next_lease: i64,
    create: i64,
    /// Spawn emitted, neither Spawned nor SpawnFailed yet.
    unconfirmed: bool,
    /// Spawned and not yet exited (a stop signal then means a stop).
    running: bool,
    /// Spawned and neither ChildExited nor SpawnFailed yet.
    spawn_open: bool,
    /// The child exited, its tree not yet gone.
    draining: bool,
    /// Something of a child may be alive.
    tree: bool,
    /// A stop signal went to a running child since the last Grant.
    stopped: bool,
}

impl World {
    /// The input for one letter, or None when it does not apply now.
    fn input(&mut self, letter: u8, p: u8, m: &Elect) -> Option<Input> {
        Some(match letter % 10 {
            0 => {
                self.now += MS(u64::from(p % 40) * 100);
                Input::Timer
            }
            1 => {
                self.now = self.now.max(m.deadline()?);
                Input::Timer
            }
            2 => ka(self.keep_alive.take()?, i64::from(p % 12)),
            3 => deleted_on(OWN, self.lease?, 1000),
            4 => Input::Signal([15, 2, 10][usize::from(p % 3)]),
            5 if self.spawn_open && !self.unconfirmed => {
                self.spawn_open = false;
                self.running = false;
                self.draining = true;
                let st = [
                    ChildStatus::Exited(i32::from(p % 4)),
                    ChildStatus::Signaled(9),
                ];
                Input::ChildExited(0, st[usize::from(p % 2)])
            }
            6 if self.draining => {
                self.draining = false;
                self.tree = false;
                Input::ChildrenGone(0)
            }
            7 if self.revoke => {
                self.revoke = false;
                Input::Revoked(Ok(()))
            }
            8 if self.grant => {
                self.grant = false;
                self.next_lease += 1;
                self.lease = Some(self.next_lease);
                Input::Granted(Ok(Lease {
                    id: self.next_lease,
                    ttl: 10,
                }))
            }
            8 if self.txn || self.range => {
                self.create += 5;
                let own = [(self.lease?, self.create)];
                if std::mem::take(&mut self.txn) {
                    won(self.create, &own)
                } else {
                    self.range = false;
                    Input::Range(OFFICE, Ok(office(self.create, &own)))
                }
            }
            9 if std::mem::take(&mut self.unconfirmed) => {
                confirm_spawn(p, &mut self.running, &mut self.spawn_open, &mut self.tree)
            }
            _ => return None,
        })
    }

    /// Checks the actions; true once the machine exited.
    fn saw(&mut self, acts: &[Action]) -> bool {
        for a in acts {
            match a {
                Action::Grant { .. } => (self.grant, self.stopped) = (true, false),
                Action::Txn(..) => self.txn = true,
                Action::Range(..) => self.range = true,
                Action::Revoke(_) => (self.revoke, self.lease) = (true, None),
                Action::KeepAliveSend => self.keep_alive = Some(self.now),
                Action::KeepAliveClose | Action::Reconnect { .. } => self.keep_alive = None,
                Action::SignalChild(0, sig) if *sig != 10 && (self.running || self.unconfirmed) => {
                    self.stopped = true
                }
                Action::Spawn(0, _) => {
                    assert!(!self.stopped, "Spawn after a stop without a new Grant");
                    assert!(!self.spawn_open, "two Spawns without an exit between");
                    (self.unconfirmed, self.spawn_open, self.tree) = (true, true, true);
                }
                Action::Exit(_) => {
                    assert!(!self.tree, "Exit while a child may be alive");
                    return true;
                }
                _ => {}
            }
        }
        false
    }
}

fn run(restart: bool, letters: Vec<(u8, u8)>) -> bool {
    let mut m = Elect::new(with(cfg(), |c| c.restart = restart));
    let mut w = World::default();
    if w.saw(&m.step(Input::Start, w.now)) {
        return true;
    }
    for (letter, p) in letters {
        let Some(input) = w.input(letter, p, &m) else {
            continue;
        };
        if w.saw(&m.step(input, w.now)) {
            break;
        }
    }
    true
}

quickcheck! {
    fn no_spawn_after_a_stop_no_double_spawn_no_exit_with_a_child(
        restart: bool,
        letters: Vec<(u8, u8)>
    ) -> bool {
        run(restart, letters)
    }
}

#[test]
fn a_failover_before_the_campaign_landed_campaigns_again_rather_than_rereading() {
    let mut h = Harness::new(cfg());
    let ttl = h.m.cfg.ttl.as_secs() as i64;
    h.step(Input::Start, S(0));
    h.step(Input::Granted(Ok(Lease { id: L1, ttl })), S(0));
    let err = Error::new(ErrorKind::Unavailable, "txn", "no leader");
    // The campaign's outcome is unknown, then the keep-alive stream breaks.
    h.step(Input::Txn(CAMPAIGN, Err(err.clone())), MS(10));
    h.step(Input::KeepAlive(Err(err)), MS(20));
    let acts = h.step(Input::Reconnected(Ok(())), MS(30));
    assert!(
        acts.iter().any(|a| matches!(a, Action::Txn(CAMPAIGN, _))),
        "campaigns again: {acts:?}"
    );
    assert!(
        !acts.iter().any(|a| matches!(a, Action::Range(OFFICE, _))),
        "{acts:?}"
    );
    let acts = h.step(won(5, &[(L1, 5)]), MS(40));
    assert_eq!(rev_of(&acts), 5, "then leads normally");
}

#[test]
fn an_unanswered_revoke_is_retried_before_campaigning_again() {
    let mut h = Harness::new(with(cfg(), |c| c.restart = true));
    h.leader(L1, 5);
    h.step(own_deleted(L1), S(1));
    h.step(Input::ChildExited(0, ChildStatus::Signaled(15)), S(2));
    assert_eq!(h.step(Input::ChildrenGone(0), S(2)), resign(L1));
    let down = Error::new(ErrorKind::Unavailable, "revoke", "no leader");
    assert!(
        h.step(Input::Revoked(Err(down)), S(2)).is_empty(),
        "no campaign behind its own old key"
    );
    assert_eq!(h.deadline(), Some(S(3)));
    assert_eq!(h.timer(S(3)), [Action::Revoke(L1)]);
    assert_eq!(
        h.step(Input::Revoked(Ok(())), S(3)),
        [Action::Grant { ttl: 10 }]
    );
}
