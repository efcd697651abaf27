//! One lease as a recipe sees it: granted, kept alive on schedule, fenced,
//! carried across a failover, and revoked. Shared by every recipe that
//! holds something; pure, like them.

use std::time::Duration;

use super::fence::{Fence, Gone};
use super::{Action, Level};
use crate::etcd::{Error, KeepAliveAnswer, Lease};

/// Pause before retrying a failover that did not reach any endpoint.
const RETRY: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reconnect {
    Idle,
    InFlight,
    RetryAt(Duration),
}

/// The lease and everything that keeps it trustworthy.
#[derive(Debug, Clone)]
pub struct Session {
    ttl: Duration,
    kill_after: Duration,
    requested_at: Option<Duration>,
    lease: Option<i64>,
    fence: Option<Fence>,
    lost: bool,
    reconnect: Reconnect,
}

impl Session {
    pub fn new(ttl: Duration, kill_after: Duration) -> Session {
        Session {
            ttl,
            kill_after,
            requested_at: None,
            lease: None,
            fence: None,
            lost: false,
            reconnect: Reconnect::Idle,
        }
    }

    /// Forgets any previous lease and asks for a new one.
    pub fn grant(&mut self, now: Duration, out: &mut Vec<Action>) {
        *self = Session::new(self.ttl, self.kill_after);
        self.requested_at = Some(now);
        out.push(Action::Grant {
            ttl: self.ttl.as_secs() as i64,
        });
    }

    /// The grant's answer: the first deadline counts from the request's send
    /// time and the TTL etcd actually granted.
    pub fn granted(&mut self, l: Lease, now: Duration, out: &mut Vec<Action>) {
        let sent_at = self.requested_at.unwrap_or(now);
        self.lease = Some(l.id);
        self.fence = Some(Fence::new(sent_at, l.ttl, self.kill_after));
        if l.ttl as u64 != self.ttl.as_secs() {
            out.push(Action::Log(
                Level::Info,
                format!(
                    "etcd granted TTL {}s instead of {}s",
                    l.ttl,
                    self.ttl.as_secs()
                ),
            ));
        }
        out.push(Action::KeepAliveOpen(l.id));
    }

    pub fn lease(&self) -> Option<i64> {
        self.lease
    }

    /// The lease can no longer be trusted (reported once).
    pub fn is_lost(&self) -> bool {
        self.lost
    }

    /// Records a loss; false when it was already known.
    pub fn mark_lost(&mut self) -> bool {
        !std::mem::replace(&mut self.lost, true)
    }

    /// When etcd could let the lease expire: the child must be dead by then.
    pub fn hard_deadline(&self) -> Option<Duration> {
        self.fence.as_ref().map(Fence::deadline)
    }

    /// When the stop sequence must begin if no renewal is confirmed.
    pub fn stop_at(&self) -> Option<Duration> {
        match (&self.fence, self.lost) {
            (Some(f), false) => Some(f.stop_at()),
            _ => None,
        }
    }

    /// Streams are being re-established: watch events are stale until then.
    pub fn reconnecting(&self) -> bool {
        self.reconnect == Reconnect::InFlight
    }

    /// A keep-alive answer; `Some` when it says the lease is gone.
    pub fn on_keepalive(
        &mut self,
        r: Result<KeepAliveAnswer, Error>,
        now: Duration,
        out: &mut Vec<Action>,
    ) -> Option<Gone> {
        match r {
            Ok(a) => match (self.fence.as_mut(), self.lost) {
                (Some(f), false) => f.answered(a.sent_at, a.ttl).err(),
                _ => None,
            },
            Err(e) => {
                self.start_reconnect(&e, now, out);
                None
            }
        }
    }

    /// A stream broke: fail over within the time the fence leaves. The
    /// caller drops its watches; they are stale from here on.
    pub fn start_reconnect(&mut self, why: &Error, now: Duration, out: &mut Vec<Action>) {
        if self.reconnect == Reconnect::InFlight || self.lease.is_none() || self.lost {
            return;
        }
        if let Some(f) = self.fence.as_mut() {
            f.stream_lost();
        }
        out.push(Action::Log(
            Level::Debug,
            format!("connection trouble ({why}); failing over"),
        ));
        out.push(Action::KeepAliveClose);
        let budget = self
            .fence
            .as_ref()
            .map_or(Duration::from_secs(1), |f| f.stop_at().saturating_sub(now));
        self.reconnect = Reconnect::InFlight;
        out.push(Action::Reconnect {
            budget: budget.max(Duration::from_millis(100)),
        });
    }

    /// The failover's outcome; true when the caller must re-read what it
    /// holds (its keys may have gone while the streams were down).
    pub fn on_reconnected(
        &mut self,
        r: Result<(), Error>,
        now: Duration,
        out: &mut Vec<Action>,
    ) -> bool {
        let Some(lease) = self.lease else {
            return false;
        };
        match r {
            Ok(()) => {
                self.reconnect = Reconnect::Idle;
                out.push(Action::Log(
                    Level::Debug,
                    "reconnected; re-checking the hold".into(),
                ));
                out.push(Action::KeepAliveOpen(lease));
                if let Some(f) = self.fence.as_mut() {
                    f.sent(now);
                }
                out.push(Action::KeepAliveSend);
                true
            }
            Err(e) => {
                out.push(Action::Log(Level::Debug, format!("failover failed: {e}")));
                self.reconnect = Reconnect::RetryAt(now + RETRY);
                false
            }
        }
    }

    /// Renewals, fence expiry and failover retries; `Some` when the fence
    /// ran out.
    pub fn on_time(&mut self, now: Duration, out: &mut Vec<Action>) -> Option<Gone> {
        if self.lost {
            return None;
        }
        if let Some(f) = self.fence.as_mut() {
            if let Some(why) = f.expired_reason(now) {
                return Some(why);
            }
            if self.reconnect == Reconnect::Idle && f.send_due(now) {
                f.sent(now);
                out.push(Action::KeepAliveSend);
            }
        }
        if let Reconnect::RetryAt(at) = self.reconnect {
            if now >= at {
                self.reconnect = Reconnect::Idle;
                let e = Error::new(crate::etcd::ErrorKind::Unavailable, "reconnect", "retrying");
                self.start_reconnect(&e, now, out);
            }
        }
        None
    }

    pub fn deadline(&self) -> Option<Duration> {
        if self.lost {
            return None;
        }
        let fence = self
            .fence
            .as_ref()
            .map(|f| f.next_wake(self.reconnect == Reconnect::Idle));
        let retry = match self.reconnect {
            Reconnect::RetryAt(at) => Some(at),
            _ => None,
        };
        fence.into_iter().chain(retry).min()
    }

    /// Gives the lease up: closes the stream and revokes. False when there
    /// was no lease to revoke.
    pub fn revoke(&mut self, out: &mut Vec<Action>) -> bool {
        out.push(Action::KeepAliveClose);
        self.fence = None;
        self.reconnect = Reconnect::Idle;
        match self.lease.take() {
            Some(id) => {
                out.push(Action::Revoke(id));
                true
            }
            None => false,
        }
    }
}
