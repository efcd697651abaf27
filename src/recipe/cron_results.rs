//! Results and history: a finished run's result is written (and written
//! again until etcd takes it, however long etcd is away), its run marker
//! deleted, and the job's history trimmed to `--keep`, never below what a
//! daemon with a skewed clock could still claim.

use super::*;

/// The wall-clock skew between daemons that trimming tolerates: a fire key
/// whose tick is younger than this (plus the longest grace) is never
/// deleted, whatever `--keep` says, so a daemon whose clock lags by less
/// than this cannot claim a tick that ran already.
pub const SKEW_BOUND_SECS: i64 = 3600;

/// The first pause before writing a result again; doubled up to the cap.
const RESULT_RETRY: Duration = Duration::from_secs(1);
const RESULT_RETRY_CAP: Duration = Duration::from_secs(10);
/// Attempts while shutting down, so a daemon whose etcd is gone still exits.
const RESULT_ATTEMPTS_AT_EXIT: u32 = 5;

/// A job's history is trimmed by the run of the last of its ticks in each
/// window of this many seconds (every run of a job whose ticks are further
/// apart): a job ticking every second costs one trim a minute, not one per
/// tick, and its history outgrows `--keep` by less than a window.
pub(super) const TRIM_WINDOW_SECS: i64 = 64;

/// A result being written: the transaction, kept for a retry.
#[derive(Debug, Clone)]
pub(super) struct Finish {
    pub name: String,
    pub keep: u32,
    pub txn: Txn,
    pub attempts: u32,
}

/// Whether the run of `tick` trims its job's history: the last tick of
/// its trim window does, and the last tick of all.
pub(super) fn trims_at(tick: i64, next: Option<i64>) -> bool {
    next.is_none_or(|n| n.div_euclid(TRIM_WINDOW_SECS) != tick.div_euclid(TRIM_WINDOW_SECS))
}

/// Where to cut a history of `count` ticks whose newest ones (at least
/// `keep` of them, if there are that many) are `newest_first`: below the
/// `keep`-th newest, but never within the skew bound, where a lagging
/// daemon could still claim a tick. `None` when nothing goes.
pub(super) fn trim_cut(newest_first: &[i64], count: usize, keep: usize, now_s: i64) -> Option<i64> {
    let keep = keep.max(1);
    if count <= keep {
        return None;
    }
    let newest_kept = *newest_first.get(keep - 1)?;
    Some(newest_kept.min(now_s - SKEW_BOUND_SECS - MAX_GRACE_SECS))
}

impl Cron {
    pub(super) fn on_run_ended(
        &mut self,
        tag: Tag,
        ended: Ended,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let Some(run) = self.runs.remove(&tag) else {
            return;
        };
        if run.hook {
            self.hook_ended(&run, &ended, out);
            return;
        }
        let outcome = match ended.status {
            _ if run.timed_out => Outcome::Timeout,
            ChildStatus::Exited(0) => Outcome::Ok,
            ChildStatus::Exited(n) => Outcome::Failed(n),
            ChildStatus::Signaled(s) => Outcome::Killed(s),
        };
        self.stats.recorded(&run.name, outcome, self.wall_ms(now));
        Self::log(
            out,
            Level::Info,
            format!(
                "job {}: tick {} {}",
                run.name,
                fmt_rfc3339_utc(run.tick),
                outcome.label()
            ),
        );
        let result = RunResult {
            outcome,
            start_ms: u64::try_from(run.start_ms).unwrap_or(0),
            end_ms: u64::try_from(self.wall_ms(now)).unwrap_or(0),
            node: self.cfg.node.clone(),
        };
        let s = &self.cfg.schema;
        // Idempotent (a put and a delete), so a failed write is simply sent
        // again: a finished run must not turn into a zombie.
        let mut success = vec![
            Op::put(
                s.cron_tick_key(TickKind::Result, &run.name, run.tick),
                result.to_json(),
                0,
            ),
            Op::delete(s.cron_tick_key(TickKind::Run, &run.name, run.tick)),
        ];
        let next = self
            .jobs
            .get(&run.name)
            .and_then(|js| next_tick(&js.schedule, &js.zone, run.tick));
        if trims_at(run.tick, next) {
            // The newest `keep` ticks' keys, and how many there are.
            let mut newest = Range::prefix(s.cron_tick_dir(TickKind::Fire, &run.name));
            newest.limit = i64::from(run.keep.max(1));
            newest.newest_first = true;
            newest.keys_only = true;
            success.push(Op::Get(newest));
        }
        let txn = Txn {
            compare: vec![],
            success,
            failure: vec![],
        };
        let f = Finish {
            name: run.name.clone(),
            keep: run.keep,
            txn,
            attempts: 0,
        };
        self.ended.push(f);
        self.ended_since.get_or_insert(now);
        self.start_hook(&run, outcome, now, out);
    }

    pub(super) fn send_finish(&mut self, mut f: Finish, out: &mut Vec<Action>) {
        f.attempts += 1;
        out.push(Action::Txn(FINISH, f.txn.clone()));
        self.finishes.push_back(vec![f]);
    }

    /// Sends the results whose pause is over.
    pub(super) fn retry_results(&mut self, now: Duration, out: &mut Vec<Action>) {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.unrecorded)
            .into_iter()
            .partition(|(at, _)| now >= *at);
        self.unrecorded = later;
        for (_, f) in due {
            self.send_finish(f, out);
        }
    }

    /// A result was written (or not); keeps the newest `keep` ticks of the
    /// job's history, and every tick within the skew bound.
    pub(super) fn on_finished(
        &mut self,
        r: Result<TxnResult, Error>,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let Some(batch) = self.finishes.pop_front() else {
            return;
        };
        for (f, r) in batch::answers(batch, &r, "finish") {
            self.on_finished_of(f, r, now, out);
        }
    }

    fn on_finished_of(
        &mut self,
        f: Finish,
        r: Result<TxnResult, Error>,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let (name, keep) = (f.name.clone(), f.keep);
        let t = match r {
            Ok(t) => t,
            Err(e) => {
                let give_up = self.shutting_down.is_some() && f.attempts >= RESULT_ATTEMPTS_AT_EXIT;
                // A daemon keeps its results through an outage of any
                // length; the pause grows so that it does not hammer etcd,
                // except on the way out, where the attempts are few anyway.
                let pause = if self.shutting_down.is_some() {
                    RESULT_RETRY
                } else {
                    RESULT_RETRY
                        .saturating_mul(1 << f.attempts.saturating_sub(1).min(4))
                        .min(RESULT_RETRY_CAP)
                };
                Self::log(
                    out,
                    Level::Error,
                    if give_up {
                        format!("job {name}: cannot record the result: {e}; giving up")
                    } else {
                        format!(
                            "job {name}: cannot record the result: {e}; retrying in {}ms",
                            pause.as_millis()
                        )
                    },
                );
                if !give_up {
                    self.unrecorded.push((now + pause, f));
                }
                return;
            }
        };
        let Some(fires) = t.range(2) else { return };
        let dir = self.cfg.schema.cron_tick_dir(TickKind::Fire, &name);
        let mut newest: Vec<i64> = fires
            .kvs
            .iter()
            .filter_map(|kv| Schema::leaf(&dir, &kv.key).and_then(parse_tick))
            .collect();
        newest.sort_unstable_by(|a, b| b.cmp(a));
        let now_s = self.wall_ms(now).div_euclid(1000);
        let count = usize::try_from(fires.count).unwrap_or(0);
        let Some(cut) = trim_cut(&newest, count, keep as usize, now_s) else {
            return;
        };
        let s = &self.cfg.schema;
        let ops = [TickKind::Fire, TickKind::Result]
            .into_iter()
            .map(|k| Op::Delete {
                key: s.cron_tick_dir(k, &name).into_bytes(),
                range_end: s.cron_tick_key(k, &name, cut).into_bytes(),
            })
            .collect();
        out.push(Action::Txn(
            TRIM,
            Txn {
                compare: vec![],
                success: ops,
                failure: vec![],
            },
        ));
    }
}
