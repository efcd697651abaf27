//! Reaching etcd as the global options say: connect for a read or write,
//! or start the keeper, connect and drive a machine to its exit code.

use crate::cli::Global;
use crate::core::driver::Driver;
use crate::core::keeper::Keeper;
use crate::core::Machine;
use crate::etcd::{Client, ClientConfig, ErrorKind, TlsFiles};
use crate::kit::exit::EXIT_UNAVAILABLE;

/// Runs a holding machine: forks the keeper first (it must exist before
/// anything else starts, while the process has one thread), connects, and
/// drives the machine to its exit code.
pub fn hold(global: &Global, machine: &mut dyn Machine) -> i32 {
    let keeper = match Keeper::start() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("conch: cannot start the keeper process: {e}; nothing was started");
            return EXIT_UNAVAILABLE;
        }
    };
    let client = match connect(global) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match Driver::new(client, global.verbosity, keeper) {
        Ok(mut d) => d.run(machine),
        Err(e) => {
            eprintln!("conch: cannot set up the event loop: {e}");
            EXIT_UNAVAILABLE
        }
    }
}

/// Connects, then runs `f` with the client; for commands that only read
/// or write.
pub fn with_client(global: &Global, f: impl FnOnce(&Client) -> i32) -> i32 {
    match connect(global) {
        Ok(c) => f(&c),
        Err(code) => code,
    }
}

/// Connects as `global` says; on failure prints one line and returns the
/// exit code (69: nothing was started).
pub fn connect(global: &Global) -> Result<Client, i32> {
    let mut cfg = ClientConfig::new(global.endpoints.clone());
    cfg.dial_timeout = global.dial_timeout;
    cfg.user = global.user.clone();
    cfg.password = global.password.clone();
    cfg.tls = TlsFiles {
        ca: global.cacert.clone(),
        cert: global.cert.clone(),
        key: global.key.clone(),
    };
    Client::connect(cfg).map_err(|e| {
        match e.kind {
            ErrorKind::Tls => eprintln!("conch: TLS: {}", e.detail),
            ErrorKind::Auth => eprintln!("conch: etcd refused the credentials: {}", e.detail),
            _ => eprintln!("conch: etcd unavailable: {}", e.detail),
        }
        EXIT_UNAVAILABLE
    })
}
