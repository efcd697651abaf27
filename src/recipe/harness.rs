//! One harness for driving any machine in unit tests: a virtual clock that
//! never goes back, log lines split from what is done, and a drive that
//! fires the machine's own timers until it is quiet.

use std::time::Duration;

use super::hold::Common;
use crate::cli::Wait;
use crate::core::{Action, Input, Machine};

pub struct Harness<M> {
    pub m: M,
    pub now: Duration,
}

impl<M: Machine> Harness<M> {
    pub fn of(m: M) -> Harness<M> {
        Harness {
            m,
            now: Duration::ZERO,
        }
    }

    /// One input at `now`: the actions, and the log lines apart.
    pub fn step_logged(&mut self, input: Input, now: Duration) -> (Vec<Action>, Vec<String>) {
        assert!(now >= self.now, "the clock never goes back");
        self.now = now;
        let all = self.m.step(input, now);
        let logs = all
            .iter()
            .filter_map(|a| match a {
                Action::Log(_, m) => Some(m.clone()),
                _ => None,
            })
            .collect();
        let acts = all
            .into_iter()
            .filter(|a| !matches!(a, Action::Log(..)))
            .collect();
        (acts, logs)
    }

    /// One input at `now`; the actions without the log lines.
    pub fn step(&mut self, input: Input, now: Duration) -> Vec<Action> {
        self.step_logged(input, now).0
    }

    pub fn timer(&mut self, now: Duration) -> Vec<Action> {
        self.step(Input::Timer, now)
    }

    pub fn deadline(&self) -> Option<Duration> {
        self.m.deadline()
    }

    /// Fires every timer the machine asks for up to `until`, nothing else
    /// happening: all it did, in order.
    pub fn drive_until_quiet(&mut self, until: Duration) -> Vec<Action> {
        let mut acts = Vec::new();
        while let Some(at) = self.deadline().filter(|&d| d <= until) {
            let at = at.max(self.now);
            acts.extend(self.timer(at));
        }
        acts
    }
}

/// A hold's settings for tests: a 10 s lease, 3 s kill-after, no limit
/// on the wait, no `--restart`.
pub fn common(name: &str, argv: &[&str]) -> Common {
    Common {
        name: name.into(),
        ttl: Duration::from_secs(10),
        kill_after: Duration::from_secs(3),
        wait: Wait::Forever,
        restart: false,
        argv: argv.iter().map(|a| a.into()).collect(),
        host: "h1".into(),
        pid: 42,
        wall_offset_ms: 1_700_000_000_000,
        seed: 7,
    }
}
