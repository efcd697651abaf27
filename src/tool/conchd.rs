//! `conchd` (= `conch cron daemon`): runs every job's ticks, at most once
//! across the fleet.

use super::{connect, host_name, wall_offset_ms};
use crate::cli::Global;
use crate::core::driver::Driver;
use crate::keys::Schema;
use crate::recipe::cron::{Config, Cron};

pub fn run(global: &Global, node: Option<String>) -> i32 {
    let client = match connect(global) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let host = host_name();
    let cfg = Config {
        schema: Schema::new(&global.prefix),
        node: node.unwrap_or_else(|| format!("{host}:{}", std::process::id())),
        host,
        pid: std::process::id(),
        ttl: global.ttl,
        kill_after: global.kill_after,
        wall_offset_ms: wall_offset_ms(),
    };
    match Driver::new(client, global.verbosity) {
        Ok(mut d) => d.run(&mut Cron::new(cfg)),
        Err(e) => {
            eprintln!("conch: cannot set up the event loop: {e}");
            crate::cli::EXIT_UNAVAILABLE
        }
    }
}
