//! The claim of a tick (docs/cron.md, "The daemon"): one create-only
//! transaction decides. Its answer may never come (a timeout, a dropped
//! reply, a leader change), so a claim whose outcome is unknown is sent
//! again until the tick's grace runs out; every attempt reads the fire key
//! back, so the daemon recognises its own earlier success. A claim still
//! unresolved when its grace ends has its run marker removed: a marker
//! without a run would make every later tick of an `--overlap skip` job
//! `skipped` for as long as the daemon's lease lives.

use super::*;

/// Pause before sending a claim again: short, since the grace can be 1 s.
const CLAIM_RETRY: Duration = Duration::from_millis(100);
/// Pause between attempts to remove the marker of an unresolved claim.
const CLEANUP_RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Trying to claim the tick.
    Claim,
    /// The grace ran out without a known outcome: removing the run marker
    /// that an attempt may have left on the current lease.
    Cleanup,
}

/// A tick being claimed, from the first attempt until its outcome is known.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    pub name: String,
    /// The job as it was at the tick: a run claimed before a `cron rm` or a
    /// replace still runs what was claimed.
    pub js: JobState,
    pub tick: i64,
    /// Wall ms after which the tick may no longer be claimed.
    pub grace_end_ms: i64,
    /// Wall ms by which the first attempt should be answered, so that a
    /// retry still fits in the grace.
    pub first_by_ms: i64,
    /// The lease of every attempt sent so far: an attempt's run marker is
    /// on it, and a fire key naming one of them is ours.
    pub leases: Vec<i64>,
    pub phase: Phase,
    /// Why the tick is claimed: stored in its fire key and run marker.
    pub cause: Cause,
    /// The `cron run` request the claim consumes (`cron_manual.rs`).
    pub request: Option<String>,
}

impl Pending {
    pub fn new(name: String, js: JobState, tick: i64, grace_s: i64) -> Pending {
        Pending {
            name,
            js,
            tick,
            grace_end_ms: (tick + grace_s) * 1000,
            first_by_ms: tick * 1000 + grace_s * 500,
            leases: Vec::new(),
            phase: Phase::Claim,
            cause: Cause::Schedule,
            request: None,
        }
    }

    /// The wall ms by which the loop must be free to act on this claim.
    pub fn act_by_ms(&self, now_ms: i64) -> Option<i64> {
        match self.phase {
            Phase::Claim if now_ms < self.first_by_ms => Some(self.first_by_ms),
            Phase::Claim => Some(self.grace_end_ms),
            Phase::Cleanup => None,
        }
    }

    fn ours(&self, c: &Claim, node: &str, pid: u32) -> Option<i64> {
        if c.node != node || c.pid != u64::from(pid) {
            return None;
        }
        self.leases
            .iter()
            .copied()
            .find(|l| lease_hex(*l) == c.lease)
    }
}

impl Cron {
    /// The claim: fire key and run marker, only while the fire key is absent
    /// and the job is the one we know; under `--overlap skip` also only while
    /// no run marker of the job exists, with a nested else that records the
    /// skip exactly once. Every else-branch reads the fire key and the
    /// result back, so a retry after an unknown outcome recognises its own
    /// claim, or its own recorded skip.
    pub(super) fn claim_txn(&self, p: &Pending, lease: i64, now: Duration) -> Txn {
        let (name, js, tick) = (p.name.as_str(), &p.js, p.tick);
        let s = &self.cfg.schema;
        let fire = s.cron_tick_key(TickKind::Fire, name, tick);
        let result = s.cron_tick_key(TickKind::Result, name, tick);
        let marker = self.marker_for(lease, now, p.cause);
        let mut base = vec![
            Compare::key(
                s.cron_job_key(name),
                CmpOp::Equal,
                Target::ModRevision(js.mod_rev),
            ),
            Compare::absent(fire.clone()),
        ];
        let consume = Self::consume_request(p, &mut base);
        let mut compare = base.clone();
        if !js.job.overlap_allow {
            compare.push(Compare::prefix_empty(s.cron_tick_dir(TickKind::Run, name)));
        }
        let reads = [
            Op::Get(Range::key(fire.clone())),
            Op::Get(Range::key(result.clone())),
        ];
        let mut success = vec![
            Op::put(fire.clone(), marker.clone(), 0),
            Op::put(
                s.cron_tick_key(TickKind::Run, name, tick),
                marker.clone(),
                lease,
            ),
        ];
        success.extend(consume.clone());
        let mut failure = Vec::new();
        if !js.job.overlap_allow {
            let at = u64::try_from(self.wall_ms(now)).unwrap_or(0);
            let skipped = RunResult {
                outcome: Outcome::Skipped,
                start_ms: at,
                end_ms: at,
                node: self.cfg.node.clone(),
            };
            failure.push(Op::Txn(Txn {
                compare: base,
                success: [
                    Op::put(fire.clone(), marker, 0),
                    Op::put(result, skipped.to_json(), 0),
                ]
                .into_iter()
                .chain(consume)
                .collect(),
                failure: vec![],
            }));
        }
        failure.extend(reads);
        Txn {
            compare,
            success,
            failure,
        }
    }

    /// Sends an attempt (or the cleanup) for `p`, or parks it until the
    /// daemon can: a claim needs a registered lease for its run marker.
    pub(super) fn send_claim(&mut self, mut p: Pending, now: Duration, out: &mut Vec<Action>) {
        let when = fmt_rfc3339_utc(p.tick);
        let name = p.name.clone();
        if p.phase == Phase::Claim && self.wall_ms(now) > p.grace_end_ms {
            if p.leases.is_empty() {
                Self::log(
                    out,
                    Level::Info,
                    format!("job {name}: tick {when} not claimed: no lease within its grace"),
                );
                return;
            }
            Self::log(
                out,
                Level::Info,
                format!(
                    "job {name}: claim of tick {when} still unanswered at the end of its grace; \
                     not running it, removing its run marker"
                ),
            );
            p.phase = Phase::Cleanup;
        }
        if self.shutting_down.is_some() && p.phase == Phase::Claim {
            // Claim nothing more; a marker an attempt left goes with the
            // lease, which is revoked on the way out.
            return;
        }
        let lease = self
            .session
            .lease()
            .filter(|_| self.state == State::Serving);
        match p.phase {
            Phase::Claim => {
                let Some(lease) = lease else {
                    self.retries.push((now + CLAIM_RETRY, p));
                    return;
                };
                let txn = self.claim_txn(&p, lease, now);
                self.stats.claim_attempt(&name);
                if p.leases.last() != Some(&lease) {
                    p.leases.push(lease);
                }
                self.outbox.push((txn, p));
            }
            Phase::Cleanup => {
                // Markers on earlier leases went with them; only the current
                // lease can keep one alive.
                let Some(lease) = self.session.lease().filter(|l| p.leases.contains(l)) else {
                    return;
                };
                let run = self.cfg.schema.cron_tick_key(TickKind::Run, &name, p.tick);
                let txn = Txn {
                    compare: vec![Compare::key(
                        run.clone(),
                        CmpOp::Equal,
                        Target::Lease(lease),
                    )],
                    success: vec![Op::delete(run)],
                    failure: vec![],
                };
                self.outbox.push((txn, p));
            }
        }
    }

    /// Sends the claims whose pause is over.
    pub(super) fn retry_claims(&mut self, now: Duration, out: &mut Vec<Action>) {
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.retries)
            .into_iter()
            .partition(|(at, _)| now >= *at);
        self.retries = later;
        for (_, p) in due {
            self.send_claim(p, now, out);
        }
    }

    pub(super) fn on_claim(
        &mut self,
        r: Result<TxnResult, Error>,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let Some(batch) = self.claims.pop_front() else {
            return;
        };
        for (p, r) in batch::answers(batch, &r, "claim") {
            self.on_claim_of(p, r, now, out);
        }
    }

    fn on_claim_of(
        &mut self,
        mut p: Pending,
        r: Result<TxnResult, Error>,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let when = fmt_rfc3339_utc(p.tick);
        let name = p.name.clone();
        if p.phase == Phase::Cleanup {
            if r.as_ref().is_ok_and(|t| t.succeeded) {
                Self::log(
                    out,
                    Level::Info,
                    format!("job {name}: removed the run marker of tick {when}"),
                );
            }
            if let Err(e) = r {
                Self::log(
                    out,
                    Level::Error,
                    format!("job {name}: cannot remove the run marker of tick {when}: {e}"),
                );
                if e.is_unavailable() {
                    self.retries.push((now + CLEANUP_RETRY, p));
                }
            }
            return;
        }
        match r {
            Ok(t) if t.succeeded => {
                let lease = p.leases.last().copied().unwrap_or_default();
                self.start_run(p, t.revision, lease, now, out);
            }
            Ok(t) => self.on_claim_refused(p, &t, now, out),
            Err(e) if e.kind == crate::etcd::ErrorKind::LeaseNotFound => {
                // Not applied: the lease is gone, which the keep-alive will
                // tell too. Try again once a new one is registered.
                Self::log(
                    out,
                    Level::Debug,
                    format!("job {name}: claim of tick {when}: {e}; retrying"),
                );
                self.retries.push((now + CLAIM_RETRY, p));
            }
            Err(e) if e.is_unavailable() => {
                Self::log(
                    out,
                    Level::Info,
                    format!("job {name}: claim of tick {when}: outcome unknown ({e}); retrying"),
                );
                // The member may hang: the next attempt goes elsewhere.
                self.session.start_reconnect(&e, now, out);
                self.retries.push((now + CLAIM_RETRY, p));
            }
            Err(e) => {
                Self::log(
                    out,
                    Level::Error,
                    format!("job {name}: claim of tick {when} failed: {e}"),
                );
                if p.leases.len() > 1 {
                    // An earlier attempt may have applied.
                    p.phase = Phase::Cleanup;
                    self.send_claim(p, now, out);
                }
            }
        }
    }

    /// The compares failed: someone else has the tick, the skip was
    /// recorded (now or by an earlier attempt), or an earlier attempt of
    /// ours won.
    fn on_claim_refused(
        &mut self,
        p: Pending,
        t: &TxnResult,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        // The reads come in the order claim_txn asks: fire key, result.
        let mut reads = t.results.iter().filter_map(|res| match res {
            crate::etcd::OpResult::Range(rr) => Some(rr.kvs.first().cloned()),
            _ => None,
        });
        let fire_kv = reads.next().flatten();
        let recorded = reads.next().flatten().is_some();
        let skipped_now = t.txn(0).is_some_and(|n| n.succeeded);
        let taken = skipped_now || fire_kv.is_some();
        if p.request.is_some() && self.manual_refused(&p, taken, now, out) {
            return;
        }
        let ours = fire_kv.as_ref().and_then(|kv| {
            p.ours(&Claim::from_json(&kv.value), &self.cfg.node, self.cfg.pid)
                .map(|lease| (kv.create_revision, lease))
        });
        if skipped_now {
            self.stats
                .recorded(&p.name, Outcome::Skipped, self.wall_ms(now));
        }
        if skipped_now || (ours.is_some() && recorded) {
            Self::log(
                out,
                Level::Info,
                format!(
                    "job {}: tick {} skipped: the previous run is still running",
                    p.name,
                    fmt_rfc3339_utc(p.tick)
                ),
            );
            return;
        }
        if let Some((rev, lease)) = ours {
            self.start_run(p, rev, lease, now, out);
        }
    }

    /// Runs a tick this daemon claimed with `lease`: the run is told that
    /// lease, the one its marker was created on and its fire key names.
    fn start_run(
        &mut self,
        p: Pending,
        rev: i64,
        lease: i64,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let Pending { name, js, tick, .. } = p;
        self.manual.remove(&(name.clone(), tick));
        let when = fmt_rfc3339_utc(tick);
        if self.shutting_down.is_some() {
            // The lease may be revoked already: start nothing.
            Self::log(
                out,
                Level::Info,
                format!("job {name}: tick {when} claimed while stopping; not run"),
            );
            return;
        }
        let Some(tag) = self.free_tag() else {
            Self::log(
                out,
                Level::Error,
                format!("job {name}: too many concurrent runs"),
            );
            let mut p = Pending::new(name, js, tick, 0);
            p.leases.push(lease);
            p.phase = Phase::Cleanup;
            self.send_claim(p, now, out);
            return;
        };
        let job = js.job;
        self.stats.started(&name, self.wall_ms(now) - tick * 1000);
        let fire = self.cfg.schema.cron_tick_key(TickKind::Fire, &name, tick);
        let spec = SpawnSpec {
            argv: job.argv.iter().map(Into::into).collect(),
            env: vec![
                ("CONCH_NAME".into(), name.clone()),
                ("CONCH_JOB".into(), name.clone()),
                ("CONCH_TICK".into(), when.clone()),
                ("CONCH_REV".into(), rev.to_string()),
                ("CONCH_KEY".into(), fire),
                ("CONCH_LEASE".into(), lease_hex(lease)),
            ],
        };
        Self::log(
            out,
            Level::Info,
            format!("job {name}: tick {when} claimed rev={rev}; running"),
        );
        let current = self.session.lease();
        if self.state == State::Serving && current.is_some_and(|l| l != lease) {
            // The claim's lease was replaced before its answer came back:
            // the marker went with it. Put it on the lease that lives (a
            // later registration would, too).
            if let Some(l) = current {
                let key = self.cfg.schema.cron_tick_key(TickKind::Run, &name, tick);
                out.push(Action::Txn(
                    MARKER,
                    Txn {
                        compare: vec![],
                        success: vec![Op::put(key, self.marker_on(l, now), l)],
                        failure: vec![],
                    },
                ));
            }
        }
        let mut child = Supervisor::with_tag(tag, Duration::from_millis(job.kill_after_ms));
        child.spawn(spec, now, out);
        self.runs.insert(
            tag,
            Run {
                name,
                tick,
                start_ms: self.wall_ms(now),
                keep: job.keep,
                child,
                timeout_at: job.timeout_ms.map(|t| now + Duration::from_millis(t)),
                timed_out: false,
                on_failure: job.on_failure,
                hook: false,
            },
        );
    }
}
