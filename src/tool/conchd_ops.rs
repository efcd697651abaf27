//! What conchd tells the host about itself, beside running jobs: the
//! metrics file and systemd's notification socket. A thin machine around
//! the cron machine: every input goes to it unchanged; after each step this
//! looks at what the daemon counted and whether it serves, and writes or
//! sends. The cron machine stays free of I/O; this is the tool's side.

use std::path::Path;
use std::time::Duration;

use super::metrics::{self, MetricsFile};
use crate::kit::machine::{Action, Input, Level, Machine};
use crate::kit::signal;
use crate::recipe::cron::Cron;
use crate::runtime::notify::Notifier;

/// How often the metrics file is rewritten when nothing changed, so that
/// its age (node_exporter's `node_textfile_mtime_seconds`) shows a daemon
/// that stopped.
const METRICS_EVERY: Duration = Duration::from_secs(5);
/// The least time between two writes when counters change quickly.
const METRICS_SOON: Duration = Duration::from_secs(1);

struct Metrics {
    file: MetricsFile,
    /// What the file last said: (stats version, serving, runs in progress).
    written: Option<(u64, bool, usize)>,
    written_at: Option<Duration>,
    failing: bool,
}

pub struct Ops {
    cron: Cron,
    node: String,
    wall_offset_ms: i64,
    started_ms: i64,
    metrics: Option<Metrics>,
    notify: Option<Notifier>,
    /// Half of systemd's watchdog interval, and when to ping next.
    watchdog: Option<(Duration, Duration)>,
    ready_sent: bool,
    stopping_sent: bool,
    was_serving: bool,
    notify_failing: bool,
}

impl Ops {
    pub fn new(
        cron: Cron,
        node: String,
        wall_offset_ms: i64,
        metrics_file: Option<&Path>,
        notify: Option<Notifier>,
        watchdog: Option<Duration>,
    ) -> Ops {
        Ops {
            cron,
            node,
            wall_offset_ms,
            started_ms: 0,
            metrics: metrics_file.map(|p| Metrics {
                file: MetricsFile::new(p),
                written: None,
                written_at: None,
                failing: false,
            }),
            watchdog: notify.as_ref().and(watchdog).map(|w| (w, Duration::ZERO)),
            notify,
            ready_sent: false,
            stopping_sent: false,
            was_serving: false,
            notify_failing: false,
        }
    }

    fn send(&mut self, msg: &str, out: &mut Vec<Action>) {
        let Some(n) = &self.notify else { return };
        match n.send(msg) {
            Ok(()) => self.notify_failing = false,
            Err(e) if !self.notify_failing => {
                self.notify_failing = true;
                out.push(Action::Log(
                    Level::Error,
                    format!("cannot notify systemd: {e}"),
                ));
            }
            Err(_) => {}
        }
    }

    fn metrics_due(&self, now: Duration) -> Option<Duration> {
        let m = self.metrics.as_ref()?;
        let Some(at) = m.written_at else {
            return Some(now);
        };
        let sig = (
            self.cron.stats().version,
            self.cron.serving(),
            self.cron.runs_in_progress(),
        );
        Some(if m.written == Some(sig) {
            at + METRICS_EVERY
        } else {
            at + METRICS_SOON
        })
    }

    fn write_metrics(&mut self, now: Duration, out: &mut Vec<Action>) {
        let sig = (
            self.cron.stats().version,
            self.cron.serving(),
            self.cron.runs_in_progress(),
        );
        let text = metrics::render(
            self.cron.stats(),
            &metrics::Daemon {
                node: &self.node,
                serving: sig.1,
                runs_in_progress: sig.2,
                started_ms: self.started_ms,
            },
        );
        let Some(m) = self.metrics.as_mut() else {
            return;
        };
        m.written_at = Some(now);
        match m.file.write(&text) {
            Ok(()) => {
                m.written = Some(sig);
                if std::mem::replace(&mut m.failing, false) {
                    out.push(Action::Log(
                        Level::Info,
                        "metrics file written again".into(),
                    ));
                }
            }
            Err(e) => {
                if !std::mem::replace(&mut m.failing, true) {
                    out.push(Action::Log(
                        Level::Error,
                        format!("cannot write the metrics file: {e}; trying again"),
                    ));
                }
            }
        }
    }

    /// Everything this tool does after the cron machine stepped. Its own
    /// lines go before an `Exit`, which must stay last.
    fn after(&mut self, now: Duration, exiting: bool) -> Vec<Action> {
        let mut out = Vec::new();
        let serving = self.cron.serving();
        if serving != self.was_serving {
            self.was_serving = serving;
            let msg = match (serving, self.ready_sent) {
                (true, false) => "READY=1\nSTATUS=serving",
                (true, true) => "STATUS=serving",
                (false, _) => "STATUS=no lease; registering again",
            };
            self.ready_sent |= serving;
            if !self.stopping_sent {
                self.send(msg, &mut out);
            }
        }
        // The watchdog follows the event loop, not etcd: see the README.
        if let Some((every, next)) = self.watchdog {
            if now >= next {
                self.watchdog = Some((every, now + every));
                self.send("WATCHDOG=1", &mut out);
            }
        }
        if exiting || self.metrics_due(now).is_some_and(|at| now >= at) {
            self.write_metrics(now, &mut out);
        }
        out
    }
}

impl Machine for Ops {
    fn step(&mut self, input: Input, now: Duration) -> Vec<Action> {
        let mut pre = Vec::new();
        match input {
            Input::Start => self.started_ms = now.as_millis() as i64 + self.wall_offset_ms,
            Input::Signal(sig) if signal::is_fatal(sig) && !self.stopping_sent => {
                self.stopping_sent = true;
                self.send("STOPPING=1", &mut pre);
            }
            _ => {}
        }
        let mut out = self.cron.step(input, now);
        let exit = out
            .iter()
            .position(|a| matches!(a, Action::Exit(_)))
            .map(|i| out.remove(i));
        out.splice(0..0, pre);
        out.extend(self.after(now, exit.is_some()));
        out.extend(exit);
        out
    }

    fn deadline(&self) -> Option<Duration> {
        let own = [
            self.watchdog.map(|(_, next)| next),
            self.metrics_due(self.cron_stepped()),
        ];
        self.cron
            .deadline()
            .into_iter()
            .chain(own.into_iter().flatten())
            .min()
    }

    fn must_act_by(&self) -> Option<Duration> {
        self.cron.must_act_by()
    }
}

impl Ops {
    /// Writes are scheduled from the last write, not from now: an unknown
    /// "now" here only matters before the first write, which is due at once.
    fn cron_stepped(&self) -> Duration {
        self.metrics
            .as_ref()
            .and_then(|m| m.written_at)
            .unwrap_or(Duration::ZERO)
    }
}
