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

/// A result being written: the transaction, kept for a retry.
#[derive(Debug, Clone)]
pub(super) struct Finish {
    pub name: String,
    pub keep: u32,
    pub txn: Txn,
    pub attempts: u32,
}

/// The ticks of a history to delete: those older than the `keep` newest,
/// except the ones young enough for a lagging daemon to claim. Returns the
/// first tick to keep, or `None` when nothing goes.
pub(super) fn trim_cut(ticks: &[i64], keep: usize, now_s: i64) -> Option<i64> {
    let mut sorted = ticks.to_vec();
    sorted.sort_unstable();
    if sorted.len() <= keep {
        return None;
    }
    let newest_kept = sorted[sorted.len() - keep.max(1)];
    let cut = newest_kept.min(now_s - SKEW_BOUND_SECS - MAX_GRACE_SECS);
    (sorted.first().is_some_and(|oldest| *oldest < cut)).then_some(cut)
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
        let txn = Txn {
            compare: vec![],
            success: vec![
                Op::put(
                    s.cron_tick_key(TickKind::Result, &run.name, run.tick),
                    result.to_json(),
                    0,
                ),
                Op::delete(s.cron_tick_key(TickKind::Run, &run.name, run.tick)),
                Op::Get(Range::prefix(s.cron_tick_dir(TickKind::Fire, &run.name))),
            ],
            failure: vec![],
        };
        self.send_finish(
            Finish {
                name: run.name.clone(),
                keep: run.keep,
                txn,
                attempts: 0,
            },
            out,
        );
        self.start_hook(&run, outcome, now, out);
    }

    pub(super) fn send_finish(&mut self, mut f: Finish, out: &mut Vec<Action>) {
        f.attempts += 1;
        out.push(Action::Txn(FINISH, f.txn.clone()));
        self.finishes.push_back(f);
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
        let Some(f) = self.finishes.pop_front() else {
            return;
        };
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
        let ticks: Vec<i64> = fires
            .kvs
            .iter()
            .filter_map(|kv| Schema::leaf(&dir, &kv.key).and_then(parse_tick))
            .collect();
        let now_s = self.wall_ms(now).div_euclid(1000);
        let Some(cut) = trim_cut(&ticks, keep as usize, now_s) else {
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
