//! Catch-up (`--catch-up D`), the one exception to "a daemon never claims a
//! tick due before it started": at every registration (a start, or etcd
//! back after the lease was lost) a daemon claims the job's most recent
//! tick, once, if it is no older than D, not before the job was added nor
//! before its last suspend or resume. Only the most recent: if that one was
//! claimed, the fleet was up and older ticks stay `missed`; a tick is never
//! replayed. The claim is the create-only one of every tick, so a fleet
//! starting at once runs it at most once.

use super::*;

impl Cron {
    pub(super) fn catch_up(&mut self, now: Duration, out: &mut Vec<Action>) {
        if self.state != State::Serving || self.shutting_down.is_some() {
            return;
        }
        let now_ms = self.wall_ms(now);
        let due: Vec<(String, i64)> = self
            .jobs
            .iter()
            .filter(|(_, js)| Self::claimable(&self.cfg.labels, js))
            .filter_map(|(name, js)| {
                let tick = catch_up_tick(js, now_ms)?;
                // A tick its schedule still brings is claimed as such.
                let scheduled = js.next.is_some_and(|n| tick >= n);
                (!scheduled && !self.claiming(name, tick)).then(|| (name.clone(), tick))
            })
            .collect();
        for (name, tick) in due {
            let Some(js) = self.jobs.get(&name) else {
                continue;
            };
            Self::log(
                out,
                Level::Info,
                format!(
                    "job {name}: catching up on tick {} if nobody claimed it",
                    fmt_rfc3339_utc(tick)
                ),
            );
            let p = self.unscheduled(&name, js, tick, Cause::CatchUp, now);
            self.send_claim(p, now, out);
        }
    }
}

/// The most recent tick at or before `now_ms` inside the job's catch-up
/// window, if it has one: found by bisection, since a window may hold
/// many ticks (`@every 1s` over a day).
pub(super) fn catch_up_tick(js: &JobState, now_ms: i64) -> Option<i64> {
    let window = i64::try_from(js.job.catch_up_ms?).unwrap_or(i64::MAX);
    let added = i64::try_from(js.job.added_at_ms).unwrap_or(i64::MAX);
    let paused = js
        .job
        .paused_at_ms
        .map_or(0, |p| i64::try_from(p).unwrap_or(i64::MAX));
    let floor_ms = now_ms.saturating_sub(window).max(added).max(paused);
    // Ticks are whole seconds: the first one at or after the floor.
    let floor_s = floor_ms.div_euclid(1000) + i64::from(floor_ms.rem_euclid(1000) != 0);
    let now_s = now_ms.div_euclid(1000);
    let next = |after: i64| next_tick(&js.schedule, &js.zone, after);
    let first = next(floor_s.checked_sub(1)?)?;
    if first > now_s {
        return None;
    }
    // next(lo) <= now_s < next(hi); next is non-decreasing.
    let (mut lo, mut hi) = (floor_s - 1, now_s);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if next(mid).is_some_and(|t| t <= now_s) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    next(lo)
}
