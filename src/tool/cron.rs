//! `conch cron add | ls | rm | next`: job definitions and their history.
//! The daemon itself is `conchd.rs`; `ls`, `show`, `suspend`/`resume`,
//! `export`, `apply` and `nodes` each have their own `cron_*.rs`.

use super::connect::connect;
use super::host::{host_name, now_ms};
use super::output::print;
use crate::cli::config::{Cron as Cmd, CronAdd};
use crate::cli::{Global, Output};
use crate::etcd::{Client, CmpOp, Compare, Op, OpResult, Range, Target, Txn};
use crate::keys::{Schema, TickKind};
use crate::kit::exit::{EXIT_UNAVAILABLE, EXIT_USAGE};
use crate::kit::verbosity::Verbosity;
use crate::record::cron::Job;
use crate::schedule::{self, next_tick};

pub fn run(global: &Global, cmd: Cmd) -> i32 {
    match cmd {
        Cmd::Daemon {
            node,
            metrics_file,
            label_output,
            labels,
        } => super::conchd::run(global, node, metrics_file, label_output, labels),
        Cmd::Next {
            spec,
            tz,
            after,
            count,
            out,
        } => next(&spec, &tz, after.as_deref(), count, out),
        Cmd::Add(add) => self::add(global, add),
        Cmd::Rm { name, purge } => rm(global, &name, purge),
        Cmd::Ls { name, out, last } => super::cron_ls::run(global, name.as_deref(), out, last),
        Cmd::Show { name, out } => super::cron_show::run(global, &name, out),
        Cmd::Suspend { name, suspend } => super::cron_pause::run(global, &name, suspend),
        Cmd::Export { names } => super::cron_export::run(global, &names),
        Cmd::Apply {
            file,
            prune,
            dry_run,
        } => super::cron_apply::run(global, &file, prune, dry_run),
        Cmd::Nodes { out } => super::cron_nodes::run(global, out),
        Cmd::Run {
            name,
            wait,
            timeout,
        } => super::cron_run::run(global, &name, wait, timeout),
    }
}

fn next(spec: &str, tz: &str, after: Option<&str>, count: u32, out: Output) -> i32 {
    let (sched, zone) = match schedule::checked(spec, tz) {
        Ok(v) => v,
        Err(msg) => {
            eprintln!("conch: {msg}");
            return EXIT_USAGE;
        }
    };
    let mut t = match after {
        Some(a) => match schedule::parse_rfc3339(a) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("conch: --after: {e}");
                return EXIT_USAGE;
            }
        },
        None => (now_ms() / 1000) as i64,
    };
    let mut text = String::new();
    let mut printed = 0;
    for _ in 0..count {
        let Some(tick) = next_tick(&sched, &zone, t) else {
            break;
        };
        let (utc, local) = (
            schedule::fmt_rfc3339_utc(tick),
            schedule::fmt_rfc3339_local(tick, &zone),
        );
        match out {
            Output::Human => text.push_str(&format!("{utc}\t{local}\n")),
            Output::Json => {
                // The zone rules' release, so a surprising tick can be traced.
                text.push_str(&format!(
                    "{{\"tick\":\"{utc}\",\"local\":\"{local}\",\"unix\":{tick},\"tzdata\":\"{}\"}}\n",
                    schedule::tzdata_version()
                ));
            }
        }
        printed += 1;
        t = tick;
    }
    print(&text);
    if printed == 0 {
        eprintln!(
            "conch: schedule {spec:?} has no tick after {}",
            schedule::fmt_rfc3339_utc(t)
        );
        return EXIT_USAGE;
    }
    0
}

fn add(global: &Global, a: CronAdd) -> i32 {
    let (sched, zone) = match schedule::checked(&a.schedule, &a.tz) {
        Ok(v) => v,
        Err(msg) => {
            eprintln!("conch: {msg}");
            return EXIT_USAGE;
        }
    };
    let now = now_ms();
    let Some(first) = next_tick(&sched, &zone, (now / 1000) as i64) else {
        eprintln!("conch: schedule {:?}: schedule never fires", a.schedule);
        return EXIT_USAGE;
    };
    if a.argv.is_empty() {
        eprintln!("conch: cron add needs a command after --");
        return EXIT_USAGE;
    }
    let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "?".into());
    let job = Job {
        schedule: sched.to_string(),
        tz: zone.name().to_string(),
        argv: a.argv,
        overlap_allow: a.overlap_allow,
        timeout_ms: a.timeout.map(ms),
        kill_after_ms: ms(a.kill_after),
        keep: a.keep,
        added_by: format!("{user}@{}", host_name()),
        added_at_ms: now,
        suspended: false,
        paused_at_ms: None,
        catch_up_ms: a.catch_up.map(ms),
        // A shell line rather than a second argv: the job's own command
        // already takes everything after `--`.
        on_failure: a
            .on_failure
            .map(|c| vec!["/bin/sh".into(), "-c".into(), c])
            .unwrap_or_default(),
        placement: a.placement,
    };
    let client = match connect(global) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let key = Schema::new(&global.prefix).cron_job_key(&a.name);
    let written = if a.replace {
        replace(&client, &key, job)
    } else {
        let txn = Txn {
            compare: vec![Compare::absent(key.clone())],
            success: vec![Op::put(key, job.to_json(), 0)],
            failure: Vec::new(),
        };
        client.txn(txn).map(|r| Some(r.succeeded))
    };
    let created = match written {
        Ok(Some(c)) => c,
        Ok(None) => {
            eprintln!(
                "conch: job {} kept changing; not replaced (try again)",
                a.name
            );
            return 1;
        }
        Err(e) => {
            eprintln!("conch: cannot write job {}: {e}", a.name);
            return EXIT_UNAVAILABLE;
        }
    };
    if !created && !a.replace {
        eprintln!("conch: job {} exists (use --replace)", a.name);
        return 1;
    }
    if global.verbosity >= Verbosity::Normal {
        let verb = if created { "added" } else { "replaced" };
        eprintln!(
            "conch: {verb} {}: next tick {}",
            a.name,
            schedule::fmt_rfc3339_utc(first)
        );
    }
    0
}

/// `--replace`: writes the new definition but keeps the stored job's
/// suspension, which is the operators' state (`cron suspend`), not part of
/// a definition; guarded by the revision it was read at, so a `suspend`
/// landing in between is not undone. `Some(created)`, or `None` when the
/// job kept changing under it.
fn replace(client: &Client, key: &str, mut job: Job) -> Result<Option<bool>, crate::etcd::Error> {
    for _ in 0..5 {
        let old = client.range(Range::key(key))?.kvs.into_iter().next();
        let guard = match &old {
            None => Compare::absent(key),
            Some(kv) => {
                if let Ok(o) = Job::from_json(&kv.value) {
                    job.suspended = o.suspended;
                    job.paused_at_ms = o.paused_at_ms;
                }
                Compare::key(key, CmpOp::Equal, Target::ModRevision(kv.mod_revision))
            }
        };
        let txn = Txn {
            compare: vec![guard],
            success: vec![Op::put(key, job.to_json(), 0)],
            failure: Vec::new(),
        };
        if client.txn(txn)?.succeeded {
            return Ok(Some(old.is_none()));
        }
    }
    Ok(None)
}

fn rm(global: &Global, name: &str, purge: bool) -> i32 {
    let client = match connect(global) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let schema = Schema::new(&global.prefix);
    let mut ops = vec![Op::delete(schema.cron_job_key(name))];
    if purge {
        for kind in [TickKind::Fire, TickKind::Run, TickKind::Result] {
            ops.push(Op::delete_prefix(schema.cron_tick_dir(kind, name)));
        }
    }
    let txn = Txn {
        compare: Vec::new(),
        success: ops,
        failure: Vec::new(),
    };
    let deleted: Vec<i64> = match client.txn(txn) {
        Ok(r) => r
            .results
            .iter()
            .map(|o| match o {
                OpResult::Delete { deleted } => *deleted,
                _ => 0,
            })
            .collect(),
        Err(e) => {
            eprintln!("conch: cannot remove job {name}: {e}");
            return EXIT_UNAVAILABLE;
        }
    };
    let job = deleted.first().copied().unwrap_or(0);
    let history: i64 = deleted.iter().skip(1).sum();
    if job == 0 && history == 0 {
        let what = if purge { " and no history" } else { "" };
        eprintln!("conch: no job {name}{what}");
        return 1;
    }
    if global.verbosity >= Verbosity::Normal {
        let what = if job == 0 { "no job" } else { "removed" };
        if purge {
            eprintln!("conch: {what} {name}; purged {history} history keys");
        } else {
            eprintln!("conch: removed {name}");
        }
    }
    0
}
