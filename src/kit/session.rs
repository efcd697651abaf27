//! One lease as a recipe sees it: granted, kept alive on schedule, fenced,
//! carried across a failover, and revoked. Shared by every recipe that
//! holds something; pure, like them.

use std::time::Duration;

use super::fence::{Fence, Gone};
use super::machine::{Action, Level};
use super::timers;
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
    /// While a revoke is outstanding: the lease deadline it had. A resign
    /// past it is moot (the lease is expiring anyway), so nothing waits
    /// for it longer.
    resign_by: Option<Duration>,
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
            resign_by: None,
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

    /// When the stop sequence must begin if no renewal is confirmed; while
    /// a revoke is outstanding, the lease deadline, past which it is moot.
    /// Every blocking call made for the holder ends by then.
    pub fn stop_at(&self) -> Option<Duration> {
        if self.resign_by.is_some() {
            return self.resign_by;
        }
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

    /// Renewals, fence expiry, unanswered keep-alives and failover
    /// retries; `Some` when the fence ran out.
    pub fn on_time(&mut self, now: Duration, out: &mut Vec<Action>) -> Option<Gone> {
        // A revoke retried after the lease deadline (elect --restart) gets
        // its own budget: the cap only spares the first one a long wait.
        if self.resign_by.is_some_and(|d| now >= d) {
            self.resign_by = None;
        }
        if self.lost {
            return None;
        }
        if let Some(f) = self.fence.as_mut() {
            if let Some(why) = f.expired_reason(now) {
                return Some(why);
            }
            // A hung member answers nothing and breaks no stream: only a
            // timer notices it, and another member must take over while
            // the lease still has time.
            if self.reconnect == Reconnect::Idle && f.overdue_at().is_some_and(|at| now >= at) {
                let sent = f.outstanding_since().unwrap_or(now);
                let waited = crate::kit::duration::fmt_duration(now.saturating_sub(sent));
                let e = Error::new(
                    crate::etcd::ErrorKind::Timeout,
                    "keep-alive",
                    format!("no answer for {waited}"),
                );
                self.start_reconnect(&e, now, out);
                return None;
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
        let idle = self.reconnect == Reconnect::Idle;
        let fence = self.fence.as_ref().map(|f| f.next_wake(idle));
        let overdue = self
            .fence
            .as_ref()
            .filter(|_| idle)
            .and_then(Fence::overdue_at);
        let retry = match self.reconnect {
            Reconnect::RetryAt(at) => Some(at),
            _ => None,
        };
        timers::deadline([
            ("keep-alive", fence),
            ("keep-alive overdue", overdue),
            ("reconnect retry", retry),
        ])
    }

    /// Gives the lease up: closes the stream and revokes. False when there
    /// was no lease to revoke.
    pub fn revoke(&mut self, out: &mut Vec<Action>) -> bool {
        out.push(Action::KeepAliveClose);
        if self.lease.is_some() {
            self.resign_by = self.fence.as_ref().map(Fence::deadline);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcd::ErrorKind;

    const S: fn(u64) -> Duration = Duration::from_secs;
    const MS: fn(u64) -> Duration = Duration::from_millis;

    /// A session granted a 6 s lease at 0 with kill-after 2 s: renewals
    /// every 1.33 s, stop at 4 s.
    fn held() -> Session {
        let mut s = Session::new(S(6), S(2));
        let mut out = Vec::new();
        s.grant(S(0), &mut out);
        s.granted(Lease { id: 7, ttl: 6 }, S(0), &mut out);
        s
    }

    fn reconnects(out: &[Action]) -> usize {
        out.iter()
            .filter(|a| matches!(a, Action::Reconnect { .. }))
            .count()
    }

    #[test]
    fn an_unanswered_keep_alive_fails_over_well_before_the_stop() {
        let mut s = held();
        let mut out = Vec::new();
        let first = MS(1334);
        assert!(s.on_time(first, &mut out).is_none());
        assert_eq!(out, vec![Action::KeepAliveSend]);
        // The loop is told to wake when the answer is overdue.
        assert_eq!(s.deadline(), Some(first + S(1)));
        out.clear();
        assert!(s.on_time(first + MS(999), &mut out).is_none());
        assert!(out.is_empty(), "{out:?}");
        assert!(s.on_time(first + S(1), &mut out).is_none());
        assert_eq!(reconnects(&out), 1, "{out:?}");
        assert!(out.contains(&Action::KeepAliveClose));
        // The failover gets what is left before the stop instant.
        let budget = out.iter().find_map(|a| match a {
            Action::Reconnect { budget } => Some(*budget),
            _ => None,
        });
        assert_eq!(budget, Some(S(4) - first - S(1)));
        assert!(s.reconnecting());
        // Reconnected: a fresh keep-alive goes to the new member at once.
        out.clear();
        assert!(s.on_reconnected(Ok(()), first + MS(1100), &mut out));
        assert!(out.contains(&Action::KeepAliveSend));
        assert_eq!(s.deadline(), Some(first + MS(2100)));
        // Answered: the lease is confirmed from that send time.
        out.clear();
        let answer = KeepAliveAnswer {
            ttl: 6,
            sent_at: first + MS(1100),
        };
        assert!(s
            .on_keepalive(Ok(answer), first + MS(1150), &mut out)
            .is_none());
        assert_eq!(s.stop_at(), Some(first + MS(1100) + S(4)));
        assert_eq!(reconnects(&out), 0);
    }

    #[test]
    fn a_timely_answer_never_triggers_a_failover() {
        let mut s = held();
        let mut out = Vec::new();
        let mut now = Duration::ZERO;
        for _ in 0..20 {
            now += MS(100);
            s.on_time(now, &mut out);
            if out.contains(&Action::KeepAliveSend) {
                out.clear();
                let answer = KeepAliveAnswer {
                    ttl: 6,
                    sent_at: now,
                };
                assert!(s
                    .on_keepalive(Ok(answer), now + MS(900), &mut out)
                    .is_none());
            }
        }
        assert_eq!(reconnects(&out), 0, "{out:?}");
        assert!(!s.reconnecting());
    }

    #[test]
    fn an_overdue_failover_that_fails_is_retried_and_the_fence_still_acts() {
        let mut s = held();
        let mut out = Vec::new();
        s.on_time(MS(1334), &mut out);
        s.on_time(MS(2334), &mut out);
        assert_eq!(reconnects(&out), 1);
        out.clear();
        let e = Error::new(ErrorKind::Unavailable, "connect", "nobody");
        assert!(!s.on_reconnected(Err(e), MS(3900), &mut out));
        let why = s.on_time(S(4), &mut out).expect("the fence runs out");
        assert!(why.0.contains("unanswered for 4s"), "{}", why.0);
    }

    #[test]
    fn a_resign_is_capped_at_the_lease_deadline_once() {
        let mut s = held();
        let mut out = Vec::new();
        assert_eq!(s.stop_at(), Some(S(4)));
        assert!(s.revoke(&mut out));
        assert!(out.contains(&Action::Revoke(7)));
        // The revoke may run until the lease could expire, not longer.
        assert_eq!(s.stop_at(), Some(S(6)));
        assert_eq!(s.deadline(), None);
        // Past it, a retried revoke (elect --restart) gets its own budget.
        out.clear();
        assert!(s.on_time(S(6), &mut out).is_none());
        assert_eq!(s.stop_at(), None);
        // A new grant starts clean.
        s.grant(S(7), &mut out);
        assert_eq!(s.stop_at(), None);
    }
}
