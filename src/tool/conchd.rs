//! `conchd` (= `conch cron daemon`): runs every job's ticks, at most once
//! across the fleet.

use std::path::PathBuf;

use super::conchd_ops::Ops;
use super::connect::hold_with;
use super::host::{host_name, wall_offset_ms};
use crate::cli::Global;
use crate::keys::Schema;
use crate::recipe::cron::{Config, Cron};
use crate::runtime::notify::{self, Notifier};

pub fn run(
    global: &Global,
    node: Option<String>,
    metrics_file: Option<PathBuf>,
    label_output: bool,
    labels: Vec<(String, String)>,
) -> i32 {
    let host = host_name();
    let cfg = Config {
        schema: Schema::new(&global.prefix),
        node: node.unwrap_or_else(|| format!("{host}:{}", std::process::id())),
        host,
        pid: std::process::id(),
        ttl: global.ttl,
        kill_after: global.kill_after,
        wall_offset_ms: wall_offset_ms(),
        labels,
    };
    // A broken $NOTIFY_SOCKET must not keep jobs from running: say so, go on.
    let notifier = Notifier::from_env().unwrap_or_else(|e| {
        eprintln!("conch: {e}; not notifying systemd");
        None
    });
    let mut ops = Ops::new(
        Cron::new(cfg.clone()),
        cfg.node,
        cfg.wall_offset_ms,
        metrics_file.as_deref(),
        notifier,
        notify::watchdog_every(),
    );
    // Runs are background jobs: Ctrl-C at a terminal stops the daemon.
    crate::runtime::terminal::never_lend();
    hold_with(global, &mut ops, label_output)
}
