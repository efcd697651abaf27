//! Faults seen by the machine: a lease lost while a claim is in flight, a
//! claim whose outcome is unknown, etcd away for longer than any lease, the
//! bound on blocking calls, and trimming under clock skew.

use super::*;

fn gone(at: Duration) -> Input {
    Input::KeepAlive(Ok(KeepAliveAnswer {
        ttl: 0,
        sent_at: at,
    }))
}

fn timeout() -> Error {
    Error::new(crate::etcd::ErrorKind::Timeout, "txn", "no answer")
}

fn unavailable() -> Error {
    Error::new(
        crate::etcd::ErrorKind::Unavailable,
        "lease grant",
        "refused",
    )
}

/// Our own fire key as an attempt made with `lease` wrote it.
fn ours(tick: i64, lease: i64, create: i64) -> KeyValue {
    let v = Claim {
        node: NODE.into(),
        pid: 42,
        lease: lease_hex(lease),
        at_ms: 0,
        cause: Default::default(),
    };
    fire_kv("j", tick, v.to_json().as_bytes(), create)
}

/// A refused claim's answer with the fire key and the result read back.
fn refused(revision: i64, fire: Option<KeyValue>, result: bool) -> Input {
    let range = |kvs: Vec<KeyValue>| {
        OpResult::Range(RangeResult {
            revision,
            count: kvs.len() as i64,
            kvs,
        })
    };
    let result_kv = fire_kv("j", 0, b"{}", revision);
    let nested = TxnResult {
        revision,
        succeeded: false,
        results: vec![],
    };
    Input::Txn(
        CLAIM,
        Ok(TxnResult {
            revision,
            succeeded: false,
            results: vec![
                OpResult::Txn(nested),
                range(fire.into_iter().collect()),
                range(if result { vec![result_kv] } else { vec![] }),
            ],
        }),
    )
}

#[test]
fn a_claim_answered_after_the_lease_was_lost_tells_the_run_the_claims_lease() {
    let mut h = Harness::serving(cfg(), &[("j", &job("@every 10s"))]);
    assert_eq!(claims(&h.run_to(S(10))).len(), 1);
    // The fence ran out (or etcd said so) before the claim's answer was
    // read: the lease is revoked and asked for again.
    let acts = h.step(gone(S(10)), S(10));
    assert!(acts.contains(&Action::Revoke(L1)), "{acts:?}");
    let (_, spec) = the_spawn(&h.step(won(77), MS(10_100)));
    assert_eq!(
        env(&spec, "CONCH_LEASE"),
        lease_hex(L1),
        "the lease of the claim, not the zero id"
    );
    // The registration on the new lease carries the run's marker.
    let acts = h.step(Input::Granted(Ok(Lease { id: L2, ttl: 60 })), S(11));
    let [Action::KeepAliveOpen(L2), Action::Txn(REGISTER, t)] = &acts[..] else {
        panic!("{acts:?}");
    };
    assert!(matches!(t.success[3], Op::Put { lease: L2, .. }), "{t:?}");
}

#[test]
fn a_claim_answered_after_reregistration_moves_its_marker_to_the_new_lease() {
    let mut h = Harness::serving(cfg(), &[("j", &job("@every 10s"))]);
    h.run_to(S(10));
    h.step(timeout_then_nothing(), S(10));
    // The retry is sent on L1; the lease is lost and replaced before its
    // answer is read.
    let retry = claims(&h.run_to(MS(10_100))).len();
    assert_eq!(retry, 1, "the unknown claim is sent again");
    h.step(gone(MS(10_100)), MS(10_100));
    h.step(Input::Granted(Ok(Lease { id: L2, ttl: 60 })), MS(10_100));
    let kvs = vec![job_kv("j", &job("@every 10s").to_json(), 5)];
    h.step(registered(90, kvs), MS(10_100));
    // The first attempt had won: the retry reads back our own fire key.
    let acts = h.step(refused(91, Some(ours(T0 + 10, L1, 80)), false), MS(10_200));
    let (_, spec) = the_spawn(&acts);
    assert_eq!(env(&spec, "CONCH_LEASE"), lease_hex(L1));
    assert_eq!(env(&spec, "CONCH_REV"), "80");
    let marker = acts.iter().find_map(|a| match a {
        Action::Txn(MARKER, t) => Some(t.clone()),
        _ => None,
    });
    let t = marker.expect("the marker is put on the live lease");
    let run = tick_key(TickKind::Run, "j", T0 + 10);
    assert!(
        matches!(&t.success[..], [Op::Put { key, lease: L2, .. }] if *key == run.as_bytes()),
        "{t:?}"
    );
}

/// A claim that timed out: the daemon fails over at once.
fn timeout_then_nothing() -> Input {
    Input::Txn(CLAIM, Err(timeout()))
}

#[test]
fn an_unknown_claim_is_retried_and_its_own_success_recognised() {
    let mut h = Harness::serving(cfg(), &[("j", &job("@every 10s"))]);
    let first = claims(&h.run_to(S(10)))[0].clone();
    let acts = h.step(timeout_then_nothing(), S(10));
    assert!(
        acts.iter().any(|a| matches!(a, Action::Reconnect { .. })),
        "fail over rather than wait on the same member: {acts:?}"
    );
    assert!(h.logged("outcome unknown"));
    let acts = h.run_to(MS(10_100));
    let again = claims(&acts);
    assert_eq!(again.len(), 1, "{acts:?}");
    assert_eq!(
        again[0].compare, first.compare,
        "the same create-only claim"
    );
    let (_, spec) = the_spawn(&h.step(refused(82, Some(ours(T0 + 10, L1, 79)), false), MS(10_150)));
    assert_eq!(env(&spec, "CONCH_REV"), "79");
}

#[test]
fn a_retry_that_finds_its_own_recorded_skip_runs_nothing() {
    let mut h = Harness::serving(cfg(), &[("j", &job("@every 10s"))]);
    h.run_to(S(10));
    h.step(timeout_then_nothing(), S(10));
    h.run_to(MS(10_100));
    let acts = h.step(refused(82, Some(ours(T0 + 10, L1, 79)), true), MS(10_150));
    assert!(!has_spawn(&acts), "{acts:?}");
    assert!(h.logged("skipped"));
    assert!(h.m.runs.is_empty());
}

#[test]
fn a_claim_still_unknown_at_the_end_of_its_grace_removes_its_marker() {
    // @every 60s: the grace is 30 s.
    let mut h = Harness::serving(cfg(), &[("j", &job("@every 60s"))]);
    let tick = T0 + 60;
    h.run_to(S(60));
    let mut at = S(60);
    // Every attempt times out until the grace is over.
    let cleanup = loop {
        h.step(timeout_then_nothing(), at);
        at += MS(100);
        let acts = h.run_to(at);
        let Some(sent) = claims(&acts).first().copied().cloned() else {
            // The session's failover retries, nothing else.
            continue;
        };
        if sent.success.len() == 1 {
            break sent;
        }
        assert!(at <= S(90) + MS(100), "claimed after its grace: {at:?}");
    };
    assert!(at > S(90), "not before the grace ran out: {at:?}");
    let run = tick_key(TickKind::Run, "j", tick);
    assert_eq!(
        cleanup.compare,
        [Compare::key(run.clone(), CmpOp::Equal, Target::Lease(L1))],
        "only a marker on our lease goes"
    );
    assert_eq!(cleanup.success, [Op::delete(run)]);
    assert!(h.logged("removing its run marker"));
    let ok = TxnResult {
        revision: 99,
        succeeded: true,
        results: vec![OpResult::Delete { deleted: 1 }],
    };
    h.step(Input::Txn(CLAIM, Ok(ok)), at);
    assert!(h.m.claims.is_empty() && h.m.retries.is_empty());
    assert!(h.m.runs.is_empty());
}

#[test]
fn an_idle_daemon_asks_for_a_lease_again_for_as_long_as_etcd_is_away() {
    let mut h = Harness::serving(cfg(), &[("j", &job("@every 1h"))]);
    h.step(gone(S(1)), S(1));
    let mut at = S(1);
    let mut pauses = Vec::new();
    for _ in 0..20 {
        let acts = h.step(Input::Granted(Err(unavailable())), at);
        assert!(
            !acts.iter().any(|a| matches!(a, Action::Exit(_))),
            "{acts:?}"
        );
        let next = h.m.deadline().expect("a retry is scheduled");
        pauses.push(next - at);
        let acts = h.step(Input::Timer, next);
        assert!(acts.contains(&Action::Grant { ttl: 60 }), "{acts:?}");
        at = next;
    }
    assert_eq!(pauses[0], MS(250));
    assert!(pauses.windows(2).all(|w| w[1] >= w[0]), "{pauses:?}");
    assert_eq!(*pauses.last().expect("pauses"), S(5), "capped");
    assert!(h.logged("retrying in"));
    // Back: registered again, serving.
    let acts = h.step(Input::Granted(Ok(Lease { id: L2, ttl: 60 })), at);
    assert!(matches!(
        acts[..],
        [Action::KeepAliveOpen(L2), Action::Txn(REGISTER, _)]
    ));
}

#[test]
fn refused_credentials_still_stop_the_daemon_with_69() {
    let mut h = Harness::serving(cfg(), &[]);
    h.step(gone(S(1)), S(1));
    let denied = Error::new(
        crate::etcd::ErrorKind::Auth,
        "lease grant",
        "permission denied",
    );
    let acts = h.step(Input::Granted(Err(denied)), S(1));
    assert_eq!(acts.last(), Some(&Action::Exit(69)), "{acts:?}");
}

#[test]
fn blocking_calls_end_by_half_a_second_after_the_next_tick() {
    let mut h = Harness::serving(
        cfg(),
        &[("a", &job("@every 10s")), ("b", &job("@every 5s"))],
    );
    assert_eq!(h.m.must_act_by(), Some(MS(5_500)));
    // b's claim in flight: its first attempt gets half its grace (5 s).
    assert_eq!(claims(&h.run_to(S(5))).len(), 1);
    assert_eq!(h.m.must_act_by(), Some(MS(7_500)));
    // Its answer: the bound is the next ticks again.
    h.step(
        lost(30, false, Some(fire_kv("b", T0 + 5, &other_node(0), 29))),
        MS(5_010),
    );
    assert_eq!(h.m.must_act_by(), Some(MS(10_500)));
}

#[test]
fn trimming_keeps_every_tick_within_the_skew_bound() {
    use super::results::trim_cut;
    let now = T0;
    let bound = now - SKEW_BOUND_SECS - MAX_GRACE_SECS;
    // Newest first, as the finish reads them.
    let recent: Vec<i64> = (0..10).map(|i| now - i).collect();
    assert_eq!(
        trim_cut(&recent, 10, 1, now),
        Some(bound),
        "--keep 1: none of them"
    );
    let mixed = [now, now - 5, bound, bound - 10, bound - 20];
    assert_eq!(trim_cut(&mixed, 5, 1, now), Some(bound));
    assert_eq!(trim_cut(&mixed, 5, 4, now), Some(bound - 10));
    assert_eq!(trim_cut(&mixed, 5, 5, now), None);
    // Only the newest `keep` are read; the count says how many there are.
    assert_eq!(trim_cut(&mixed[..4], 900, 4, now), Some(bound - 10));
}

#[test]
fn a_result_is_kept_through_a_long_outage_with_a_growing_capped_pause() {
    let mut h = Harness::serving(cfg(), &[("backup", &job("@every 1h"))]);
    let tag = h.win(S(3600), 77);
    h.step(Input::ChildExited(tag, ChildStatus::Exited(0)), S(3601));
    let (txn, _) = the_finish(&h.step(Input::ChildrenGone(tag), S(3601)));
    let mut at = S(3601);
    let mut pauses = Vec::new();
    for _ in 0..8 {
        let err = Error::new(crate::etcd::ErrorKind::Unavailable, "txn", "refused");
        h.step(Input::Txn(FINISH, Err(err)), at);
        let (next, _) = h.m.unrecorded[0];
        pauses.push((next - at).as_secs());
        // Keep-alives and failovers may wake the loop in between.
        let mut acts = h.run_to(next);
        acts.retain(|a| matches!(a, Action::Txn(FINISH, _)));
        assert_eq!(acts, [Action::Txn(FINISH, txn.clone())]);
        at = next;
    }
    assert_eq!(pauses, [1, 2, 4, 8, 10, 10, 10, 10]);
    assert!(h.logged("retrying in"));
}

#[test]
fn a_daemon_without_a_lease_never_bounds_its_calls_by_a_tick_it_cannot_claim() {
    // Found by the cluster drill: while the lease was being granted again,
    // the next tick of every job stayed where the loss left it, so the bound
    // lay in the past and every call, the grant included, got no time at
    // all: the daemon could never come back, even once etcd had.
    let mut h = Harness::serving(cfg(), &[("j", &job("@every 1s"))]);
    h.step(gone(S(1)), S(1));
    let mut at = S(1);
    for _ in 0..6 {
        at += MS(700);
        h.step(Input::Granted(Err(unavailable())), at);
        let by = h.m.must_act_by();
        assert!(by.is_none_or(|b| b > at), "bound {by:?} not after {at:?}");
    }
}
