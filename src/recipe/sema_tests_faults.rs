//! Losses, signals, etcd failures, failover and a spawn failure.

use super::*;

/// Rank 1 of `--max 1`: A holds slot 0.
fn waiter(cfg: Config) -> Harness {
    let mut h = Harness::new(cfg);
    let acts = h.join(12, &[(A, 10), (ME, 11)], &[(0, A, 10)], MS(5));
    assert_eq!(acts[1], h.queue_watch(13));
    h
}

#[test]
fn own_queue_or_slot_key_deleted_while_holding_stops_the_child_and_exits_70() {
    for (tag, which) in [(OWN, "queue"), (SLOTS, "slot")] {
        let mut h = Harness::new(cfg(2));
        h.holder(20);
        let k = if tag == OWN { h.qkey(ME) } else { h.skey(0) };
        let acts = h.step(deletes(tag, &[k], 30), S(1));
        assert_eq!(acts, [Action::SignalChild(0, 15)], "{which}");
        assert_eq!(h.deadline(), Some(S(4)));
        assert!(h.timer(MS(3999)).is_empty());
        assert_eq!(h.timer(S(4)), [Action::SignalChild(0, 9)]);
        assert_eq!(h.deadline(), None);
        let acts = h.step(Input::ChildExited(0, ChildStatus::Signaled(9)), S(4));
        assert!(acts.is_empty());
        assert_eq!(h.step(Input::ChildrenGone(0), S(4)), resign(ME));
        assert_eq!(h.step(Input::Revoked(Ok(())), S(4)), [Action::Exit(70)]);
    }
}

#[test]
fn an_unavailable_join_is_retried_after_a_pause_with_the_same_create() {
    let mut h = Harness::new(cfg(2));
    h.create_retried(JOIN, ME);
    // The first create did land: the failure branch still reads both.
    let results = vec![
        OpResult::Range(h.queue(9, &[(ME, 9)])),
        OpResult::Range(h.slots(9, &[])),
    ];
    let answer = TxnResult {
        revision: 9,
        succeeded: false,
        results,
    };
    let acts = h.step(Input::Txn(JOIN, Ok(answer)), MS(400));
    assert_eq!(acts[1..], [h.claim_txn(0, 9)]);
}

#[test]
fn a_claim_of_unknown_outcome_is_retried_and_adopts_the_slot_it_took() {
    let mut h = Harness::new(cfg(2));
    h.join(11, &[(ME, 10)], &[], S(0));
    let err = Error::new(ErrorKind::Timeout, "txn", "deadline exceeded");
    assert!(h.step(Input::Txn(CLAIM, Err(err)), MS(100)).is_empty());
    assert_eq!(h.timer(MS(350)), [h.claim_txn(0, 10)]);
    let acts = h.step(h.claim_failed(13, &[(0, ME, 12)], Some(10)), MS(400));
    assert!(no_txn(&acts));
    assert_eq!(
        (var(&acts, "CONCH_SLOT"), var(&acts, "CONCH_REV")),
        ("0".into(), "12".into())
    );
}

#[test]
fn a_watch_error_while_waiting_reconnects_and_rereads_the_rank_from_scratch() {
    let mut h = waiter(cfg(1));
    let err = Error::new(ErrorKind::Unavailable, "watch", "stream reset");
    let acts = h.step(Input::Watch(QUEUE, Err(err)), S(1));
    let mut expected = resign(ME);
    expected[4] = Action::Reconnect { budget: S(6) };
    assert_eq!(acts, expected, "budget: until the stop point at 7s");
    // Stale events while the streams are down are ignored.
    assert!(h
        .step(deletes(QUEUE, &[h.qkey(A)], 13), MS(1500))
        .is_empty());
    let acts = h.step(Input::Reconnected(Ok(())), S(2));
    let reads = vec![
        Op::Get(Range::prefix(h.qdir()).by_create()),
        Op::Get(Range::prefix(h.sdir())),
    ];
    let reread = Txn {
        compare: vec![],
        success: reads,
        failure: vec![],
    };
    assert_eq!(
        acts,
        [
            Action::KeepAliveOpen(ME),
            Action::KeepAliveSend,
            Action::Txn(REREAD, reread)
        ]
    );
    // A left while we were away: rank 0 now, and its slot is free.
    let results = vec![
        OpResult::Range(h.queue(20, &[(ME, 11)])),
        OpResult::Range(h.slots(20, &[])),
    ];
    let answer = TxnResult {
        revision: 20,
        succeeded: true,
        results,
    };
    let acts = h.step(Input::Txn(REREAD, Ok(answer)), S(2));
    assert_eq!(
        acts,
        [
            Action::Watch(OWN, key_watch(&h.qkey(ME), 21)),
            h.claim_txn(0, 11)
        ]
    );
}

#[test]
fn a_failover_before_the_join_landed_joins_again_rather_than_rereading() {
    let mut h = Harness::new(cfg(2));
    h.step(Input::Start, S(0));
    let acts = h.step(Input::Granted(Ok(Lease { id: ME, ttl: 10 })), S(0));
    let Action::Txn(JOIN, first) = &acts[1] else {
        panic!("{acts:?}");
    };
    assert!(h
        .step(Input::Txn(JOIN, Err(unavailable())), MS(100))
        .is_empty());
    let err = Error::new(ErrorKind::Unavailable, "keep-alive", "stream reset");
    h.step(Input::KeepAlive(Err(err)), MS(150));
    let acts = h.step(Input::Reconnected(Ok(())), MS(200));
    let [Action::KeepAliveOpen(ME), Action::KeepAliveSend, Action::Txn(JOIN, again)] = &acts[..]
    else {
        panic!("not in the queue yet: no mere re-read {acts:?}");
    };
    assert_eq!(again.compare, first.compare);
    assert!(h.timer(MS(350)).is_empty(), "the pending retry is replaced");
    let acts = h.step(h.joined(30, &[(ME, 30)], &[]), MS(400));
    assert_eq!(acts[1..], [h.claim_txn(0, 30)]);
}

#[test]
fn a_reread_after_failover_that_shows_the_slot_taken_over_is_a_loss() {
    let mut h = Harness::new(cfg(2));
    h.holder(20);
    let err = Error::new(ErrorKind::Unavailable, "watch", "stream reset");
    h.step(Input::Watch(SLOTS, Err(err)), S(1));
    let acts = h.step(Input::Reconnected(Ok(())), S(2));
    assert!(matches!(acts.last(), Some(Action::Txn(REREAD, _))));
    let results = vec![
        OpResult::Range(h.queue(40, &[(ME, 10)])),
        OpResult::Range(h.slots(40, &[(0, A, 35)])),
    ];
    let answer = TxnResult {
        revision: 40,
        succeeded: true,
        results,
    };
    let acts = h.step(Input::Txn(REREAD, Ok(answer)), S(2));
    assert_eq!(acts.last(), Some(&Action::SignalChild(0, 15)));
}

#[test]
fn a_reread_answered_after_the_resign_began_is_stale_and_ignored() {
    let mut h = Harness::new(cfg(2));
    h.holder(20);
    let compacted = crate::etcd::WatchEvent::Compacted {
        compact_revision: 25,
    };
    let acts = h.step(Input::Watch(SLOTS, Ok(compacted)), S(1));
    assert!(matches!(acts.last(), Some(Action::Txn(REREAD, _))));
    h.step(Input::ChildExited(0, ChildStatus::Exited(0)), S(2));
    assert_eq!(h.step(Input::ChildrenGone(0), S(2)), resign(ME));
    let results = vec![
        OpResult::Range(h.queue(30, &[(ME, 10)])),
        OpResult::Range(h.slots(30, &[(0, ME, 20)])),
    ];
    let answer = TxnResult {
        revision: 30,
        succeeded: true,
        results,
    };
    let acts = h.step(Input::Txn(REREAD, Ok(answer)), S(2));
    assert!(
        acts.is_empty(),
        "no watch opened after the resign: {acts:?}"
    );
    assert_eq!(h.step(Input::Revoked(Ok(())), S(2)), [Action::Exit(0)]);
}
