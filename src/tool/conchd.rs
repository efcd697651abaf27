//! `conchd` (= `conch cron daemon`): runs every job's ticks, at most once
//! across the fleet.

use super::connect::hold;
use super::host::{host_name, wall_offset_ms};
use crate::cli::Global;
use crate::keys::Schema;
use crate::recipe::cron::{Config, Cron};

pub fn run(global: &Global, node: Option<String>, labels: Vec<(String, String)>) -> i32 {
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
    // Runs are background jobs: Ctrl-C at a terminal stops the daemon.
    crate::runtime::terminal::never_lend();
    hold(global, &mut Cron::new(cfg))
}
