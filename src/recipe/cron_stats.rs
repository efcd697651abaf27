//! What one daemon saw since it started, for `conchd --metrics-file`: the
//! cron machine bumps these with one call where it claims, records a
//! result, loses its lease or reconnects. Counting is all this does; the
//! tool renders and writes them (no clock, no I/O here).

use std::collections::BTreeMap;

use crate::record::cron::Outcome;

/// One job, as this daemon saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobStats {
    /// Claim transactions sent (first attempts and retries).
    pub claim_attempts: u64,
    /// Ticks this daemon won and started.
    pub claims_won: u64,
    /// Runs this daemon recorded, by the status word of `cron ls` (`ok`,
    /// `failed(2)`, `killed(TERM)`, `timeout`, `skipped`).
    pub runs: BTreeMap<String, u64>,
    /// Unix ms of the end of the latest `ok` run this daemon recorded.
    pub last_success_ms: Option<u64>,
    /// The status word of the latest run this daemon recorded.
    pub last_status: Option<String>,
    /// How late (ms after its tick) the latest run this daemon started began.
    pub last_lateness_ms: Option<i64>,
    /// Sum of the lateness of every run this daemon started, in ms.
    pub lateness_ms_sum: u64,
}

impl JobStats {
    /// Runs that did not end `ok` (skips are not failures).
    pub fn failures(&self) -> u64 {
        self.runs
            .iter()
            .filter(|(s, _)| *s != "ok" && *s != "skipped")
            .map(|(_, n)| n)
            .sum()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub jobs: BTreeMap<String, JobStats>,
    pub lease_losses: u64,
    pub reconnects: u64,
    /// Bumped by every change, so a writer can tell whether anything is new.
    pub version: u64,
}

impl Stats {
    fn job(&mut self, name: &str) -> &mut JobStats {
        self.version += 1;
        self.jobs.entry(name.to_string()).or_default()
    }

    pub fn claim_attempt(&mut self, name: &str) {
        self.job(name).claim_attempts += 1;
    }

    /// A tick of `name` was won and its run starts `late_ms` after the tick.
    pub fn started(&mut self, name: &str, late_ms: i64) {
        let j = self.job(name);
        j.claims_won += 1;
        j.last_lateness_ms = Some(late_ms);
        j.lateness_ms_sum = j
            .lateness_ms_sum
            .saturating_add(u64::try_from(late_ms).unwrap_or(0));
    }

    /// This daemon recorded `outcome` for a tick of `name` at `end_ms`.
    pub fn recorded(&mut self, name: &str, outcome: Outcome, end_ms: i64) {
        let j = self.job(name);
        let label = outcome.label();
        *j.runs.entry(label.clone()).or_default() += 1;
        if outcome == Outcome::Ok {
            j.last_success_ms = u64::try_from(end_ms).ok();
        }
        j.last_status = Some(label);
    }

    pub fn lease_lost(&mut self) {
        self.version += 1;
        self.lease_losses += 1;
    }

    pub fn reconnected(&mut self) {
        self.version += 1;
        self.reconnects += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_status_and_keeps_the_last_success() {
        let mut s = Stats::default();
        s.claim_attempt("a");
        s.claim_attempt("a");
        s.started("a", 120);
        s.recorded("a", Outcome::Ok, 5_000);
        s.started("a", 80);
        s.recorded("a", Outcome::Failed(2), 9_000);
        s.recorded("a", Outcome::Skipped, 9_500);
        let a = &s.jobs["a"];
        assert_eq!(a.claim_attempts, 2);
        assert_eq!(a.claims_won, 2);
        assert_eq!(a.runs["ok"], 1);
        assert_eq!(a.runs["failed(2)"], 1);
        assert_eq!(a.failures(), 1);
        assert_eq!(a.last_success_ms, Some(5_000));
        assert_eq!(a.last_status.as_deref(), Some("skipped"));
        assert_eq!(a.last_lateness_ms, Some(80));
        assert_eq!(a.lateness_ms_sum, 200);
        let v = s.version;
        s.lease_lost();
        s.reconnected();
        assert_eq!((s.lease_losses, s.reconnects, s.version), (1, 1, v + 2));
    }
}
