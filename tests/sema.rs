//! `conch sema` against a real etcd: the contract of docs/usage.md, case by
//! case, plus bad input.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{client, conch, read, scratch_dir, unique_prefix, wait_exit, wait_for};
use conch::etcd::Range;
use conch::keys::Schema;

const LONG: Duration = Duration::from_secs(20);

fn queue_len(p: &str, name: &str, max: u32) -> i64 {
    let dir = Schema::new(p).sema_queue_dir(name, max);
    client()
        .range(Range::prefix(dir).count_only())
        .expect("range")
        .count
}

/// A contender whose child records "<id> <slot> <rev>" in `d/log` when it
/// starts, keeps `d/running/<id>` while it runs, and exits when `d/go/<id>`
/// appears.
fn contender(p: &str, max: u32, d: &Path, id: &str, extra: &[&str]) -> Child {
    std::fs::create_dir_all(d.join("running")).expect("dir");
    std::fs::create_dir_all(d.join("go")).expect("dir");
    let script = format!(
        "echo {id} $CONCH_SLOT $CONCH_REV >> {d}/log; touch {d}/running/{id}; \
         while [ ! -e {d}/go/{id} ]; do sleep 0.01; done; rm {d}/running/{id}",
        d = d.display()
    );
    conch(p)
        .args(["sema", "s", "--max", &max.to_string()])
        .args(extra)
        .args(["--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn")
}

fn release(d: &Path, id: &str) {
    std::fs::write(d.join("go").join(id), "").expect("go");
}

fn running(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d.join("running"))
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// (id, slot, rev) per start, in order.
fn log(d: &Path) -> Vec<(String, u32, i64)> {
    read(&d.join("log"))
        .lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            Some((
                f.next()?.to_string(),
                f.next()?.parse().ok()?,
                f.next()?.parse().ok()?,
            ))
        })
        .collect()
}

fn who(p: &str, extra: &[&str]) -> (Option<i32>, String) {
    let o = conch(p)
        .args(["sema", "s", "--who"])
        .args(extra)
        .output()
        .expect("who");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).to_string(),
    )
}

/// Starts contenders one after another, each joining only once the previous
/// one is in the queue, so their order is known.
fn start_in_order(p: &str, max: u32, d: &Path, ids: &[&str]) -> Vec<Child> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            let c = contender(p, max, d, id, &[]);
            wait_for("contender queued", LONG, || {
                queue_len(p, "s", max) == i as i64 + 1
            });
            c
        })
        .collect()
}

#[test]
fn n_plus_one_contenders_run_exactly_n_with_distinct_slots() {
    let p = unique_prefix("nplus1");
    let d = scratch_dir("nplus1");
    let mut cs = start_in_order(&p, 3, &d, &["a", "b", "c", "d"]);
    wait_for("three running", LONG, || running(&d).len() == 3);
    assert_eq!(running(&d), vec!["a", "b", "c"]);
    let (code, out) = who(&p, &["--max", "3"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        out.lines().filter(|l| l.contains(" slot=")).count(),
        3,
        "{out}"
    );
    assert!(out.lines().any(|l| l.contains("waiting rank=3")), "{out}");
    let mut slots: Vec<u32> = log(&d).iter().map(|(_, s, _)| *s).collect();
    slots.sort();
    assert_eq!(slots, vec![0, 1, 2]);
    for id in ["a", "b", "c", "d"] {
        release(&d, id);
    }
    for c in &mut cs {
        assert_eq!(wait_exit(c, LONG).code(), Some(0));
    }
    assert_eq!(queue_len(&p, "s", 3), 0);
}

#[test]
fn a_release_promotes_exactly_the_oldest_waiter_into_the_freed_slot() {
    let p = unique_prefix("oldest");
    let d = scratch_dir("oldest");
    let mut cs = start_in_order(&p, 2, &d, &["h1", "h2", "w1", "w2"]);
    wait_for("two running", LONG, || running(&d).len() == 2);
    let h2_slot = log(&d)
        .iter()
        .find(|(id, _, _)| id == "h2")
        .map(|(_, s, _)| *s);
    release(&d, "h2");
    wait_for("w1 promoted", LONG, || running(&d) == vec!["h1", "w1"]);
    let entries = log(&d);
    let w1 = entries
        .iter()
        .find(|(id, _, _)| id == "w1")
        .expect("w1 started");
    assert_eq!(Some(w1.1), h2_slot, "w1 takes the slot h2 freed");
    let h2_rev = entries
        .iter()
        .find(|(id, _, _)| id == "h2")
        .map(|(_, _, r)| *r)
        .unwrap_or(0);
    assert!(
        w1.2 > h2_rev,
        "the slot's CONCH_REV grows with every holder"
    );
    assert!(
        !running(&d).contains(&"w2".to_string()),
        "exactly one promoted"
    );
    for id in ["h1", "w1", "w2"] {
        release(&d, id);
    }
    for c in &mut cs {
        wait_exit(c, LONG);
    }
}

#[test]
fn different_max_values_queue_separately() {
    let p = unique_prefix("maxes");
    let d = scratch_dir("maxes");
    let mut full = start_in_order(&p, 2, &d, &["a", "b"]);
    wait_for("max 2 full", LONG, || running(&d).len() == 2);
    let mut other = contender(&p, 3, &d, "c", &[]);
    wait_for("max 3 contender runs", LONG, || {
        running(&d).contains(&"c".to_string())
    });
    let o = conch(&p)
        .args(["sema", "s", "--who"])
        .output()
        .expect("who");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("warning"),
        "two queues are reported"
    );
    for id in ["a", "b", "c"] {
        release(&d, id);
    }
    for c in full.iter_mut().chain([&mut other]) {
        wait_exit(c, LONG);
    }
}

#[test]
fn nonblock_when_full_exits_75_fast_and_leaves_no_queue_key() {
    let p = unique_prefix("nonblock");
    let d = scratch_dir("nonblock");
    let mut cs = start_in_order(&p, 1, &d, &["a"]);
    wait_for("full", LONG, || running(&d).len() == 1);
    let t = Instant::now();
    let st = conch(&p)
        .args(["sema", "s", "--max", "1", "--nonblock", "--", "true"])
        .status()
        .expect("run");
    assert_eq!(st.code(), Some(75));
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(queue_len(&p, "s", 1), 1);
    release(&d, "a");
    wait_exit(&mut cs[0], LONG);
}

#[test]
fn timeout_when_full_exits_75_after_about_the_timeout_and_leaves_no_queue_key() {
    let p = unique_prefix("timeout");
    let d = scratch_dir("timeout");
    let mut cs = start_in_order(&p, 1, &d, &["a"]);
    wait_for("full", LONG, || running(&d).len() == 1);
    let t = Instant::now();
    let st = conch(&p)
        .args(["sema", "s", "--max", "1", "--timeout", "1s", "--", "true"])
        .status()
        .expect("run");
    common::assert_timed_out_after_1s(st.code(), t.elapsed());
    assert_eq!(queue_len(&p, "s", 1), 1);
    release(&d, "a");
    wait_exit(&mut cs[0], LONG);
}

#[test]
fn a_revoked_holder_is_stopped_with_70_and_the_oldest_waiter_promoted() {
    let p = unique_prefix("revoke");
    let d = scratch_dir("revoke");
    std::fs::create_dir_all(&d).expect("dir");
    let lease_file: PathBuf = d.join("lease");
    let script = format!(
        "echo $CONCH_LEASE > {}; exec sleep 1000",
        lease_file.display()
    );
    let mut holder = conch(&p)
        .args([
            "sema",
            "s",
            "--max",
            "1",
            "--kill-after",
            "1s",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    wait_for("holder runs", LONG, || !read(&lease_file).is_empty());
    let mut waiter = contender(&p, 1, &d, "w", &[]);
    wait_for("waiter queued", LONG, || queue_len(&p, "s", 1) == 2);
    let lease = read(&lease_file).trim().to_string();
    assert!(common::etcdctl(&["lease", "revoke", &lease])
        .status
        .success());
    assert_eq!(wait_exit(&mut holder, LONG).code(), Some(70));
    wait_for("waiter promoted", LONG, || running(&d) == vec!["w"]);
    release(&d, "w");
    assert_eq!(wait_exit(&mut waiter, LONG).code(), Some(0));
}

#[test]
fn a_garbage_queue_value_is_an_unknown_holder_that_still_counts() {
    let p = unique_prefix("garbage");
    let key = Schema::new(&p).sema_queue_key("s", 1, 0x1234);
    let c = client();
    c.put(key.clone(), "not json at all", 0).expect("put");
    let st = conch(&p)
        .args(["sema", "s", "--max", "1", "--nonblock", "--", "true"])
        .status()
        .expect("run");
    assert_eq!(st.code(), Some(75), "the garbage entry is ahead and counts");
    let (code, out) = who(&p, &[]);
    assert_eq!(code, Some(1), "no slot is held: {out}");
    assert!(out.contains("waiting rank=0 host=? pid=?"), "{out}");
    let o = conch(&p)
        .args(["sema", "s", "--who", "--json"])
        .output()
        .expect("json");
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"waiters\":[{"));
    c.delete(key, Vec::new()).expect("delete");
}

#[test]
fn bad_max_is_exit_64_and_writes_nothing() {
    let p = unique_prefix("badmax");
    for bad in ["0", "-1", "70000", "two"] {
        let o = conch(&p)
            .args(["sema", "s", "--max", bad, "--", "true"])
            .output()
            .expect("run");
        assert_eq!(o.status.code(), Some(64), "--max {bad}");
    }
    let n = client()
        .range(Range::prefix(format!("{p}/")).count_only())
        .expect("range")
        .count;
    assert_eq!(n, 0);
}
