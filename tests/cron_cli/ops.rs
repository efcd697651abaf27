//! The operator commands against a real etcd: `show`, `suspend`/`resume`,
//! `export`/`apply`, `nodes`, placement seen from `ls`/`show`, and the
//! cause column of a job's history.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use miniserde::json::{self, Value};

use super::apply::write;
use super::common::{self, client, scratch_dir, term, unique_prefix, wait_for};
use super::{now_s, put_tick, run, stored_job};
use conch::etcd::Range;
use conch::keys::{Schema, TickKind};
use conch::record::cron::{Cause, Claim, Node, Outcome, RunResult};

const LONG: Duration = Duration::from_secs(30);

/// Every key under `p` with its mod revision: equal before and after means
/// nothing under `p` was written (the store's revision moves with the
/// other tests that share this etcd).
pub(super) fn snapshot(p: &str) -> Vec<(Vec<u8>, i64)> {
    let r = client()
        .range(Range::prefix(format!("{p}/")))
        .expect("range");
    r.kvs
        .into_iter()
        .map(|kv| (kv.key, kv.mod_revision))
        .collect()
}

pub(super) fn obj(line: &str) -> miniserde::json::Object {
    match json::from_str::<Value>(line) {
        Ok(Value::Object(o)) => o,
        other => panic!("not a JSON object: {line:?}: {other:?}"),
    }
}

pub(super) fn field<'a>(o: &'a miniserde::json::Object, k: &str) -> &'a Value {
    o.get(k).unwrap_or_else(|| panic!("no {k}"))
}

pub(super) fn string(v: &Value) -> &str {
    match v {
        Value::String(s) => s,
        other => panic!("not a string: {other:?}"),
    }
}

/// The value after `label` in `show`'s output.
fn shown(out: &str, label: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(label).filter(|r| r.starts_with(' ')))
        .unwrap_or_else(|| panic!("no {label} in {out}"))
        .trim()
        .to_string()
}

/// A daemon registration on a live lease, as `conchd --label` writes it.
fn register(p: &str, id: &str, labels: &[(&str, &str)]) -> i64 {
    let lease = client().lease_grant(60).expect("lease").id;
    let node = Node {
        host: "db-host".into(),
        pid: 4242,
        version: "9.9.9".into(),
        started_ms: 1_767_225_600_000,
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    client()
        .put(Schema::new(p).cron_node_key(id), node.to_json(), lease)
        .expect("register");
    lease
}

#[test]
fn show_prints_every_field_and_placement_is_visible() {
    let p = unique_prefix("cron-show");
    let (code, _, err) = run(
        &p,
        &[
            "cron",
            "add",
            "dump",
            "--schedule",
            "30 2 * * *",
            "--tz",
            "Europe/Berlin",
            "--overlap",
            "allow",
            "--timeout",
            "90s",
            "--kill-after",
            "5s",
            "--keep",
            "7",
            "--catch-up",
            "10m",
            "--on-failure",
            "page 'ops team'",
            "--where",
            "role=db",
            "--",
            "dump.sh",
            "--all",
        ],
    );
    assert_eq!(code, 0, "{err}");
    // A manual run of a tick, failed.
    let tick = now_s() - 120;
    let claim = Claim {
        node: "n1".into(),
        pid: 1,
        lease: "00000000000000aa".into(),
        at_ms: tick as u64 * 1000,
        cause: Cause::Manual,
    };
    put_tick(&p, TickKind::Fire, "dump", tick, claim.to_json(), 0);
    let result = RunResult {
        outcome: Outcome::Failed(3),
        start_ms: tick as u64 * 1000 + 10,
        end_ms: tick as u64 * 1000 + 2010,
        node: "n1".into(),
    };
    put_tick(&p, TickKind::Result, "dump", tick, result.to_json(), 0);

    let (code, out, err) = run(&p, &["cron", "show", "dump"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(shown(&out, "name"), "dump");
    assert_eq!(shown(&out, "schedule"), "30 2 * * *");
    assert_eq!(shown(&out, "zone"), "Europe/Berlin");
    assert_eq!(shown(&out, "next").split(' ').count(), 3, "{out}");
    assert_eq!(shown(&out, "command"), "dump.sh --all");
    assert_eq!(shown(&out, "overlap"), "allow");
    assert_eq!(shown(&out, "timeout"), "1m30s");
    assert_eq!(shown(&out, "kill-after"), "5.000s");
    assert_eq!(shown(&out, "keep"), "7");
    assert_eq!(shown(&out, "suspended"), "no");
    assert_eq!(shown(&out, "catch-up"), "10m00s");
    assert_eq!(
        shown(&out, "on-failure"),
        r#"/bin/sh -c 'page '\''ops team'\'''"#
    );
    assert_eq!(
        shown(&out, "where"),
        "role=db (unmatched: no live daemon matches)"
    );
    assert!(shown(&out, "added").contains('@'), "{out}");
    let last = shown(&out, "last");
    assert!(
        last.contains("failed(3) (manual) on n1 in 2.000s"),
        "{last}"
    );

    let (code, out, _) = run(&p, &["cron", "show", "dump", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 1, "{out}");
    let o = obj(out.trim_end());
    assert_eq!(string(field(&o, "tz")), "Europe/Berlin");
    assert_eq!(json::to_string(field(&o, "argv")), r#"["dump.sh","--all"]"#);
    assert_eq!(json::to_string(field(&o, "timeout_ms")), "90000");
    assert_eq!(json::to_string(field(&o, "kill_after_ms")), "5000");
    assert_eq!(json::to_string(field(&o, "catch_up_ms")), "600000");
    assert_eq!(json::to_string(field(&o, "where")), r#"{"role":"db"}"#);
    assert_eq!(json::to_string(field(&o, "matched")), "false");
    assert_eq!(json::to_string(field(&o, "suspended")), "false");
    let Value::Object(l) = field(&o, "last") else {
        panic!("last: {out}")
    };
    assert_eq!(string(field(l, "status")), "failed(3)");
    assert_eq!(string(field(l, "cause")), "manual");
    assert_eq!(json::to_string(field(l, "exit")), "3");

    // The cause in the history, as a column and a field.
    let (_, out, _) = run(&p, &["cron", "ls", "dump"]);
    let row = out.lines().nth(1).expect("a tick row");
    assert_eq!(row.split_whitespace().last(), Some("manual"), "{out}");
    let (_, out, _) = run(&p, &["cron", "ls", "dump", "--json"]);
    assert!(out.contains(r#""cause":"manual""#), "{out}");

    // Unmatched in the job list until a daemon labelled role=db is live.
    let state = |p: &str| {
        let (_, out, _) = run(p, &["cron", "ls"]);
        let row = out.lines().find(|l| l.starts_with("dump")).unwrap_or("");
        row.split_whitespace().last().unwrap_or("").to_string()
    };
    assert_eq!(state(&p), "unmatched");
    let web = register(&p, "web-1", &[("role", "web")]);
    assert_eq!(state(&p), "unmatched", "a daemon, but not a matching one");
    let db = register(&p, "db-1", &[("role", "db"), ("dc", "x")]);
    assert_eq!(state(&p), "active");
    let (_, out, _) = run(&p, &["cron", "show", "dump"]);
    assert_eq!(shown(&out, "where"), "role=db");
    let (_, out, _) = run(&p, &["cron", "ls", "--json"]);
    assert!(out.contains(r#""state":"active""#), "{out}");
    client().lease_revoke(db).expect("revoke");
    assert_eq!(state(&p), "unmatched", "the matching daemon is gone");
    client().lease_revoke(web).expect("revoke");

    let (code, out, err) = run(&p, &["cron", "show", "nope"]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(err.trim_end(), "conch: no job nope");
}

#[test]
fn suspend_and_resume_round_trip() {
    let p = unique_prefix("cron-suspend");
    let (code, _, err) = run(
        &p,
        &["cron", "add", "j", "--schedule", "@hourly", "--", "true"],
    );
    assert_eq!(code, 0, "{err}");
    let state = || {
        let (_, out, _) = run(&p, &["cron", "ls"]);
        let row = out.lines().find(|l| l.starts_with("j ")).unwrap_or("");
        row.split_whitespace().last().unwrap_or("").to_string()
    };
    assert_eq!(state(), "active");

    let before = now_s() as u64 * 1000;
    let (code, _, err) = run(&p, &["cron", "suspend", "j"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(err.trim_end(), "conch: suspended j");
    let job = stored_job(&p, "j").expect("job");
    assert!(job.suspended);
    let paused = job.paused_at_ms.expect("paused_at");
    assert!(paused >= before, "{paused} < {before}");
    assert_eq!(state(), "suspended");
    let (_, out, _) = run(&p, &["cron", "show", "j"]);
    assert!(out.contains("suspended: not claimed"), "{out}");

    // A replaced definition stays suspended: suspension is the operators'
    // state, not part of a definition.
    let (code, _, err) = run(
        &p,
        &[
            "cron",
            "add",
            "j",
            "--schedule",
            "@daily",
            "--replace",
            "--",
            "true",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let job = stored_job(&p, "j").expect("job");
    assert_eq!(job.schedule, "@daily");
    assert!(job.suspended, "replace resumed the job");
    assert_eq!(job.paused_at_ms, Some(paused));

    // Suspending again writes nothing: paused_at must not move.
    let snap = snapshot(&p);
    let (code, _, err) = run(&p, &["cron", "suspend", "j"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("already suspended"), "{err}");
    assert_eq!(snapshot(&p), snap);

    let (code, _, err) = run(&p, &["cron", "resume", "j"]);
    assert_eq!(code, 0, "{err}");
    let job = stored_job(&p, "j").expect("job");
    assert!(!job.suspended);
    assert!(job.paused_at_ms.expect("paused_at") >= paused);
    assert_eq!(state(), "active");

    // No such job, and bad input: nothing written.
    let snap = snapshot(&p);
    let (code, _, err) = run(&p, &["cron", "suspend", "nope"]);
    assert_eq!(code, 1);
    assert_eq!(err.trim_end(), "conch: no job nope");
    for args in [&["cron", "resume"][..], &["cron", "suspend", "j", "k"][..]] {
        let (code, _, err) = run(&p, args);
        assert_eq!(code, 64, "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    assert_eq!(snapshot(&p), snap);
}

/// `suspend` racing `add --replace` (job j) and `apply` (job k): whatever
/// the interleaving, both land, because each is a write guarded by the
/// revision it read (and a replace or an apply keeps the suspension). An
/// unguarded write would, in some round, put back what it read before the
/// other's write.
#[test]
fn suspend_racing_replace_and_apply_both_land() {
    let p = unique_prefix("cron-suspend-race");
    let dir = scratch_dir("cron-suspend-race");
    let spawn = |args: &[&str]| {
        common::conch(&p)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("conch")
    };
    for round in 0..20u32 {
        for name in ["j", "k"] {
            let (code, _, err) = run(
                &p,
                &[
                    "cron",
                    "add",
                    name,
                    "--schedule",
                    "@hourly",
                    "--replace",
                    "--",
                    "true",
                ],
            );
            assert_eq!(code, 0, "{err}");
            let (code, _, err) = run(&p, &["cron", "resume", name]);
            assert_eq!(code, 0, "{err}");
        }
        let schedule = format!("{round} * * * *");
        let keep = round + 1;
        let file = write(
            &dir,
            "k.jsonl",
            &format!(r#"{{"name":"k","schedule":"@hourly","argv":["true"],"keep":{keep}}}"#),
        );
        let mut racers = [
            spawn(&["cron", "suspend", "j"]),
            spawn(&[
                "cron",
                "add",
                "j",
                "--schedule",
                &schedule,
                "--replace",
                "--",
                "true",
            ]),
            spawn(&["cron", "suspend", "k"]),
            spawn(&["cron", "apply", "-f", &file]),
        ];
        for r in &mut racers {
            assert!(r.wait().expect("wait").success(), "round {round}");
        }
        let j = stored_job(&p, "j").expect("j");
        assert!(j.suspended, "round {round}: j's suspension was lost");
        assert_eq!(j.schedule, schedule, "round {round}: the replace was lost");
        let k = stored_job(&p, "k").expect("k");
        assert!(k.suspended, "round {round}: k's suspension was lost");
        assert_eq!(k.keep, keep, "round {round}: the apply was lost");
    }
}

fn daemon(p: &str, node: &str, dir: &Path) -> Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_conchd"))
        .env("CONCH_ENDPOINTS", &common::etcd().endpoint)
        .args(["--prefix", p, "--ttl", "3s", "--node", node])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{node}.log"))).expect("log"))
        .spawn()
        .expect("conchd")
}

#[test]
fn nodes_lists_live_daemons_with_labels_and_runs() {
    let p = unique_prefix("cron-nodes");
    let dir = scratch_dir("cron-nodes");
    let (code, out, err) = run(&p, &["cron", "nodes"]);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    assert!(err.contains("no live daemons"), "{err}");

    let lease = register(&p, "db-1", &[("role", "db"), ("dc", "x")]);
    let marker = Claim {
        node: "db-1".into(),
        pid: 4242,
        lease: "00000000000000aa".into(),
        at_ms: 1,
        cause: Cause::Schedule,
    };
    put_tick(
        &p,
        TickKind::Run,
        "j",
        1_767_225_600,
        marker.to_json(),
        lease,
    );
    let mut real = daemon(&p, "real-1", &dir);
    let nodes = || run(&p, &["cron", "nodes"]).1;
    wait_for("conchd registered", LONG, || nodes().contains("real-1"));

    let out = nodes();
    assert!(out.starts_with("ID"), "{out}");
    let row = |id: &str| -> Vec<String> {
        let l = out.lines().find(|l| l.starts_with(id)).unwrap_or("");
        l.split_whitespace().map(String::from).collect()
    };
    assert_eq!(
        row("db-1"),
        [
            "db-1",
            "db-host",
            "4242",
            "9.9.9",
            "2026-01-01T00:00:00Z",
            "1",
            "dc=x,role=db"
        ]
    );
    let real_row = row("real-1");
    assert_eq!(real_row.get(2), Some(&real.id().to_string()), "{out}");
    assert_eq!(
        real_row.get(3).map(String::as_str),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(real_row.get(5).map(String::as_str), Some("0"), "{out}");

    let (code, out, _) = run(&p, &["cron", "nodes", "--json"]);
    assert_eq!(code, 0);
    let db = out
        .lines()
        .find(|l| l.contains("db-1"))
        .map(obj)
        .expect("db-1");
    assert_eq!(
        json::to_string(field(&db, "labels")),
        r#"{"dc":"x","role":"db"}"#
    );
    assert_eq!(json::to_string(field(&db, "running")), "1");
    assert_eq!(json::to_string(field(&db, "pid")), "4242");

    // Registrations live on their daemon's lease.
    client().lease_revoke(lease).expect("revoke");
    term(&mut real, LONG);
    wait_for("registrations gone", LONG, || nodes().is_empty());
}
