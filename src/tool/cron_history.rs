//! One cron job's history as `cron ls` shows it: the fire, run and result
//! keys read together, and the rows they make, with the ticks nobody
//! claimed within their grace shown as `missed` (docs/cron.md).

use std::collections::{BTreeMap, BTreeSet};

use crate::etcd::{Client, Op, Range, RangeResult, Txn};
use crate::keys::{self, Schema, TickKind};
use crate::record::cron::{Cause, Claim, Job, Outcome, RunResult};
use crate::schedule::{grace_secs, last_ticks, Schedule, Zone, MAX_GRACE_SECS};

/// One job's history keys, by tick.
#[derive(Default)]
pub(super) struct History {
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

    pub(super) fn is_empty(&self) -> bool {
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
pub(super) fn read(
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
pub(super) struct Row {
    pub(super) tick: i64,
    pub(super) status: String,
    pub(super) node: Option<String>,
    pub(super) start_ms: Option<u64>,
    pub(super) end_ms: Option<u64>,
    pub(super) exit: Option<i32>,
    pub(super) signal: Option<i32>,
    /// Why the tick was claimed; `None` for a tick nobody claimed.
    pub(super) cause: Option<Cause>,
}

impl Row {
    pub(super) fn duration_ms(&self) -> Option<u64> {
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
            cause: fire.or(run).map(|c| c.cause),
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
                    Outcome::Timeout | Outcome::Skipped | Outcome::Zombie => {}
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
            cause: None,
        }
    }

    /// The cause as `ls` and `show` print it.
    pub(super) fn cause_word(&self) -> Option<String> {
        self.cause
            .map(|c| c.word().unwrap_or("schedule").to_string())
    }
}

/// The newest `k` rows of a job's history, newest first: every recorded
/// tick, plus the `missed` ticks of a valid definition.
pub(super) fn rows(
    h: &History,
    def: Option<(&Job, &Schedule, &Zone)>,
    now_ms: u64,
    k: usize,
) -> Vec<Row> {
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
        let until = t.saturating_add(grace_secs(sched, zone, t));
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
            ..Default::default()
        };
        let sched = Schedule::parse(schedule).expect("schedule");
        (job, sched, Zone::utc())
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
}
