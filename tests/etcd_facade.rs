//! The etcd facade against a real etcd.

mod common;

use std::time::Duration;

use common::{client, etcd, free_port, unique_prefix};
use conch::etcd::{
    Client, ClientConfig, Compare, ErrorKind, EventKind, Op, Range, Txn, WatchEvent, WatchSpec,
};

fn create_only(key: &str, value: &str, lease: i64) -> Txn {
    Txn {
        compare: vec![Compare::absent(key)],
        success: vec![Op::put(key, value, lease)],
        failure: vec![Op::Get(Range::key(key))],
    }
}

#[test]
fn create_only_txn_race_has_one_winner() {
    let p = unique_prefix("race");
    let rounds = 20;
    let winners: Vec<_> = (0..2)
        .map(|who| {
            let p = p.clone();
            std::thread::spawn(move || {
                let c = client();
                (0..rounds)
                    .filter(|i| {
                        let key = format!("{p}/k{i}");
                        let r = c.txn(create_only(&key, &who.to_string(), 0)).expect("txn");
                        if !r.succeeded {
                            // The else-branch reads the winner's key back.
                            let kv = &r.range(0).expect("range result").kvs;
                            assert_eq!(kv.len(), 1);
                            assert_ne!(kv[0].value, who.to_string().into_bytes());
                        }
                        r.succeeded
                    })
                    .count()
            })
        })
        .map(|h| h.join().expect("thread"))
        .collect();
    assert_eq!(winners.iter().sum::<usize>(), rounds, "{winners:?}");
}

#[test]
fn lease_revoke_is_seen_by_a_watcher_as_a_delete() {
    let c = client();
    let p = unique_prefix("revoke");
    let key = format!("{p}/held");
    let lease = c.lease_grant(10).expect("grant");
    let put = c.txn(create_only(&key, "x", lease.id)).expect("txn");
    assert!(put.succeeded);
    let mut w = c.watch(WatchSpec::key(key.clone()).from_revision(put.revision + 1));
    c.lease_revoke(lease.id).expect("revoke");
    let ev = c.next_event(&mut w, WAIT).expect("watch");
    match ev {
        WatchEvent::Events { events, .. } => {
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].kind, EventKind::Delete);
            assert_eq!(events[0].kv.key, key.as_bytes());
        }
        other => panic!("expected a delete, got {other:?}"),
    }
    // Revoking again is not an error: the lease is simply gone.
    c.lease_revoke(lease.id).expect("second revoke");
    assert_eq!(c.lease_time_to_live(lease.id).expect("ttl").ttl, -1);
}

/// How long a stream may take to deliver what a test waits for.
const WAIT: Duration = Duration::from_secs(10);

#[test]
fn keep_alive_reports_ttl_and_then_zero_after_revoke() {
    let c = client();
    let lease = c.lease_grant(1).expect("grant");
    assert!(
        lease.ttl >= 2,
        "etcd raises TTLs below its minimum: {}",
        lease.ttl
    );
    let mut ka = c.keep_alive(lease.id);
    ka.send(Duration::from_millis(1)).expect("send");
    let a = c.next_answer(&mut ka, WAIT).expect("answer");
    assert_eq!(a.sent_at, Duration::from_millis(1));
    assert!(a.ttl > 0);
    c.lease_revoke(lease.id).expect("revoke");
    ka.send(Duration::from_millis(2)).expect("send");
    let a = c.next_answer(&mut ka, WAIT).expect("answer");
    assert_eq!(a.sent_at, Duration::from_millis(2));
    assert!(a.ttl <= 0, "revoked lease answered TTL {}", a.ttl);
}

#[test]
fn watch_from_a_compacted_revision_is_reported_and_recovers() {
    let c = client();
    let p = unique_prefix("compact");
    let key = format!("{p}/k");
    let first = c.put(key.clone(), "1", 0).expect("put");
    c.put(key.clone(), "2", 0).expect("put");
    let last = c.put(key.clone(), "3", 0).expect("put");
    c.compact(last).expect("compact");
    let mut w = c.watch(WatchSpec::prefix(p.clone()).from_revision(first));
    match c.next_event(&mut w, WAIT).expect("watch") {
        WatchEvent::Compacted { compact_revision } => assert!(compact_revision >= last),
        other => panic!("expected compaction, got {other:?}"),
    }
    // Recovery: read again, then watch from the read's revision + 1.
    let now = c.range(Range::prefix(p.clone())).expect("range");
    assert_eq!(now.kvs[0].value, b"3");
    let mut w = c.watch(WatchSpec::prefix(p.clone()).from_revision(now.revision + 1));
    c.put(key.clone(), "4", 0).expect("put");
    match c.next_event(&mut w, WAIT).expect("watch") {
        WatchEvent::Events { events, .. } => assert_eq!(events[0].kv.value, b"4"),
        other => panic!("expected the put, got {other:?}"),
    }
    // A Range at a compacted revision is an error of its own kind.
    let err = c.range(Range::key(key).at(first)).expect_err("compacted");
    assert_eq!(err.kind, ErrorKind::Compacted);
}

#[test]
fn failover_skips_a_dead_first_endpoint() {
    let dead = format!("127.0.0.1:{}", free_port());
    let mut cfg = ClientConfig::new(vec![dead, etcd().endpoint.clone()]);
    cfg.dial_timeout = Duration::from_secs(3);
    let c = Client::connect(cfg).expect("connect through the second endpoint");
    assert_eq!(c.endpoint(), etcd().endpoint);
    c.range(Range::key("/x")).expect("range");
}

#[test]
fn all_endpoints_dead_is_unavailable_within_the_dial_timeout() {
    let a = format!("127.0.0.1:{}", free_port());
    let b = format!("http://127.0.0.1:{}", free_port());
    let mut cfg = ClientConfig::new(vec![a.clone(), b.clone()]);
    cfg.dial_timeout = Duration::from_millis(400);
    let t = std::time::Instant::now();
    let err = Client::connect(cfg).err().expect("no etcd there");
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert!(err.detail.contains(&a) && err.detail.contains(&b), "{err}");
    // The one bound that matters to a user: it gives up, and not too early.
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn compare_over_a_range_holds_only_while_the_range_is_empty() {
    let c = client();
    let p = unique_prefix("rangecmp");
    let guard = || Txn {
        compare: vec![Compare::prefix_empty(format!("{p}/run/"))],
        success: vec![],
        failure: vec![],
    };
    assert!(c.txn(guard()).expect("txn").succeeded, "empty range");
    c.put(format!("{p}/run/1"), "x", 0).expect("put");
    assert!(!c.txn(guard()).expect("txn").succeeded, "one key");
}

#[test]
fn nested_transactions_are_all_compared_before_any_is_applied() {
    // What cron's batching relies on, and must not forget (cron_batch.rs):
    // nested transactions of one request are decided on the state before
    // the request, so a second one does not see what the first puts.
    let c = client();
    let p = unique_prefix("nested");
    let k = format!("{p}/k");
    let r = c
        .txn(Txn {
            compare: vec![],
            success: vec![
                Op::Txn(create_only(&k, "first", 0)),
                Op::Txn(create_only(&k.replace("/k", "/j"), "other", 0)),
                Op::Txn(Txn {
                    compare: vec![Compare::absent(k.clone())],
                    success: vec![Op::put(format!("{p}/seen-absent"), "yes", 0)],
                    failure: vec![],
                }),
            ],
            failure: vec![],
        })
        .expect("txn");
    let decided: Vec<bool> = (0..3)
        .map(|i| r.txn(i).expect("nested").succeeded)
        .collect();
    assert_eq!(decided, [true, true, true]);
    let k_now = c.range(Range::key(k)).expect("range");
    assert_eq!(k_now.kvs[0].value, b"first");
}

#[test]
fn range_newest_first_with_a_limit_gives_the_last_keys_and_the_whole_count() {
    let c = client();
    let p = unique_prefix("newest");
    for k in ["b", "d", "a", "c"] {
        c.put(format!("{p}/{k}"), format!("value {k}"), 0)
            .expect("put");
    }
    let mut r = Range::prefix(format!("{p}/"));
    r.newest_first = true;
    r.limit = 2;
    r.keys_only = true;
    let got = c.range(r).expect("range");
    let keys: Vec<_> = got.kvs.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(
        keys,
        [format!("{p}/d").into_bytes(), format!("{p}/c").into_bytes()]
    );
    assert!(got.kvs.iter().all(|kv| kv.value.is_empty()), "keys only");
    assert_eq!(got.count, 4, "the count ignores the limit");
}

#[test]
fn range_sorts_by_create_revision_and_counts() {
    let c = client();
    let p = unique_prefix("sort");
    for k in ["c", "a", "b"] {
        c.put(format!("{p}/{k}"), k, 0).expect("put");
    }
    let r = c
        .range(Range::prefix(format!("{p}/")).by_create())
        .expect("range");
    let keys: Vec<_> = r.kvs.iter().map(|kv| kv.value.clone()).collect();
    assert_eq!(keys, vec![b"c".to_vec(), b"a".to_vec(), b"b".to_vec()]);
    let n = c
        .range(Range::prefix(format!("{p}/")).count_only())
        .expect("count");
    assert_eq!((n.count, n.kvs.len()), (3, 0));
    assert_eq!(
        c.delete(
            format!("{p}/"),
            conch::keys::prefix_end(format!("{p}/").as_bytes())
        )
        .expect("delete"),
        3
    );
}

#[test]
fn deletes_only_watch_skips_puts_and_carries_prev_kv() {
    let c = client();
    let p = unique_prefix("noput");
    let rev = c.put(format!("{p}/a"), "va", 0).expect("put");
    let mut w = c.watch(
        WatchSpec::prefix(format!("{p}/"))
            .from_revision(rev + 1)
            .deletes_only()
            .with_prev_kv(),
    );
    c.put(format!("{p}/b"), "vb", 0).expect("put");
    c.delete(format!("{p}/a"), Vec::new()).expect("delete");
    match c.next_event(&mut w, WAIT).expect("watch") {
        WatchEvent::Events { events, .. } => {
            assert_eq!(events.len(), 1, "{events:?}");
            assert_eq!(events[0].kind, EventKind::Delete);
            assert_eq!(
                events[0].prev.as_ref().map(|kv| kv.value.clone()),
                Some(b"va".to_vec())
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unix_socket_endpoint() {
    let dir = common::scratch_dir("unix");
    // etcd wants unix://host:port and makes a socket file of that name in
    // its working directory.
    let name = format!("localhost:{}", free_port());
    let listen = format!("unix://{name}");
    let url = format!("unix://{}", dir.join(&name).display());
    let mut cmd = common::etcd_command(&dir, free_port(), free_port());
    // Given twice, the later flag wins: this etcd serves on the socket only.
    cmd.current_dir(&dir);
    cmd.arg("--listen-client-urls").arg(&listen);
    cmd.arg("--advertise-client-urls").arg(&listen);
    let mut child = cmd.spawn().expect("etcd");
    let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        common::wait_ready(&url, &mut child, &dir);
    }));
    let _ = child.kill();
    let _ = child.wait();
    assert!(served.is_ok(), "etcd did not serve on {url}");
}

/// With a single endpoint the first call stands in for the connect check:
/// its budget counts from that call, so a caller that does local work
/// first (longer than the dial timeout) is not refused.
#[test]
fn a_first_call_later_than_the_dial_timeout_still_works() {
    let mut cfg = ClientConfig::new(vec![etcd().endpoint.clone()]);
    cfg.dial_timeout = Duration::from_millis(300);
    let c = Client::connect(cfg).expect("connect");
    std::thread::sleep(Duration::from_millis(500));
    c.range(Range::key(format!("{}/late", unique_prefix("late"))))
        .expect("a first call after the dial timeout");
}
