//! `conch cron ls [NAME]`: the jobs, with whether daemons will claim them
//! (suspended, or placed where no live daemon matches), or one job's recent
//! ticks, with each tick's status and cause read from its fire key, run
//! marker and result (docs/cron.md).
//! What a job's history says is `cron_history.rs`.

use miniserde::json::{self, Number, Object, Value};

use super::connect::connect;
use super::cron_history::{read, rows, Row};
use super::cron_nodes::{live, matched, Live};
use super::host::now_ms;
use super::output::{
    cells, dash, human_ms, opt_i32, opt_i64, opt_str, opt_u64, print, render, rfc3339_ms,
};
use crate::cli::{Global, Output};
use crate::etcd::{Client, Range};
use crate::keys::{self, Schema};
use crate::kit::exit::EXIT_UNAVAILABLE;
use crate::kit::verbosity::Verbosity;
use crate::record::cron::Job;
use crate::schedule::{fmt_rfc3339_utc, next_tick, Schedule, Zone};

pub(super) fn run(global: &Global, name: Option<&str>, out: Output, last: u32) -> i32 {
    let client = match connect(global) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let schema = Schema::new(&global.prefix);
    // Taken before the reads: a tick whose grace had run out by then could
    // no longer be claimed, so its missing fire key is final.
    let now = now_ms();
    let res = match name {
        Some(n) => one_job(&client, &schema, n, out, last as usize, now, global),
        None => all_jobs(&client, &schema, out, now, global),
    };
    res.unwrap_or_else(|e| {
        eprintln!("conch: cannot read cron jobs: {e}");
        EXIT_UNAVAILABLE
    })
}

/// A stored job as far as it could be understood.
enum Def {
    Valid {
        job: Job,
        sched: Schedule,
        zone: Zone,
    },
    Invalid {
        job: Option<Job>,
        reason: String,
    },
}

fn parse_def(bytes: &[u8]) -> Def {
    let job = match Job::from_json(bytes) {
        Ok(j) => j,
        Err(reason) => return Def::Invalid { job: None, reason },
    };
    let sched = match Schedule::parse(&job.schedule) {
        Ok(s) => s,
        Err(e) => {
            let reason = format!("schedule: {e}");
            return Def::Invalid {
                job: Some(job),
                reason,
            };
        }
    };
    match Zone::parse(&job.tz) {
        Ok(zone) => Def::Valid { job, sched, zone },
        Err(e) => Def::Invalid {
            job: Some(job),
            reason: e.to_string(),
        },
    }
}

fn one_job(
    client: &Client,
    schema: &Schema,
    name: &str,
    out: Output,
    k: usize,
    now: u64,
    global: &Global,
) -> Result<i32, crate::etcd::Error> {
    let (value, h) = read(client, schema, name, true)?;
    if value.is_none() && h.is_empty() {
        eprintln!("conch: no job {name} and no history");
        return Ok(1);
    }
    let def = value.as_deref().map(parse_def);
    if let Some(Def::Invalid { reason, .. }) = &def {
        if global.verbosity >= Verbosity::Normal {
            eprintln!("conch: job {name} is invalid: {reason}");
        }
    }
    let valid = match &def {
        Some(Def::Valid { job, sched, zone }) => Some((job, sched, zone)),
        _ => None,
    };
    let rows = rows(&h, valid, now, k);
    let mut text = String::new();
    match out {
        Output::Json => {
            for r in &rows {
                let mut o = Object::new();
                o.insert("job".into(), Value::String(name.into()));
                o.insert("tick".into(), Value::String(fmt_rfc3339_utc(r.tick)));
                o.insert("unix".into(), Value::Number(Number::I64(r.tick)));
                o.insert("status".into(), Value::String(r.status.clone()));
                o.insert("node".into(), opt_str(r.node.clone()));
                o.insert("start".into(), opt_str(r.start_ms.map(rfc3339_ms)));
                o.insert("end".into(), opt_str(r.end_ms.map(rfc3339_ms)));
                o.insert("duration_ms".into(), opt_u64(r.duration_ms()));
                o.insert("exit".into(), opt_i32(r.exit));
                o.insert("signal".into(), opt_i32(r.signal));
                o.insert("cause".into(), opt_str(r.cause_word()));
                text.push_str(&json::to_string(&Value::Object(o)));
                text.push('\n');
            }
        }
        Output::Human => {
            let mut table = vec![cells(&[
                "TICK", "STATUS", "NODE", "START", "DURATION", "EXIT", "CAUSE",
            ])];
            for r in &rows {
                table.push(vec![
                    fmt_rfc3339_utc(r.tick),
                    r.status.clone(),
                    dash(r.node.clone()),
                    dash(r.start_ms.map(rfc3339_ms)),
                    dash(r.duration_ms().map(human_ms)),
                    dash(r.exit.map(|e| e.to_string())),
                    dash(r.cause_word()),
                ]);
            }
            text = render(&table);
        }
    }
    print(&text);
    Ok(0)
}

fn all_jobs(
    client: &Client,
    schema: &Schema,
    out: Output,
    now: u64,
    global: &Global,
) -> Result<i32, crate::etcd::Error> {
    let dir = schema.cron_job_dir();
    let jobs = client.range(Range::prefix(dir.clone()))?;
    let mut table = vec![cells(&[
        "NAME", "SCHEDULE", "ZONE", "NEXT", "LAST", "STATUS", "NODE", "DURATION", "STATE",
    ])];
    let mut text = String::new();
    // The daemons are read only if some job is placed, and then once.
    let mut nodes: Option<Vec<Live>> = None;
    for kv in &jobs.kvs {
        let Some(leaf) = Schema::leaf(&dir, &kv.key) else {
            continue;
        };
        let def = parse_def(&kv.value);
        let (name, def) = match keys::decode_name(leaf) {
            Ok(n) => (n, def),
            Err(e) => {
                let reason = format!("key {leaf:?}: {e}");
                (leaf.to_string(), Def::Invalid { job: None, reason })
            }
        };
        let state = match &def {
            Def::Valid { job, .. } if job.suspended => "suspended",
            Def::Valid { job, .. } if !job.placement.is_empty() => {
                if nodes.is_none() {
                    nodes = Some(live(client, schema)?);
                }
                let placed = nodes.as_deref().is_some_and(|n| matched(n, &job.placement));
                if placed {
                    "active"
                } else {
                    "unmatched"
                }
            }
            Def::Valid { .. } => "active",
            Def::Invalid { .. } => "invalid",
        };
        let (schedule, tz, next, last, status) = match &def {
            Def::Valid { job, sched, zone } => {
                let (_, h) = read(client, schema, &name, false)?;
                let last = rows(&h, Some((job, sched, zone)), now, 1).pop();
                let now_s = (now / 1000) as i64;
                let status = last.as_ref().map(|r| r.status.clone());
                (
                    Some(job.schedule.clone()),
                    Some(zone.name().to_string()),
                    next_tick(sched, zone, now_s),
                    last,
                    status,
                )
            }
            Def::Invalid { job, reason } => (
                job.as_ref().map(|j| j.schedule.clone()),
                job.as_ref().map(|j| j.tz.clone()),
                None,
                None,
                Some(format!("invalid: {reason}")),
            ),
        };
        match out {
            Output::Json => {
                let mut o = Object::new();
                o.insert("name".into(), Value::String(name));
                o.insert("schedule".into(), opt_str(schedule));
                o.insert("tz".into(), opt_str(tz));
                o.insert("next".into(), opt_str(next.map(fmt_rfc3339_utc)));
                o.insert("next_unix".into(), opt_i64(next));
                let tick = last.as_ref().map(|r| r.tick);
                o.insert("last".into(), opt_str(tick.map(fmt_rfc3339_utc)));
                o.insert("last_unix".into(), opt_i64(tick));
                o.insert("status".into(), opt_str(status));
                o.insert(
                    "node".into(),
                    opt_str(last.as_ref().and_then(|r| r.node.clone())),
                );
                let d = last.as_ref().and_then(Row::duration_ms);
                o.insert("duration_ms".into(), opt_u64(d));
                o.insert("state".into(), Value::String(state.into()));
                text.push_str(&json::to_string(&Value::Object(o)));
                text.push('\n');
            }
            Output::Human => table.push(vec![
                name,
                dash(schedule),
                dash(tz),
                dash(next.map(fmt_rfc3339_utc)),
                dash(last.as_ref().map(|r| fmt_rfc3339_utc(r.tick))),
                dash(status),
                dash(last.as_ref().and_then(|r| r.node.clone())),
                dash(last.as_ref().and_then(Row::duration_ms).map(human_ms)),
                state.into(),
            ]),
        }
    }
    if out == Output::Human {
        if table.len() > 1 {
            text = render(&table);
        } else if global.verbosity >= Verbosity::Normal {
            eprintln!("conch: no cron jobs");
        }
    }
    print(&text);
    Ok(0)
}
