//! `conch cron add | ls | rm | next`: job definitions and their history.
//! The daemon itself is `conchd.rs`.

use crate::cli::config::Cron as Cmd;
use crate::cli::Global;

pub fn run(global: &Global, cmd: Cmd) -> i32 {
    match cmd {
        Cmd::Daemon { node } => super::conchd::run(global, node),
        _ => {
            eprintln!("conch: this cron command is not built yet; nothing was done");
            crate::cli::EXIT_UNAVAILABLE
        }
    }
}
