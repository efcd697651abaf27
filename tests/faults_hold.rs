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
