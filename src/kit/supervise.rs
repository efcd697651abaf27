//! The child's life as a recipe sees it, shared by every recipe: started,
//! running, being stopped (SIGTERM, then SIGKILL after kill-after), exited
//! and draining what is left of its tree. Pure: it only emits actions.

use std::time::Duration;

use super::machine::{Action, ChildStatus, SpawnSpec, Tag};

const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Idle,
    /// Spawn requested, not yet confirmed.
    Starting {
        since: Duration,
    },
    Running {
        since: Duration,
    },
    /// Signals sent; SIGKILL at `kill_at` unless it already went.
    Stopping {
        since: Duration,
        kill_at: Duration,
        killed: bool,
    },
    /// The child exited; what is left of its tree gets the same treatment
    /// until the driver reports it gone.
    Draining {
        status: ChildStatus,
        ran: Duration,
        kill_at: Duration,
        killed: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Supervisor {
    tag: Tag,
    kill_after: Duration,
    phase: Phase,
}

/// The child's tree is gone: how it ended and how long it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    pub status: ChildStatus,
    pub ran: Duration,
}

impl Supervisor {
    /// The supervisor of a machine's only child (tag 0).
    pub fn new(kill_after: Duration) -> Supervisor {
        Supervisor::with_tag(0, kill_after)
    }

    /// The supervisor of child `tag`, for machines with several.
    pub fn with_tag(tag: Tag, kill_after: Duration) -> Supervisor {
        Supervisor {
            tag,
            kill_after,
            phase: Phase::Idle,
        }
    }

    pub fn tag(&self) -> Tag {
        self.tag
    }

    pub fn kill_after(&self) -> Duration {
        self.kill_after
    }

    /// No child, nothing left of one.
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Idle
    }

    /// A child runs and no stop has begun.
    pub fn is_running(&self) -> bool {
        matches!(self.phase, Phase::Starting { .. } | Phase::Running { .. })
    }

    /// A stop sequence has begun (or the child already exited).
    pub fn is_stopping(&self) -> bool {
        matches!(self.phase, Phase::Stopping { .. } | Phase::Draining { .. })
    }

    pub fn spawn(&mut self, spec: SpawnSpec, now: Duration, out: &mut Vec<Action>) {
        self.phase = Phase::Starting { since: now };
        out.push(Action::Spawn(self.tag, spec));
    }

    pub fn spawned(&mut self, now: Duration) {
        if let Phase::Starting { .. } = self.phase {
            self.phase = Phase::Running { since: now };
        }
    }

    /// The child could not be executed: there is nothing to drain.
    pub fn spawn_failed(&mut self, code: i32) -> Ended {
        self.phase = Phase::Idle;
        Ended {
            status: ChildStatus::Exited(code),
            ran: Duration::ZERO,
        }
    }

    /// Begins (or hurries) the stop sequence with `sig`. `hard` is the
    /// instant by which the child must be dead (the lease's deadline): past
    /// it, SIGKILL goes at once.
    pub fn stop(&mut self, sig: i32, now: Duration, hard: Option<Duration>, out: &mut Vec<Action>) {
        let tag = self.tag;
        let late = hard.is_some_and(|h| now >= h);
        let kill_at = (now + self.kill_after).min(hard.unwrap_or(Duration::MAX));
        match &mut self.phase {
            Phase::Idle => {}
            Phase::Starting { since } | Phase::Running { since } => {
                let since = *since;
                out.push(Action::SignalChild(tag, if late { SIGKILL } else { sig }));
                self.phase = Phase::Stopping {
                    since,
                    kill_at,
                    killed: late,
                };
            }
            Phase::Stopping {
                kill_at: k, killed, ..
            }
            | Phase::Draining {
                kill_at: k, killed, ..
            } => {
                if *killed {
                    return;
                }
                if late {
                    out.push(Action::SignalChild(tag, SIGKILL));
                    *killed = true;
                } else {
                    // A repeated signal (a second Ctrl-C) is forwarded too.
                    out.push(Action::SignalChild(tag, sig));
                    *k = (*k).min(kill_at);
                }
            }
        }
    }

    /// The child itself exited; the rest of its tree is asked to go too.
    pub fn exited(&mut self, status: ChildStatus, now: Duration, out: &mut Vec<Action>) {
        let tag = self.tag;
        let (since, kill_at, killed) = match self.phase {
            Phase::Starting { since } | Phase::Running { since } => {
                (since, now + self.kill_after, false)
            }
            Phase::Stopping {
                since,
                kill_at,
                killed,
            } => (since, kill_at, killed),
            Phase::Idle | Phase::Draining { .. } => return,
        };
        if !killed {
            out.push(Action::SignalChild(tag, SIGTERM));
        }
        self.phase = Phase::Draining {
            status,
            ran: now.saturating_sub(since),
            kill_at,
            killed,
        };
    }

    /// The driver saw the whole tree gone.
    pub fn gone(&mut self) -> Option<Ended> {
        match self.phase {
            Phase::Draining { status, ran, .. } => {
                self.phase = Phase::Idle;
                Some(Ended { status, ran })
            }
            _ => None,
        }
    }

    /// SIGKILL when the grace has run out.
    pub fn on_time(&mut self, now: Duration, out: &mut Vec<Action>) {
        let tag = self.tag;
        match &mut self.phase {
            Phase::Stopping {
                kill_at, killed, ..
            }
            | Phase::Draining {
                kill_at, killed, ..
            } if !*killed && now >= *kill_at => {
                out.push(Action::SignalChild(tag, SIGKILL));
                *killed = true;
            }
            _ => {}
        }
    }

    pub fn deadline(&self) -> Option<Duration> {
        match self.phase {
            Phase::Stopping {
                kill_at,
                killed: false,
                ..
            }
            | Phase::Draining {
                kill_at,
                killed: false,
                ..
            } => Some(kill_at),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn spec() -> SpawnSpec {
        SpawnSpec {
            argv: vec!["true".into()],
            env: vec![],
        }
    }

    #[test]
    fn stop_sends_the_signal_then_sigkill_after_the_grace() {
        let mut s = Supervisor::new(S(3));
        let mut out = vec![];
        s.spawn(spec(), S(0), &mut out);
        s.spawned(S(0));
        out.clear();
        s.stop(SIGTERM, S(10), Some(S(20)), &mut out);
        assert_eq!(out, vec![Action::SignalChild(0, SIGTERM)]);
        assert_eq!(s.deadline(), Some(S(13)));
        out.clear();
        s.on_time(S(12), &mut out);
        assert!(out.is_empty());
        s.on_time(S(13), &mut out);
        assert_eq!(out, vec![Action::SignalChild(0, SIGKILL)]);
        assert_eq!(s.deadline(), None);
        out.clear();
        s.exited(ChildStatus::Signaled(9), S(13), &mut out);
        assert!(out.is_empty(), "already killed: nothing more to send");
        assert_eq!(
            s.gone(),
            Some(Ended {
                status: ChildStatus::Signaled(9),
                ran: S(13)
            })
        );
        assert!(s.is_idle());
    }

    #[test]
    fn the_grace_never_runs_past_the_lease_deadline() {
        let mut s = Supervisor::new(S(3));
        let mut out = vec![];
        s.spawn(spec(), S(0), &mut out);
        s.stop(SIGTERM, S(8), Some(S(10)), &mut out);
        assert_eq!(s.deadline(), Some(S(10)));
    }

    #[test]
    fn waking_past_the_deadline_skips_the_grace() {
        let mut s = Supervisor::new(S(3));
        let mut out = vec![];
        s.spawn(spec(), S(0), &mut out);
        out.clear();
        s.stop(SIGTERM, S(11), Some(S(10)), &mut out);
        assert_eq!(out, vec![Action::SignalChild(0, SIGKILL)]);
    }

    #[test]
    fn a_normal_exit_drains_the_rest_of_the_tree() {
        let mut s = Supervisor::new(S(3));
        let mut out = vec![];
        s.spawn(spec(), S(0), &mut out);
        s.spawned(S(1));
        out.clear();
        s.exited(ChildStatus::Exited(0), S(5), &mut out);
        assert_eq!(out, vec![Action::SignalChild(0, SIGTERM)]);
        assert_eq!(s.deadline(), Some(S(8)));
        assert!(s.is_stopping());
        let ended = s.gone().expect("ended");
        assert_eq!((ended.status, ended.ran), (ChildStatus::Exited(0), S(4)));
    }

    #[test]
    fn a_second_signal_is_forwarded_too() {
        let mut s = Supervisor::new(S(3));
        let mut out = vec![];
        s.spawn(spec(), S(0), &mut out);
        s.stop(2, S(1), None, &mut out);
        s.stop(2, S(2), None, &mut out);
        assert_eq!(
            out,
            vec![
                Action::Spawn(0, spec()),
                Action::SignalChild(0, 2),
                Action::SignalChild(0, 2)
            ]
        );
        assert_eq!(s.deadline(), Some(S(4)), "the first grace stands");
    }
}
