//! The operator side of `conchd` against a real etcd, with 2–3 real
//! daemons: suspended jobs, `cron run`, catch-up and the failure hook.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{client, conch, read, scratch_dir, unique_prefix, wait_for};
use conch::etcd::Range;
use conch::keys::{Schema, TickKind};
use conch::record::cron::{Cause, Claim, Job, Outcome, RunResult};

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

fn serving(d: &Path, node: &str) -> bool {
    read(&d.join(format!("{node}.log"))).contains("serving")
}

fn now_s() -> i64 {
    (common::wall_ns() / 1_000_000_000) as i64
}

fn now_ms() -> u64 {
    (common::wall_ns() / 1_000_000) as u64
}

/// A job as `cron add` would store it, running `sh -c script`.
fn job(schedule: &str, script: &str) -> Job {
    Job {
        schedule: schedule.into(),
        tz: "UTC".into(),
        argv: vec!["sh".into(), "-c".into(), script.into()],
        kill_after_ms: 1000,
        keep: 100,
        added_by: "test@host".into(),
        added_at_ms: now_ms(),
        ..Job::default()
    }
}

/// Writes the job directly, as `cron add`/`suspend`/`resume` would.
fn put_job(p: &str, name: &str, j: &Job) {
    client()
        .put(Schema::new(p).cron_job_key(name), j.to_json(), 0)
        .expect("put job");
}

fn ticks(p: &str, kind: TickKind, name: &str) -> BTreeMap<i64, Vec<u8>> {
    common::cron_ticks(p, kind, name)
}

fn results(p: &str, name: &str) -> BTreeMap<i64, RunResult> {
    ticks(p, TickKind::Result, name)
        .into_iter()
        .filter_map(|(t, v)| Some((t, RunResult::from_json(&v)?)))
        .collect()
}

fn term(c: &mut Child) -> std::process::ExitStatus {
    common::term(c, LONG)
}

#[test]
fn a_suspended_job_claims_nothing_and_resume_replays_nothing() {
    let p = unique_prefix("suspend");
    let d = scratch_dir("suspend");
    let mut ds: Vec<Child> = ["a", "b"].iter().map(|n| daemon(&p, n, &d)).collect();
    let mut j = job("@every 1s", "true");
    j.catch_up_ms = Some(60_000);
    put_job(&p, "job", &j);
    wait_for("a tick ran", LONG, || !results(&p, "job").is_empty());
    let suspended = now_s();
    j.suspended = true;
    j.paused_at_ms = Some(now_ms());
    put_job(&p, "job", &j);
    // A claim sent just before the suspend may still land on its tick.
    let settled = suspended + 1;
    std::thread::sleep(Duration::from_millis(2500));
    // A daemon that starts during the suspension claims nothing either,
    // not even a catch-up run.
    ds.push(daemon(&p, "c", &d));
    wait_for("c serving", LONG, || serving(&d, "c"));
    std::thread::sleep(Duration::from_millis(500));
    let during: Vec<i64> = ticks(&p, TickKind::Fire, "job")
        .into_keys()
        .filter(|t| *t > settled)
        .collect();
    assert!(during.is_empty(), "claimed while suspended: {during:?}");
    let resumed = now_s();
    j.suspended = false;
    j.paused_at_ms = Some(now_ms());
    put_job(&p, "job", &j);
    wait_for("a tick after the resume", LONG, || {
        results(&p, "job").keys().any(|t| *t > resumed)
    });
    for c in &mut ds {
        assert_eq!(term(c).code(), Some(0));
    }
    let replayed: Vec<i64> = ticks(&p, TickKind::Fire, "job")
        .into_keys()
        .filter(|t| *t > settled && *t <= resumed)
        .collect();
    assert!(
        replayed.is_empty(),
        "suspended ticks replayed: {replayed:?}"
    );
}

fn cron_run(p: &str, args: &[&str]) -> std::process::Output {
    conch(p)
        .args(["cron", "run"])
        .args(args)
        .output()
        .expect("cron run")
}

#[test]
fn cron_run_claims_once_among_racing_daemons_and_wait_returns_the_status() {
    let p = unique_prefix("manual");
    let d = scratch_dir("manual");
    let manual_dir = format!("{p}/v1/cron/manual/");
    let script = format!("echo $CONCH_TICK >> {}/runs; exit 3", d.display());
    // A schedule that does not fire during the test: only manual ticks run.
    put_job(&p, "job", &job("0 0 1 1 *", &script));
    // No daemon: the request is withdrawn and the CLI says why.
    let o = cron_run(&p, &["job", "--timeout", "1s"]);
    assert_eq!(o.status.code(), Some(75), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no live daemon"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    let left = client()
        .range(Range::prefix(manual_dir.clone()))
        .expect("range");
    assert!(left.kvs.is_empty(), "request withdrawn");
    assert!(ticks(&p, TickKind::Fire, "job").is_empty());
    let o = cron_run(&p, &["nosuch", "--timeout", "1s"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let mut held = job("0 0 1 1 *", "true");
    held.suspended = true;
    put_job(&p, "held", &held);
    let o = cron_run(&p, &["held"]);
    assert_eq!(o.status.code(), Some(75), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("suspended"),
        "{o:?}"
    );

    let mut ds: Vec<Child> = ["a", "b", "c"].iter().map(|n| daemon(&p, n, &d)).collect();
    wait_for("three serving", LONG, || {
        ["a", "b", "c"].iter().all(|n| serving(&d, n))
    });
    let o = cron_run(&p, &["job"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("claimed by"),
        "{o:?}"
    );
    let o = cron_run(&p, &["job", "--wait"]);
    assert_eq!(o.status.code(), Some(3), "the run's exit status: {o:?}");
    wait_for("two results", LONG, || results(&p, "job").len() == 2);
    // --overlap skip holds for manual ticks too.
    put_job(&p, "long", &job("0 0 1 1 *", "exec sleep 30"));
    let o = cron_run(&p, &["long"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let o = cron_run(&p, &["long", "--wait"]);
    assert_eq!(o.status.code(), Some(75), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("skipped"),
        "{o:?}"
    );
    for c in &mut ds {
        assert_eq!(term(c).code(), Some(0));
    }
    let fires = ticks(&p, TickKind::Fire, "job");
    assert_eq!(fires.len(), 2, "one tick per run: {fires:?}");
    for v in fires.values() {
        assert_eq!(Claim::from_json(v).cause, Cause::Manual);
    }
    for r in results(&p, "job").values() {
        assert_eq!(r.outcome, Outcome::Failed(3));
    }
    let runs = read(&d.join("runs"));
    assert_eq!(runs.lines().count(), 2, "each ran once: {runs}");
    let left = client().range(Range::prefix(manual_dir)).expect("range");
    assert!(left.kvs.is_empty(), "requests consumed by the claims");
}

#[test]
fn catch_up_claims_only_the_latest_missed_tick_once_and_never_an_old_one() {
    let p = unique_prefix("catchup");
    let d = scratch_dir("catchup");
    // Registration in the same minute as `before`, so the latest tick is known.
    if now_s().rem_euclid(60) >= 50 {
        std::thread::sleep(Duration::from_secs(11));
    }
    let before = now_s();
    let hour_ago = now_ms() - 3_600_000;
    // Every minute: the daemons were down for the last three ticks at least.
    let mut recent = job(
        "* * * * *",
        &format!("echo $CONCH_TICK >> {}/recent", d.display()),
    );
    recent.added_at_ms = hour_ago;
    recent.catch_up_ms = Some(150_000);
    put_job(&p, "recent", &recent);
    // Daily, ten minutes ago: older than its catch-up window of five.
    let ago = before - 600;
    let daily = format!("{} {} * * *", (ago / 60) % 60, (ago / 3600) % 24);
    let mut stale = job(&daily, &format!("echo x >> {}/stale", d.display()));
    stale.added_at_ms = hour_ago;
    stale.catch_up_ms = Some(300_000);
    put_job(&p, "stale", &stale);
    // The same tick with a wide enough window is caught up.
    let mut wide = stale.clone();
    wide.argv[2] = format!("echo x >> {}/wide", d.display());
    wide.catch_up_ms = Some(900_000);
    put_job(&p, "wide", &wide);
    let mut ds: Vec<Child> = ["a", "b"].iter().map(|n| daemon(&p, n, &d)).collect();
    wait_for("the catch-up runs", LONG, || {
        results(&p, "recent").keys().any(|t| *t <= before)
            && results(&p, "wide").keys().any(|t| *t <= before)
    });
    // A daemon that starts later finds the tick claimed: no second run.
    ds.push(daemon(&p, "c", &d));
    wait_for("c serving", LONG, || serving(&d, "c"));
    for c in &mut ds {
        assert_eq!(term(c).code(), Some(0));
    }
    let latest = before - before.rem_euclid(60);
    let caught: Vec<i64> = ticks(&p, TickKind::Fire, "recent")
        .into_iter()
        .filter(|(t, _)| *t <= before)
        .map(|(t, v)| {
            assert_eq!(Claim::from_json(&v).cause, Cause::CatchUp);
            t
        })
        .collect();
    assert_eq!(caught, vec![latest], "only the latest missed tick");
    assert_eq!(
        read(&d.join("recent")).lines().count(),
        1 + ticks(&p, TickKind::Fire, "recent")
            .keys()
            .filter(|t| **t > before)
            .count()
    );
    assert!(
        ticks(&p, TickKind::Fire, "stale").is_empty(),
        "older than D"
    );
    assert!(read(&d.join("stale")).is_empty());
    assert_eq!(read(&d.join("wide")).lines().count(), 1, "caught up once");
    assert_eq!(
        ticks(&p, TickKind::Fire, "wide")
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        vec![ago - ago.rem_euclid(60)]
    );
}

#[test]
fn the_failure_hook_runs_once_per_failed_tick_and_never_for_ok() {
    let p = unique_prefix("hook");
    let d = scratch_dir("hook");
    let mut ds: Vec<Child> = ["a", "b"].iter().map(|n| daemon(&p, n, &d)).collect();
    // Odd ticks fail with 4, even ones succeed.
    let mut j = job(
        "@every 1s",
        "case ${CONCH_TICK%Z} in *[13579]) exit 4;; esac",
    );
    j.on_failure = vec![
        "sh".into(),
        "-c".into(),
        format!(
            "echo \"$CONCH_JOB $CONCH_TICK $CONCH_STATUS $CONCH_EXIT $CONCH_NODE\" >> {}/hooks",
            d.display()
        ),
    ];
    put_job(&p, "job", &j);
    wait_for("three failures hooked", LONG, || {
        read(&d.join("hooks")).lines().count() >= 3
    });
    for c in &mut ds {
        assert_eq!(term(c).code(), Some(0));
    }
    let res = results(&p, "job");
    let hooks = read(&d.join("hooks"));
    let mut hooked: Vec<String> = Vec::new();
    for line in hooks.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let [name, tick, status, exit, node] = f[..] else {
            panic!("{line}");
        };
        assert_eq!((name, status, exit), ("job", "failed", "4"), "{line}");
        let t = conch::schedule::parse_rfc3339(tick).expect("tick");
        let r = res.get(&t).expect("a result for every hooked tick");
        assert_eq!(r.outcome, Outcome::Failed(4), "{line}");
        assert_eq!(r.node, node, "the hook runs where the job ran");
        hooked.push(tick.to_string());
    }
    let mut once = hooked.clone();
    once.sort();
    once.dedup();
    assert_eq!(once.len(), hooked.len(), "a hook ran twice: {hooks}");
    let failed = res
        .values()
        .filter(|r| r.outcome == Outcome::Failed(4))
        .count();
    assert!(res.values().any(|r| r.outcome == Outcome::Ok));
    // The last failure may have ended as the daemons stopped, its hook
    // stopped with them before it wrote.
    assert!(
        hooked.len() + 1 >= failed,
        "{failed} failures, hooks: {hooks}"
    );
}

#[test]
fn a_tick_whose_daemon_died_is_recorded_zombie_once_and_its_hook_runs_on_a_survivor() {
    let p = unique_prefix("zombie");
    let d = scratch_dir("zombie");
    let mut ds: BTreeMap<String, Child> = ["a", "b"]
        .iter()
        .map(|n| (n.to_string(), daemon(&p, n, &d)))
        .collect();
    wait_for("both daemons serving", LONG, || {
        serving(&d, "a") && serving(&d, "b")
    });
    // The first run hangs (its daemon will be SIGKILLed under it); every
    // later one succeeds, and must never run the hook.
    let started = d.join("started");
    let mut j = job(
        "@every 1s",
        &format!(
            "if [ ! -e {0} ]; then touch {0}; sleep 60; fi",
            started.display()
        ),
    );
    j.on_failure = vec![
        "sh".into(),
        "-c".into(),
        format!(
            "echo \"$CONCH_JOB $CONCH_TICK $CONCH_STATUS ${{CONCH_EXIT:--}} $CONCH_NODE\" >> {}/hooks",
            d.display()
        ),
    ];
    put_job(&p, "job", &j);
    wait_for("the hanging run", LONG, || started.exists());
    let mut marker = None;
    wait_for("its run marker", LONG, || {
        marker = ticks(&p, TickKind::Run, "job").into_iter().next();
        marker.is_some()
    });
    let (tick, value) = marker.expect("marker");
    let runner = Claim::from_json(&value).node;
    let mut victim = ds.remove(&runner).expect("the runner is one of ours");
    victim.kill().expect("SIGKILL the runner");
    victim.wait().expect("reap");
    wait_for("the zombie's hook", LONG, || {
        read(&d.join("hooks")).contains("zombie")
    });
    // Later ticks run on the survivor and succeed: give it two of them.
    wait_for("two ok runs after the zombie", LONG, || {
        results(&p, "job")
            .iter()
            .filter(|(t, r)| **t > tick && r.outcome == Outcome::Ok)
            .count()
            >= 2
    });
    for c in ds.values_mut() {
        assert_eq!(term(c).code(), Some(0));
    }
    let hooks = read(&d.join("hooks"));
    let when = conch::schedule::fmt_rfc3339_utc(tick);
    assert_eq!(
        hooks,
        format!("job {when} zombie - {runner}\n"),
        "exactly one hook, for the zombie tick, naming the dead runner"
    );
    let r = results(&p, "job").remove(&tick).expect("a stored result");
    assert_eq!(
        (r.outcome, r.node.as_str()),
        (Outcome::Zombie, runner.as_str())
    );
    let ls = conch(&p)
        .args(["cron", "ls", "job"])
        .output()
        .expect("cron ls");
    let row = String::from_utf8_lossy(&ls.stdout)
        .lines()
        .find(|l| l.starts_with(&when))
        .map(str::to_string)
        .unwrap_or_default();
    assert!(row.contains("zombie"), "cron ls row: {row:?}");
}

#[test]
fn a_run_trims_the_history_to_keep() {
    let p = unique_prefix("trim");
    let d = scratch_dir("trim");
    let mut j = job("0 0 1 1 *", "true");
    j.keep = 3;
    put_job(&p, "job", &j);
    // Five ticks two hours and more back, past the hour in which a lagging
    // daemon may still claim, and a young one.
    let s = Schema::new(&p);
    let old: Vec<i64> = (0..5).map(|i| now_s() - 7200 - 60 * i).collect();
    let young = now_s() - 600;
    for t in old.iter().chain([&young]) {
        for kind in [TickKind::Fire, TickKind::Result] {
            client()
                .put(s.cron_tick_key(kind, "job", *t), "{}", 0)
                .expect("put");
        }
    }
    let mut a = daemon(&p, "a", &d);
    wait_for("serving", LONG, || serving(&d, "a"));
    let o = cron_run(&p, &["job", "--wait"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    wait_for("trimmed", LONG, || {
        ticks(&p, TickKind::Result, "job").len() == 3
    });
    assert_eq!(term(&mut a).code(), Some(0));
    // The three newest stay: the newest old tick, the young one, the run's.
    for kind in [TickKind::Fire, TickKind::Result] {
        let left: Vec<i64> = ticks(&p, kind, "job").into_keys().collect();
        assert_eq!(left.len(), 3, "{kind:?}: {left:?}");
        assert_eq!(left[..2], [old[0], young], "{kind:?}: {left:?}");
    }
}
