//! How the daemon stops: on SIGTERM or SIGINT, or when etcd refuses it
//! for good; it claims nothing more, stops its runs, records their
//! results, and only then revokes its lease and exits.

use super::*;

impl Cron {
    pub(super) fn on_signal(&mut self, sig: i32, now: Duration, out: &mut Vec<Action>) {
        if !signal::is_fatal(sig) {
            for run in self.runs.values_mut() {
                if run.child.is_running() {
                    out.push(Action::SignalChild(run.child.tag(), sig));
                }
            }
            return;
        }
        if self.shutting_down.is_none() {
            Self::log(
                out,
                Level::Info,
                format!(
                    "signal {sig}: claiming nothing more; stopping {} run(s)",
                    self.runs.len()
                ),
            );
        }
        self.shutting_down = Some(sig);
        self.stop_runs(sig, now, out);
    }

    pub(super) fn stop_runs(&mut self, sig: i32, now: Duration, out: &mut Vec<Action>) {
        for run in self.runs.values_mut() {
            // The daemon's own --kill-after bounds the grace of a shutdown.
            run.child
                .stop(sig, now, Some(now + self.cfg.kill_after), out);
        }
        self.maybe_exit(out);
    }

    /// etcd refused us for good (permissions, credentials): retrying would
    /// only spin. Stop like on SIGTERM, then exit 69.
    pub(super) fn refused(&mut self, e: &Error, now: Duration, out: &mut Vec<Action>) {
        Self::log(
            out,
            Level::Error,
            format!("etcd refused the daemon: {e}; stopping"),
        );
        self.exit_code = crate::kit::exit::EXIT_UNAVAILABLE;
        self.shutting_down.get_or_insert(15);
        self.stop_runs(15, now, out);
    }

    pub(super) fn on_read_error(&mut self, e: &Error, now: Duration, out: &mut Vec<Action>) {
        if e.is_unavailable() {
            self.session.start_reconnect(e, now, out);
        } else {
            self.refused(e, now, out);
        }
    }

    pub(super) fn maybe_exit(&mut self, out: &mut Vec<Action>) {
        if self.shutting_down.is_none()
            || !self.runs.is_empty()
            || !self.finishes.is_empty()
            || !self.ended.is_empty()
            || !self.unrecorded.is_empty()
        {
            return;
        }
        if matches!(self.state, State::ExpectRevoke | State::Done) {
            return;
        }
        out.push(Action::Unwatch(WATCH_JOBS));
        out.push(Action::Unwatch(WATCH_MANUAL));
        out.push(Action::Unwatch(WATCH_NODES));
        if self.session.revoke(out) {
            self.state = State::ExpectRevoke;
        } else {
            self.state = State::Done;
            out.push(Action::Exit(self.exit_code));
        }
    }
}
