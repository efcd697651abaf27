//! `cron run NAME`: a request key `manual/<NAME>/<TICK>` that every daemon
//! reads and then watches. A daemon that may run the job claims TICK with
//! the claim transaction of its schedule (so `--overlap skip` still holds),
//! which also requires the request and deletes it: a request the CLI
//! withdrew can no longer be claimed, and a claimed one no longer
//! withdrawn. Every daemon tries; the create-only transaction decides.

use super::claim::Phase;
use super::*;
use crate::etcd::RangeResult;
use crate::record::cron::Request;

/// How long a claim not tied to a schedule's grace (a manual or catch-up
/// tick) is sent again while its outcome is unknown.
pub(super) const UNSCHEDULED_GRACE_MS: i64 = MAX_GRACE_SECS * 1000;

impl Cron {
    /// The compare and the delete that tie a claim to its request, if any.
    pub(super) fn consume_request(p: &Pending, base: &mut Vec<Compare>) -> Vec<Op> {
        let Some(key) = &p.request else {
            return Vec::new();
        };
        base.push(Compare::key(
            key.clone(),
            CmpOp::Greater,
            Target::CreateRevision(0),
        ));
        vec![Op::delete(key.clone())]
    }

    /// A claim of a tick its schedule did not bring: retried for a fixed
    /// while, whatever the tick's own age.
    pub(super) fn unscheduled(
        &self,
        name: &str,
        js: &JobState,
        tick: i64,
        cause: Cause,
        now: Duration,
    ) -> Pending {
        let now_ms = self.wall_ms(now);
        let mut p = Pending::new(name.to_string(), js.clone(), tick, 0);
        p.grace_end_ms = now_ms + UNSCHEDULED_GRACE_MS;
        p.first_by_ms = now_ms + UNSCHEDULED_GRACE_MS / 2;
        p.cause = cause;
        p
    }

    /// Whether a claim of this tick is in flight or waiting: a second one
    /// sent beside it could take the first's success for its own.
    pub(super) fn claiming(&self, name: &str, tick: i64) -> bool {
        self.claims
            .iter()
            .flatten()
            .chain(self.outbox.iter().map(|(_, p)| p))
            .chain(self.retries.iter().map(|(_, p)| p))
            .any(|p| p.name == name && p.tick == tick && p.phase == Phase::Claim)
    }

    pub(super) fn read_manual(&self, out: &mut Vec<Action>) {
        out.push(Action::Range(
            MANUAL,
            Range::prefix(self.cfg.schema.cron_manual_dir()),
        ));
    }

    pub(super) fn on_manual_read(
        &mut self,
        r: Result<RangeResult, Error>,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        match r {
            Ok(r) => {
                self.manual.clear();
                for kv in &r.kvs {
                    self.on_request(kv, now, out);
                }
                out.push(Action::Watch(
                    WATCH_MANUAL,
                    WatchSpec::prefix(self.cfg.schema.cron_manual_dir())
                        .from_revision(r.revision + 1),
                ));
            }
            Err(e) => self.on_read_error(&e, now, out),
        }
    }

    /// An event on the request watch; anything but events or progress
    /// means reading the requests again.
    pub(super) fn on_manual_watch(
        &mut self,
        r: Result<WatchEvent, Error>,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        match r {
            Ok(WatchEvent::Events { events, .. }) => {
                for e in events {
                    match e.kind {
                        EventKind::Put => self.on_request(&e.kv, now, out),
                        EventKind::Delete => {
                            if let Some(k) = self.cfg.schema.parse_cron_manual_key(&e.kv.key) {
                                self.manual.remove(&k);
                            }
                        }
                    }
                }
            }
            Ok(WatchEvent::Progress { .. }) => {}
            Ok(_) => self.read_manual(out),
            Err(e) => self.session.start_reconnect(&e, now, out),
        }
    }

    fn on_request(&mut self, kv: &KeyValue, now: Duration, out: &mut Vec<Action>) {
        let Some((name, tick)) = self.cfg.schema.parse_cron_manual_key(&kv.key) else {
            return;
        };
        let Some(req) = Request::from_json(&kv.value) else {
            Self::log(
                out,
                Level::Error,
                format!("job {name}: ignoring a run request that is not one"),
            );
            return;
        };
        if u64::try_from(self.wall_ms(now)).unwrap_or(0) > req.until_ms {
            // Its CLI gave up on it, or died before withdrawing it: removed
            // unless it changed meanwhile.
            Self::log(
                out,
                Level::Debug,
                format!("job {name}: removing an expired run request by {}", req.by),
            );
            out.push(Action::Txn(
                TRIM,
                Txn {
                    compare: vec![Compare::key(
                        kv.key.clone(),
                        CmpOp::Equal,
                        Target::ModRevision(kv.mod_revision),
                    )],
                    success: vec![Op::delete(kv.key.clone())],
                    failure: vec![],
                },
            ));
            return;
        }
        Self::log(
            out,
            Level::Info,
            format!(
                "job {name}: run requested by {} as tick {}",
                req.by,
                fmt_rfc3339_utc(tick)
            ),
        );
        self.manual.insert((name.clone(), tick));
        self.try_manual(&name, tick, now, out);
    }

    /// Claims a requested tick, if this daemon may run the job now; else
    /// the request waits for the job to appear or change.
    fn try_manual(&mut self, name: &str, tick: i64, now: Duration, out: &mut Vec<Action>) {
        if self.state != State::Serving || self.shutting_down.is_some() {
            return;
        }
        let Some(js) = self
            .jobs
            .get(name)
            .filter(|js| Self::claimable(&self.cfg.labels, js))
        else {
            return;
        };
        if self.claiming(name, tick) {
            return;
        }
        let mut p = self.unscheduled(name, js, tick, Cause::Manual, now);
        p.request = Some(self.cfg.schema.cron_manual_key(name, tick));
        self.send_claim(p, now, out);
    }

    /// The job was (re)defined: its waiting requests are claimed against
    /// the new definition.
    pub(super) fn retry_manual_of(&mut self, name: &str, now: Duration, out: &mut Vec<Action>) {
        let ticks: Vec<i64> = self
            .manual
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, t)| *t)
            .collect();
        for tick in ticks {
            self.try_manual(name, tick, now, out);
        }
    }

    /// A claim of a request was refused. Taken (by anyone): the request is
    /// done. Not taken: either the request is gone, or the job changed
    /// under the claim, which is then sent again; true if so.
    pub(super) fn manual_refused(
        &mut self,
        p: &Pending,
        taken: bool,
        now: Duration,
        out: &mut Vec<Action>,
    ) -> bool {
        let key = (p.name.clone(), p.tick);
        let changed = self
            .jobs
            .get(&p.name)
            .is_some_and(|js| js.mod_rev != p.js.mod_rev);
        if taken || !changed || !self.manual.contains(&key) {
            self.manual.remove(&key);
            return false;
        }
        self.try_manual(&p.name, p.tick, now, out);
        true
    }
}
