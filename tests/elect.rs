//! `conch elect` against a real etcd: the contract of docs/usage.md, case by
//! case, and the core cases of docs/contributing.md.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    alive, client, conch, read, scratch_dir, term, unique_prefix, wait_exit, wait_for, wall_ns,
};
use conch::etcd::Range;

const LONG: Duration = Duration::from_secs(20);

/// Candidates currently in the office.
fn candidates(prefix: &str, name: &str) -> i64 {
    let dir = conch::keys::Schema::new(prefix).elect_dir(name);
    client()
        .range(Range::prefix(dir).count_only())
        .expect("range")
        .count
}

fn elect(prefix: &str, name: &str, extra: &[&str], script: &str) -> Command {
    let mut c = conch(prefix);
    c.arg("elect")
        .arg(name)
        .args(extra)
        .args(["--", "sh", "-c", script]);
    c
}

fn spawn(mut c: Command) -> Child {
    c.stdout(Stdio::null()).spawn().expect("spawn conch")
}

fn touch(p: &Path) {
    std::fs::write(p, "").expect("touch");
}

#[test]
fn single_candidate_runs_the_child_with_its_environment_and_exit_code() {
    let p = unique_prefix("single");
    let d = scratch_dir("single");
    let env = d.join("env");
    let script = format!("env | grep ^CONCH_ > {}; exit 7", env.display());
    let st = elect(&p, "office", &[], &script).status().expect("run");
    assert_eq!(st.code(), Some(7));
    let text = read(&env);
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("{k} missing in {text}"))
            .to_string()
    };
    assert_eq!(get("CONCH_NAME"), "office");
    let lease = get("CONCH_LEASE");
    assert_eq!(lease.len(), 16);
    assert!(lease
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(get("CONCH_KEY"), format!("{p}/v1/elect/office/{lease}"));
    assert!(get("CONCH_REV").parse::<i64>().expect("decimal") > 0);
    assert_eq!(candidates(&p, "office"), 0, "resigned: the key is gone");
}

#[test]
fn handover_on_clean_exit_is_under_a_second() {
    let p = unique_prefix("handover");
    let d = scratch_dir("handover");
    let (go, end, start) = (d.join("go"), d.join("end"), d.join("start"));
    let first = format!(
        "while [ ! -e {go} ]; do sleep 0.01; done; date +%s%N > {end}",
        go = go.display(),
        end = end.display()
    );
    let mut a = spawn(elect(&p, "o", &["--ttl", "10s"], &first));
    wait_for("first leader", LONG, || candidates(&p, "o") == 1);
    let second = format!("date +%s%N > {}", start.display());
    let mut b = spawn(elect(&p, "o", &["--ttl", "10s"], &second));
    wait_for("second candidate waiting", LONG, || {
        candidates(&p, "o") == 2
    });
    touch(&go);
    assert_eq!(wait_exit(&mut a, LONG).code(), Some(0));
    assert_eq!(wait_exit(&mut b, LONG).code(), Some(0));
    let t = |f: &Path| read(f).trim().parse::<u128>().expect("timestamp");
    let gap = Duration::from_nanos((t(&start) - t(&end)) as u64);
    assert!(gap < Duration::from_secs(1), "handover took {gap:?}");
}

#[test]
fn who_on_a_vacant_office_exits_1_with_empty_stdout() {
    let p = unique_prefix("vacant");
    let o = conch(&p)
        .args(["elect", "nobody", "--who"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    let o = conch(&p)
        .args(["elect", "nobody", "--who", "--json"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
}

#[test]
fn who_while_held_names_the_holder_pid_and_rev() {
    let p = unique_prefix("who");
    let d = scratch_dir("who");
    let (go, rev) = (d.join("go"), d.join("rev"));
    let script = format!(
        "echo $CONCH_REV > {rev}; while [ ! -e {go} ]; do sleep 0.01; done",
        rev = rev.display(),
        go = go.display()
    );
    let mut a = spawn(elect(&p, "o", &[], &script));
    wait_for("rev file", LONG, || !read(&rev).is_empty());
    let rev = read(&rev).trim().to_string();
    let o = conch(&p)
        .args(["elect", "o", "--who"])
        .output()
        .expect("run");
    let line = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(o.status.code(), Some(0), "{line}");
    assert!(line.starts_with("o  leader="), "{line}");
    assert!(line.contains(&format!("pid={} ", a.id())), "{line}");
    assert!(line.contains(&format!("rev={rev} ")), "{line}");
    assert!(line.contains("cmd=sh -c"), "{line}");
    let o = conch(&p)
        .args(["elect", "o", "--who", "--json"])
        .output()
        .expect("run");
    let json = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(json.contains(&format!("\"pid\":{}", a.id())), "{json}");
    assert!(json.contains(&format!("\"rev\":{rev}")), "{json}");
    assert!(json.contains("\"waiting\":0"), "{json}");
    touch(&go);
    assert_eq!(wait_exit(&mut a, LONG).code(), Some(0));
}

/// Holds office `o` under `p` until the returned file is created.
fn hold(p: &str, tag: &str) -> (Child, std::path::PathBuf) {
    let d = scratch_dir(tag);
    let go = d.join("go");
    let script = format!("while [ ! -e {} ]; do sleep 0.01; done", go.display());
    let a = spawn(elect(p, "o", &[], &script));
    wait_for("leader", LONG, || candidates(p, "o") == 1);
    (a, go)
}

#[test]
fn nonblock_while_held_exits_75_fast_and_leaves_no_key() {
    let p = unique_prefix("nonblock");
    let (mut a, go) = hold(&p, "nonblock");
    let t = Instant::now();
    let st = elect(&p, "o", &["--nonblock"], "exit 0")
        .status()
        .expect("run");
    let took = t.elapsed();
    assert_eq!(st.code(), Some(75));
    assert!(took < Duration::from_millis(500), "took {took:?}");
    assert_eq!(candidates(&p, "o"), 1, "only the holder's key is left");
    touch(&go);
    wait_exit(&mut a, LONG);
}

#[test]
fn timeout_while_held_exits_75_after_the_timeout_and_leaves_no_key() {
    let p = unique_prefix("timeout");
    let (mut a, go) = hold(&p, "timeout");
    let t = Instant::now();
    let st = elect(&p, "o", &["--timeout", "1s"], "exit 0")
        .status()
        .expect("run");
    common::assert_timed_out_after_1s(st.code(), t.elapsed());
    assert_eq!(candidates(&p, "o"), 1);
    touch(&go);
    wait_exit(&mut a, LONG);
}

/// A child that ignores SIGTERM (and says so), with a grandchild in a
/// session of its own; writes its lease, its grandchild's pid and a start
/// mark into `d`.
fn stubborn_script(d: &Path) -> String {
    format!(
        "trap 'echo TERM >> {d}/signals' TERM; \
         setsid sleep 1000 & echo $! > {d}/grandchild; \
         echo $CONCH_LEASE > {d}/lease; echo $CONCH_REV >> {d}/revs; \
         while :; do sleep 0.05; done",
        d = d.display()
    )
}

#[test]
fn revoked_lease_stops_the_child_term_then_kill_and_exits_70() {
    let p = unique_prefix("revoke");
    let d = scratch_dir("revoke");
    let mut a = spawn(elect(
        &p,
        "o",
        &["--ttl", "6s", "--kill-after", "1s"],
        &stubborn_script(&d),
    ));
    wait_for("child started", LONG, || {
        !read(&d.join("lease")).is_empty() && !read(&d.join("grandchild")).is_empty()
    });
    let grandchild: u32 = read(&d.join("grandchild")).trim().parse().expect("pid");
    assert!(alive(grandchild));
    let lease = read(&d.join("lease")).trim().to_string();
    let t = Instant::now();
    let o = common::etcdctl(&["lease", "revoke", &lease]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let st = wait_exit(&mut a, LONG);
    let took = t.elapsed();
    assert_eq!(st.code(), Some(70));
    assert!(
        read(&d.join("signals")).contains("TERM"),
        "the child got SIGTERM first"
    );
    assert!(
        took >= Duration::from_secs(1),
        "SIGKILL only after --kill-after: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(
        !alive(grandchild),
        "the grandchild in its own session is gone too"
    );
}

#[test]
fn sigterm_to_the_wrapper_reaches_the_child_and_promotes_the_next_at_once() {
    let p = unique_prefix("sigterm");
    let d = scratch_dir("sigterm");
    let script = format!(
        "trap 'echo TERM > {d}/got; exit 0' TERM; echo up > {d}/up; while :; do sleep 0.05; done",
        d = d.display()
    );
    let mut a = spawn(elect(&p, "o", &["--ttl", "10s"], &script));
    wait_for("first child up", LONG, || !read(&d.join("up")).is_empty());
    let second = format!("date +%s%N > {}", d.join("second").display());
    let mut b = spawn(elect(&p, "o", &["--ttl", "10s"], &second));
    wait_for("second waiting", LONG, || candidates(&p, "o") == 2);
    let sent = wall_ns();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(a.id() as i32).expect("pid"),
        rustix::process::Signal::TERM,
    )
    .expect("kill");
    let st = wait_exit(&mut a, LONG);
    assert_eq!(read(&d.join("got")).trim(), "TERM");
    // The child handled TERM and exited 0: its status is the wrapper's.
    assert_eq!(st.code(), Some(0));
    assert_eq!(wait_exit(&mut b, LONG).code(), Some(0));
    let started: u128 = read(&d.join("second")).trim().parse().expect("ts");
    let gap = Duration::from_nanos((started - sent) as u64);
    assert!(gap < Duration::from_secs(1), "promotion took {gap:?}");
}

#[test]
fn sigterm_to_a_wrapper_whose_child_dies_of_it_exits_143() {
    let p = unique_prefix("sigterm143");
    let d = scratch_dir("sigterm143");
    let script = format!("echo up > {}/up; exec sleep 1000", d.display());
    let mut a = spawn(elect(&p, "o", &[], &script));
    wait_for("child up", LONG, || !read(&d.join("up")).is_empty());
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(a.id() as i32).expect("pid"),
        rustix::process::Signal::TERM,
    )
    .expect("kill");
    assert_eq!(wait_exit(&mut a, LONG).code(), Some(143));
    assert_eq!(candidates(&p, "o"), 0);
}

#[test]
fn sigkilled_wrapper_takes_its_tree_with_it_and_the_lease_expires() {
    let p = unique_prefix("sigkill");
    let d = scratch_dir("sigkill");
    let mut a = spawn(elect(
        &p,
        "o",
        &["--ttl", "3s", "--kill-after", "1s"],
        &stubborn_script(&d),
    ));
    wait_for("child started", LONG, || {
        !read(&d.join("grandchild")).is_empty()
    });
    let grandchild: u32 = read(&d.join("grandchild")).trim().parse().expect("pid");
    let second = format!("date +%s%N > {}", d.join("second").display());
    let mut b = spawn(elect(&p, "o", &["--ttl", "3s"], &second));
    wait_for("second waiting", LONG, || candidates(&p, "o") == 2);
    let killed = wall_ns();
    a.kill().expect("SIGKILL");
    let _ = a.wait();
    wait_for("grandchild gone", Duration::from_secs(1), || {
        !alive(grandchild)
    });
    assert_eq!(wait_exit(&mut b, LONG).code(), Some(0));
    let started: u128 = read(&d.join("second")).trim().parse().expect("ts");
    let gap = Duration::from_nanos((started - killed) as u64);
    // Promoted when the old lease expired, not before: the lease was last
    // renewed at most (TTL − kill-after)/3 ≈ 0.67 s before the kill.
    assert!(
        gap >= Duration::from_millis(2000),
        "promoted after only {gap:?}"
    );
    assert!(gap < Duration::from_secs(8), "promoted after {gap:?}");
}

#[test]
fn successive_leaders_see_strictly_increasing_revs() {
    let p = unique_prefix("revs");
    let d = scratch_dir("revs");
    let script = format!("echo $CONCH_REV >> {}", d.join("revs").display());
    for _ in 0..5 {
        assert!(elect(&p, "o", &[], &script)
            .status()
            .expect("run")
            .success());
    }
    let revs: Vec<i64> = read(&d.join("revs"))
        .lines()
        .map(|l| l.parse().expect("rev"))
        .collect();
    assert_eq!(revs.len(), 5);
    assert!(revs.windows(2).all(|w| w[0] < w[1]), "{revs:?}");
}

#[test]
fn unreachable_etcd_exits_69_naming_the_endpoints() {
    let dead = format!("127.0.0.1:{}", common::free_port());
    let t = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_conch"))
        .args([
            "--endpoints",
            &dead,
            "--dial-timeout",
            "300ms",
            "elect",
            "o",
            "--",
            "true",
        ])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(69));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&dead), "{err}");
    assert!(t.elapsed() >= Duration::from_millis(300));
}

#[test]
fn a_child_that_cannot_run_exits_127_or_126_after_resigning() {
    let p = unique_prefix("noexec");
    let st = conch(&p)
        .args(["elect", "o", "--", "/nonexistent/command"])
        .status()
        .expect("run");
    assert_eq!(st.code(), Some(127));
    let d = scratch_dir("noexec");
    let plain = d.join("not-executable");
    std::fs::write(&plain, "#!/bin/sh\n").expect("write");
    let st = conch(&p)
        .arg("elect")
        .arg("o")
        .arg("--")
        .arg(&plain)
        .status()
        .expect("run");
    assert_eq!(st.code(), Some(126));
    assert_eq!(candidates(&p, "o"), 0);
}

/// Wake-ups from a wait (voluntary context switches) of every thread of `pid`.
fn wakeups(pid: u32) -> u64 {
    let dir = format!("/proc/{pid}/task");
    std::fs::read_dir(&dir)
        .expect("task dir")
        .flatten()
        .map(|t| {
            let status = read(&t.path().join("status"));
            status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
}

/// An idle holder wakes only for its keep-alives and their answers, with
/// no timer of its own in between (HTTP/2 pings are redundant next to a
/// lease's keep-alives, and their timer alone cost a few wake-ups every
/// 10 s). At `--ttl 30s` keep-alives go every (30 s - 3 s)/3 = 9 s: each is
/// one timer wake-up and one answer, and etcd may send a flow-control ping
/// just ahead of an answer, hence the slack. The wrapper also holds one
/// self-pipe for all its signals, not a socket per signal.
#[test]
fn an_idle_holder_wakes_only_for_its_keep_alives() {
    let p = unique_prefix("idle");
    let d = scratch_dir("idle");
    let held = d.join("held");
    let script = format!("touch {}; exec sleep 120", held.display());
    let mut a = spawn(elect(&p, "o", &["--ttl", "30s"], &script));
    wait_for("holding", LONG, || held.exists());
    let pid = a.id();
    // Acquiring and opening the watch wake it a few times: start once quiet.
    let mut last = wakeups(pid);
    wait_for("the holder to go quiet", LONG, || {
        std::thread::sleep(Duration::from_millis(300));
        let now = wakeups(pid);
        std::mem::replace(&mut last, now) == now
    });
    let begun = Instant::now();
    std::thread::sleep(Duration::from_secs(19));
    let woke = wakeups(pid) - last;
    let keepalives = begun.elapsed().as_secs() / 9 + 1;
    assert!(
        woke <= 2 * keepalives + 2,
        "{woke} wake-ups in {:?}, with at most {keepalives} keep-alives",
        begun.elapsed()
    );
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .count();
    assert!(fds <= 16, "{fds} file descriptors open");
    assert_eq!(term(&mut a, LONG).code(), Some(143));
}
