//! The hold rules elect shares with sema (`hold.rs`), checked from elect's
//! side: a loss while the child's tree drains, the stop's log line when the
//! grace is cut, and `--timeout` while the campaign is being retried.

use super::*;

#[test]
fn a_loss_after_the_child_exited_on_its_own_keeps_the_childs_status() {
    let mut h = Harness::new(cfg());
    h.leader(L1, 5);
    let acts = h.step(Input::ChildExited(0, ChildStatus::Exited(3)), S(1));
    assert_eq!(acts, [Action::SignalChild(0, 15)]);
    let sent = h.deadline().expect("keep-alive due");
    assert_eq!(h.timer(sent), [Action::KeepAliveSend]);
    assert_eq!(h.step(ka(sent, 0), S(3)), [Action::SignalChild(0, 15)]);
    assert_eq!(h.step(Input::ChildrenGone(0), S(3)), resign(L1));
    assert_eq!(h.step(Input::Revoked(Ok(())), S(3)), [Action::Exit(3)]);
}

#[test]
fn a_loss_past_the_lease_deadline_says_sigkill_now_and_does_it() {
    let mut h = Harness::new(cfg());
    h.leader(L1, 5);
    let (acts, logs) = h.step_logged(Input::Timer, S(11));
    assert_eq!(acts, [Action::SignalChild(0, 9)]);
    assert!(logs.iter().any(|l| l.contains("SIGKILL now")), "{logs:?}");
    assert!(!logs.iter().any(|l| l.contains("SIGTERM")), "{logs:?}");
}

#[test]
fn a_late_loss_logs_the_grace_it_really_gives() {
    let mut h = Harness::new(cfg());
    h.leader(L1, 5);
    let (acts, logs) = h.step_logged(Input::Timer, MS(8500));
    assert_eq!(acts, [Action::SignalChild(0, 15)]);
    assert!(
        logs.iter().any(|l| l.contains("SIGTERM, SIGKILL in 1.5s")),
        "not the full kill-after: the lease ends at 10s: {logs:?}"
    );
}

#[test]
fn a_signal_past_the_lease_deadline_says_sigkill_now() {
    let mut h = Harness::new(cfg());
    h.leader(L1, 5);
    // The signal is handled before the fence in the same step.
    let (acts, logs) = h.step_logged(Input::Signal(15), S(11));
    assert_eq!(acts[0], Action::SignalChild(0, 9));
    assert!(
        logs.iter()
            .any(|l| l.starts_with("signal 15") && l.contains("SIGKILL now")),
        "{logs:?}"
    );
}

#[test]
fn timeout_while_the_campaign_is_retried_withdraws_and_exits_75() {
    let mut h = Harness::new(Config {
        hold: Common {
            wait: Wait::Timeout(S(1)),
            ..cfg().hold
        },
        ..cfg()
    });
    assert_eq!(h.step(Input::Start, S(0)), [Action::Grant { ttl: 10 }]);
    h.step(Input::Granted(Ok(Lease { id: L1, ttl: 10 })), S(0));
    let e = Error::new(ErrorKind::Unavailable, "txn", "no leader");
    assert!(h.step(Input::Txn(CAMPAIGN, Err(e)), MS(900)).is_empty());
    assert_eq!(h.timer(S(1)), resign(L1));
    assert_eq!(h.step(Input::Revoked(Ok(())), S(1)), [Action::Exit(75)]);
}
