//! `conch elect NAME --observe` against a real etcd: one line per leader
//! change, through a broken connection, until interrupted.

mod common;
#[path = "support/faultproxy.rs"]
mod faultproxy;

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{client, conch, read, scratch_dir, unique_prefix, wait_exit, wait_for};
use conch::keys::Schema;
use faultproxy::{Fault, Proxy};

const LONG: Duration = Duration::from_secs(20);

fn observer(prefix: &str, dir: &Path, endpoints: Option<&str>) -> Child {
    let mut c = conch(prefix);
    if let Some(e) = endpoints {
        c.env("CONCH_ENDPOINTS", e);
    }
    c.args(["-v", "elect", "office", "--observe"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("out")).expect("out"))
        .stderr(std::fs::File::create(dir.join("err")).expect("err"))
        .spawn()
        .expect("spawn conch")
}

/// The printed lines without their leading time.
fn lines(dir: &Path) -> Vec<String> {
    read(&dir.join("out"))
        .lines()
        .map(|l| l.split_once("  ").map_or(l, |(_, rest)| rest).to_string())
        .collect()
}

fn wait_lines(dir: &Path, n: usize) -> Vec<String> {
    wait_for(&format!("{n} lines"), LONG, || lines(dir).len() >= n);
    lines(dir)
}

/// Puts a candidate as a campaign would (its holder record), returns its
/// create revision.
fn candidate(prefix: &str, lease: i64, host: &str) -> i64 {
    let key = Schema::new(prefix).elect_key("office", lease);
    client()
        .put(key, format!("{{\"host\":\"{host}\",\"pid\":{lease}}}"), 0)
        .expect("put")
}

fn withdraw(prefix: &str, lease: i64) {
    let key = Schema::new(prefix).elect_key("office", lease);
    client().delete(key, Vec::new()).expect("delete");
}

#[test]
fn observe_prints_each_leader_change_once_and_ends_on_sigint() {
    let p = unique_prefix("observe");
    let d = scratch_dir("observe");
    let mut o = observer(&p, &d, None);
    assert_eq!(wait_lines(&d, 1), ["vacant"]);
    let ra = candidate(&p, 0xa, "ha");
    assert_eq!(wait_lines(&d, 2)[1], format!("leader ha pid=10 rev={ra}"));
    // A candidate behind the leader changes nothing; the leader leaving does.
    let rb = candidate(&p, 0xb, "hb");
    withdraw(&p, 0xa);
    assert_eq!(wait_lines(&d, 3)[2], format!("leader hb pid=11 rev={rb}"));
    withdraw(&p, 0xb);
    assert_eq!(wait_lines(&d, 4)[3], "vacant");
    assert_eq!(lines(&d).len(), 4, "{:?}", lines(&d));
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&o),
        rustix::process::Signal::INT,
    )
    .expect("SIGINT");
    let st = wait_exit(&mut o, LONG);
    assert_eq!(st.code(), Some(130), "{}", read(&d.join("err")));
}

#[test]
fn observe_fails_over_when_its_connection_breaks_and_keeps_reporting() {
    let p = unique_prefix("observe-failover");
    let d = scratch_dir("observe-failover");
    let proxy = Proxy::to(&common::etcd().endpoint);
    let endpoints = format!("{},{}", proxy.url(), common::etcd().endpoint);
    let mut o = observer(&p, &d, Some(&endpoints));
    assert_eq!(wait_lines(&d, 1), ["vacant"]);
    proxy.set(Fault::Reset);
    wait_for("the failover", LONG, || {
        read(&d.join("err")).contains("failed over to")
    });
    let ra = candidate(&p, 0xa, "ha");
    assert_eq!(wait_lines(&d, 2)[1], format!("leader ha pid=10 rev={ra}"));
    assert_eq!(lines(&d).len(), 2, "no repeated line after the re-read");
    let _ = o.kill();
    let _ = o.wait();
}

/// `conch elect NAME --observe | head -1`: once nobody reads, the next
/// line ends the observer (141, as a shell reports SIGPIPE) instead of
/// following the office for ever.
#[test]
fn observe_ends_when_nobody_reads_its_lines() {
    let p = unique_prefix("observe-pipe");
    let mut o = conch(&p)
        .args(["elect", "office", "--observe"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn conch");
    let mut first = String::new();
    std::io::BufReader::new(o.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("first line");
    assert!(first.ends_with("  vacant\n"), "{first:?}");
    // The reader is dropped: the pipe has no reader left.
    candidate(&p, 0xa, "ha");
    let st = wait_exit(&mut o, LONG);
    assert_eq!(st.code(), Some(141));
}
