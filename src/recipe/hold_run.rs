//! The child side of a hold (docs/fencing.md): why the child is being
//! stopped, what a loss or a signal does to it, which exit code its end
//! means, and the `--timeout` limit on the wait for the hold. `Hold` keeps
//! the states and the lease and asks this part what the rules say.

use std::time::Duration;

use crate::kit::duration::fmt_duration;
use crate::kit::fence::Gone;
use crate::kit::machine::{Action, Level};
use crate::kit::signal;
use crate::kit::supervise::{Ended, Supervisor};
use crate::kit::wait::Wait;

const SIGTERM: i32 = 15;
const PAST: &str = "SIGKILL now: past the lease deadline";

/// Why the child is being stopped. The first reason wins: a loss during a
/// stop that a signal began does not turn the signal's outcome into 70.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Lost,
    Signal(i32),
}

/// What a loss leaves the recipe to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterLoss {
    /// The child (or what is left of its tree) is being stopped: wait for
    /// it to be gone, then resign.
    Stopping,
    /// Nothing runs: resign now (exit 70, or campaign again).
    Idle,
}

/// What a signal leaves the recipe to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterSignal {
    /// Forwarded, or nothing to do.
    Nothing,
    /// No child: withdraw or resign, then exit with this code (128+S).
    Withdraw(i32),
}

/// The child side of a hold, and the wait's time limit.
#[derive(Debug, Clone)]
pub struct Run {
    child: Supervisor,
    stop: Option<Stop>,
    timeout_at: Option<Duration>,
}

impl Run {
    pub fn new(kill_after: Duration) -> Run {
        Run {
            child: Supervisor::new(kill_after),
            stop: None,
            timeout_at: None,
        }
    }

    pub fn child(&self) -> &Supervisor {
        &self.child
    }

    pub fn child_mut(&mut self) -> &mut Supervisor {
        &mut self.child
    }

    pub fn stop_reason(&self) -> Option<Stop> {
        self.stop
    }

    /// A new run under a new hold (`elect --restart` campaigning again).
    pub fn forget_stop(&mut self) {
        self.stop = None;
    }

    /// Called once at start: `--timeout` counts from here.
    pub fn start_waiting(&mut self, wait: Wait, now: Duration) {
        if let Wait::Timeout(d) = wait {
            self.timeout_at = Some(now + d);
        }
    }

    /// The hold is ours: `--timeout` limits the wait for it, never the run,
    /// nor a later re-campaign of `elect --restart`.
    pub fn acquired(&mut self) {
        self.timeout_at = None;
    }

    /// When `--timeout` runs out, while it still applies.
    pub fn timeout_deadline(&self) -> Option<Duration> {
        self.timeout_at
    }

    /// Child deadlines, then the wait's limit: `Some(75)` when the recipe
    /// must withdraw because `--timeout` ran out.
    pub fn on_time(&mut self, now: Duration, out: &mut Vec<Action>) -> Option<i32> {
        self.child.on_time(now, out);
        if self.timeout_at.is_some_and(|t| now >= t) {
            self.timeout_at = None;
            out.push(Action::Log(
                Level::Info,
                "not acquired: --timeout ran out".into(),
            ));
            return Some(crate::kit::exit::EXIT_NOT_ACQUIRED);
        }
        None
    }

    /// When the stop sequence begun at `now` sends SIGKILL, in words, as
    /// the supervisor does it: after kill-after cut to the lease's deadline,
    /// at once past it. `None` for "at once".
    fn kill_words(&self, now: Duration, hard: Option<Duration>) -> Option<String> {
        if hard.is_some_and(|h| now >= h) {
            return None;
        }
        let kill_at = (now + self.child.kill_after()).min(hard.unwrap_or(Duration::MAX));
        Some(format!("SIGKILL in {}", fmt_duration(kill_at - now)))
    }

    /// The hold can no longer be trusted. `hard` is the lease's deadline:
    /// the child must be dead by then.
    pub fn on_lost(
        &mut self,
        why: &Gone,
        now: Duration,
        hard: Option<Duration>,
        out: &mut Vec<Action>,
    ) -> AfterLoss {
        let kill = self.kill_words(now, hard);
        if self.child.is_running() {
            let how = match &kill {
                Some(k) => format!("SIGTERM, {k}"),
                None => PAST.to_string(),
            };
            out.push(Action::Log(
                Level::Info,
                format!("lease lost: {}; stopping child ({how})", why.0),
            ));
            self.stop.get_or_insert(Stop::Lost);
            self.child.stop(SIGTERM, now, hard, out);
            return AfterLoss::Stopping;
        }
        if self.child.is_stopping() {
            // The child already exited, or a signal is stopping it: the loss
            // stopped nothing, so the exit code stays the child's. What is
            // left of its tree is hurried to the lease's deadline.
            out.push(Action::Log(
                Level::Info,
                format!(
                    "lease lost: {}; hurrying what is left of the child's tree ({})",
                    why.0,
                    kill.as_deref().unwrap_or(PAST)
                ),
            ));
            self.child.stop(SIGTERM, now, hard, out);
            return AfterLoss::Stopping;
        }
        AfterLoss::Idle
    }

    /// A signal to the wrapper (docs/fencing.md): fatal ones stop the child and
    /// the wrapper exits with the child's status; without a child, withdraw.
    pub fn on_signal(
        &mut self,
        sig: i32,
        now: Duration,
        hard: Option<Duration>,
        out: &mut Vec<Action>,
    ) -> AfterSignal {
        if !signal::is_fatal(sig) {
            if self.child.is_running() {
                out.push(Action::SignalChild(self.child.tag(), sig));
            }
            return AfterSignal::Nothing;
        }
        if self.child.is_idle() {
            out.push(Action::Log(
                Level::Info,
                format!("signal {sig}: withdrawing"),
            ));
            return AfterSignal::Withdraw(128 + sig);
        }
        let how = self.kill_words(now, hard);
        out.push(Action::Log(
            Level::Info,
            format!(
                "signal {sig}: forwarding to the child, {}",
                how.as_deref().unwrap_or(PAST)
            ),
        ));
        self.stop.get_or_insert(Stop::Signal(sig));
        self.child.stop(sig, now, hard, out);
        AfterSignal::Nothing
    }

    /// The exit code a finished child means: 70 when a loss stopped it, its
    /// own status otherwise (a signal it was sent included).
    pub fn exit_code(&self, ended: Ended) -> i32 {
        match self.stop {
            Some(Stop::Lost) => crate::kit::exit::EXIT_LOST,
            _ => ended.status.code(),
        }
    }
}

/// How a child ended, for the log.
pub fn describe(s: crate::kit::machine::ChildStatus) -> String {
    match s {
        crate::kit::machine::ChildStatus::Exited(c) => format!("exit {c}"),
        crate::kit::machine::ChildStatus::Signaled(sig) => format!("signal {sig}"),
    }
}

#[cfg(test)]
#[path = "hold_run_tests.rs"]
mod tests;
