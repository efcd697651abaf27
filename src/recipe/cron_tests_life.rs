//! Job changes on the watch, timeouts, shutdown, lease loss, clock steps
//! and concurrent runs.

use super::*;

#[test]
fn a_job_put_on_the_watch_is_scheduled_without_a_restart() {
    let mut h = Harness::serving(cfg(), &[]);
    assert!(h
        .step(put_event("new", &job("@every 10s"), 30), S(3))
        .is_empty());
    assert_eq!(h.next_of("new"), Some(T0 + 10));
    let acts = h.run_to(S(10));
    assert_eq!(claimed(&acts), [("new".to_string(), T0 + 10)]);
    assert_eq!(claims(&acts)[0].compare[0].target, Target::ModRevision(30));
}

#[test]
fn a_replaced_job_is_rescheduled_and_claimed_against_its_new_revision() {
    let mut h = Harness::serving(cfg(), &[("j", &job("@every 10s"))]);
    // The same revision again (a re-read) changes nothing.
    h.step(put_event("j", &job("@every 25s"), 5), S(2));
    assert_eq!(h.next_of("j"), Some(T0 + 10));
    h.step(put_event("j", &job("@every 25s"), 31), S(3));
    assert_eq!(h.next_of("j"), Some(T0 + 25));
    let acts = h.run_to(S(25));
    assert_eq!(claimed(&acts), [("j".to_string(), T0 + 25)]);
    assert_eq!(claims(&acts)[0].compare[0].target, Target::ModRevision(31));
}

#[test]
fn a_deleted_job_is_claimed_no_more_but_its_run_finishes_and_is_recorded() {
    let mut h = Harness::serving(cfg(), &[("j", &job("@every 10s"))]);
    let tag = h.win(S(10), 77);
    assert!(
        h.step(delete_event("j", 90), S(12)).is_empty(),
        "not stopped"
    );
    assert!(h.logged("job j removed"));
    assert_eq!(h.m.deadline(), Some(S(19)), "only the keep-alive is left");
    assert!(claims(&h.run_to(S(60))).is_empty());
    let acts = h.step(Input::ChildExited(tag, ChildStatus::Exited(0)), S(61));
    assert_eq!(acts, [Action::SignalChild(tag, 15)]);
    let (t, r) = the_finish(&h.step(Input::ChildrenGone(tag), S(61)));
    assert_eq!(r.outcome, Outcome::Ok);
    assert_eq!(
        t.success[1],
        Op::delete(tick_key(TickKind::Run, "j", T0 + 10))
    );
    assert!(h.step(finished(95, "j", &[T0 + 10]), S(62)).is_empty());
}

#[test]
fn a_timed_out_run_gets_sigterm_then_the_jobs_own_sigkill_and_is_recorded() {
    let mut j = job("@every 60s");
    j.timeout_ms = Some(5000);
    let mut h = Harness::serving(cfg(), &[("slow", &j)]);
    let tag = h.win(S(60), 77);
    assert_eq!(h.m.deadline(), Some(S(65)));
    assert!(h.run_to(S(65) - MS(1)).is_empty());
    assert_eq!(h.run_to(S(65)), [Action::SignalChild(tag, 15)]);
    assert!(h.logged("timed out"));
    assert_eq!(h.m.deadline(), Some(S(67)), "the job's kill-after: 2 s");
    assert_eq!(h.run_to(S(67)), [Action::SignalChild(tag, 9)]);
    let acts = h.step(Input::ChildExited(tag, ChildStatus::Signaled(9)), S(67));
    assert!(acts.is_empty(), "already killed");
    let (_, r) = the_finish(&h.step(Input::ChildrenGone(tag), S(67)));
    assert_eq!(r.outcome, Outcome::Timeout);
}

#[test]
fn sigterm_stops_every_run_claims_nothing_more_and_exits_after_the_results() {
    let mut h = Harness::serving(cfg(), &[("j", &allow(job("@every 10s")))]);
    let a = h.win(S(10), 77);
    let b = h.win(S(20), 88);
    assert_ne!(a, b);
    let acts = h.step(Input::Signal(15), S(21));
    assert_eq!(
        acts,
        [Action::SignalChild(a, 15), Action::SignalChild(b, 15)]
    );
    let acts = h.run_to(S(60));
    assert!(claims(&acts).is_empty(), "no claim after SIGTERM: {acts:?}");
    assert_eq!(
        acts,
        [Action::SignalChild(a, 9), Action::SignalChild(b, 9)],
        "SIGKILL after the jobs' kill-after"
    );
    for tag in [a, b] {
        h.step(Input::ChildExited(tag, ChildStatus::Signaled(9)), S(61));
        let (_, r) = the_finish(&h.step(Input::ChildrenGone(tag), S(61)));
        assert_eq!(r.outcome, Outcome::Killed(9));
    }
    assert!(h
        .step(finished(90, "j", &[T0 + 10, T0 + 20]), S(62))
        .is_empty());
    assert_eq!(
        h.step(finished(91, "j", &[T0 + 10, T0 + 20]), S(62)),
        [
            Action::Unwatch(WATCH_JOBS),
            Action::Unwatch(WATCH_MANUAL),
            Action::Unwatch(WATCH_NODES),
            Action::KeepAliveClose,
            Action::Revoke(L1)
        ]
    );
    assert_eq!(h.m.deadline(), None);
    assert_eq!(h.step(Input::Revoked(Ok(())), S(62)), [Action::Exit(0)]);
    assert!(h.step(Input::Timer, S(70)).is_empty());
}

#[test]
fn sigterm_without_runs_revokes_and_exits_at_once() {
    let mut h = Harness::serving(cfg(), &[("j", &job("@every 10s"))]);
    assert_eq!(
        h.step(Input::Signal(15), S(3)),
        [
            Action::Unwatch(WATCH_JOBS),
            Action::Unwatch(WATCH_MANUAL),
            Action::Unwatch(WATCH_NODES),
            Action::KeepAliveClose,
            Action::Revoke(L1)
        ]
    );
    assert_eq!(h.step(Input::Revoked(Ok(())), S(3)), [Action::Exit(0)]);
}

#[test]
fn sigterm_with_a_claim_in_flight_never_leaves_a_child_behind() {
    let mut h = Harness::serving(cfg(), &[("j", &job("@every 10s"))]);
    assert_eq!(claims(&h.run_to(S(10))).len(), 1);
    h.step(Input::Signal(15), S(10));
    // The claim sent before the signal is answered: it won.
    let acts = h.step(won(77), S(10));
    assert!(!has_spawn(&acts), "nothing starts while stopping: {acts:?}");
    let acts = h.step(Input::Revoked(Ok(())), S(10));
    assert_eq!(acts, [Action::Exit(0)]);
}

#[test]
fn a_lost_lease_leaves_the_run_alone_and_puts_its_marker_on_the_new_lease() {
    let mut h = Harness::serving(cfg(), &[("j", &job("@every 10s"))]);
    let tag = h.win(S(10), 77);
    let gone = KeepAliveAnswer {
        ttl: 0,
        sent_at: S(12),
    };
    let acts = h.step(Input::KeepAlive(Ok(gone)), S(12));
    assert_eq!(
        acts,
        [
            Action::Unwatch(WATCH_JOBS),
            Action::Unwatch(WATCH_NODES),
            Action::KeepAliveClose,
            Action::Revoke(L1),
            Action::Grant { ttl: 60 }
        ],
        "the run is not stopped"
    );
    let acts = h.step(Input::Granted(Ok(Lease { id: L2, ttl: 60 })), S(13));
    let [Action::KeepAliveOpen(L2), Action::Txn(REGISTER, t)] = &acts[..] else {
        panic!("{acts:?}");
    };
    let [Op::Put { lease: L2, .. }, Op::Get(_), Op::Get(_), Op::Put { key, value, lease }] =
        &t.success[..]
    else {
        panic!("{t:?}");
    };
    assert_eq!(key, tick_key(TickKind::Run, "j", T0 + 10).as_bytes());
    assert_eq!(*lease, L2);
    assert_eq!(Claim::from_json(value).lease, lease_hex(L2));
    let kvs = vec![job_kv("j", &job("@every 10s").to_json(), 5)];
    let spec = WatchSpec::prefix(schema().cron_job_dir()).from_revision(91);
    let requests = Range::prefix(schema().cron_manual_dir());
    assert_eq!(
        h.step(registered(90, kvs), S(13)),
        [
            Action::Watch(WATCH_JOBS, spec),
            Action::Range(MANUAL, requests)
        ]
    );
    // Serving again: the next tick is claimed with a marker on L2.
    let acts = h.run_to(S(20));
    let [Action::Txn(CLAIM, t)] = &acts[..] else {
        panic!("{acts:?}");
    };
    assert!(matches!(t.success[1], Op::Put { lease: L2, .. }));
    h.step(Input::ChildExited(tag, ChildStatus::Exited(0)), S(21));
    let (_, r) = the_finish(&h.step(Input::ChildrenGone(tag), S(21)));
    assert_eq!(r.outcome, Outcome::Ok);
}

#[test]
fn a_failed_register_is_sent_again_after_the_failover() {
    let mut h = Harness::new(cfg());
    h.step(Input::Start, S(0));
    h.step(Input::Granted(Ok(Lease { id: L1, ttl: 60 })), S(0));
    let e = Error::new(crate::etcd::ErrorKind::Unavailable, "txn", "no leader");
    let acts = h.step(Input::Txn(REGISTER, Err(e)), S(1));
    assert!(acts.iter().any(|a| matches!(a, Action::Reconnect { .. })));
    let acts = h.step(Input::Reconnected(Ok(())), S(2));
    let registers = acts
        .iter()
        .filter(|a| matches!(a, Action::Txn(REGISTER, _)))
        .count();
    assert_eq!(registers, 1, "{acts:?}");
    let kvs = vec![job_kv("j", &job("@every 10s").to_json(), 5)];
    h.step(registered(30, kvs), S(2));
    assert_eq!(claimed(&h.run_to(S(10))), [("j".to_string(), T0 + 10)]);
}

#[test]
fn a_clock_step_recomputes_the_next_ticks_from_the_new_wall_time() {
    let mut h = Harness::serving(cfg(), &[("j", &job("@every 10s"))]);
    // At boot 2 s the wall clock jumps 35 s ahead: it reads T0+37.
    h.step(Input::ClockStep(T0 * 1000 + 35_000), S(2));
    assert!(h.logged("stepped by 35000ms"));
    assert_eq!(h.next_of("j"), Some(T0 + 40));
    assert_eq!(h.m.deadline(), Some(S(5)));
    let acts = h.run_to(S(5));
    assert_eq!(claimed(&acts), [("j".to_string(), T0 + 40)]);
    let Op::Put { value, .. } = &claims(&acts)[0].success[0] else {
        panic!();
    };
    assert_eq!(Claim::from_json(value).at_ms, (T0 as u64 + 40) * 1000);
}

#[test]
fn a_backward_clock_step_never_claims_a_tick_again() {
    let mut h = Harness::serving(cfg(), &[("j", &allow(job("@every 10s")))]);
    h.win(S(10), 77);
    // The wall clock goes back 5 s: T0+10 is ahead of it again. A second
    // claim would find the fire key ours (node and lease) and run it again.
    h.step(Input::ClockStep(T0 * 1000 - 5000), MS(10_500));
    assert_eq!(h.next_of("j"), Some(T0 + 20));
    // Nor does a replaced definition bring it back.
    h.step(put_event("j", &allow(job("@every 10s")), 40), S(11));
    assert_eq!(h.next_of("j"), Some(T0 + 20));
    let acts = h.run_to(S(25));
    assert_eq!(claimed(&acts), [("j".to_string(), T0 + 20)]);
}

#[test]
fn two_concurrent_runs_have_their_own_tags_and_their_own_results() {
    let mut h = Harness::serving(cfg(), &[("j", &allow(job("@every 10s")))]);
    let a = h.win(S(10), 77);
    let b = h.win(S(20), 88);
    assert_ne!(a, b);
    let acts = h.step(Input::ChildExited(b, ChildStatus::Exited(0)), S(21));
    assert_eq!(acts, [Action::SignalChild(b, 15)], "a is left alone");
    // b's result waits a moment for a's, which is still running.
    assert!(h.step(Input::ChildrenGone(b), S(21)).is_empty());
    let (t, r) = the_finish(&h.step(Input::Timer, S(21) + FINISH_HOLD));
    assert_eq!(r.outcome, Outcome::Ok);
    assert_eq!(
        t.success[1],
        Op::delete(tick_key(TickKind::Run, "j", T0 + 20))
    );
    assert!(h.m.runs.contains_key(&a) && !h.m.runs.contains_key(&b));
    // A stray report for the finished tag changes nothing.
    assert!(h.step(Input::ChildrenGone(b), S(22)).is_empty());
    h.step(Input::ChildExited(a, ChildStatus::Exited(4)), S(23));
    let (t, r) = the_finish(&h.step(Input::ChildrenGone(a), S(23)));
    assert_eq!(r.outcome, Outcome::Failed(4));
    assert_eq!(
        t.success[1],
        Op::delete(tick_key(TickKind::Run, "j", T0 + 10))
    );
}
