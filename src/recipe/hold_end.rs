//! How a hold ends (docs/fencing.md): a loss, a signal, the child's exit,
//! resigning and what comes after it (exit, or `--restart` campaigning
//! again). Part of [`Hold`], apart for size.

use std::time::Duration;

use super::hold::{Hold, Life, Then, AGAIN};
use super::hold_part::{Acquire, Retry};
use super::hold_run::{describe, AfterLoss, AfterSignal, Stop};
use crate::etcd::Error;
use crate::kit::duration::fmt_duration;
use crate::kit::fence::Gone;
use crate::kit::machine::{Action, Level};
use crate::kit::supervise::Ended;

impl<A: Acquire> Hold<A> {
    /// The lease (or our key) can no longer be trusted.
    pub(super) fn on_lost(&mut self, why: Gone, now: Duration, out: &mut Vec<Action>) {
        if self.over() || !self.session.mark_lost() {
            return;
        }
        let hard = self.session.hard_deadline();
        if self.run.on_lost(&why, now, hard, out) == AfterLoss::Stopping {
            return;
        }
        if self.cfg.restart {
            Self::log(
                out,
                Level::Info,
                format!("lease lost: {}; campaigning again", why.0),
            );
            self.resign(Then::Campaign, now, out);
        } else {
            Self::log(
                out,
                Level::Info,
                format!("lease lost while waiting: {}", why.0),
            );
            self.resign(Then::Exit(crate::kit::exit::EXIT_LOST), now, out);
        }
    }

    /// Revokes the lease (our keys go with it), then `then`.
    pub(super) fn resign(&mut self, then: Then, now: Duration, out: &mut Vec<Action>) {
        self.part.unwatch(out);
        self.revoking = self.session.lease();
        if self.session.revoke(out) {
            self.life = Life::ExpectRevoke { then };
        } else {
            self.then(then, now, out);
        }
    }

    pub(super) fn then(&mut self, then: Then, now: Duration, out: &mut Vec<Action>) {
        match then {
            Then::Exit(code) => {
                self.life = Life::Done;
                out.push(Action::Exit(code));
            }
            Then::Campaign => self.campaign(now, out),
        }
    }

    pub(super) fn on_revoked(
        &mut self,
        r: Result<(), Error>,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let Life::ExpectRevoke { then } = self.life else {
            return;
        };
        match r {
            Ok(()) if self.part.held() => Self::log(out, Level::Info, "resigned".into()),
            Ok(()) => Self::log(out, Level::Debug, "withdrew".into()),
            Err(e) if then == Then::Campaign && e.is_unavailable() => {
                // Campaigning now would queue behind our own old key until
                // its lease expires: revoke it first.
                Self::log(
                    out,
                    Level::Info,
                    format!("revoke failed ({e}); retrying before campaigning again"),
                );
                if let Some(id) = self.revoking {
                    self.life = Life::ExpectRetry {
                        at: now + AGAIN,
                        what: Retry::Revoke(id),
                    };
                    return;
                }
            }
            Err(e) => Self::log(
                out,
                Level::Info,
                format!("revoke failed ({e}); the lease expires within its TTL"),
            ),
        }
        self.then(then, now, out);
    }

    pub(super) fn on_child_ended(&mut self, ended: Ended, now: Duration, out: &mut Vec<Action>) {
        let code = self.run.exit_code(ended);
        match self.run.stop_reason() {
            Some(Stop::Lost) if self.cfg.restart => self.resign(Then::Campaign, now, out),
            Some(_) => self.resign(Then::Exit(code), now, out),
            None if self.cfg.restart && self.session.is_lost() => {
                self.resign(Then::Campaign, now, out)
            }
            None if self.cfg.restart => {
                let delay = self.backoff.next_delay(ended.ran);
                Self::log(
                    out,
                    Level::Info,
                    format!(
                        "child exited ({}); restarting in {}",
                        describe(ended.status),
                        fmt_duration(delay)
                    ),
                );
                self.life = Life::ExpectRestart { at: now + delay };
            }
            None => {
                Self::log(
                    out,
                    Level::Debug,
                    format!("child exited ({})", describe(ended.status)),
                );
                self.resign(Then::Exit(code), now, out);
            }
        }
    }

    pub(super) fn on_signal(&mut self, sig: i32, now: Duration, out: &mut Vec<Action>) {
        if !crate::kit::signal::is_fatal(sig) {
            self.run.on_signal(sig, now, None, out);
            return;
        }
        if let Life::ExpectRevoke {
            then: then @ Then::Campaign,
        } = &mut self.life
        {
            // Only a signal ends a `--restart` wrapper: do not campaign again.
            *then = Then::Exit(128 + sig);
            return;
        }
        if self.over() {
            return;
        }
        let hard = self.session.hard_deadline();
        if let AfterSignal::Withdraw(code) = self.run.on_signal(sig, now, hard, out) {
            self.resign(Then::Exit(code), now, out);
        }
    }
}
