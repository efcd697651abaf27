//! Self-fencing (docs/fencing.md): how long the lease is known to live, when to
//! renew it, and when the child must start stopping. Pure: every instant is
//! on the BOOTTIME clock and passed in.

use std::time::Duration;

/// A healthy member answers a keep-alive in milliseconds; one that has
/// not answered within this is treated as hung.
const ANSWER_PATIENCE: Duration = Duration::from_secs(1);

/// The lease's life as last confirmed by etcd, and the keep-alive schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    ttl: Duration,
    kill_after: Duration,
    deadline: Duration,
    in_flight: Option<Duration>,
    next_send: Duration,
}

/// Why the lease can no longer be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gone(pub String);

impl Fence {
    /// Starts from a grant: the first deadline is the grant request's send
    /// time plus the TTL etcd actually granted.
    pub fn new(grant_sent_at: Duration, granted_ttl_secs: i64, kill_after: Duration) -> Fence {
        let ttl = Duration::from_secs(granted_ttl_secs.max(1) as u64);
        let mut f = Fence {
            ttl,
            kill_after,
            deadline: grant_sent_at + ttl,
            in_flight: None,
            next_send: grant_sent_at,
        };
        f.next_send = grant_sent_at + f.interval();
        f
    }

    /// Renew every (TTL − kill-after)/3, so two renewals can fail before the
    /// stop sequence must begin.
    pub fn interval(&self) -> Duration {
        self.ttl.saturating_sub(self.kill_after) / 3
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn kill_after(&self) -> Duration {
        self.kill_after
    }

    /// A keep-alive should be sent now (at most one is ever outstanding).
    pub fn send_due(&self, now: Duration) -> bool {
        self.in_flight.is_none() && now >= self.next_send
    }

    pub fn sent(&mut self, now: Duration) {
        self.in_flight = Some(now);
    }

    /// A keep-alive answer for the request sent at `sent_at`.
    pub fn answered(&mut self, sent_at: Duration, ttl_secs: i64) -> Result<(), Gone> {
        self.in_flight = None;
        if ttl_secs <= 0 {
            return Err(Gone(
                "etcd answered the keep-alive with TTL 0: the lease is gone".into(),
            ));
        }
        self.deadline = self
            .deadline
            .max(sent_at + Duration::from_secs(ttl_secs as u64));
        self.next_send = sent_at + self.interval();
        Ok(())
    }

    /// When the outstanding keep-alive, if any, was sent.
    pub fn outstanding_since(&self) -> Option<Duration> {
        self.in_flight
    }

    /// When the outstanding keep-alive, if any, has waited too long for its
    /// answer: the member is presumed hung and another one should carry it.
    /// One interval (at most a second) leaves the next interval, at least,
    /// for the failover and a renewal before the stop must begin.
    pub fn overdue_at(&self) -> Option<Duration> {
        self.in_flight
            .map(|sent| sent + self.interval().min(ANSWER_PATIENCE))
    }

    /// The stream carrying the outstanding request broke: it will never be
    /// answered, so the next one may go as soon as a stream is back.
    pub fn stream_lost(&mut self) {
        self.in_flight = None;
    }

    /// When etcd could, at the earliest, let the lease expire.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// The stop sequence must begin by then, so the child is dead before
    /// the lease can expire.
    pub fn stop_at(&self) -> Duration {
        self.deadline.saturating_sub(self.kill_after)
    }

    /// The earliest instant this fence needs a wake-up; renewals count only
    /// when a stream is there to carry them.
    pub fn next_wake(&self, can_send: bool) -> Duration {
        if can_send && self.in_flight.is_none() {
            self.next_send.min(self.stop_at())
        } else {
            self.stop_at()
        }
    }

    /// The reason line for a fence that ran out at `now`.
    pub fn expired_reason(&self, now: Duration) -> Option<Gone> {
        if now < self.stop_at() {
            return None;
        }
        let confirmed = self.deadline.saturating_sub(self.ttl);
        Some(Gone(format!(
            "keep-alive unanswered for {}",
            crate::kit::duration::fmt_duration(now.saturating_sub(confirmed))
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;
    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn schedule_leaves_room_for_two_failed_renewals() {
        let f = Fence::new(S(100), 10, S(3));
        assert_eq!(f.interval(), MS(2333) + Duration::from_nanos(333_333));
        assert_eq!(f.deadline(), S(110));
        assert_eq!(f.stop_at(), S(107));
        assert!(!f.send_due(S(102)));
        assert!(f.send_due(S(103)));
        // Three intervals fit before the stop: the first two may fail.
        assert!(f.interval() * 3 <= f.stop_at() - S(100));
    }

    #[test]
    fn deadline_counts_from_the_send_time_of_the_answered_request() {
        let mut f = Fence::new(S(0), 10, S(3));
        f.sent(S(3));
        assert!(!f.send_due(S(5)), "at most one keep-alive outstanding");
        // Answered late: the deadline still starts at the send time.
        f.answered(S(3), 10).expect("alive");
        assert_eq!(f.deadline(), S(13));
        assert_eq!(f.stop_at(), S(10));
    }

    #[test]
    fn an_old_answer_never_shortens_the_deadline() {
        let mut f = Fence::new(S(10), 10, S(3));
        f.answered(S(5), 10).expect("alive");
        assert_eq!(f.deadline(), S(20));
    }

    #[test]
    fn ttl_zero_is_an_immediate_loss() {
        let mut f = Fence::new(S(0), 10, S(3));
        f.sent(S(3));
        assert!(f.answered(S(3), 0).is_err());
        assert!(f.answered(S(3), -1).is_err());
    }

    #[test]
    fn silence_runs_out_at_deadline_minus_kill_after() {
        let mut f = Fence::new(S(0), 10, S(3));
        f.sent(S(3));
        assert_eq!(f.next_wake(true), S(7));
        assert!(f.expired_reason(MS(6999)).is_none());
        let why = f.expired_reason(S(7)).expect("expired");
        assert!(why.0.contains("unanswered for 7s"), "{}", why.0);
    }

    #[test]
    fn an_unanswered_keep_alive_is_overdue_after_one_interval_at_most_a_second() {
        let mut f = Fence::new(S(0), 6, S(2));
        assert_eq!(f.overdue_at(), None, "nothing outstanding");
        f.sent(S(2));
        // (6 - 2) / 3 = 1.33 s, capped at 1 s.
        assert_eq!(f.overdue_at(), Some(S(3)));
        // At the shortest TTL the interval itself is the patience, and a
        // renewal sent on schedule is overdue well before the stop.
        let mut f = Fence::new(S(0), 2, MS(667));
        f.sent(f.interval());
        assert_eq!(f.overdue_at(), Some(f.interval() * 2));
        assert!(f.overdue_at().expect("outstanding") < f.stop_at());
    }

    #[test]
    fn a_lost_stream_frees_the_outstanding_slot() {
        let mut f = Fence::new(S(0), 10, S(3));
        f.sent(S(3));
        f.stream_lost();
        assert!(f.send_due(S(4)));
    }
}
