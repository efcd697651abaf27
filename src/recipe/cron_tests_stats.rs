//! The counters behind `conchd --metrics-file`, bumped where the machine
//! claims, records, loses its lease and reconnects.

use super::*;

#[test]
fn claims_results_skips_and_lease_losses_are_counted_where_they_happen() {
    let mut h = Harness::serving(cfg(), &[("backup", &job("@every 10s"))]);
    assert_eq!(h.m.stats().jobs.get("backup"), None, "nothing yet");
    // Won at its tick and started half a second late.
    let acts = h.run_to(S(10) + MS(500));
    assert_eq!(claims(&acts).len(), 1);
    let (tag, _) = the_spawn(&h.step(won(30), S(10) + MS(500)));
    h.step(Input::Spawned(tag, 1000), S(10) + MS(500));
    h.step(Input::ChildExited(tag, ChildStatus::Exited(0)), S(12));
    h.step(Input::ChildrenGone(tag), S(12));
    let b = &h.m.stats().jobs["backup"];
    assert_eq!((b.claim_attempts, b.claims_won), (1, 1));
    assert_eq!(b.last_lateness_ms, Some(500));
    assert_eq!(b.runs.get("ok"), Some(&1));
    assert_eq!(b.last_success_ms, Some(((T0 + 12) * 1000) as u64));
    // The next tick: the nested txn recorded a skip for us.
    let acts = h.run_to(S(20));
    let ours = fire_kv("backup", T0 + 20, &fire_value(claims(&acts)[0]), 40);
    h.step(lost(40, true, Some(ours)), S(20));
    let b = &h.m.stats().jobs["backup"];
    assert_eq!((b.claim_attempts, b.claims_won), (2, 1));
    assert_eq!(b.runs.get("skipped"), Some(&1));
    assert_eq!(b.last_status.as_deref(), Some("skipped"));
    assert_eq!(b.failures(), 0);
    assert!(h.m.serving());
    h.raw(Input::Reconnected(Ok(())), S(20));
    assert_eq!(h.m.stats().reconnects, 1);
    // etcd says the lease is gone: one loss, however often it is told.
    let gone = |at| {
        Input::KeepAlive(Ok(KeepAliveAnswer {
            ttl: 0,
            sent_at: at,
        }))
    };
    h.raw(gone(S(21)), S(21));
    h.raw(gone(S(21)), S(21));
    assert_eq!(h.m.stats().lease_losses, 1);
    assert!(!h.m.serving());
}
