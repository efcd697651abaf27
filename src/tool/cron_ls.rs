//! `conch cron ls [NAME]`: the jobs, or one job's recent ticks, with each
//! tick's status read from its fire key, run marker and result (docs/cron.md).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use miniserde::json::{self, Number, Object, Value};

use super::connect;
use super::cron::{now_ms, print};
use crate::cli::{Global, Output, Verbosity, EXIT_UNAVAILABLE};
use crate::etcd::{Client, Op, Range, RangeResult, Txn};
use crate::keys::{self, Schema, TickKind};
use crate::record::cron::{Claim, Job, Outcome, RunResult};
use crate::schedule::{fmt_rfc3339_utc, next_tick, Schedule, Zone};

/// The longest a tick may wait to be claimed (docs/cron.md, "The daemon").
const MAX_GRACE_SECS: i64 = 30;

/// A bound on schedule ticks walked for one job, so that no schedule,
/// however dense, can hang `ls`.
const WALK_LIMIT: usize = 5_000_000;

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

/// One job's history keys, by tick.
#[derive(Default)]
struct History {
    fire: BTreeMap<i64, Claim>,
    run: BTreeMap<i64, Claim>,
    /// `None`: a result key whose value is not a result.
    result: BTreeMap<i64, Option<RunResult>>,
}

impl History {
    fn from_ranges(schema: &Schema, name: &str, r: [Option<&RangeResult>; 3]) -> History {
        let mut h = History::default();
        let kinds = [TickKind::Fire, TickKind::Run, TickKind::Result];
        for (kind, range) in kinds.into_iter().zip(r) {
            let dir = schema.cron_tick_dir(kind, name);
            for kv in range.map(|r| r.kvs.as_slice()).unwrap_or_default() {
                let Some(tick) = Schema::leaf(&dir, &kv.key).and_then(keys::parse_tick) else {
                    continue;
                };
                match kind {
                    TickKind::Fire => drop(h.fire.insert(tick, Claim::from_json(&kv.value))),
                    TickKind::Run => drop(h.run.insert(tick, Claim::from_json(&kv.value))),
                    TickKind::Result => {
                        drop(h.result.insert(tick, RunResult::from_json(&kv.value)))
                    }
                }
            }
        }
        h
    }

    fn is_empty(&self) -> bool {
        self.fire.is_empty() && self.run.is_empty() && self.result.is_empty()
    }

    /// Every tick with a record, oldest first.
    fn ticks(&self) -> BTreeSet<i64> {
        let keys = self.fire.keys().chain(self.run.keys());
        keys.chain(self.result.keys()).copied().collect()
    }

    fn has(&self, tick: i64) -> bool {
        self.fire.contains_key(&tick)
            || self.run.contains_key(&tick)
            || self.result.contains_key(&tick)
    }
}

/// Reads the fire, run and result keys of `name` (and its definition when
/// `with_job`) in one transaction, so they agree with each other.
fn read(
    client: &Client,
    schema: &Schema,
    name: &str,
    with_job: bool,
) -> Result<(Option<Vec<u8>>, History), crate::etcd::Error> {
    let mut ops = Vec::new();
    if with_job {
        ops.push(Op::Get(Range::key(schema.cron_job_key(name))));
    }
    for kind in [TickKind::Fire, TickKind::Run, TickKind::Result] {
        ops.push(Op::Get(Range::prefix(schema.cron_tick_dir(kind, name))));
    }
    let r = client.txn(Txn {
        compare: Vec::new(),
        success: ops,
        failure: Vec::new(),
    })?;
    let base = usize::from(with_job);
    let job = with_job
        .then(|| {
            r.range(0)
                .and_then(|g| g.kvs.first())
                .map(|kv| kv.value.clone())
        })
        .flatten();
    let ranges = [r.range(base), r.range(base + 1), r.range(base + 2)];
    Ok((job, History::from_ranges(schema, name, ranges)))
}

/// One line of a job's history.
struct Row {
    tick: i64,
    status: String,
    node: Option<String>,
    start_ms: Option<u64>,
    end_ms: Option<u64>,
    exit: Option<i32>,
    signal: Option<i32>,
}

impl Row {
    fn duration_ms(&self) -> Option<u64> {
        Some(self.end_ms?.saturating_sub(self.start_ms?))
    }

    fn recorded(h: &History, tick: i64) -> Row {
        let fire = h.fire.get(&tick);
        let run = h.run.get(&tick);
        let known = |ms: u64| (ms > 0).then_some(ms);
        let mut row = Row {
            tick,
            status: String::new(),
            node: fire.map(|c| c.node.clone()),
            start_ms: None,
            end_ms: None,
            exit: None,
            signal: None,
        };
        match (h.result.get(&tick), run) {
            (Some(Some(r)), _) => {
                row.status = r.outcome.label();
                row.node = Some(r.node.clone());
                row.start_ms = known(r.start_ms);
                row.end_ms = known(r.end_ms);
                match r.outcome {
                    Outcome::Ok => row.exit = Some(0),
                    Outcome::Failed(n) => row.exit = Some(n),
                    Outcome::Killed(s) => row.signal = Some(s),
                    Outcome::Timeout | Outcome::Skipped => {}
                }
            }
            (Some(None), _) => row.status = "unknown".into(),
            // A run marker lives on its runner's lease: it exists only
            // while the runner does.
            (None, Some(m)) => {
                row.status = "running".into();
                row.node = Some(m.node.clone());
                row.start_ms = known(m.at_ms);
            }
            (None, None) => row.status = "zombie".into(),
        }
        row
    }

    fn missed(tick: i64) -> Row {
        Row {
            tick,
            status: "missed".into(),
            node: None,
            start_ms: None,
            end_ms: None,
            exit: None,
            signal: None,
        }
    }
}

/// The newest `k` rows of a job's history, newest first: every recorded
/// tick, plus the `missed` ticks of a valid definition.
fn rows(h: &History, def: Option<(&Job, &Schedule, &Zone)>, now_ms: u64, k: usize) -> Vec<Row> {
    let mut ticks: BTreeMap<i64, Row> = h
        .ticks()
        .into_iter()
        .rev()
        .take(k)
        .map(|t| (t, Row::recorded(h, t)))
        .collect();
    if let Some((job, sched, zone)) = def {
        for t in missed(h, job, sched, zone, now_ms, k) {
            ticks.insert(t, Row::missed(t));
        }
    }
    ticks.into_values().rev().take(k).collect()
}

/// The newest (at most `k`) ticks of the schedule that nobody claimed:
/// after the job was added, inside the kept history, past their grace.
fn missed(
    h: &History,
    job: &Job,
    sched: &Schedule,
    zone: &Zone,
    now_ms: u64,
    k: usize,
) -> Vec<i64> {
    if job.added_at_ms == 0 {
        // No record of when it was added: no window to speak of.
        return Vec::new();
    }
    // Ticks strictly after the moment the job was added.
    let mut lo = (job.added_at_ms / 1000) as i64;
    // The runner trims fire keys to the newest `keep`: once that many
    // exist, ticks older than the oldest may have run and been deleted.
    if h.fire.len() >= job.keep as usize {
        if let Some((&oldest, _)) = h.fire.first_key_value() {
            lo = lo.max(oldest);
        }
    }
    let now_s = (now_ms / 1000) as i64;
    // At most MAX_GRACE_SECS + 1 ticks can still be within their grace.
    let want = k + MAX_GRACE_SECS as usize + 1;
    let graced = |t: i64| {
        let gap = next_tick(sched, zone, t).map_or(MAX_GRACE_SECS, |n| n - t);
        let until = t.saturating_add(gap.min(MAX_GRACE_SECS));
        i128::from(until) * 1000 < i128::from(now_ms)
    };
    let mut out: Vec<i64> = last_ticks(sched, zone, lo, now_s, want)
        .into_iter()
        .filter(|&t| graced(t) && !h.has(t))
        .collect();
    let skip = out.len().saturating_sub(k);
    out.drain(..skip);
    out
}

/// The newest (at most `n`) ticks in `(lo, hi]`, oldest first. There is no
/// backward step, so it walks forward from ever earlier starts.
fn last_ticks(sched: &Schedule, zone: &Zone, lo: i64, hi: i64, n: usize) -> Vec<i64> {
    if hi <= lo || n == 0 {
        return Vec::new();
    }
    let periods = i64::try_from(n).unwrap_or(i64::MAX).saturating_add(1);
    let mut span = sched.every_secs().unwrap_or(60).saturating_mul(periods);
    let mut walked = 0;
    loop {
        let start = hi.saturating_sub(span).max(lo);
        let mut found = VecDeque::with_capacity(n);
        let mut t = start;
        while let Some(next) = next_tick(sched, zone, t).filter(|&x| x <= hi) {
            if found.len() == n {
                found.pop_front();
            }
            found.push_back(next);
            t = next;
            walked += 1;
            if walked > WALK_LIMIT {
                return found.into();
            }
        }
        if found.len() >= n || start == lo {
            return found.into();
        }
        span = span.saturating_mul(4);
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
                text.push_str(&json::to_string(&Value::Object(o)));
                text.push('\n');
            }
        }
        Output::Human => {
            let mut table = vec![cells(&[
                "TICK", "STATUS", "NODE", "START", "DURATION", "EXIT",
            ])];
            for r in &rows {
                table.push(vec![
                    fmt_rfc3339_utc(r.tick),
                    r.status.clone(),
                    dash(r.node.clone()),
                    dash(r.start_ms.map(rfc3339_ms)),
                    dash(r.duration_ms().map(human_ms)),
                    dash(r.exit.map(|e| e.to_string())),
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
        "NAME", "SCHEDULE", "ZONE", "NEXT", "LAST", "STATUS", "NODE", "DURATION",
    ])];
    let mut text = String::new();
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

fn opt_str(v: Option<String>) -> Value {
    v.map_or(Value::Null, Value::String)
}

fn opt_u64(v: Option<u64>) -> Value {
    v.map_or(Value::Null, |n| Value::Number(Number::U64(n)))
}

fn opt_i64(v: Option<i64>) -> Value {
    v.map_or(Value::Null, |n| Value::Number(Number::I64(n)))
}

fn opt_i32(v: Option<i32>) -> Value {
    opt_i64(v.map(i64::from))
}

fn rfc3339_ms(ms: u64) -> String {
    fmt_rfc3339_utc((ms / 1000) as i64)
}

fn dash(v: Option<String>) -> String {
    v.unwrap_or_else(|| "-".into())
}

fn cells(header: &[&str]) -> Vec<String> {
    header.iter().map(|h| h.to_string()).collect()
}

/// `850ms`, `12.345s`, `3m07s`, `2h05m`.
fn human_ms(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms}ms"),
        1000..=59_999 => format!("{}.{:03}s", ms / 1000, ms % 1000),
        60_000..=3_599_999 => format!("{}m{:02}s", ms / 60_000, ms / 1000 % 60),
        _ => format!("{}h{:02}m", ms / 3_600_000, ms / 60_000 % 60),
    }
}

/// Left-aligned columns two spaces apart; the last column is not padded.
fn render(table: &[Vec<String>]) -> String {
    let cols = table.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> = (0..cols)
        .map(|c| {
            let w = table.iter().filter_map(|r| r.get(c));
            w.map(|s| s.chars().count()).max().unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in table {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 < row.len() {
                let pad = width[c].saturating_sub(cell.chars().count());
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            } else {
                line.push_str(cell);
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(schedule: &str, added_s: u64, keep: u32) -> (Job, Schedule, Zone) {
        let job = Job {
            schedule: schedule.into(),
            tz: "UTC".into(),
            argv: vec!["true".into()],
            overlap_allow: false,
            timeout_ms: None,
            kill_after_ms: 3000,
            keep,
            added_by: "t@h".into(),
            added_at_ms: added_s * 1000 + 500,
        };
        let sched = Schedule::parse(schedule).expect("schedule");
        (job, sched, Zone::utc())
    }

    #[test]
    fn last_ticks_finds_the_newest() {
        let s = Schedule::parse("*/15 * * * *").expect("schedule");
        let z = Zone::utc();
        // 2026-01-01T00:00Z = 1767225600.
        let t0 = 1_767_225_600;
        let got = last_ticks(&s, &z, t0 - 3600, t0 + 3600, 3);
        assert_eq!(got, vec![t0 + 1800, t0 + 2700, t0 + 3600]);
        let got = last_ticks(&s, &z, t0 + 100, t0 + 3600, 10);
        assert_eq!(got, vec![t0 + 900, t0 + 1800, t0 + 2700, t0 + 3600]);
        // A yearly schedule needs a wide search.
        let y = Schedule::parse("@yearly").expect("schedule");
        let got = last_ticks(&y, &z, 0, t0 + 10, 2);
        assert_eq!(got, vec![t0 - 365 * 86400, t0]);
    }

    #[test]
    fn missed_ticks_respect_added_at_grace_and_history() {
        let t0: i64 = 1_767_225_600;
        let (j, s, z) = job("* * * * *", t0 as u64 - 1, 100);
        let mut h = History::default();
        h.fire.insert(t0 + 60, Claim::default());
        // now = t0+185: t0+180 is within its grace (30 s), t0+120 is not.
        let now_ms = (t0 as u64 + 185) * 1000;
        assert_eq!(missed(&h, &j, &s, &z, now_ms, 10), vec![t0, t0 + 120]);
        assert_eq!(missed(&h, &j, &s, &z, now_ms, 1), vec![t0 + 120]);
        // Added after t0: t0 is not missed.
        let (j, ..) = job("* * * * *", t0 as u64, 100);
        assert_eq!(missed(&h, &j, &s, &z, now_ms, 10), vec![t0 + 120]);
        // A full history hides what came before its oldest record.
        let (j, ..) = job("* * * * *", t0 as u64 - 1000, 1);
        assert_eq!(missed(&h, &j, &s, &z, now_ms, 10), vec![t0 + 120]);
        // @every 1s: the grace is the 1 s gap.
        let (j, s, z) = job("@every 1s", t0 as u64, 100);
        let got = missed(
            &History::default(),
            &j,
            &s,
            &z,
            (t0 as u64 + 5) * 1000 + 1,
            10,
        );
        assert_eq!(got, vec![t0 + 1, t0 + 2, t0 + 3, t0 + 4]);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_ms(850), "850ms");
        assert_eq!(human_ms(12_345), "12.345s");
        assert_eq!(human_ms(187_000), "3m07s");
        assert_eq!(human_ms(7_500_000), "2h05m");
    }
}
