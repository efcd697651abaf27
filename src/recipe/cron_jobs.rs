//! Jobs and their ticks: definitions read once and then watched, so adds,
//! replaces and removes take effect at once; and at each tick, the claims
//! of every tick that is due, unless its grace ran out.

use super::*;

impl Cron {
    /// Adds or replaces a job from its stored value; the next tick is the
    /// first strictly after `now`, so nothing due before is caught up.
    pub(super) fn upsert(&mut self, kv: &KeyValue, now: Duration, out: &mut Vec<Action>) {
        let Some(name) = Schema::leaf(&self.cfg.schema.cron_job_dir(), &kv.key)
            .and_then(|seg| crate::keys::decode_name(seg).ok())
        else {
            return;
        };
        if self
            .jobs
            .get(&name)
            .is_some_and(|j| j.mod_rev == kv.mod_revision)
        {
            return;
        }
        let parsed = Job::from_json(&kv.value).and_then(|job| {
            let schedule = Schedule::parse(&job.schedule).map_err(|e| e.to_string())?;
            let zone = Zone::parse(&job.tz).map_err(|e| e.to_string())?;
            Ok((job, schedule, zone))
        });
        match parsed {
            Ok((job, schedule, zone)) => {
                let now_s = self.seen_s(now);
                let next = next_tick(&schedule, &zone, now_s);
                Self::log(
                    out,
                    Level::Debug,
                    format!(
                        "job {name}: {} ({}), next tick {}",
                        job.schedule,
                        job.tz,
                        next.map_or("never".into(), fmt_rfc3339_utc)
                    ),
                );
                self.jobs.insert(
                    name.clone(),
                    JobState {
                        job,
                        mod_rev: kv.mod_revision,
                        schedule,
                        zone,
                        next,
                    },
                );
                self.retry_manual_of(&name, now, out);
            }
            Err(why) => {
                Self::log(
                    out,
                    Level::Error,
                    format!("job {name} skipped: invalid definition: {why}"),
                );
                self.jobs.remove(&name);
            }
        }
    }

    pub(super) fn on_jobs(
        &mut self,
        kvs: &[KeyValue],
        revision: i64,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let dir = self.cfg.schema.cron_job_dir();
        let live: Vec<String> = kvs
            .iter()
            .filter_map(|kv| {
                Schema::leaf(&dir, &kv.key).and_then(|s| crate::keys::decode_name(s).ok())
            })
            .collect();
        self.jobs.retain(|name, _| live.contains(name));
        for kv in kvs {
            self.upsert(kv, now, out);
        }
        out.push(Action::Watch(
            WATCH_JOBS,
            WatchSpec::prefix(dir).from_revision(revision + 1),
        ));
    }

    /// Whether this daemon claims anything of the job: nothing of a
    /// suspended one (its ticks pass unclaimed and are never replayed), and
    /// nothing of one placed on daemons whose labels it lacks: scheduled,
    /// catch-up and manual claims alike.
    pub(super) fn claimable(labels: &[(String, String)], js: &JobState) -> bool {
        !js.job.suspended && js.job.placement.iter().all(|p| labels.contains(p))
    }

    /// Claims every tick that is due, skipping those whose grace ran out.
    pub(super) fn due(&mut self, now: Duration, out: &mut Vec<Action>) {
        if self.state != State::Serving || self.shutting_down.is_some() {
            return;
        }
        let now_ms = self.wall_ms(now);
        self.seen_s(now);
        let names: Vec<String> = self.jobs.keys().cloned().collect();
        for name in names {
            while let Some(js) = self.jobs.get(&name) {
                let Some(tick) = js.next.filter(|t| t * 1000 <= now_ms) else {
                    break;
                };
                let following = next_tick(&js.schedule, &js.zone, tick);
                let grace = following.map_or(MAX_GRACE_SECS, |f| (f - tick).min(MAX_GRACE_SECS));
                if !Self::claimable(&self.cfg.labels, js) {
                    Self::log(
                        out,
                        Level::Debug,
                        format!(
                            "job {name}: tick {} not claimed: {}",
                            fmt_rfc3339_utc(tick),
                            if js.job.suspended {
                                "suspended"
                            } else {
                                "placed elsewhere"
                            }
                        ),
                    );
                } else {
                    // Whether it is this daemon's turn, or too late for one.
                    let p = Pending::new(name.clone(), js.clone(), tick, grace);
                    self.claim_in_turn(p, now, out);
                }
                if let Some(js) = self.jobs.get_mut(&name) {
                    js.next = following;
                }
            }
        }
    }

    /// An event on the job watch; anything but events or progress (a
    /// cancel, a compaction) means reading every job again.
    pub(super) fn on_watch(
        &mut self,
        r: Result<WatchEvent, Error>,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        match r {
            Ok(WatchEvent::Events { events, .. }) => {
                for e in events {
                    match e.kind {
                        EventKind::Put => self.upsert(&e.kv, now, out),
                        EventKind::Delete => {
                            let dir = self.cfg.schema.cron_job_dir();
                            if let Some(name) = Schema::leaf(&dir, &e.kv.key)
                                .and_then(|s| crate::keys::decode_name(s).ok())
                            {
                                if self.jobs.remove(&name).is_some() {
                                    Self::log(out, Level::Info, format!("job {name} removed"));
                                }
                            }
                        }
                    }
                }
            }
            Ok(WatchEvent::Progress { .. }) => {}
            Ok(_) => out.push(Action::Range(
                JOBS,
                Range::prefix(self.cfg.schema.cron_job_dir()),
            )),
            Err(e) => self.session.start_reconnect(&e, now, out),
        }
    }
}
