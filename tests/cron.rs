//! `conchd` against a real etcd: the contract of docs/cron.md, case by case
//! that needs running daemons.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{client, conch, read, scratch_dir, unique_prefix, wait_for};
use conch::etcd::Range;
use conch::keys::{Schema, TickKind};

const LONG: Duration = Duration::from_secs(30);

fn daemon(p: &str, node: &str, d: &Path) -> Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_conchd"))
        .env("CONCH_ENDPOINTS", &common::etcd().endpoint)
        .args(["--prefix", p, "--ttl", "3s", "--node", node])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d.join(format!("{node}.log"))).expect("log"))
        .spawn()
        .expect("conchd")
}

fn ls(p: &str, name: &str) -> String {
    let o = conch(p)
        .args(["cron", "ls", name, "--last", "50"])
        .output()
        .expect("ls");
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn now_s() -> i64 {
    (common::wall_ns() / 1_000_000_000) as i64
}

#[test]
fn three_daemons_run_every_tick_exactly_once() {
    let p = unique_prefix("three");
    let d = scratch_dir("three");
    let mut ds: Vec<Child> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| daemon(&p, n, &d))
        .collect();
    let script = format!("echo $CONCH_TICK >> {}/runs", d.display());
    add(&p, "every", &["--schedule", "@every 1s"], &script);
    let start = now_s();
    wait_for("ten results", LONG, || {
        ticks(&p, TickKind::Result, "every").len() >= 10
    });
    for c in &mut ds {
        assert_eq!(term(c).code(), Some(0));
    }
    let fires = ticks(&p, TickKind::Fire, "every");
    let results = ticks(&p, TickKind::Result, "every");
    let runs: Vec<String> = read(&d.join("runs")).lines().map(str::to_string).collect();
    let mut unique = runs.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), runs.len(), "a tick ran twice: {runs:?}");
    for tick in fires.keys() {
        assert!(*tick > start - 2, "no tick due before the daemons started");
        assert!(results.contains_key(tick), "tick {tick} has no result");
    }
    assert_eq!(fires.len(), runs.len(), "one run per claimed tick");
    // Consecutive: no tick in the window was skipped by all three.
    let ts: Vec<i64> = fires.keys().copied().collect();
    assert!(ts.windows(2).all(|w| w[1] - w[0] == 1), "{ts:?}");
    let nodes: std::collections::BTreeSet<String> = results
        .values()
        .map(|v| {
            conch::record::cron::RunResult::from_json(v)
                .map(|r| r.node)
                .unwrap_or_default()
        })
        .collect();
    assert!(!nodes.is_empty());
}

#[test]
fn a_sigkilled_winner_leaves_a_zombie_tick_that_never_runs_again() {
    let p = unique_prefix("zombie");
    let d = scratch_dir("zombie");
    let mut a = daemon(&p, "a", &d);
    let script = format!(
        "echo $CONCH_TICK >> {d}/runs; if [ ! -e {d}/first ]; then touch {d}/first; echo $$ > {d}/pid; exec sleep 60; fi",
        d = d.display()
    );
    add(
        &p,
        "job",
        &["--schedule", "@every 1s", "--overlap", "allow"],
        &script,
    );
    wait_for("the long run", LONG, || !read(&d.join("pid")).is_empty());
    let child: u32 = read(&d.join("pid")).trim().parse().expect("pid");
    let zombie_tick = *ticks(&p, TickKind::Fire, "job")
        .keys()
        .next()
        .expect("claimed");
    a.kill().expect("SIGKILL");
    let _ = a.wait();
    wait_for("its child dies with it", Duration::from_secs(1), || {
        !common::alive(child)
    });
    let mut b = daemon(&p, "b", &d);
    // The run marker lives on a's lease: running, then zombie once it expires.
    wait_for("zombie", LONG, || {
        ls(&p, "job").lines().any(|l| {
            l.starts_with(&conch::schedule::fmt_rfc3339_utc(zombie_tick)) && l.contains("zombie")
        })
    });
    wait_for("later ticks run on b", LONG, || {
        ticks(&p, TickKind::Result, "job")
            .values()
            .any(|v| conch::record::cron::RunResult::from_json(v).is_some_and(|r| r.node == "b"))
    });
    assert_eq!(term(&mut b).code(), Some(0));
    let runs = read(&d.join("runs"));
    let zombie = conch::schedule::fmt_rfc3339_utc(zombie_tick);
    assert_eq!(
        runs.lines().filter(|l| *l == zombie).count(),
        1,
        "never run again: {runs}"
    );
    // No run's result: none at all if b never saw a's node key, else the
    // zombie record b's finder makes for it, naming the dead runner.
    if let Some(v) = ticks(&p, TickKind::Result, "job").get(&zombie_tick) {
        let r = conch::record::cron::RunResult::from_json(v).expect("a result record");
        assert_eq!(
            (r.outcome, r.node.as_str()),
            (conch::record::cron::Outcome::Zombie, "a")
        );
    }
}

#[test]
fn rm_during_a_run_lets_it_finish_and_record_and_nothing_runs_after() {
    let p = unique_prefix("rm");
    let d = scratch_dir("rm");
    let mut a = daemon(&p, "a", &d);
    let script = format!(
        "echo $CONCH_TICK >> {d}/runs; touch {d}/started; while [ ! -e {d}/go ]; do sleep 0.02; done",
        d = d.display()
    );
    add(&p, "job", &["--schedule", "@every 1s"], &script);
    wait_for("running", LONG, || d.join("started").exists());
    let o = conch(&p).args(["cron", "rm", "job"]).output().expect("rm");
    assert!(o.status.success());
    std::fs::write(d.join("go"), "").expect("go");
    wait_for("result recorded", LONG, || {
        !ticks(&p, TickKind::Result, "job").is_empty()
    });
    let results = ticks(&p, TickKind::Result, "job");
    let r = conch::record::cron::RunResult::from_json(results.values().next().expect("one"))
        .expect("result");
    assert_eq!(r.outcome, conch::record::cron::Outcome::Ok);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        read(&d.join("runs")).lines().count(),
        1,
        "no later tick ran"
    );
    assert_eq!(term(&mut a).code(), Some(0));
}

#[test]
fn a_restarted_daemon_claims_no_tick_due_before_it_started() {
    let p = unique_prefix("restart");
    let d = scratch_dir("restart");
    add(&p, "job", &["--schedule", "@every 1s"], "true");
    let mut a = daemon(&p, "a", &d);
    wait_for("a tick ran", LONG, || {
        !ticks(&p, TickKind::Result, "job").is_empty()
    });
    assert_eq!(term(&mut a).code(), Some(0));
    let stopped = now_s();
    std::thread::sleep(Duration::from_secs(3));
    let restarted = now_s();
    let mut b = daemon(&p, "b", &d);
    wait_for("b ran a tick", LONG, || {
        ticks(&p, TickKind::Fire, "job")
            .keys()
            .any(|t| *t >= restarted)
    });
    assert_eq!(term(&mut b).code(), Some(0));
    let claimed: Vec<i64> = ticks(&p, TickKind::Fire, "job")
        .keys()
        .copied()
        .filter(|t| *t > stopped && *t < restarted)
        .collect();
    assert!(claimed.is_empty(), "caught up on {claimed:?}");
    assert!(
        ls(&p, "job").contains("missed"),
        "the gap shows as missed:\n{}",
        ls(&p, "job")
    );
}

#[test]
fn overlap_skip_records_the_ticks_during_a_long_run_as_skipped() {
    let p = unique_prefix("skip");
    let d = scratch_dir("skip");
    let mut a = daemon(&p, "a", &d);
    let mut b = daemon(&p, "b", &d);
    let script = format!(
        "if [ ! -e {d}/first ]; then touch {d}/first; sleep 3.5; fi",
        d = d.display()
    );
    add(&p, "job", &["--schedule", "@every 1s"], &script);
    wait_for("skips and then a run", LONG, || {
        let labels: Vec<String> = ticks(&p, TickKind::Result, "job")
            .values()
            .filter_map(|v| conch::record::cron::RunResult::from_json(v).map(|r| r.outcome.label()))
            .collect();
        labels.iter().filter(|l| *l == "skipped").count() >= 2
            && labels.iter().filter(|l| *l == "ok").count() >= 2
    });
    for c in [&mut a, &mut b] {
        assert_eq!(term(c).code(), Some(0));
    }
    let fires = ticks(&p, TickKind::Fire, "job");
    let results = ticks(&p, TickKind::Result, "job");
    for t in fires.keys() {
        // Every claimed tick has a result except possibly the last one in
        // flight at shutdown (which SIGTERM then recorded as well).
        assert!(results.contains_key(t), "tick {t} without result");
    }
}

#[test]
fn a_job_added_while_daemons_run_is_picked_up_and_timeouts_are_recorded() {
    let p = unique_prefix("added");
    let d = scratch_dir("added");
    let mut a = daemon(&p, "a", &d);
    wait_for("a serving", LONG, || {
        read(&d.join("a.log")).contains("serving")
    });
    add(
        &p,
        "late",
        &[
            "--schedule",
            "@every 1s",
            "--timeout",
            "1s",
            "--kill-after",
            "500ms",
        ],
        "exec sleep 10",
    );
    wait_for("a timeout", LONG, || {
        ticks(&p, TickKind::Result, "late").values().any(|v| {
            conch::record::cron::RunResult::from_json(v)
                .is_some_and(|r| r.outcome == conch::record::cron::Outcome::Timeout)
        })
    });
    assert_eq!(term(&mut a).code(), Some(0));
}

#[test]
fn sigterm_stops_running_jobs_records_them_and_exits_0() {
    let p = unique_prefix("term");
    let d = scratch_dir("term");
    let mut a = daemon(&p, "a", &d);
    let script = format!("touch {}/started; exec sleep 60", d.display());
    add(
        &p,
        "job",
        &["--schedule", "@every 1s", "--overlap", "skip"],
        &script,
    );
    wait_for("running", LONG, || d.join("started").exists());
    assert_eq!(term(&mut a).code(), Some(0));
    let results = ticks(&p, TickKind::Result, "job");
    let killed = results.values().any(|v| {
        conch::record::cron::RunResult::from_json(v)
            .is_some_and(|r| r.outcome == conch::record::cron::Outcome::Killed(15))
    });
    assert!(
        killed,
        "the run was stopped by the forwarded SIGTERM and recorded"
    );
    let node = Schema::new(&p).cron_node_key("a");
    assert!(
        client()
            .range(Range::key(node))
            .expect("range")
            .kvs
            .is_empty(),
        "lease revoked"
    );
}

fn add(p: &str, name: &str, extra: &[&str], script: &str) {
    common::cron_add(p, name, extra, script)
}

fn term(c: &mut Child) -> std::process::ExitStatus {
    common::term(c, LONG)
}

fn ticks(p: &str, kind: TickKind, name: &str) -> BTreeMap<i64, Vec<u8>> {
    common::cron_ticks(p, kind, name)
}
