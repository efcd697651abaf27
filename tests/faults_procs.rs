//! Processes of a run never outlive it, the keeper kills only what is
//! still ours, and a terminal is lent to the child for its run. Real etcd,
//! real processes, real ptys.

mod common;
#[path = "support/pty.rs"]
mod pty;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{alive, conch, read, scratch_dir, unique_prefix, wait_exit, wait_for};
use rustix::process::{Pid, Signal};

const LONG: Duration = Duration::from_secs(30);
/// The contract: after `kill -9` of a wrapper, its tree is gone within 1 s.
const GONE: Duration = Duration::from_secs(1);

fn pid_in(path: &Path) -> u32 {
    read(path)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .parse()
        .expect("a pid")
}

fn comm(pid: u32) -> String {
    read(Path::new(&format!("/proc/{pid}/comm")))
        .trim()
        .to_string()
}

fn cmdline(pid: u32) -> String {
    read(Path::new(&format!("/proc/{pid}/cmdline"))).replace('\0', " ")
}

fn pgid(pid: u32) -> Option<u32> {
    let stat = read(Path::new(&format!("/proc/{pid}/stat")));
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(2)?.parse().ok()
}

fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .flat_map(|t| {
            read(&t.path().join("children"))
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// The keeper the wrapper forked: its only child that is a copy of conch.
fn keeper_of(wrapper: u32) -> u32 {
    let mut found = None;
    wait_for("the keeper", LONG, || {
        found = children_of(wrapper)
            .into_iter()
            .find(|&c| comm(c) == "conch");
        found.is_some()
    });
    found.expect("keeper")
}

/// Live `sleep` processes whose command line contains `needle` (not the
/// shells that start them).
fn with_arg(needle: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| alive(p) && comm(p) == "sleep" && cmdline(p).contains(needle))
        .collect()
}

fn kill(pid: u32, sig: Signal) {
    let _ = rustix::process::kill_process(Pid::from_raw(pid as i32).expect("pid"), sig);
}

/// An argument no other process on the machine has.
fn unique_arg(n: u32) -> String {
    format!("{n}.{:06}", std::process::id() % 1_000_000)
}

/// Starts `setsid sleep ARG` (its own session and process group) with the
/// pid `want`, by setting the kernel's last-pid counter just below it and
/// retrying while other processes on the machine take the number first.
fn unrelated_with_pid(want: u32, arg: &str) -> Child {
    for _ in 0..500 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", format!("{}", want - 1))
            .expect("write ns_last_pid (the test runs as root)");
        let mut c = Command::new("setsid")
            .args(["sleep", arg])
            .stdin(Stdio::null())
            .spawn()
            .expect("setsid");
        if c.id() == want {
            return c;
        }
        let _ = c.kill();
        let _ = c.wait();
    }
    panic!("could not start a process with pid {want}");
}

#[test]
fn keeper_spares_an_unrelated_process_that_reuses_a_finished_runs_pid() {
    let p = unique_prefix("reuse");
    let d = scratch_dir("reuse");
    // The first run exits at once; the restarted one holds.
    let script = format!(
        "echo $$ >> {d}/pids; if [ ! -e {d}/once ]; then touch {d}/once; exit 1; fi; exec sleep 1000",
        d = d.display()
    );
    let mut w = conch(&p)
        .args([
            "elect",
            "svc",
            "--restart",
            "--ttl",
            "6s",
            "--kill-after",
            "1s",
        ])
        .args(["--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .spawn()
        .expect("conch");
    wait_for("the second run", LONG, || {
        read(&d.join("pids")).lines().count() >= 2
    });
    let pids: Vec<u32> = read(&d.join("pids"))
        .lines()
        .map(|l| l.trim().parse().expect("pid"))
        .collect();
    let (old, current) = (pids[0], pids[1]);
    // Reaped, not merely dead: only then can the number be handed out again.
    wait_for("the first run reaped", LONG, || {
        !Path::new(&format!("/proc/{old}")).exists()
    });
    let keeper = keeper_of(w.id());

    let arg = unique_arg(7791);
    let stranger = unrelated_with_pid(old, &arg);
    wait_for("the stranger leads its own group", LONG, || {
        pgid(old) == Some(old)
    });

    let spared = sigkill_and_see_spared(&mut w, current, keeper, stranger);
    assert!(
        spared,
        "the keeper killed pid {old}, which a finished run once had"
    );
}

#[test]
fn keeper_spares_a_process_that_only_shares_the_lease_variable() {
    let p = unique_prefix("lease-twin");
    let d = scratch_dir("lease-twin");
    let script = format!(
        "echo $CONCH_LEASE > {d}/lease; echo $$ > {d}/pid; exec sleep 1000",
        d = d.display()
    );
    let mut w = conch(&p)
        .args(["elect", "o", "--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .spawn()
        .expect("conch");
    wait_for("the child", LONG, || {
        !read(&d.join("lease")).is_empty() && !read(&d.join("pid")).is_empty()
    });
    let child = pid_in(&d.join("pid"));
    let keeper = keeper_of(w.id());
    // Another program's process that merely has the same CONCH_LEASE (every
    // run that got the zero id has): not ours.
    let arg = unique_arg(7792);
    let twin = Command::new("setsid")
        .args(["sleep", &arg])
        .env("CONCH_LEASE", read(&d.join("lease")).trim())
        .spawn()
        .expect("twin");
    let spared = sigkill_and_see_spared(&mut w, child, keeper, twin);
    assert!(
        spared,
        "the keeper killed a process that only shared CONCH_LEASE"
    );
}

#[test]
fn sigkilled_wrapper_takes_a_detached_grandchild_that_dropped_the_lease_variable() {
    let p = unique_prefix("dropped");
    let d = scratch_dir("dropped");
    let arg = unique_arg(7793);
    let script = format!(
        "env -u CONCH_LEASE setsid sleep {arg} & echo $! > {d}/gc; exec sleep 1000",
        d = d.display()
    );
    let mut w = conch(&p)
        .args(["elect", "o", "--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .spawn()
        .expect("conch");
    wait_for("the grandchild", LONG, || !with_arg(&arg).is_empty());
    let gc = with_arg(&arg)[0];
    w.kill().expect("SIGKILL the wrapper");
    let _ = w.wait();
    wait_for("the detached grandchild gone", GONE, || !alive(gc));
}

fn daemon(p: &str, d: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_conchd"))
        .env("CONCH_ENDPOINTS", &common::etcd().endpoint)
        .args(["--prefix", p, "--ttl", "3s", "--node", "n1"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d.join("conchd.log")).expect("log"))
        .spawn()
        .expect("conchd")
}

fn results(p: &str, job: &str) -> usize {
    let dir = conch::keys::Schema::new(p).cron_tick_dir(conch::keys::TickKind::Result, job);
    common::client()
        .range(conch::etcd::Range::prefix(dir).count_only())
        .map_or(0, |r| r.count as usize)
}

#[test]
fn overlapping_cron_runs_leave_no_detached_descendant() {
    let p = unique_prefix("overlap");
    let d = scratch_dir("overlap");
    let arg = unique_arg(7777);
    let mut c = daemon(&p, &d);
    let o = conch(&p)
        .args([
            "cron",
            "add",
            "det",
            "--schedule",
            "@every 2s",
            "--overlap",
            "allow",
        ])
        .args(["--", "sh", "-c", &format!("setsid sleep {arg} & sleep 3")])
        .output()
        .expect("cron add");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_for("four finished runs", LONG, || results(&p, "det") >= 4);
    // Runs start every 2 s and last 3 s: at most two run at once, and a
    // finished run's detached sleep ends with it.
    let live = with_arg(&arg).len();
    assert!(
        live <= 3,
        "{live} detached sleeps alive after four runs ended"
    );
    kill(c.id(), Signal::TERM);
    assert_eq!(
        wait_exit(&mut c, LONG).code(),
        Some(0),
        "{}",
        read(&d.join("conchd.log"))
    );
    wait_for("no detached sleep left", GONE, || with_arg(&arg).is_empty());
}

// --- the terminal -------------------------------------------------------

fn elect_on(pty: &pty::Pty, p: &str, extra: &[&str], script: &str) -> Child {
    let mut c = conch(p);
    c.args(["elect", "tty"])
        .args(extra)
        .args(["--", "sh", "-c", script]);
    pty.spawn(c)
}

fn vacant(p: &str) -> bool {
    conch(p)
        .args(["elect", "tty", "--who"])
        .output()
        .expect("who")
        .status
        .code()
        == Some(1)
}

#[test]
fn a_child_reads_the_line_typed_at_the_terminal() {
    let p = unique_prefix("tty-read");
    let mut t = pty::Pty::open();
    let mut w = elect_on(
        &t,
        &p,
        &[],
        "echo ready; read line; echo \"got:$line\"; exit 3",
    );
    t.expect("ready", LONG);
    t.type_in(b"hello\n");
    t.expect("got:hello", Duration::from_secs(10));
    assert_eq!(wait_exit(&mut w, LONG).code(), Some(3));
}

#[test]
fn ctrl_c_at_the_terminal_ends_a_reading_child_with_sigint_and_resigns() {
    let p = unique_prefix("tty-int");
    let mut t = pty::Pty::open();
    let script = "read a; echo \"got:$a\"; read b; echo never";
    let mut w = elect_on(&t, &p, &[], script);
    t.type_in(b"one\n");
    t.expect("got:one", Duration::from_secs(10));
    t.type_in(&[0x03]);
    assert_eq!(
        wait_exit(&mut w, LONG).code(),
        Some(130),
        "{:?}",
        t.screen()
    );
    assert!(vacant(&p), "the office is free");
    assert!(!t.screen().contains("never"));
}

#[test]
fn ctrl_c_stops_a_restarting_service_instead_of_restarting_it() {
    let p = unique_prefix("tty-restart");
    let mut t = pty::Pty::open();
    let script = "echo \"pg:$$.\"; read line";
    let mut w = elect_on(
        &t,
        &p,
        &["--restart", "--ttl", "6s", "--kill-after", "1s"],
        script,
    );
    let mut child = None;
    wait_for("the child's pid on the screen", LONG, || {
        child = t
            .screen()
            .split("pg:")
            .nth(1)
            .and_then(|s| s.split_once('.'))
            .and_then(|(n, _)| n.parse::<u32>().ok());
        child.is_some()
    });
    let child = child.expect("pid");
    // Lent for the run: the child's group is in the foreground.
    wait_for("the child in the foreground", LONG, || {
        t.foreground() == Some(child)
    });
    t.type_in(&[0x03]);
    assert_eq!(
        wait_exit(&mut w, LONG).code(),
        Some(130),
        "{:?}",
        t.screen()
    );
    assert_eq!(t.screen().matches("pg:").count(), 1, "restarted after ^C");
    assert!(vacant(&p));
}

#[test]
fn the_terminal_comes_back_to_conch_between_restarts() {
    let p = unique_prefix("tty-back");
    let mut t = pty::Pty::open();
    let mut w = elect_on(
        &t,
        &p,
        &["--restart", "--ttl", "6s", "--kill-after", "1s"],
        "read line; exit 1",
    );
    let me = w.id();
    wait_for("a child in the foreground", LONG, || {
        t.foreground().is_some_and(|pg| pg != me)
    });
    t.type_in(b"\n");
    // The restart delay is 1 s, then 2 s: conch holds the terminal then.
    wait_for("conch in the foreground", LONG, || {
        t.foreground() == Some(me)
    });
    wait_for("the next child in the foreground", LONG, || {
        t.foreground().is_some_and(|pg| pg != me)
    });
    kill(me, Signal::TERM);
    wait_exit(&mut w, LONG);
}

#[test]
fn conchd_keeps_the_terminal_and_ctrl_c_stops_it() {
    let p = unique_prefix("tty-conchd");
    let d = scratch_dir("tty-conchd");
    let mut t = pty::Pty::open();
    let o = conch(&p)
        .args(["cron", "add", "j", "--schedule", "@every 1s"])
        .args([
            "--",
            "sh",
            "-c",
            &format!("echo $$ > {}/run; sleep 5", d.display()),
        ])
        .output()
        .expect("cron add");
    assert!(o.status.success());
    let mut c = Command::new(env!("CARGO_BIN_EXE_conchd"));
    c.env("CONCH_ENDPOINTS", &common::etcd().endpoint)
        .args(["--prefix", &p, "--ttl", "3s"]);
    let mut c = t.spawn(c);
    wait_for("a run", LONG, || !read(&d.join("run")).is_empty());
    let run = pid_in(&d.join("run"));
    assert!(alive(run));
    assert_eq!(t.foreground(), Some(c.id()), "a run took the terminal");
    t.type_in(&[0x03]);
    assert_eq!(wait_exit(&mut c, LONG).code(), Some(0), "{:?}", t.screen());
    assert!(!alive(run));
}

#[test]
fn ctrl_z_does_not_leave_the_terminal_to_a_stopped_child() {
    let p = unique_prefix("tty-stop");
    let mut t = pty::Pty::open();
    let script = "read a; echo \"got:$a\"; read b; echo \"got:$b\"; exit 4";
    let mut w = elect_on(&t, &p, &[], script);
    t.type_in(b"one\n");
    t.expect("got:one", Duration::from_secs(10));
    // No job-control shell is above conch here, so nobody could continue
    // a stopped job: the stop must not stick and the child reads on.
    t.type_in(&[0x1a]);
    t.type_in(b"two\n");
    t.expect("got:two", Duration::from_secs(10));
    assert_eq!(wait_exit(&mut w, LONG).code(), Some(4));
}

/// SIGKILLs the wrapper `w`, waits for its run's process `run` to be gone
/// (the keeper's 1 s) and for its keeper to finish, then says whether
/// `other`, a process that is not ours, survived; `other` is reaped.
fn sigkill_and_see_spared(w: &mut Child, run: u32, keeper: u32, mut other: Child) -> bool {
    w.kill().expect("SIGKILL the wrapper");
    let _ = w.wait();
    wait_for("the run gone", GONE, || !alive(run));
    wait_for("the keeper done", LONG, || !alive(keeper));
    let spared = alive(other.id());
    let _ = other.kill();
    let _ = other.wait();
    spared
}
