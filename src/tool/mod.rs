//! What each command does end to end: connect, then run a recipe machine
//! through the driver, or read and print.

pub mod conchd;
pub mod cron;
mod cron_ls;
pub mod elect;
pub mod sema;

use crate::cli::Global;
use crate::etcd::{Client, ClientConfig};

/// Connects as `global` says; on failure prints one line and returns the
/// exit code (69: nothing was started).
pub fn connect(global: &Global) -> Result<Client, i32> {
    let mut cfg = ClientConfig::new(global.endpoints.clone());
    cfg.dial_timeout = global.dial_timeout;
    cfg.user = global.user.clone();
    cfg.password = global.password.clone();
    Client::connect(cfg).map_err(|e| {
        eprintln!("conch: etcd unavailable: {}", e.detail);
        crate::cli::EXIT_UNAVAILABLE
    })
}

/// This host's name, for holder records.
pub fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .to_string()
}

pub use crate::core::clock::wall_offset_ms;
