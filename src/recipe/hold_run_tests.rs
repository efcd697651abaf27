//! The child side of a hold on its own, on a virtual clock.

use super::*;
use crate::kit::machine::{ChildStatus, SpawnSpec};

const S: fn(u64) -> Duration = Duration::from_secs;
const MS: fn(u64) -> Duration = Duration::from_millis;

fn running(kill_after: Duration) -> Run {
    let mut h = Run::new(kill_after);
    let mut out = Vec::new();
    let spec = SpawnSpec {
        argv: vec!["x".into()],
        env: vec![],
    };
    h.child_mut().spawn(spec, S(0), &mut out);
    h.child_mut().spawned(S(0));
    h
}

fn logs(out: &[Action]) -> Vec<&str> {
    out.iter()
        .filter_map(|a| match a {
            Action::Log(_, m) => Some(m.as_str()),
            _ => None,
        })
        .collect()
}

fn signals(out: &[Action]) -> Vec<i32> {
    out.iter()
        .filter_map(|a| match a {
            Action::SignalChild(0, s) => Some(*s),
            _ => None,
        })
        .collect()
}

fn gone(why: &str) -> Gone {
    Gone(why.into())
}

#[test]
fn a_loss_while_running_stops_the_child_and_means_70() {
    let mut h = running(S(3));
    let mut out = Vec::new();
    let r = h.on_lost(&gone("x"), S(1), Some(S(10)), &mut out);
    assert_eq!(r, AfterLoss::Stopping);
    assert_eq!(signals(&out), [15]);
    assert_eq!(
        logs(&out),
        ["lease lost: x; stopping child (SIGTERM, SIGKILL in 3s)"]
    );
    h.child_mut()
        .exited(ChildStatus::Signaled(15), S(2), &mut out);
    let ended = h.child_mut().gone().expect("ended");
    assert_eq!(h.exit_code(ended), 70);
}

#[test]
fn the_log_names_the_grace_the_supervisor_really_gives() {
    for (now, hard, text, sig) in [
        (S(1), Some(S(10)), "SIGTERM, SIGKILL in 3s", 15),
        (MS(8500), Some(S(10)), "SIGTERM, SIGKILL in 1.5s", 15),
        (
            S(10),
            Some(S(10)),
            "SIGKILL now: past the lease deadline",
            9,
        ),
        (S(1), None, "SIGTERM, SIGKILL in 3s", 15),
    ] {
        let mut h = running(S(3));
        let mut out = Vec::new();
        h.on_lost(&gone("x"), now, hard, &mut out);
        assert_eq!(signals(&out), [sig], "{text}");
        assert_eq!(
            logs(&out),
            [format!("lease lost: x; stopping child ({text})")]
        );
    }
}

#[test]
fn the_first_stop_reason_wins() {
    // Signal first, loss second: the child's status.
    let mut h = running(S(3));
    let mut out = Vec::new();
    assert_eq!(
        h.on_signal(15, S(1), Some(S(10)), &mut out),
        AfterSignal::Nothing
    );
    h.on_lost(&gone("x"), S(2), Some(S(10)), &mut out);
    assert_eq!(h.stop_reason(), Some(Stop::Signal(15)));
    h.child_mut()
        .exited(ChildStatus::Signaled(15), S(2), &mut out);
    let ended = h.child_mut().gone().expect("ended");
    assert_eq!(h.exit_code(ended), 143);
    // Loss first, signal second: 70.
    let mut h = running(S(3));
    h.on_lost(&gone("x"), S(1), Some(S(10)), &mut out);
    h.on_signal(2, S(2), Some(S(10)), &mut out);
    h.child_mut().exited(ChildStatus::Exited(0), S(2), &mut out);
    let ended = h.child_mut().gone().expect("ended");
    assert_eq!(h.exit_code(ended), 70);
}

#[test]
fn a_loss_after_the_child_exited_stops_nothing_and_keeps_its_status() {
    let mut h = running(S(3));
    let mut out = Vec::new();
    h.child_mut().exited(ChildStatus::Exited(4), S(1), &mut out);
    out.clear();
    let r = h.on_lost(&gone("x"), S(12), Some(S(10)), &mut out);
    assert_eq!(r, AfterLoss::Stopping, "the tree still drains");
    assert_eq!(signals(&out), [9], "past the deadline: at once");
    assert_eq!(h.stop_reason(), None);
    let ended = h.child_mut().gone().expect("ended");
    assert_eq!(h.exit_code(ended), 4);
}

#[test]
fn without_a_child_a_loss_is_the_recipes_and_a_signal_withdraws() {
    let mut h = Run::new(S(3));
    let mut out = Vec::new();
    assert_eq!(h.on_lost(&gone("x"), S(1), None, &mut out), AfterLoss::Idle);
    assert!(out.is_empty(), "the recipe says what it does: {out:?}");
    assert_eq!(
        h.on_signal(2, S(1), None, &mut out),
        AfterSignal::Withdraw(130)
    );
    assert_eq!(
        h.on_signal(10, S(1), None, &mut out),
        AfterSignal::Nothing,
        "SIGUSR1 is only forwarded"
    );
    assert!(signals(&out).is_empty());
}

#[test]
fn the_timeout_limits_the_wait_only() {
    let mut h = Run::new(S(3));
    let mut out = Vec::new();
    h.start_waiting(Wait::Timeout(S(2)), S(1));
    assert_eq!(h.timeout_deadline(), Some(S(3)));
    assert_eq!(h.on_time(MS(2999), &mut out), None);
    assert_eq!(h.on_time(S(3), &mut out), Some(75));
    assert_eq!(h.timeout_deadline(), None, "reported once");

    let mut h = Run::new(S(3));
    h.start_waiting(Wait::Timeout(S(2)), S(1));
    h.acquired();
    assert_eq!(h.timeout_deadline(), None);
    assert_eq!(h.on_time(S(9), &mut out), None);

    let mut h = Run::new(S(3));
    h.start_waiting(Wait::Forever, S(1));
    assert_eq!(h.timeout_deadline(), None);
}
