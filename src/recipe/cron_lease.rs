//! The daemon's lease: granted, registered with the node key and the run
//! markers of live runs, and granted again when lost. A daemon outlives an
//! etcd outage of any length: a grant that fails for want of etcd is tried
//! again with a capped backoff, and only an etcd that refuses the daemon
//! for good (credentials, permissions, TLS) makes it stop with 69.

use super::*;

/// The first pause before asking again for a lease; doubled up to the cap.
const GRANT_RETRY: Duration = Duration::from_millis(250);
const GRANT_RETRY_CAP: Duration = Duration::from_secs(5);

impl Cron {
    /// Registers the node and reads every job, in one request; after a
    /// re-grant it also puts the markers of live runs back on the new lease.
    pub(super) fn register(&mut self, now: Duration, out: &mut Vec<Action>) {
        let lease = self.session.lease().unwrap_or_default();
        let node = Node {
            host: self.cfg.host.clone(),
            pid: u64::from(self.cfg.pid),
            version: env!("CARGO_PKG_VERSION").into(),
            started_ms: u64::try_from(self.started_ms).unwrap_or(0),
            labels: self.cfg.labels.clone(),
        };
        let mut success = vec![
            Op::put(
                self.cfg.schema.cron_node_key(&self.cfg.node),
                node.to_json(),
                lease,
            ),
            Op::Get(Range::prefix(self.cfg.schema.cron_job_dir())),
            // Read third: the answer's range(2) is the node set.
            Op::Get(Range::prefix(self.cfg.schema.cron_node_dir())),
        ];
        for run in self.runs.values().filter(|r| !r.hook) {
            let key = self
                .cfg
                .schema
                .cron_tick_key(TickKind::Run, &run.name, run.tick);
            success.push(Op::put(key, self.marker_on(lease, now), lease));
        }
        self.state = State::ExpectRegister;
        out.push(Action::Txn(
            REGISTER,
            Txn {
                compare: vec![],
                success,
                failure: vec![],
            },
        ));
    }

    pub(super) fn on_granted(
        &mut self,
        r: Result<crate::etcd::Lease, Error>,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        match r {
            Ok(l) => {
                if self.grant_attempts > 0 {
                    Self::log(out, Level::Info, "etcd is back; registering".into());
                }
                self.grant_attempts = 0;
                self.session.granted(l, now, out);
                self.register(now, out);
            }
            Err(e) if refused_for_good(&e) => {
                Self::log(out, Level::Error, format!("cannot grant a lease: {e}"));
                self.refused(&e, now, out);
            }
            Err(e) if self.shutting_down.is_some() => {
                Self::log(out, Level::Error, format!("cannot grant a lease: {e}"));
                self.maybe_exit(out);
            }
            Err(e) => {
                let pause = GRANT_RETRY
                    .saturating_mul(1 << self.grant_attempts.min(5))
                    .min(GRANT_RETRY_CAP);
                self.grant_attempts = self.grant_attempts.saturating_add(1);
                Self::log(
                    out,
                    Level::Info,
                    format!(
                        "cannot grant a lease ({e}); retrying in {}ms (attempt {})",
                        pause.as_millis(),
                        self.grant_attempts
                    ),
                );
                self.grant_at = Some(now + pause);
            }
        }
    }

    /// Asks for a lease again once the pause is over.
    pub(super) fn retry_grant(&mut self, now: Duration, out: &mut Vec<Action>) {
        if self.state == State::ExpectLease && self.grant_at.is_some_and(|at| now >= at) {
            self.grant_at = None;
            self.session.grant(now, out);
        }
    }

    pub(super) fn on_lease_lost(&mut self, why: &str, now: Duration, out: &mut Vec<Action>) {
        if !self.session.mark_lost() {
            return;
        }
        self.stats.lease_lost();
        Self::log(
            out,
            Level::Info,
            format!("lease lost: {why}; runs continue, registering again"),
        );
        out.push(Action::Unwatch(WATCH_JOBS));
        out.push(Action::Unwatch(WATCH_NODES));
        self.session.revoke(out);
        self.state = State::ExpectLease;
        self.grant_at = None;
        self.session.grant(now, out);
    }
}

/// etcd answered, and will answer the same way however often it is asked.
pub(super) fn refused_for_good(e: &Error) -> bool {
    matches!(
        e.kind,
        crate::etcd::ErrorKind::Auth | crate::etcd::ErrorKind::Tls
    )
}
