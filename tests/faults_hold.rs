//! Hold faults against a real etcd: `sema --timeout` while every slot is
//! taken (an overlap window), and a waiter promoted late after its
//! predecessor's lease expired.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{client, conch, unique_prefix, wait_exit};
use conch::etcd::Range;
use conch::keys::{lease_hex, Schema};

fn count(prefix: String) -> i64 {
    client()
        .range(Range::prefix(prefix).count_only())
        .expect("range")
        .count
}

#[test]
fn sema_timeout_applies_while_every_slot_is_taken() {
    let p = unique_prefix("slot-timeout");
    let schema = Schema::new(&p);
    let c = client();
    // A holder whose queue key is gone but whose slot key still lives on its
    // lease: what a newcomer meets inside an overlap window. The queue is
    // empty, so the newcomer ranks first and waits for a free slot.
    let stale = c.lease_grant(60).expect("grant");
    c.put(
        schema.sema_slot_key("s", 1, 0),
        lease_hex(stale.id),
        stale.id,
    )
    .expect("put slot");
    let t = Instant::now();
    let mut w = conch(&p)
        .args(["sema", "s", "--max", "1", "--timeout", "1s", "--", "true"])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let st = wait_exit(&mut w, Duration::from_secs(15));
    let took = t.elapsed();
    let _ = c.lease_revoke(stale.id);
    assert_eq!(st.code(), Some(75), "not acquired");
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_millis(2500),
        "exit 75 after the timeout, not later: {took:?}"
    );
    assert_eq!(count(schema.sema_queue_dir("s", 1)), 0, "its key is gone");
}

#[path = "support/faultproxy.rs"]
mod faultproxy;

/// Kills the wrapper if a test fails while it still runs.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Candidates in office `o`, oldest first: (key, lease).
fn office(p: &str) -> Vec<(Vec<u8>, i64)> {
    client()
        .range(Range::prefix(Schema::new(p).elect_dir("o")).by_create())
        .expect("range")
        .kvs
        .into_iter()
        .map(|kv| (kv.key, kv.lease))
        .collect()
}

/// The interleaving behind a late promotion: the waiter reads the office
/// (its predecessor present), the predecessor's key is deleted, and only
/// then does the waiter's watch stream reach etcd (streams open lazily, in
/// the loop's wait). The watch starts at the read's revision + 1, so the
/// delete is delivered anyway and the waiter is promoted at once; a watch
/// "from now" would wait forever.
#[test]
fn a_predecessor_gone_before_the_waiters_watch_opens_still_promotes_it_at_once() {
    let p = unique_prefix("late-watch");
    let d = common::scratch_dir("late-watch");
    let started = d.join("a");
    let mut a = Reap(
        conch(&p)
            .args(["elect", "o", "--ttl", "30s", "--", "sh", "-c"])
            .arg(format!("touch {}; exec sleep 1000", started.display()))
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn holder"),
    );
    common::wait_for("the holder's child", Duration::from_secs(20), || {
        started.exists()
    });
    let holder_lease = office(&p)[0].1;
    // Every byte between the waiter and etcd is held 300 ms: its campaign's
    // answer reaches it well after the predecessor is gone, and its watch
    // opens later still.
    let proxy = faultproxy::Proxy::to(&common::etcd().endpoint);
    proxy.set(faultproxy::Fault::Delay(Duration::from_millis(300)));
    let second = d.join("second");
    let mut b = Reap(
        conch(&p)
            .env("CONCH_ENDPOINTS", proxy.url())
            .args(["elect", "o", "--ttl", "10s", "--", "sh", "-c"])
            .arg(format!("touch {}", second.display()))
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn waiter"),
    );
    common::wait_for("the waiter's key", Duration::from_secs(20), || {
        office(&p).len() == 2
    });
    client()
        .lease_revoke(holder_lease)
        .expect("revoke the holder");
    let gone = Instant::now();
    proxy.set(faultproxy::Fault::Pass);
    let _ = wait_exit(&mut a.0, Duration::from_secs(20));
    common::wait_for("the waiter's child", Duration::from_secs(20), || {
        second.exists()
    });
    let took = gone.elapsed();
    eprintln!("promoted {took:?} after the predecessor's key was deleted");
    assert_eq!(wait_exit(&mut b.0, Duration::from_secs(20)).code(), Some(0));
    // What is still held in the proxy drains within ~1 s (a few 300 ms
    // chunks); a waiter that missed the delete would never be promoted.
    assert!(
        took < Duration::from_secs(2),
        "promoted {took:?} after its predecessor was gone"
    );
}

/// The same interleaving for a semaphore waiter: its queue watch opens only
/// after the holder's keys are gone, and it is promoted at once.
#[test]
fn a_sema_holder_gone_before_the_waiters_watch_opens_still_promotes_it_at_once() {
    let p = unique_prefix("late-queue");
    let d = common::scratch_dir("late-queue");
    let schema = Schema::new(&p);
    let started = d.join("a");
    let _a = Reap(
        conch(&p)
            .args(["sema", "s", "--max", "1", "--ttl", "30s", "--", "sh", "-c"])
            .arg(format!("touch {}; exec sleep 1000", started.display()))
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn holder"),
    );
    common::wait_for("the holder's child", Duration::from_secs(20), || {
        started.exists()
    });
    let queue = schema.sema_queue_dir("s", 1);
    let holder_lease = client()
        .range(Range::prefix(queue.clone()))
        .expect("range")
        .kvs[0]
        .lease;
    let proxy = faultproxy::Proxy::to(&common::etcd().endpoint);
    proxy.set(faultproxy::Fault::Delay(Duration::from_millis(300)));
    let second = d.join("second");
    let mut b = Reap(
        conch(&p)
            .env("CONCH_ENDPOINTS", proxy.url())
            .args(["sema", "s", "--max", "1", "--ttl", "10s", "--", "sh", "-c"])
            .arg(format!("touch {}", second.display()))
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn waiter"),
    );
    common::wait_for("the waiter's key", Duration::from_secs(20), || {
        count(queue.clone()) == 2
    });
    client()
        .lease_revoke(holder_lease)
        .expect("revoke the holder");
    let gone = Instant::now();
    proxy.set(faultproxy::Fault::Pass);
    common::wait_for("the waiter's child", Duration::from_secs(20), || {
        second.exists()
    });
    let took = gone.elapsed();
    eprintln!("promoted {took:?} after the holder's keys were deleted");
    assert_eq!(wait_exit(&mut b.0, Duration::from_secs(20)).code(), Some(0));
    assert!(
        took < Duration::from_secs(2),
        "promoted {took:?} after the holder was gone"
    );
}
