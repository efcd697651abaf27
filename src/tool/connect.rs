//! Reaching etcd as the global options say: connect for a read or write,
//! or start the keeper, connect on the event loop's runtime and drive a
//! machine to its exit code.

use std::rc::Rc;

use tokio::runtime::Runtime;

use crate::cli::Global;
use crate::etcd::{Client, ClientConfig, ErrorKind, TlsFiles};
use crate::kit::exit::EXIT_UNAVAILABLE;
use crate::kit::machine::{Level, Machine};
use crate::kit::verbosity::Verbosity;
use crate::runtime::driver::{self, Driver};
use crate::runtime::keeper::Keeper;

/// Runs a holding machine: forks the keeper first (it must exist before
/// anything else starts, while the process has one thread), connects on
/// the runtime the driver owns, and drives the machine to its exit code.
/// The machine keeps a lease alive (elect, sema, the cron daemon): its
/// keep-alives prove the connection, so no HTTP/2 pings are sent.
pub fn hold(global: &Global, machine: &mut dyn Machine) -> i32 {
    drive(global, machine, false, false)
}

/// [`hold`] for a machine that only watches (`--observe`): no lease speaks
/// for the connection, so HTTP/2 pings find a peer that vanished.
pub fn watch(global: &Global, machine: &mut dyn Machine) -> i32 {
    drive(global, machine, true, false)
}

/// [`hold`]; with `relay`, every cron run's output goes through the loop,
/// each line labelled (conchd's `--label-output`).
pub fn hold_with(global: &Global, machine: &mut dyn Machine, relay: bool) -> i32 {
    drive(global, machine, false, relay)
}

fn drive(global: &Global, machine: &mut dyn Machine, pings: bool, relay: bool) -> i32 {
    let keeper = match Keeper::start() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("conch: cannot start the keeper process: {e}; nothing was started");
            return EXIT_UNAVAILABLE;
        }
    };
    let rt = match driver::new_runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("conch: cannot set up the event loop: {e}");
            return EXIT_UNAVAILABLE;
        }
    };
    let client = match connect_on(global, Some(Rc::clone(&rt)), pings) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let shown = match global.verbosity {
        Verbosity::Quiet => Level::Error,
        Verbosity::Normal => Level::Info,
        Verbosity::Verbose => Level::Debug,
    };
    match Driver::new(rt, client, shown, keeper) {
        Ok(mut d) => {
            if relay {
                d.relay_output();
            }
            d.run(machine)
        }
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
    connect_on(global, None, true)
}

/// [`connect`] on the event loop's runtime, or on one of the client's own.
fn connect_on(global: &Global, rt: Option<Rc<Runtime>>, pings: bool) -> Result<Client, i32> {
    let mut cfg = ClientConfig::new(global.endpoints.clone());
    cfg.pings = pings;
    cfg.dial_timeout = global.dial_timeout;
    cfg.user = global.user.clone();
    cfg.password = global.password.clone();
    cfg.tls = TlsFiles {
        ca: global.cacert.clone(),
        cert: global.cert.clone(),
        key: global.key.clone(),
    };
    match rt {
        Some(rt) => Client::connect_on(cfg, rt),
        None => Client::connect(cfg),
    }
    .map_err(|e| {
        match e.kind {
            ErrorKind::Tls => eprintln!("conch: TLS: {}", e.detail),
            ErrorKind::Auth => eprintln!("conch: etcd refused the credentials: {}", e.detail),
            _ => eprintln!("conch: etcd unavailable: {}", e.detail),
        }
        EXIT_UNAVAILABLE
    })
}
