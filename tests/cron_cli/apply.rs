//! `cron export` and `cron apply` against a real etcd: a round trip changes
//! nothing, a change is one transaction, a bad file writes nothing.

use std::path::Path;

use super::common::{scratch_dir, unique_prefix};
use super::ops::{field, obj, snapshot, string};
use super::{keys_under, run, stored_job};
use miniserde::json;

pub(super) fn write(dir: &Path, name: &str, text: &str) -> String {
    let f = dir.join(name);
    std::fs::write(&f, text).expect("write");
    f.to_string_lossy().to_string()
}

#[test]
fn export_then_apply_changes_nothing_and_apply_is_one_transaction() {
    let p = unique_prefix("cron-apply");
    let dir = scratch_dir("cron-apply");
    for (name, extra) in [
        ("a", &["--where", "role=db", "--catch-up", "5m"][..]),
        (
            "b c",
            &["--on-failure", "echo failed", "--tz", "Asia/Tokyo"][..],
        ),
    ] {
        let mut args = vec!["cron", "add", name, "--schedule", "*/5 * * * *"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", "echo", "hi there"]);
        let (code, _, err) = run(&p, &args);
        assert_eq!(code, 0, "{err}");
    }
    let (code, _, err) = run(&p, &["cron", "suspend", "a"]);
    assert_eq!(code, 0, "{err}");
    let (code, exported, err) = run(&p, &["cron", "export"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(exported.lines().count(), 2, "{exported}");
    let a = obj(exported.lines().next().unwrap_or(""));
    assert_eq!(string(field(&a, "name")), "a");
    assert_eq!(json::to_string(field(&a, "suspended")), "true");
    let (_, one, _) = run(&p, &["cron", "export", "b c"]);
    assert_eq!(
        one,
        exported.lines().nth(1).unwrap_or("").to_string() + "\n"
    );

    let file = write(&dir, "jobs.jsonl", &exported);
    let snap = snapshot(&p);
    for extra in [&["--dry-run"][..], &[][..], &["--prune"][..]] {
        let mut args = vec!["cron", "apply", "-f", &file];
        args.extend_from_slice(extra);
        let (code, out, err) = run(&p, &args);
        assert_eq!(code, 0, "{extra:?}: {err}");
        assert_eq!(out, "no change\n", "{extra:?}");
        assert_eq!(snapshot(&p), snap, "{extra:?}: nothing written");
    }

    // One job changed, one new, one left out of the file.
    let changed = exported
        .lines()
        .next()
        .unwrap_or("")
        .replace("*/5 * * * *", "@hourly");
    let text = format!(
        "# jobs\n{changed}\n{}\n",
        r#"{"name":"new","schedule":"@daily","argv":["true"]}"#
    );
    let file = write(&dir, "edit.jsonl", &text);
    let (code, out, err) = run(&p, &["cron", "apply", "-f", &file, "--prune", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "replace a: schedule\ncreate new\ndelete b c\n");
    assert_eq!(snapshot(&p), snap, "dry run: nothing written");

    let (code, out, err) = run(&p, &["cron", "apply", "-f", &file, "--prune"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "replace a: schedule\ncreate new\ndelete b c\n");
    let after = snapshot(&p);
    let names: Vec<String> = after
        .iter()
        .map(|(k, _)| String::from_utf8_lossy(k).to_string())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    // One transaction: every write carries the same revision.
    assert_eq!(after[0].1, after[1].1, "{after:?}");
    let a = stored_job(&p, "a").expect("a");
    assert_eq!(a.schedule, "@hourly");
    assert!(a.suspended, "the file's suspension is kept");
    assert_eq!(a.placement, vec![("role".to_string(), "db".to_string())]);
    assert!(stored_job(&p, "b c").is_none());
}

#[test]
fn apply_refuses_a_bad_file_whole() {
    let p = unique_prefix("cron-apply-bad");
    let dir = scratch_dir("cron-apply-bad");
    let good = |n: &str| format!(r#"{{"name":"{n}","schedule":"@daily","argv":["true"]}}"#);
    for (bad, word) in [
        (
            r#"{"name":"x","schedule":"61 * * * *","argv":["true"]}"#.to_string(),
            "minute 61",
        ),
        (
            r#"{"name":"x","schedule":"@daily","tz":"Mars/Base","argv":["true"]}"#.to_string(),
            "unknown zone",
        ),
        (good("one"), "duplicate name \"one\" (first on line 1)"),
        ("not json".to_string(), "not a JSON object"),
    ] {
        let text = format!(
            "{}\n{}\n{bad}\n{}\n",
            good("one"),
            good("two"),
            good("four")
        );
        let file = write(&dir, "bad.jsonl", &text);
        let (code, out, err) = run(&p, &["cron", "apply", "-f", &file]);
        assert_eq!(code, 64, "{bad}: {err}");
        assert!(out.is_empty(), "{out}");
        assert!(err.contains(&format!("{file}:3: ")), "{bad}: {err}");
        assert!(err.contains(word), "{bad}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    let add = ["cron", "add", "j", "--schedule", "@daily"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut a = add.to_vec();
        a.extend_from_slice(extra);
        a
    };
    for args in [
        vec!["cron", "apply", "-f", "/nonexistent/jobs"],
        vec!["cron", "apply"],
        with(&["--where", "role", "--", "true"]),
        with(&["--catch-up", "0", "--", "true"]),
        with(&["--on-failure", "", "--", "true"]),
        vec!["cron", "show"],
        vec!["cron", "export", ".."],
        vec!["cron", "nodes", "extra"],
    ] {
        let (code, out, err) = run(&p, &args);
        assert_eq!(code, 64, "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
    assert_eq!(keys_under(&p), 0, "nothing written");
}
