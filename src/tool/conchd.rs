//! `conchd` (= `conch cron daemon`): runs every job's ticks, at most once
//! across the fleet.

use crate::cli::Global;

pub fn run(_global: &Global, _node: Option<String>) -> i32 {
    eprintln!("conch: conchd is not built yet; nothing was done");
    crate::cli::EXIT_UNAVAILABLE
}
