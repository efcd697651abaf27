//! `conch cron run NAME [--wait] [--timeout D]`: one run of a job now,
//! exactly once across the fleet. The CLI writes a request for a tick of
//! its own (a whole second that is no tick of the schedule and not claimed
//! yet); the daemons claim it with the claim transaction of every tick
//! (`recipe/cron_manual.rs`), which deletes the request. If nobody claims it
//! within `--timeout`, the CLI withdraws it (only while it is unclaimed:
//! the withdrawal and the claim exclude each other) and says why.

use std::time::{Duration, Instant};

use super::connect::with_client;
use super::host::{host_name, now_ms};
use crate::cli::Global;
use crate::etcd::{Client, CmpOp, Compare, Op, Range, Target, Txn};
use crate::keys::{Schema, TickKind};
use crate::kit::exit::{EXIT_LOST, EXIT_NOT_ACQUIRED, EXIT_UNAVAILABLE};
use crate::record::cron::{Claim, Job, Node, Outcome, Request, RunResult};
use crate::schedule::{fmt_rfc3339_utc, next_tick, Schedule, Zone};

/// How far back a manual tick may be placed when the current second is
/// taken (a tick of the schedule, or claimed).
const LOOKBACK_S: i64 = 60;
const POLL: Duration = Duration::from_millis(50);
/// Runs last long: their results are looked for less often.
const RESULT_POLL: Duration = Duration::from_millis(250);
/// `--wait` on a run whose daemon timed it out, as timeout(1) says it.
const EXIT_TIMEOUT: i32 = 124;

/// Exit code and the one line saying why, for the paths that fail.
type Fail = (i32, String);

pub fn run(global: &Global, name: &str, wait: bool, timeout: Duration) -> i32 {
    with_client(global, |c| {
        let r = Manual {
            c,
            s: Schema::new(&global.prefix),
            name,
        }
        .run(wait, timeout, global.ttl);
        match r {
            Ok(code) => code,
            Err((code, why)) => {
                eprintln!("conch: {why}");
                code
            }
        }
    })
}

struct Manual<'a> {
    c: &'a Client,
    s: Schema,
    name: &'a str,
}

fn unavailable(e: crate::etcd::Error) -> Fail {
    (EXIT_UNAVAILABLE, format!("etcd unavailable: {e}"))
}

impl Manual<'_> {
    fn run(&self, wait: bool, timeout: Duration, ttl: Duration) -> Result<i32, Fail> {
        let tick = self.request(timeout)?;
        let when = fmt_rfc3339_utc(tick);
        let claim = self.claimed(tick, timeout)?;
        println!(
            "{}: tick {when} claimed by {} (pid {})",
            self.name, claim.node, claim.pid
        );
        // A skip is recorded with the claim; any other result is the run's.
        let result = self.result(tick)?;
        let skipped = result
            .as_ref()
            .is_some_and(|r| r.outcome == Outcome::Skipped);
        if !wait && !skipped {
            return Ok(0);
        }
        let r = match result {
            Some(r) => r,
            None => self.wait_result(tick, ttl)?,
        };
        println!(
            "{}: tick {when} {} on {}",
            self.name,
            r.outcome.label(),
            r.node
        );
        Ok(match r.outcome {
            Outcome::Ok => 0,
            Outcome::Failed(n) => n.clamp(1, 255),
            Outcome::Killed(s) => 128 + s,
            Outcome::Timeout => EXIT_TIMEOUT,
            Outcome::Skipped => {
                return Err((
                    EXIT_NOT_ACQUIRED,
                    format!(
                    "{}: tick {when} skipped: the previous run is still running (--overlap skip)",
                    self.name
                ),
                ))
            }
            // A stored zombie (written by a surviving daemon) means the same
            // as one this command found itself by waiting.
            Outcome::Zombie => {
                return Err((
                    EXIT_LOST,
                    format!(
                        "{}: tick {when} zombie: its daemon died before recording a result",
                        self.name
                    ),
                ))
            }
        })
    }

    /// Writes the request for a free tick: only while the job is the one
    /// read, and neither the request nor the tick's fire key exists.
    fn request(&self, timeout: Duration) -> Result<i64, Fail> {
        for _ in 0..5 {
            let job_key = self.s.cron_job_key(self.name);
            let kv = self
                .c
                .range(Range::key(job_key.clone()))
                .map_err(unavailable)?
                .kvs
                .into_iter()
                .next()
                .ok_or((1, format!("no job {}", self.name)))?;
            let job = Job::from_json(&kv.value)
                .map_err(|why| (1, format!("job {} is invalid: {why}", self.name)))?;
            if job.suspended {
                return Err((
                    EXIT_NOT_ACQUIRED,
                    format!("job {} is suspended: resume it first", self.name),
                ));
            }
            let now_ms = now_ms();
            let tick = self.free_tick(&job, (now_ms / 1000) as i64)?;
            let req = Request {
                by: format!(
                    "{}@{}",
                    std::env::var("USER").unwrap_or_else(|_| "?".into()),
                    host_name()
                ),
                at_ms: now_ms,
                until_ms: now_ms
                    .saturating_add(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)),
            };
            let key = self.s.cron_manual_key(self.name, tick);
            let txn = Txn {
                compare: vec![
                    Compare::key(job_key, CmpOp::Equal, Target::ModRevision(kv.mod_revision)),
                    Compare::absent(self.s.cron_tick_key(TickKind::Fire, self.name, tick)),
                    Compare::absent(key.clone()),
                ],
                success: vec![Op::put(key, req.to_json(), 0)],
                failure: vec![],
            };
            if self.c.txn(txn).map_err(unavailable)?.succeeded {
                return Ok(tick);
            }
        }
        Err((1, format!("job {} keeps changing; try again", self.name)))
    }

    /// The latest second of the last minute that is no tick of the job's
    /// schedule and that nobody claimed: a manual run never takes the place
    /// of a scheduled tick.
    fn free_tick(&self, job: &Job, now_s: i64) -> Result<i64, Fail> {
        let bad = |e: String| (1, format!("job {} is invalid: {e}", self.name));
        let sched = Schedule::parse(&job.schedule).map_err(|e| bad(e.to_string()))?;
        let zone = Zone::parse(&job.tz).map_err(|e| bad(e.to_string()))?;
        let fire = |t| self.s.cron_tick_key(TickKind::Fire, self.name, t);
        let claimed = self
            .c
            .range(Range {
                key: fire(now_s - LOOKBACK_S).into_bytes(),
                range_end: fire(now_s + 1).into_bytes(),
                ..Range::default()
            })
            .map_err(unavailable)?;
        let dir = self.s.cron_tick_dir(TickKind::Fire, self.name);
        let taken: Vec<i64> = claimed
            .kvs
            .iter()
            .filter_map(|kv| Schema::leaf(&dir, &kv.key).and_then(crate::keys::parse_tick))
            .collect();
        (now_s - LOOKBACK_S..=now_s)
            .rev()
            .find(|t| next_tick(&sched, &zone, t - 1) != Some(*t) && !taken.contains(t))
            .ok_or((
                1,
                format!(
                    "job {}: no free second for a manual tick (every second is a tick of its schedule)",
                    self.name
                ),
            ))
    }

    /// Waits for the claim of `tick`; withdraws the request at the timeout.
    fn claimed(&self, tick: i64, timeout: Duration) -> Result<Claim, Fail> {
        let fire = self.s.cron_tick_key(TickKind::Fire, self.name, tick);
        let req = self.s.cron_manual_key(self.name, tick);
        let deadline = Instant::now() + timeout;
        loop {
            let t = self
                .c
                .txn(Txn {
                    compare: vec![],
                    success: vec![
                        Op::Get(Range::key(fire.clone())),
                        Op::Get(Range::key(req.clone())),
                    ],
                    failure: vec![],
                })
                .map_err(unavailable)?;
            if let Some(kv) = t.range(0).and_then(|r| r.kvs.first()) {
                return Ok(Claim::from_json(&kv.value));
            }
            if t.range(1).is_some_and(|r| r.kvs.is_empty()) {
                return Err((
                    EXIT_NOT_ACQUIRED,
                    format!("the run request of job {} was withdrawn", self.name),
                ));
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(POLL);
        }
        // Withdrawn only while unclaimed: a claim in the meantime wins.
        let t = self
            .c
            .txn(Txn {
                compare: vec![Compare::absent(fire.clone())],
                success: vec![Op::delete(req)],
                failure: vec![Op::Get(Range::key(fire))],
            })
            .map_err(unavailable)?;
        if let Some(kv) = t.range(0).and_then(|r| r.kvs.first()) {
            return Ok(Claim::from_json(&kv.value));
        }
        Err((EXIT_NOT_ACQUIRED, self.why_unclaimed(timeout)?))
    }

    fn why_unclaimed(&self, timeout: Duration) -> Result<String, Fail> {
        let job = self
            .c
            .range(Range::key(self.s.cron_job_key(self.name)))
            .map_err(unavailable)?
            .kvs
            .first()
            .and_then(|kv| Job::from_json(&kv.value).ok());
        let nodes: Vec<Node> = self
            .c
            .range(Range::prefix(self.s.cron_node_dir()))
            .map_err(unavailable)?
            .kvs
            .iter()
            .filter_map(|kv| Node::from_json(&kv.value))
            .collect();
        let n = self.name;
        let d = crate::kit::duration::fmt_duration(timeout);
        Ok(match job {
            None => format!("job {n} was removed; not run"),
            Some(j) if j.suspended => format!("job {n} was suspended; not run"),
            _ if nodes.is_empty() => {
                format!("no live daemon (conchd) claimed job {n} within {d}; not run")
            }
            Some(j) if !nodes.iter().any(|nd| nd.matches(&j.placement)) => {
                format!("no live daemon matches the placement of job {n}; not run")
            }
            _ => format!("no daemon claimed job {n} within {d}; not run"),
        })
    }

    fn result(&self, tick: i64) -> Result<Option<RunResult>, Fail> {
        let key = self.s.cron_tick_key(TickKind::Result, self.name, tick);
        let r = self.c.range(Range::key(key)).map_err(unavailable)?;
        Ok(r.kvs.first().and_then(|kv| RunResult::from_json(&kv.value)))
    }

    /// Waits for the result of a claimed tick. A tick with neither a result
    /// nor a run marker for a whole lease TTL lost its runner: a zombie.
    fn wait_result(&self, tick: i64, ttl: Duration) -> Result<RunResult, Fail> {
        let marker = self.s.cron_tick_key(TickKind::Run, self.name, tick);
        let result = self.s.cron_tick_key(TickKind::Result, self.name, tick);
        let mut unmarked_since: Option<Instant> = None;
        loop {
            let t = self
                .c
                .txn(Txn {
                    compare: vec![],
                    success: vec![
                        Op::Get(Range::key(result.clone())),
                        Op::Get(Range::key(marker.clone())),
                    ],
                    failure: vec![],
                })
                .map_err(unavailable)?;
            if let Some(r) = t
                .range(0)
                .and_then(|r| r.kvs.first())
                .and_then(|kv| RunResult::from_json(&kv.value))
            {
                return Ok(r);
            }
            if t.range(1).is_some_and(|r| r.kvs.is_empty()) {
                // A daemon whose lease was lost puts its markers back.
                let since = *unmarked_since.get_or_insert_with(Instant::now);
                if since.elapsed() > ttl {
                    return Err((
                        EXIT_LOST,
                        format!(
                            "{}: tick {} zombie: its daemon died before recording a result",
                            self.name,
                            fmt_rfc3339_utc(tick)
                        ),
                    ));
                }
            } else {
                unmarked_since = None;
            }
            std::thread::sleep(RESULT_POLL);
        }
    }
}
