//! `conch cron add | ls | rm | next` against a real etcd: validation before
//! any write, create-only adds, removal with and without history, and the
//! statuses of `ls` on history written by hand.

mod common;

use std::process::Output;

use common::{client, conch, unique_prefix};
use conch::etcd::Range;
use conch::keys::{Schema, TickKind};
use conch::record::cron::{Claim, Job, Outcome, RunResult};

fn run(p: &str, args: &[&str]) -> (i32, String, String) {
    let o: Output = conch(p).args(args).output().expect("run conch");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

fn keys_under(p: &str) -> i64 {
    client()
        .range(Range::prefix(format!("{p}/")).count_only())
        .expect("range")
        .count
}

fn stored_job(p: &str, name: &str) -> Option<Job> {
    let r = client()
        .range(Range::key(Schema::new(p).cron_job_key(name)))
        .expect("range");
    r.kvs
        .first()
        .map(|kv| Job::from_json(&kv.value).expect("job"))
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

#[test]
fn next_prints_utc_and_local_without_etcd() {
    // An endpoint nobody listens on: `cron next` must not even try it.
    let (code, out, err) = run(
        "/unused",
        &[
            "--endpoints",
            "127.0.0.1:1",
            "cron",
            "next",
            "30 2 * * *",
            "--tz",
            "America/New_York",
            "--after",
            "2026-03-08T05:00:00Z",
            "--count",
            "2",
        ],
    );
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(
        out,
        "2026-03-08T07:00:00Z\t2026-03-08T03:00:00-04:00\n\
         2026-03-09T06:30:00Z\t2026-03-09T02:30:00-04:00\n"
    );
    let (code, out, _) = run(
        "/unused",
        &[
            "--endpoints",
            "127.0.0.1:1",
            "cron",
            "next",
            "@every 90s",
            "--after",
            "2026-01-01T00:00:00Z",
            "--count",
            "1",
            "--json",
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(
        out.trim_end(),
        format!(
            r#"{{"tick":"2026-01-01T00:01:30Z","local":"2026-01-01T00:01:30+00:00","unix":1767225690,"tzdata":"{}"}}"#,
            conch::schedule::tzdata_version()
        )
    );
    for (args, word) in [
        (&["0 0 30 2 *"][..], "never fires"),
        (&["61 * * * *"][..], "minute 61 out of range 0-59"),
        (&["@daily", "--tz", "Mars/Base"][..], "unknown zone"),
        (&["@daily", "--after", "yesterday"][..], "--after"),
    ] {
        let mut full = vec!["cron", "next"];
        full.extend_from_slice(args);
        let (code, out, err) = run("/unused", &full);
        assert_eq!(code, 64, "{args:?}: {err}");
        assert!(out.is_empty());
        assert!(err.contains(word), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn add_refuses_bad_schedules_and_zones_before_writing() {
    let p = unique_prefix("cron-add-bad");
    for (spec, tz, word) in [
        ("61 * * * *", "UTC", "minute 61 out of range 0-59"),
        ("* * * *", "UTC", "expected 5 fields, got 4"),
        ("*/0 * * * *", "UTC", "minute step 0"),
        ("0 0 30 2 *", "UTC", "never fires"),
        ("@every 0s", "UTC", "at least 1s"),
        ("@every -1m", "UTC", "at least 1s"),
        ("@reboot", "UTC", "unknown macro @reboot"),
        ("@daily", "Mars/Base", "unknown zone \"Mars/Base\""),
    ] {
        let (code, _, err) = run(
            &p,
            &[
                "cron",
                "add",
                "j",
                "--schedule",
                spec,
                "--tz",
                tz,
                "--",
                "true",
            ],
        );
        assert_eq!(code, 64, "{spec:?} {tz}: {err}");
        assert!(err.contains(word), "{spec:?} {tz}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    assert_eq!(keys_under(&p), 0, "nothing written");
}

#[test]
fn add_is_create_only_unless_replace() {
    let p = unique_prefix("cron-add");
    let add = |spec: &str, extra: &[&str]| {
        let mut args = vec!["cron", "add", "job/1", "--schedule", spec];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "echo", "hi there"]);
        run(&p, &args)
    };
    let (code, _, err) = add("*/5 * * * *", &["--tz", "europe/berlin", "--keep", "7"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("next tick"), "{err}");
    let job = stored_job(&p, "job/1").expect("stored");
    assert_eq!(job.schedule, "*/5 * * * *");
    assert_eq!(job.tz, "Europe/Berlin", "canonical zone spelling");
    assert_eq!(job.argv, ["echo", "hi there"]);
    assert_eq!(job.keep, 7);
    assert!(job.added_by.contains('@'));
    assert!(job.added_at_ms / 1000 >= (now_s() - 60) as u64);

    let (code, _, err) = add("@hourly", &[]);
    assert_eq!(code, 1);
    assert_eq!(err.trim_end(), "conch: job job/1 exists (use --replace)");
    assert_eq!(
        stored_job(&p, "job/1").expect("kept").schedule,
        "*/5 * * * *"
    );

    let (code, _, err) = add("@hourly", &["--replace", "--timeout", "90s"]);
    assert_eq!(code, 0, "{err}");
    let job = stored_job(&p, "job/1").expect("replaced");
    assert_eq!(job.schedule, "@hourly");
    assert_eq!(job.tz, "UTC");
    assert_eq!(job.timeout_ms, Some(90_000));
    // --replace of a job that does not exist simply adds it.
    let (code, _, _) = run(
        &p,
        &[
            "cron",
            "add",
            "other",
            "--schedule",
            "@daily",
            "--replace",
            "--",
            "true",
        ],
    );
    assert_eq!(code, 0);
    assert!(stored_job(&p, "other").is_some());
}

fn put_job(p: &str, name: &str, schedule: &str, added_s: i64) {
    let job = Job {
        schedule: schedule.into(),
        tz: "UTC".into(),
        argv: vec!["true".into()],
        overlap_allow: false,
        timeout_ms: None,
        kill_after_ms: 3000,
        keep: 100,
        added_by: "test@host".into(),
        added_at_ms: added_s as u64 * 1000 + 500,
        ..Default::default()
    };
    client()
        .put(Schema::new(p).cron_job_key(name), job.to_json(), 0)
        .expect("put job");
}

fn put_tick(p: &str, kind: TickKind, name: &str, tick: i64, value: String, lease: i64) {
    client()
        .put(Schema::new(p).cron_tick_key(kind, name, tick), value, lease)
        .expect("put tick");
}

fn claim(node: &str, tick: i64) -> String {
    Claim {
        node: node.into(),
        pid: 42,
        lease: "00000000000000aa".into(),
        at_ms: tick as u64 * 1000 + 5,
        cause: Default::default(),
    }
    .to_json()
}

fn result(outcome: Outcome, tick: i64, ms: u64) -> String {
    RunResult {
        outcome,
        start_ms: tick as u64 * 1000 + 10,
        end_ms: tick as u64 * 1000 + 10 + ms,
        node: "n1".into(),
    }
    .to_json()
}

#[test]
fn rm_deletes_the_job_and_purge_the_history() {
    let p = unique_prefix("cron-rm");
    let s = Schema::new(&p);
    let (code, _, err) = run(
        &p,
        &["cron", "add", "a", "--schedule", "@daily", "--", "true"],
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&p, &["cron", "rm", "a"]);
    assert_eq!(code, 0, "{err}");
    assert!(stored_job(&p, "a").is_none());
    let (code, _, err) = run(&p, &["cron", "rm", "a"]);
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no job a"), "{err}");

    // History of "a" and of "ab" (whose keys share the prefix "a").
    put_job(&p, "a", "@daily", 1_700_000_000);
    for name in ["a", "ab"] {
        put_tick(&p, TickKind::Fire, name, 1_767_225_600, claim("n1", 0), 0);
        put_tick(
            &p,
            TickKind::Result,
            name,
            1_767_225_600,
            result(Outcome::Ok, 0, 5),
            0,
        );
    }
    let (code, _, err) = run(&p, &["cron", "rm", "a", "--purge"]);
    assert_eq!(code, 0, "{err}");
    for kind in [TickKind::Fire, TickKind::Run, TickKind::Result] {
        let n = client()
            .range(Range::prefix(s.cron_tick_dir(kind, "a")).count_only())
            .expect("range")
            .count;
        assert_eq!(n, 0, "{kind:?} purged");
        let n = client()
            .range(Range::prefix(s.cron_tick_dir(kind, "ab")).count_only())
            .expect("range")
            .count;
        let want = i64::from(kind != TickKind::Run);
        assert_eq!(n, want, "{kind:?} of another job untouched");
    }
    assert!(stored_job(&p, "a").is_none());
    // History without a job is purged too; then nothing is left.
    let (code, _, err) = run(&p, &["cron", "rm", "ab", "--purge"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(keys_under(&p), 0);
    let (code, _, err) = run(&p, &["cron", "rm", "ab", "--purge"]);
    assert_eq!(code, 1);
    assert!(err.contains("no job ab and no history"), "{err}");
}

/// The line of `out` for `tick`, or "".
fn line_of(out: &str, tick: i64) -> String {
    let want = conch::schedule::fmt_rfc3339_utc(tick);
    out.lines()
        .find(|l| l.contains(&want))
        .unwrap_or("")
        .to_string()
}

#[test]
fn ls_shows_every_status() {
    let p = unique_prefix("cron-ls");
    let name = "every-minute";
    // t(k): the minute tick k minutes before the current one. Every tick
    // from t(1) on is past its 30 s grace.
    let base = now_s() / 60 * 60;
    let t = |k: i64| base - 60 * k;
    // Added one second after t(10): t(10) predates the job.
    put_job(&p, name, "* * * * *", t(10) + 1);
    let lease = client().lease_grant(120).expect("lease").id;
    let outcomes = [
        (1, Outcome::Ok),
        (2, Outcome::Failed(3)),
        (3, Outcome::Killed(9)),
        (4, Outcome::Timeout),
        (5, Outcome::Skipped),
        (9, Outcome::Ok),
    ];
    for (k, o) in outcomes {
        put_tick(&p, TickKind::Fire, name, t(k), claim("n1", t(k)), 0);
        put_tick(&p, TickKind::Result, name, t(k), result(o, t(k), 1500), 0);
    }
    // t(6) runs (its marker is on a live lease); t(7)'s runner is gone;
    // nobody claimed t(8).
    put_tick(&p, TickKind::Fire, name, t(6), claim("n2", t(6)), 0);
    put_tick(&p, TickKind::Run, name, t(6), claim("n2", t(6)), lease);
    put_tick(&p, TickKind::Fire, name, t(7), claim("n3", t(7)), 0);
    // Before the job was added: never missed.
    put_tick(
        &p,
        TickKind::Result,
        "unrelated",
        t(10),
        result(Outcome::Ok, 0, 1),
        0,
    );

    let (code, out, err) = run(&p, &["cron", "ls", name]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("TICK"), "header: {out}");
    for (k, status, node) in [
        (1, "ok", "n1"),
        (2, "failed(3)", "n1"),
        (3, "killed(KILL)", "n1"),
        (4, "timeout", "n1"),
        (5, "skipped", "n1"),
        (6, "running", "n2"),
        (7, "zombie", "n3"),
        (8, "missed", ""),
        (9, "ok", "n1"),
    ] {
        let line = line_of(&out, t(k));
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols.get(1), Some(&status), "t({k}): {line:?}\n{out}");
        if !node.is_empty() {
            assert_eq!(cols.get(2), Some(&node), "t({k}): {line:?}");
        }
    }
    assert!(line_of(&out, t(1)).contains("1.500s"), "{out}");
    let cols = |k| {
        line_of(&out, t(k))
            .split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert!(cols(2).ends_with(&["3".into(), "schedule".into()]), "{out}");
    assert_eq!(
        cols(8).last().map(String::as_str),
        Some("-"),
        "no cause: {out}"
    );
    assert_eq!(line_of(&out, t(10)), "", "before added_at: {out}");
    // Newest first.
    let pos = |k| {
        out.find(&conch::schedule::fmt_rfc3339_utc(t(k)))
            .expect("row")
    };
    assert!(pos(1) < pos(2) && pos(8) < pos(9), "{out}");

    let (code, out, _) = run(&p, &["cron", "ls", name, "--last", "3"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 4, "header and 3 rows: {out}");
    assert!(
        !out.contains(&conch::schedule::fmt_rfc3339_utc(t(4))),
        "{out}"
    );

    let (code, out, _) = run(&p, &["cron", "ls", name, "--json"]);
    assert_eq!(code, 0);
    for l in out.lines() {
        assert!(l.starts_with('{') && l.ends_with('}'), "{l}");
    }
    let failed = line_of(&out, t(2));
    assert!(failed.contains(r#""status":"failed(3)""#), "{failed}");
    assert!(failed.contains(r#""exit":3"#), "{failed}");
    assert!(failed.contains(r#""duration_ms":1500"#), "{failed}");
    assert!(failed.contains(&format!(r#""unix":{}"#, t(2))), "{failed}");
    let killed = line_of(&out, t(3));
    assert!(killed.contains(r#""exit":null"#) && killed.contains(r#""signal":9"#));
    let missed = line_of(&out, t(8));
    assert!(missed.contains(r#""status":"missed""#), "{missed}");
    assert!(missed.contains(r#""node":null"#) && missed.contains(r#""start":null"#));

    // The job list: the last tick's status (t(1) ok, or t(0) if its grace
    // has passed and nobody claimed it).
    let (code, out, _) = run(&p, &["cron", "ls"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("NAME"), "{out}");
    let row = out.lines().find(|l| l.starts_with(name)).expect("job row");
    assert!(row.contains("* * * * *") && row.contains("UTC"), "{row}");
    assert!(row.contains(" ok ") || row.contains(" missed"), "{row}");
    assert_eq!(out.lines().count(), 2, "jobs only, not history: {out}");

    // The marker's lease gone: the run is a zombie.
    client().lease_revoke(lease).expect("revoke");
    let (_, out, _) = run(&p, &["cron", "ls", name]);
    assert!(line_of(&out, t(6)).contains("zombie"), "{out}");

    // History without a job is still shown; nothing at all is exit 1.
    let (code, out, _) = run(&p, &["cron", "ls", "unrelated"]);
    assert_eq!(code, 0);
    assert!(line_of(&out, t(10)).contains("ok"), "{out}");
    let (code, out, err) = run(&p, &["cron", "ls", "nothing"]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(err.contains("no job nothing"), "{err}");
}

#[test]
fn ls_lists_a_garbage_job_as_invalid() {
    let p = unique_prefix("cron-ls-bad");
    let (code, _, err) = run(&p, &["cron", "ls"]);
    assert_eq!(code, 0, "empty is fine: {err}");
    let s = Schema::new(&p);
    client()
        .put(s.cron_job_key("broken"), "not json {", 0)
        .expect("put");
    client()
        .put(
            s.cron_job_key("badzone"),
            r#"{"v":1,"schedule":"@daily","tz":"Mars/Base","argv":["x"]}"#,
            0,
        )
        .expect("put");
    let (code, _, err) = run(
        &p,
        &["cron", "add", "fine", "--schedule", "@hourly", "--", "true"],
    );
    assert_eq!(code, 0, "{err}");

    let (code, out, err) = run(&p, &["cron", "ls"]);
    assert_eq!(code, 0, "{err}");
    let row = |n: &str| {
        out.lines()
            .find(|l| l.starts_with(n))
            .unwrap_or("")
            .to_string()
    };
    assert!(
        row("broken").contains("invalid: not a JSON object"),
        "{out}"
    );
    assert!(row("badzone").contains("invalid: unknown zone"), "{out}");
    assert!(row("fine").contains("@hourly"), "{out}");

    let (code, out, _) = run(&p, &["cron", "ls", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(out.contains(r#""name":"broken""#), "{out}");
    assert!(
        out.contains(r#""status":"invalid: not a JSON object""#),
        "{out}"
    );
    assert!(out.contains(r#""next":null"#), "{out}");
    assert!(out.contains(r#""schedule":"@hourly""#), "{out}");

    let (code, _, err) = run(&p, &["cron", "ls", "broken"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("invalid"), "{err}");
}

#[test]
fn etcd_unreachable_is_69() {
    for args in [
        &["cron", "ls"][..],
        &["cron", "rm", "x"][..],
        &["cron", "add", "x", "--schedule", "@daily", "--", "true"][..],
    ] {
        let mut full = vec!["--endpoints", "127.0.0.1:1", "--dial-timeout", "300ms"];
        full.extend_from_slice(args);
        let (code, _, err) = run("/unused", &full);
        assert_eq!(code, 69, "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[path = "cron_cli/ops.rs"]
mod ops;

#[path = "cron_cli/apply.rs"]
mod apply;
