//! Time in the cron daemon: what is due when a timer fires, when the
//! daemon must wake next, and by when any single call must end.

use super::*;

impl Cron {
    pub(super) fn on_time(&mut self, now: Duration, out: &mut Vec<Action>) {
        if matches!(self.state, State::ExpectRevoke | State::Done) {
            return;
        }
        if let Some(why) = self.session.on_time(now, out) {
            self.on_lease_lost(&why.0, now, out);
        }
        for run in self.runs.values_mut() {
            if run.timeout_at.is_some_and(|t| now >= t) && run.child.is_running() {
                run.timed_out = true;
                run.timeout_at = None;
                out.push(Action::Log(
                    Level::Info,
                    format!(
                        "job {}: tick {} timed out; stopping",
                        run.name,
                        fmt_rfc3339_utc(run.tick)
                    ),
                ));
                run.child.stop(15, now, None, out);
            }
            run.child.on_time(now, out);
        }
        self.flush_finishes(now, out);
        self.retry_results(now, out);
        self.retry_grant(now, out);
        self.retry_claims(now, out);
        self.due(now, out);
        self.staggered_due(now, out);
        self.refresh_turns();
    }

    /// When the daemon must next wake: its lease, its runs, retries, its
    /// turns at ticks.
    pub(super) fn wake_at(&self) -> Option<Duration> {
        if matches!(self.state, State::ExpectRevoke | State::Done) {
            return None;
        }
        let mut d: Vec<Duration> = Vec::new();
        d.extend(self.session.deadline());
        for run in self.runs.values() {
            d.extend(run.child.deadline());
            if run.child.is_running() {
                d.extend(run.timeout_at);
            }
        }
        d.extend(self.unrecorded.iter().map(|(at, _)| *at));
        d.extend(self.ended_since.map(|t| t + FINISH_HOLD));
        d.extend(self.retries.iter().map(|(at, _)| *at));
        d.extend(self.grant_at);
        if self.state == State::Serving && self.shutting_down.is_none() {
            for (name, js) in &self.jobs {
                if let Some(at) = js.next.and_then(|t| self.wake_for(name, js, t)) {
                    let boot_ms = (at - self.cfg.wall_offset_ms).max(0);
                    d.push(Duration::from_millis(boot_ms as u64));
                }
            }
            for at in self.staggered_at() {
                let boot_ms = (at - self.cfg.wall_offset_ms).max(0);
                d.push(Duration::from_millis(boot_ms as u64));
            }
        }
        d.into_iter().min()
    }

    /// No single request may hold the loop past what the daemon must do
    /// next: stop or kill a run, renew or re-register its lease, claim a
    /// tick inside its grace. The first attempt of a claim gets half its
    /// grace, so that a retry on another member still fits.
    pub(super) fn calls_end_by(&self) -> Option<Duration> {
        if matches!(self.state, State::ExpectRevoke | State::Done) {
            return None;
        }
        let mut d: Vec<Duration> = Vec::new();
        d.extend(self.session.stop_at());
        for run in self.runs.values() {
            d.extend(run.child.deadline());
            if run.child.is_running() {
                d.extend(run.timeout_at);
            }
        }
        let boot =
            |wall_ms: i64| Duration::from_millis((wall_ms - self.cfg.wall_offset_ms).max(0) as u64);
        // A claim whose bound has passed gains nothing from cutting calls
        // short; the bound of each later tick still holds.
        let claims = self
            .claims
            .iter()
            .flatten()
            .chain(self.retries.iter().map(|(_, p)| p));
        let ahead = claims.filter_map(|p| p.act_by_ms(self.seen_ms));
        d.extend(ahead.filter(|at| *at > self.seen_ms).map(boot));
        // Only a serving daemon claims: without a lease the next ticks stand
        // still, and a bound left in the past would give every call, the
        // grant that would bring the daemon back included, no time at all.
        if self.shutting_down.is_none() && self.state == State::Serving {
            // Half the shortest grace (1 s) after this daemon's next turn
            // at each job.
            let turns = self
                .jobs
                .iter()
                .filter_map(|(name, js)| self.wake_for(name, js, js.next?));
            d.extend(turns.map(|at| boot(at + 500)));
            // A backup's turn comes at its instant: a call that ran past it
            // would spend the stagger the fleet allows a dead first rank.
            d.extend(self.staggered_at().map(boot));
        }
        // An instant already due is acted on at the next timer; the calls of
        // this step still get a moment rather than none. Runs are not
        // self-fenced, so no safety rests on a tighter bound.
        d.into_iter()
            .min()
            .map(|b| b.max(self.stepped_at + CALL_FLOOR))
    }
}
