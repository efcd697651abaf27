//! Where sema once drifted from elect (the rules now live in `hold.rs`):
//! a loss while the child's tree drains, the stop's log line when the
//! grace is cut, and `--timeout` while every slot is taken.

use super::*;

/// The log lines of one step, with the actions.
#[test]
fn a_loss_after_the_child_exited_on_its_own_keeps_the_childs_status() {
    let mut h = Harness::new(cfg(2));
    h.holder(20);
    // The child finished its work; what is left of its tree is asked to go.
    let acts = h.step(Input::ChildExited(0, ChildStatus::Exited(0)), S(1));
    assert_eq!(acts, [Action::SignalChild(0, 15)]);
    let sent = h.deadline().expect("keep-alive due");
    assert_eq!(h.timer(sent), [Action::KeepAliveSend]);
    // The lease goes while the tree drains: the loss stopped nothing.
    assert_eq!(h.step(ka(sent, 0), S(3)), [Action::SignalChild(0, 15)]);
    assert_eq!(h.step(Input::ChildrenGone(0), S(3)), resign(ME));
    assert_eq!(
        h.step(Input::Revoked(Ok(())), S(3)),
        [Action::Exit(0)],
        "the child's status, as elect does: the loss did not stop it"
    );
}

#[test]
fn a_loss_while_a_signal_stops_the_child_keeps_the_childs_status() {
    let mut h = Harness::new(cfg(2));
    h.holder(20);
    assert_eq!(
        h.step(Input::Signal(15), S(1)),
        [Action::SignalChild(0, 15)]
    );
    let acts = h.step(deletes(OWN, &[h.qkey(ME)], 30), S(2));
    assert_eq!(acts, [Action::SignalChild(0, 15)], "hurried, not restarted");
    h.step(Input::ChildExited(0, ChildStatus::Signaled(15)), S(2));
    assert_eq!(h.step(Input::ChildrenGone(0), S(2)), resign(ME));
    assert_eq!(h.step(Input::Revoked(Ok(())), S(2)), [Action::Exit(143)]);
}

#[test]
fn a_loss_past_the_lease_deadline_says_sigkill_now_and_does_it() {
    let mut h = Harness::new(cfg(2));
    h.holder(20);
    // Asleep past the lease's end (10s): no grace at all.
    let (acts, logs) = h.step_logged(Input::Timer, S(11));
    assert_eq!(acts, [Action::SignalChild(0, 9)]);
    assert!(
        logs.iter().any(|l| l.contains("SIGKILL now")),
        "the log says what is done: {logs:?}"
    );
    assert!(!logs.iter().any(|l| l.contains("SIGTERM")), "{logs:?}");
}

#[test]
fn a_late_loss_logs_the_grace_it_really_gives() {
    let mut h = Harness::new(cfg(2));
    h.holder(20);
    // Woken at 8.5s: SIGKILL at the lease's end, 1.5s later, not 3s.
    let (acts, logs) = h.step_logged(Input::Timer, MS(8500));
    assert_eq!(acts, [Action::SignalChild(0, 15)]);
    assert!(
        logs.iter().any(|l| l.contains("SIGTERM, SIGKILL in 1.5s")),
        "{logs:?}"
    );
}

#[test]
fn timeout_while_every_slot_is_taken_withdraws_and_exits_75() {
    let mut h = Harness::new(Config {
        hold: Common {
            wait: Wait::Timeout(S(1)),
            ..cfg(1).hold
        },
        ..cfg(1)
    });
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
    let mut h = Harness::new(Config {
        hold: Common {
            wait: Wait::Timeout(S(1)),
            ..cfg(1).hold
        },
        ..cfg(1)
    });
    let acts = h.join(11, &[(ME, 10)], &[], MS(5));
    assert_eq!(acts[1], h.claim_txn(0, 10));
    // etcd does not answer the claim; retries go on past the timeout.
    let acts = h.step(Input::Txn(CLAIM, Err(unavailable())), MS(900));
    assert!(acts.is_empty(), "{acts:?}");
    assert_eq!(h.timer(S(1)), resign(ME));
    assert_eq!(h.step(Input::Revoked(Ok(())), S(1)), [Action::Exit(75)]);
}

#[test]
fn the_timeout_never_limits_the_run() {
    let mut h = Harness::new(Config {
        hold: Common {
            wait: Wait::Timeout(S(1)),
            ..cfg(1).hold
        },
        ..cfg(1)
    });
    h.holder(20);
    assert_ne!(h.deadline(), Some(S(1)));
    let acts = h.timer(S(2));
    assert!(
        !acts.iter().any(|a| matches!(a, Action::Revoke(_))),
        "{acts:?}"
    );
}
