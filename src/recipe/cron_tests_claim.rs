//! A won claim's run, result and trimming; claims that lose, skip, fail or
//! are retried; the grace of a late wake-up.

use super::*;

#[test]
fn a_won_claim_runs_the_job_records_its_exit_and_trims_the_history() {
    let mut j = job("@every 10s");
    j.keep = 3;
    let mut h = Harness::serving(cfg(), &[("backup", &j)]);
    let tick = T0 + 10;
    h.run_to(S(10));
    let (tag, spec) = the_spawn(&h.step(won(77), MS(10_020)));
    assert_eq!(spec.argv, ["backup", "--all"]);
    for (k, v) in [
        ("CONCH_JOB", "backup"),
        ("CONCH_NAME", "backup"),
        ("CONCH_TICK", "2027-01-15T08:00:10Z"),
        ("CONCH_REV", "77"),
        ("CONCH_KEY", fire("backup", tick).as_str()),
        ("CONCH_LEASE", "0000000000c00001"),
    ] {
        assert_eq!(env(&spec, k), v, "{k}");
    }
    assert!(h.step(Input::Spawned(tag, 900), MS(10_030)).is_empty());
    let acts = h.step(Input::ChildExited(tag, ChildStatus::Exited(3)), S(12));
    assert_eq!(acts, [Action::SignalChild(tag, 15)], "the rest of the tree");
    let (t, result) = the_finish(&h.step(Input::ChildrenGone(tag), MS(12_500)));
    let want = RunResult {
        outcome: Outcome::Failed(3),
        start_ms: (T0 * 1000 + 10_020) as u64,
        end_ms: (T0 * 1000 + 12_500) as u64,
        node: NODE.into(),
    };
    assert_eq!(result, want);
    assert!(t.compare.is_empty());
    assert_eq!(
        t.success,
        [
            Op::put(
                tick_key(TickKind::Result, "backup", tick),
                want.to_json(),
                0
            ),
            Op::delete(tick_key(TickKind::Run, "backup", tick)),
        ],
        "the next tick is in the same trim window: no read, no trim"
    );
}

#[test]
fn the_last_run_of_a_trim_window_reads_the_newest_keep_and_trims_below() {
    let mut j = job("@every 1m");
    j.keep = 3;
    let mut h = Harness::serving(cfg(), &[("backup", &j)]);
    // T0 is a multiple of 64: T0+60 and T0+120 lie in different windows.
    let tick = T0 + 60;
    let tag = h.win(S(60), 77);
    h.step(Input::ChildExited(tag, ChildStatus::Exited(0)), S(61));
    let (t, _) = the_finish(&h.step(Input::ChildrenGone(tag), S(61)));
    let mut newest = Range::prefix(schema().cron_tick_dir(TickKind::Fire, "backup"));
    newest.limit = 3;
    newest.newest_first = true;
    newest.keys_only = true;
    assert_eq!(t.success.len(), 3);
    assert_eq!(t.success[2], Op::Get(newest));

    // Old enough that no daemon within the skew bound could claim them.
    let old = T0 - SKEW_BOUND_SECS - 100;
    let ticks = [old - 30, old - 20, old - 10, T0, tick];
    let acts = h.step(finished(80, "backup", &ticks), S(62));
    let cut = |k| Op::Delete {
        key: schema().cron_tick_dir(k, "backup").into_bytes(),
        range_end: tick_key(k, "backup", old - 10).into_bytes(),
    };
    let trim = Txn {
        compare: vec![],
        success: vec![cut(TickKind::Fire), cut(TickKind::Result)],
        failure: vec![],
    };
    assert_eq!(acts, [Action::Txn(TRIM, trim)], "below the 3rd newest");
}

#[test]
fn a_history_within_keep_is_not_trimmed() {
    let mut j = job("@every 10s");
    j.keep = 3;
    let mut h = Harness::serving(cfg(), &[("backup", &j)]);
    let tag = h.win(S(10), 77);
    h.step(Input::ChildExited(tag, ChildStatus::Exited(0)), S(11));
    let (_, r) = the_finish(&h.step(Input::ChildrenGone(tag), S(11)));
    assert_eq!(r.outcome, Outcome::Ok);
    let ticks = [T0 - 10, T0, T0 + 10];
    assert!(h.step(finished(80, "backup", &ticks), S(12)).is_empty());
}

#[test]
fn a_claim_lost_to_another_node_runs_nothing() {
    let mut h = Harness::serving(cfg(), &[("backup", &job("@every 10s"))]);
    h.run_to(S(10));
    let theirs = fire_kv("backup", T0 + 10, &other_node(0), 70);
    assert!(h.step(lost(78, false, Some(theirs)), S(10)).is_empty());
    assert!(!h.logged("skipped"));
    assert!(h.m.runs.is_empty());
}

#[test]
fn a_skip_recorded_by_the_nested_txn_runs_nothing_and_says_so() {
    let mut h = Harness::serving(cfg(), &[("backup", &job("@every 10s"))]);
    let acts = h.run_to(S(10));
    // The nested txn wrote our own claim to the fire key, with the skip.
    let ours = fire_kv("backup", T0 + 10, &fire_value(claims(&acts)[0]), 78);
    assert!(h.step(lost(78, true, Some(ours)), S(10)).is_empty());
    assert!(h.logged("skipped"));
    assert!(h.m.runs.is_empty());
}

#[test]
fn a_retried_claim_that_reads_back_its_own_fire_key_runs() {
    let mut h = Harness::serving(cfg(), &[("backup", &job("@every 10s"))]);
    let acts = h.run_to(S(10));
    // The first attempt landed at 79; the retry found the key present.
    let ours = fire_kv("backup", T0 + 10, &fire_value(claims(&acts)[0]), 79);
    let (_, spec) = the_spawn(&h.step(lost(81, false, Some(ours)), S(10)));
    assert_eq!(env(&spec, "CONCH_REV"), "79", "the fire key's creation");
}

#[test]
fn a_refused_claim_runs_nothing_and_is_not_retried() {
    let mut h = Harness::serving(cfg(), &[("backup", &job("@every 10s"))]);
    h.run_to(S(10));
    let e = Error::new(crate::etcd::ErrorKind::Other, "txn", "too many operations");
    assert!(h.step(Input::Txn(CLAIM, Err(e)), S(11)).is_empty());
    assert!(h.logged("claim of tick"));
    assert!(h.step(Input::Timer, S(12)).is_empty());
}

#[test]
fn a_wake_past_the_grace_leaves_the_tick_and_schedules_the_next() {
    // A long TTL, so that nothing but the late timer wakes the machine.
    let cfg = Config {
        ttl: S(300),
        ..cfg()
    };
    let mut h = Harness::serving(cfg, &[("minutely", &job("@every 60s"))]);
    assert_eq!(h.m.deadline(), Some(S(60)));
    // Grace is 30 s (the gap is 60 s): 30 s late is still in time...
    let mut h2 = Harness::serving(h.m.cfg.clone(), &[("minutely", &job("@every 60s"))]);
    assert_eq!(claimed(&h2.step(Input::Timer, S(90))).len(), 1);
    // ...31 s is not.
    assert!(claims(&h.step(Input::Timer, S(91))).is_empty());
    assert!(h.logged("missed"));
    assert_eq!(h.next_of("minutely"), Some(T0 + 120));
    let acts = h.run_to(S(120));
    assert_eq!(claimed(&acts), [("minutely".to_string(), T0 + 120)]);
}

#[test]
fn the_grace_is_the_gap_to_the_next_tick_when_that_is_shorter() {
    let mut h = Harness::serving(cfg(), &[("j", &job("@every 10s"))]);
    // 11 s late for T0+10 (grace 10 s): only T0+20 is claimed.
    assert_eq!(
        claimed(&h.step(Input::Timer, S(21))),
        [("j".to_string(), T0 + 20)]
    );
    let mut h = Harness::serving(cfg(), &[("j", &job("@every 10s"))]);
    // Exactly at the end of T0+10's grace: both are claimed, in order.
    assert_eq!(
        claimed(&h.step(Input::Timer, S(20))),
        [("j".to_string(), T0 + 10), ("j".to_string(), T0 + 20)]
    );
}

#[test]
fn a_result_etcd_did_not_take_is_sent_again_until_it_is() {
    let mut h = Harness::serving(cfg(), &[("backup", &job("@every 10s"))]);
    let tag = h.win(S(10), 77);
    h.step(Input::ChildExited(tag, ChildStatus::Exited(0)), S(11));
    let (txn, _) = the_finish(&h.step(Input::ChildrenGone(tag), S(11)));
    let err = Error::new(
        crate::etcd::ErrorKind::Unavailable,
        "txn",
        "transport error",
    );
    assert!(h.step(Input::Txn(FINISH, Err(err)), MS(11_100)).is_empty());
    assert!(
        h.m.deadline().is_some_and(|d| d <= MS(12_100)),
        "a retry is scheduled"
    );
    let acts = h.step(Input::Timer, MS(12_100));
    assert_eq!(
        acts,
        [Action::Txn(FINISH, txn)],
        "the same idempotent write"
    );
    assert!(h
        .step(finished(80, "backup", &[T0 + 10]), MS(12_200))
        .is_empty());
    assert!(h.m.unrecorded.is_empty() && h.m.finishes.is_empty());
}

#[test]
fn a_refused_registration_stops_the_daemon_with_69_instead_of_spinning() {
    let mut h = Harness::new(cfg());
    h.step(Input::Start, S(0));
    h.step(Input::Granted(Ok(Lease { id: L1, ttl: 60 })), S(0));
    let denied = Error::new(crate::etcd::ErrorKind::Auth, "txn", "permission denied");
    let acts = h.step(Input::Txn(REGISTER, Err(denied)), S(0));
    assert!(
        !acts.iter().any(|a| matches!(a, Action::Reconnect { .. })),
        "no retry loop: {acts:?}"
    );
    assert!(acts.contains(&Action::Revoke(L1)), "{acts:?}");
    assert_eq!(h.step(Input::Revoked(Ok(())), S(0)), [Action::Exit(69)]);
}
