//! The failure hook (`--on-failure CMD...`): run once, by the daemon that
//! ran the tick, after it recorded the tick `failed`, `killed` or
//! `timeout`. It is a child like a run (its own process group, the keeper,
//! stopped with the daemon) but has no run marker and no result: its end
//! is logged, and it is never run again, whatever its status.

use super::*;

impl Cron {
    /// Starts the hook of a run that ended with `outcome`, if it has one
    /// and the outcome calls for it.
    pub(super) fn start_hook(
        &mut self,
        run: &Run,
        outcome: Outcome,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        if run.hook || run.on_failure.is_empty() {
            return;
        }
        let (status, exit, signal) = match outcome {
            Outcome::Failed(n) => ("failed", Some(n), None),
            Outcome::Killed(s) => ("killed", None, Some(s)),
            Outcome::Timeout => ("timeout", None, None),
            // Zombies are found by a survivor, not by the runner itself.
            Outcome::Ok | Outcome::Skipped | Outcome::Zombie => return,
        };
        let (name, when) = (run.name.clone(), fmt_rfc3339_utc(run.tick));
        if self.shutting_down.is_some() {
            Self::log(
                out,
                Level::Info,
                format!("job {name}: not running the failure hook of tick {when}: stopping"),
            );
            return;
        }
        let mut env = vec![
            ("CONCH_JOB".to_string(), name.clone()),
            ("CONCH_TICK".into(), when),
            ("CONCH_STATUS".into(), status.into()),
            ("CONCH_NODE".into(), self.cfg.node.clone()),
        ];
        env.extend(exit.map(|e| ("CONCH_EXIT".to_string(), e.to_string())));
        env.extend(signal.map(|s| ("CONCH_SIGNAL".to_string(), s.to_string())));
        let kill_after = run.child.kill_after();
        self.launch_hook(&name, run.tick, &run.on_failure, kill_after, env, now, out);
    }

    /// The hook of a tick found `zombie` by this daemon: its runner is gone,
    /// so the finder runs it, with the runner's node in `CONCH_NODE`.
    pub(super) fn start_zombie_hook(
        &mut self,
        name: &str,
        tick: i64,
        dead: &str,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let Some(js) = self.jobs.get(name) else {
            return;
        };
        if js.job.on_failure.is_empty() || self.shutting_down.is_some() {
            return;
        }
        let argv = js.job.on_failure.clone();
        let kill_after = Duration::from_millis(js.job.kill_after_ms);
        let env = vec![
            ("CONCH_JOB".to_string(), name.to_string()),
            ("CONCH_TICK".into(), fmt_rfc3339_utc(tick)),
            ("CONCH_STATUS".into(), "zombie".into()),
            ("CONCH_NODE".into(), dead.to_string()),
        ];
        self.launch_hook(name, tick, &argv, kill_after, env, now, out);
    }

    #[allow(clippy::too_many_arguments)]
    fn launch_hook(
        &mut self,
        name: &str,
        tick: i64,
        argv: &[String],
        kill_after: Duration,
        env: Vec<(String, String)>,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let when = fmt_rfc3339_utc(tick);
        let Some(tag) = self.free_tag() else {
            Self::log(
                out,
                Level::Error,
                format!("job {name}: too many concurrent runs for the failure hook of tick {when}"),
            );
            return;
        };
        Self::log(
            out,
            Level::Info,
            format!("job {name}: running the failure hook of tick {when}"),
        );
        let mut child = Supervisor::with_tag(tag, kill_after);
        let argv = argv.iter().map(Into::into).collect();
        child.spawn(SpawnSpec { argv, env }, now, out);
        self.runs.insert(
            tag,
            Run {
                name: name.to_string(),
                tick,
                start_ms: self.wall_ms(now),
                keep: 0,
                child,
                timeout_at: None,
                timed_out: false,
                on_failure: Vec::new(),
                hook: true,
            },
        );
    }

    /// A hook ended: said in the log, and that is all.
    pub(super) fn hook_ended(&mut self, run: &Run, ended: &Ended, out: &mut Vec<Action>) {
        let how = match ended.status {
            ChildStatus::Exited(0) => "exited 0".to_string(),
            ChildStatus::Exited(n) => format!("failed with exit {n}; not retried"),
            ChildStatus::Signaled(s) => format!(
                "killed by SIG{}; not retried",
                crate::record::cron::signal_name(s)
            ),
        };
        let level = match ended.status {
            ChildStatus::Exited(0) => Level::Info,
            _ => Level::Error,
        };
        Self::log(
            out,
            level,
            format!(
                "job {}: failure hook of tick {} {how}",
                run.name,
                fmt_rfc3339_utc(run.tick)
            ),
        );
        self.maybe_exit(out);
    }
}
