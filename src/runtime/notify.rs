//! The systemd notification protocol (`sd_notify`), without libsystemd:
//! one datagram per message to the Unix socket named by `$NOTIFY_SOCKET`,
//! a path or, with a leading `@`, a name in the abstract namespace.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

pub struct Notifier {
    sock: UnixDatagram,
    to: SocketAddr,
}

impl Notifier {
    /// The socket `$NOTIFY_SOCKET` names, or `None` when it is unset or
    /// unusable (the daemon then runs as it would without systemd).
    pub fn from_env() -> Result<Option<Notifier>, String> {
        let Some(name) = std::env::var_os("NOTIFY_SOCKET") else {
            return Ok(None);
        };
        let name = name.to_string_lossy().into_owned();
        let to = match name.strip_prefix('@') {
            Some(abs) => SocketAddr::from_abstract_name(abs.as_bytes()),
            None if name.starts_with('/') => SocketAddr::from_pathname(&name),
            None => return Err(format!("NOTIFY_SOCKET {name:?}: not a path or @name")),
        }
        .map_err(|e| format!("NOTIFY_SOCKET {name:?}: {e}"))?;
        let sock = UnixDatagram::unbound().map_err(|e| format!("notify socket: {e}"))?;
        // A full receive queue must never stall the event loop.
        sock.set_nonblocking(true)
            .map_err(|e| format!("notify socket: {e}"))?;
        Ok(Some(Notifier { sock, to }))
    }

    /// Sends `msg` (`KEY=VALUE` lines); an error is the caller's to log.
    pub fn send(&self, msg: &str) -> std::io::Result<()> {
        self.sock.send_to_addr(msg.as_bytes(), &self.to).map(|_| ())
    }
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, as systemd
/// advises, when the watchdog is meant for this process (`$WATCHDOG_PID`
/// unset or ours).
pub fn watchdog_every() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}
