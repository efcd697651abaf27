//! `conch cron apply -f FILE [--prune] [--dry-run]`: jobs as files. The
//! whole file is checked before etcd is reached (a bad line is exit 64 with
//! its number, and nothing is written); then every change is written in one
//! transaction guarded by the revisions the plan was made from, so the
//! result is all of it or none of it.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use miniserde::json::Value;

use super::connect::connect;
use super::host::{host_name, now_ms};
use super::output::print;
use crate::cli::Global;
use crate::etcd::{Client, CmpOp, Compare, Op, Range, Target, Txn};
use crate::keys::{self, Schema};
use crate::kit::exit::{EXIT_UNAVAILABLE, EXIT_USAGE};
use crate::kit::verbosity::Verbosity;
use crate::record::cron::Job;
use crate::record::{get_str, get_u64, parse_object, VERSION};
use crate::schedule::checked;

/// A plan made from a read that a concurrent write overtook is made again;
/// a few rounds cover any human pace of edits.
const TRIES: usize = 5;

/// One job of the file.
struct Line {
    no: usize,
    name: String,
    job: Job,
    /// `None` when the line does not say: suspension is the operators'
    /// state (`cron suspend`), kept unless the file sets it.
    suspended: Option<bool>,
}

pub(super) fn run(global: &Global, file: &Path, prune: bool, dry_run: bool) -> i32 {
    let shown = file.display().to_string();
    let text = match read(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("conch: cannot read {shown}: {e}");
            return EXIT_USAGE;
        }
    };
    let lines = match parse_file(&text) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("conch: {shown}:{e}; nothing was written");
            return EXIT_USAGE;
        }
    };
    let client = match connect(global) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let schema = Schema::new(&global.prefix);
    for _ in 0..TRIES {
        let (plan, txn) = match plan(&client, &schema, &lines, prune) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("conch: cannot read cron jobs: {e}");
                return EXIT_UNAVAILABLE;
            }
        };
        if !dry_run && !plan.is_empty() {
            match client.txn(txn) {
                Ok(r) if r.succeeded => {}
                Ok(_) => continue,
                Err(e) => {
                    eprintln!("conch: cannot apply {shown}: {e}; nothing was written");
                    return if e.is_unavailable() {
                        EXIT_UNAVAILABLE
                    } else {
                        1
                    };
                }
            }
        }
        let mut out = String::new();
        for (verb, name, why) in &plan {
            out.push_str(&format!("{verb} {name}{why}\n"));
        }
        if plan.is_empty() {
            out.push_str("no change\n");
        }
        print(&out);
        if global.verbosity >= Verbosity::Normal {
            let unchanged = lines.len() - plan.iter().filter(|p| p.0 != "delete").count();
            let what = if dry_run {
                "dry run, nothing written"
            } else {
                "applied"
            };
            eprintln!(
                "conch: {what}: {} change(s), {unchanged} job(s) unchanged",
                plan.len()
            );
        }
        return 0;
    }
    eprintln!("conch: the jobs kept changing while {shown} was applied; nothing was written");
    1
}

fn read(file: &Path) -> std::io::Result<String> {
    if file == Path::new("-") {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        return Ok(s);
    }
    std::fs::read_to_string(file)
}

/// Every job of the file, checked; the error starts with the line number.
fn parse_file(text: &str) -> Result<Vec<Line>, String> {
    let mut out: Vec<Line> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let no = i + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let line = parse_line(no, l).map_err(|e| format!("{no}: {e}"))?;
        if let Some(first) = out.iter().find(|o| o.name == line.name) {
            return Err(format!(
                "{no}: duplicate name {:?} (first on line {})",
                line.name, first.no
            ));
        }
        out.push(line);
    }
    Ok(out)
}

fn parse_line(no: usize, l: &str) -> Result<Line, String> {
    let o = parse_object(l.as_bytes()).ok_or("not a JSON object")?;
    match o.get("v") {
        None => {}
        Some(_) if get_u64(&o, "v") == Some(VERSION) => {}
        Some(v) => {
            let v = miniserde::json::to_string(v);
            return Err(format!("format version {v}; this conch reads {VERSION}"));
        }
    }
    let name = get_str(&o, "name").ok_or("no \"name\"")?;
    keys::validate_name(&name).map_err(|e| format!("name {name:?} {e}"))?;
    let bad = |why: String| format!("job {name:?}: {why}");
    let mut job = Job::from_json(l.as_bytes()).map_err(bad)?;
    // What a reader would silently default is refused here: a file says
    // what it means.
    match get_str(&o, "overlap").as_deref() {
        None | Some("skip") | Some("allow") => {}
        Some(x) => return Err(bad(format!("overlap {x:?}: expected skip or allow"))),
    }
    for k in ["keep", "timeout_ms", "catch_up_ms"] {
        if o.contains_key(k) && get_u64(&o, k).filter(|n| *n > 0).is_none() {
            return Err(bad(format!("{k}: expected an integer of at least 1")));
        }
    }
    if o.contains_key("keep") && job.keep as u64 != get_u64(&o, "keep").unwrap_or(0) {
        return Err(bad("keep: too large".into()));
    }
    for (k, v) in &job.placement {
        let ok = |s: &str| !s.chars().any(|c| c.is_whitespace() || c.is_control());
        if k.is_empty() || !ok(k) || !ok(v) {
            return Err(bad(format!("where {k:?}={v:?}: not a KEY=VALUE label")));
        }
    }
    if let Some(Value::Object(w)) = o.get("where") {
        if w.len() != job.placement.len() {
            return Err(bad("where: every value must be a string".into()));
        }
    }
    let suspended = match o.get("suspended") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(bad("suspended: expected true or false".into())),
    };
    let (sched, zone) = checked(&job.schedule, &job.tz).map_err(bad)?;
    job.schedule = sched.to_string();
    job.tz = zone.name().to_string();
    Ok(Line {
        no,
        name,
        job,
        suspended,
    })
}

/// (verb, name, detail) of each change, and the transaction that makes
/// them all, guarded by the revisions they were planned from.
type Plan = Vec<(&'static str, String, String)>;

fn plan(
    client: &Client,
    schema: &Schema,
    lines: &[Line],
    prune: bool,
) -> Result<(Plan, Txn), crate::etcd::Error> {
    let dir = schema.cron_job_dir();
    let r = client.range(Range::prefix(dir.clone()))?;
    let mut stored: BTreeMap<String, (i64, Result<Job, String>)> = BTreeMap::new();
    for kv in &r.kvs {
        if let Some(name) = Schema::leaf(&dir, &kv.key).and_then(|l| keys::decode_name(l).ok()) {
            stored.insert(name, (kv.mod_revision, Job::from_json(&kv.value)));
        }
    }
    let now = now_ms();
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "?".into());
    let by = format!("{user}@{}", host_name());
    let mut plan = Plan::new();
    let mut txn = Txn::default();
    for l in lines {
        let key = schema.cron_job_key(&l.name);
        let mut job = l.job.clone();
        job.added_by = by.clone();
        job.added_at_ms = now;
        let (verb, why) = match stored.get(&l.name) {
            None => {
                job.suspended = l.suspended.unwrap_or(false);
                job.paused_at_ms = job.suspended.then_some(now);
                txn.compare.push(Compare::absent(key.clone()));
                ("create", String::new())
            }
            Some((rev, old)) => {
                let why = match old {
                    Ok(old) => {
                        job.suspended = l.suspended.unwrap_or(old.suspended);
                        job.paused_at_ms = if job.suspended == old.suspended {
                            old.paused_at_ms
                        } else {
                            Some(now)
                        };
                        let changed = differences(old, &job);
                        if changed.is_empty() {
                            continue;
                        }
                        format!(": {}", changed.join(", "))
                    }
                    Err(reason) => format!(": was invalid ({reason})"),
                };
                txn.compare.push(Compare::key(
                    key.clone(),
                    CmpOp::Equal,
                    Target::ModRevision(*rev),
                ));
                ("replace", why)
            }
        };
        txn.success.push(Op::put(key, job.to_json(), 0));
        plan.push((verb, l.name.clone(), why));
    }
    if prune {
        for (name, (rev, _)) in &stored {
            if lines.iter().any(|l| &l.name == name) {
                continue;
            }
            let key = schema.cron_job_key(name);
            txn.compare.push(Compare::key(
                key.clone(),
                CmpOp::Equal,
                Target::ModRevision(*rev),
            ));
            txn.success.push(Op::delete(key));
            plan.push(("delete", name.clone(), String::new()));
        }
        // A job added since the read would survive a prune meant to
        // leave only the file's jobs: no key may be newer than the read.
        txn.compare.push(Compare {
            key: dir.clone().into_bytes(),
            range_end: keys::prefix_end(dir.as_bytes()),
            op: CmpOp::Less,
            target: Target::ModRevision(r.revision + 1),
        });
    }
    Ok((plan, txn))
}

/// The fields in which two definitions differ; who added a job and when
/// is not part of its definition.
fn differences(old: &Job, new: &Job) -> Vec<&'static str> {
    let mut d = Vec::new();
    let mut check = |same: bool, field| {
        if !same {
            d.push(field);
        }
    };
    check(old.schedule == new.schedule, "schedule");
    check(old.tz == new.tz, "tz");
    check(old.argv == new.argv, "argv");
    check(old.overlap_allow == new.overlap_allow, "overlap");
    check(old.timeout_ms == new.timeout_ms, "timeout");
    check(old.kill_after_ms == new.kill_after_ms, "kill_after");
    check(old.keep == new.keep, "keep");
    check(old.suspended == new.suspended, "suspended");
    check(old.catch_up_ms == new.catch_up_ms, "catch_up");
    check(old.on_failure == new.on_failure, "on_failure");
    check(old.placement == new.placement, "where");
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        match parse_file(text) {
            Err(e) => e,
            Ok(_) => panic!("accepted: {text}"),
        }
    }

    const OK: &str = r#"{"name":"a","schedule":"@daily","argv":["true"]}"#;

    #[test]
    fn bad_lines_are_named_by_number() {
        let cases = [
            ("{", "not a JSON object"),
            (r#"{"schedule":"@daily","argv":["x"]}"#, "no \"name\""),
            (
                r#"{"name":"b","schedule":"61 * * * *","argv":["x"]}"#,
                "minute 61",
            ),
            (
                r#"{"name":"b","schedule":"@daily","tz":"Mars/Base","argv":["x"]}"#,
                "unknown zone",
            ),
            (
                r#"{"name":"b","schedule":"@daily","argv":[]}"#,
                "no command",
            ),
            (
                r#"{"name":"b","schedule":"@daily","argv":["x"],"overlap":"never"}"#,
                "overlap",
            ),
            (
                r#"{"name":"b","schedule":"@daily","argv":["x"],"keep":0}"#,
                "keep",
            ),
            (
                r#"{"name":"b","schedule":"@daily","argv":["x"],"v":2}"#,
                "format version 2",
            ),
            (
                r#"{"name":"b","schedule":"@daily","argv":["x"],"suspended":"yes"}"#,
                "suspended",
            ),
            (
                r#"{"name":"b","schedule":"@daily","argv":["x"],"where":{"role":1}}"#,
                "where",
            ),
        ];
        for (line, want) in cases {
            let e = err(&format!("{OK}\n\n{line}\n"));
            assert!(e.starts_with("3: ") && e.contains(want), "{line}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
        let e = err(&format!("{OK}\n# a comment\n{OK}"));
        assert!(
            e.contains("3: duplicate name \"a\" (first on line 1)"),
            "{e}"
        );
    }

    #[test]
    fn schedules_and_zones_are_stored_canonical() {
        let l = parse_file(r#"{"name":"a","schedule":"@daily","tz":"europe/berlin","argv":["x"]}"#)
            .expect("parses");
        assert_eq!(l[0].job.tz, "Europe/Berlin");
        assert_eq!(l[0].suspended, None);
    }
}
