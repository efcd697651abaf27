//! `conchd --metrics-file PATH`: the daemon's counters in the Prometheus
//! text exposition format, written whole to `PATH.tmp` and renamed over
//! PATH (node_exporter's textfile convention), so a reader never sees half
//! a file.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::recipe::cron::stats::Stats;

/// What the file says about the daemon itself.
pub struct Daemon<'a> {
    pub node: &'a str,
    pub serving: bool,
    pub runs_in_progress: usize,
    /// Unix ms.
    pub started_ms: i64,
}

/// A label value, escaped as the exposition format wants.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn secs(ms: i64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

struct Doc(String);

impl Doc {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
    fn line(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", esc(v)))
            .collect();
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", labels.join(","))
        };
        let _ = writeln!(self.0, "{name}{labels} {value}");
    }
}

/// The whole file. Counters count since this daemon started, and only
/// what this daemon did: a fleet's totals are the sum over its daemons.
pub fn render(s: &Stats, d: &Daemon) -> String {
    let mut doc = Doc(String::new());
    doc.head(
        "conch_cron_daemon_info",
        "gauge",
        "Always 1; the node ID this daemon registered as.",
    );
    doc.line("conch_cron_daemon_info", &[("node", d.node)], 1);
    doc.head(
        "conch_cron_daemon_start_time_seconds",
        "gauge",
        "When this daemon started (unix seconds); every counter counts since then.",
    );
    doc.line(
        "conch_cron_daemon_start_time_seconds",
        &[],
        secs(d.started_ms),
    );
    doc.head(
        "conch_cron_serving",
        "gauge",
        "1 while this daemon is registered on a lease etcd confirms, else 0.",
    );
    doc.line("conch_cron_serving", &[], u8::from(d.serving));
    doc.head(
        "conch_cron_runs_in_progress",
        "gauge",
        "Runs this daemon started that have not ended.",
    );
    doc.line("conch_cron_runs_in_progress", &[], d.runs_in_progress);
    doc.head(
        "conch_cron_lease_losses_total",
        "counter",
        "Times this daemon lost its lease since it started.",
    );
    doc.line("conch_cron_lease_losses_total", &[], s.lease_losses);
    doc.head(
        "conch_cron_reconnects_total",
        "counter",
        "Times this daemon failed over to an etcd endpoint since it started.",
    );
    doc.line("conch_cron_reconnects_total", &[], s.reconnects);

    let jobs = &s.jobs;
    doc.head(
        "conch_cron_claim_attempts_total",
        "counter",
        "Claim transactions this daemon sent for the job since it started.",
    );
    for (job, j) in jobs {
        doc.line(
            "conch_cron_claim_attempts_total",
            &[("job", job)],
            j.claim_attempts,
        );
    }
    doc.head(
        "conch_cron_claims_won_total",
        "counter",
        "Ticks of the job this daemon claimed and started since it started.",
    );
    for (job, j) in jobs {
        doc.line("conch_cron_claims_won_total", &[("job", job)], j.claims_won);
    }
    doc.head(
        "conch_cron_runs_total",
        "counter",
        "Results of the job this daemon recorded since it started, by status as cron ls shows it.",
    );
    for (job, j) in jobs {
        for (status, n) in &j.runs {
            doc.line(
                "conch_cron_runs_total",
                &[("job", job), ("status", status)],
                n,
            );
        }
    }
    doc.head(
        "conch_cron_failures_total",
        "counter",
        "Results of the job this daemon recorded since it started that were neither ok nor skipped.",
    );
    for (job, j) in jobs {
        doc.line("conch_cron_failures_total", &[("job", job)], j.failures());
    }
    doc.head(
        "conch_cron_last_status",
        "gauge",
        "1 for the status of the latest result of the job this daemon recorded.",
    );
    for (job, j) in jobs {
        if let Some(st) = &j.last_status {
            doc.line("conch_cron_last_status", &[("job", job), ("status", st)], 1);
        }
    }
    doc.head(
        "conch_cron_last_success_timestamp_seconds",
        "gauge",
        "End (unix seconds) of the latest ok run of the job that this daemon ran and recorded.",
    );
    for (job, j) in jobs {
        if let Some(ms) = j.last_success_ms {
            let ms = i64::try_from(ms).unwrap_or(i64::MAX);
            doc.line(
                "conch_cron_last_success_timestamp_seconds",
                &[("job", job)],
                secs(ms),
            );
        }
    }
    doc.head(
        "conch_cron_last_lateness_seconds",
        "gauge",
        "How long after its tick the latest run of the job this daemon started began.",
    );
    for (job, j) in jobs {
        if let Some(ms) = j.last_lateness_ms {
            doc.line(
                "conch_cron_last_lateness_seconds",
                &[("job", job)],
                secs(ms),
            );
        }
    }
    doc.head(
        "conch_cron_lateness_seconds_sum",
        "counter",
        "Sum of the lateness of the runs of the job this daemon started (divide by claims won).",
    );
    for (job, j) in jobs {
        let sum = i64::try_from(j.lateness_ms_sum).unwrap_or(i64::MAX);
        doc.line(
            "conch_cron_lateness_seconds_sum",
            &[("job", job)],
            secs(sum),
        );
    }
    doc.0
}

/// Where the file goes, and the name it is written under first.
pub struct MetricsFile {
    path: PathBuf,
    tmp: PathBuf,
}

impl MetricsFile {
    pub fn new(path: &Path) -> MetricsFile {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        MetricsFile {
            path: path.to_path_buf(),
            tmp: PathBuf::from(tmp),
        }
    }

    /// Replaces the file with `text` in one rename. Not fsynced: the file
    /// is rewritten every few seconds, and a crash loses nothing a
    /// restarted daemon would not reset anyway.
    pub fn write(&self, text: &str) -> std::io::Result<()> {
        let mut f = std::fs::File::create(&self.tmp)?;
        f.write_all(text.as_bytes())?;
        drop(f);
        std::fs::rename(&self.tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::cron::Outcome;

    #[test]
    fn every_sample_has_its_help_and_type_and_labels_are_escaped() {
        let mut s = Stats::default();
        s.claim_attempt("a\"b");
        s.started("a\"b", 250);
        s.recorded("a\"b", Outcome::Failed(3), 2_000);
        let d = Daemon {
            node: "n1",
            serving: true,
            runs_in_progress: 0,
            started_ms: 1_000,
        };
        let text = render(&s, &d);
        assert!(text.contains("conch_cron_runs_total{job=\"a\\\"b\",status=\"failed(3)\"} 1"));
        assert!(text.contains("conch_cron_last_lateness_seconds{job=\"a\\\"b\"} 0.250"));
        let mut typed = std::collections::BTreeSet::new();
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().unwrap_or("").to_string());
            } else if !l.starts_with('#') {
                let name = l.split(['{', ' ']).next().unwrap_or("");
                assert!(typed.contains(name), "{name} has no TYPE before it");
            }
        }
    }
}
