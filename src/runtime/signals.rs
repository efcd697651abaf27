//! Signals as events: each handled signal sets its flag and writes a byte
//! to a self-pipe that the event loop waits on.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::kit::signal::*;

/// The signals a wrapper reacts to. SIGCHLD wakes the reaper.
pub const HANDLED: &[i32] = &[
    SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCHLD,
];

pub struct Signals {
    read: UnixStream,
    flags: Vec<(i32, Arc<AtomicBool>)>,
}

impl Signals {
    pub fn install() -> std::io::Result<Signals> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        let mut flags = Vec::new();
        for &sig in HANDLED {
            let flag = Arc::new(AtomicBool::new(false));
            // The flag first: handlers run in registration order, so the flag
            // is set before the wake-up byte is written.
            signal_hook::flag::register(sig, Arc::clone(&flag))?;
            signal_hook::low_level::pipe::register(sig, write.try_clone()?)?;
            flags.push((sig, flag));
        }
        Ok(Signals { read, flags })
    }

    /// Drains the pipe and returns the signals that arrived, in a fixed order.
    pub fn take(&self) -> Vec<i32> {
        use std::io::Read;
        let mut buf = [0u8; 64];
        while matches!((&self.read).read(&mut buf), Ok(n) if n > 0) {}
        self.flags
            .iter()
            .filter(|(_, f)| f.swap(false, Ordering::SeqCst))
            .map(|(s, _)| *s)
            .collect()
    }
}

impl AsRawFd for Signals {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.read.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use signal_hook::consts::signal as os;

    /// The kit's plain numbers are the ones this platform delivers.
    #[test]
    fn kit_numbers_are_the_platforms() {
        use crate::kit::signal as kit;
        let pairs = [
            (kit::SIGHUP, os::SIGHUP),
            (kit::SIGINT, os::SIGINT),
            (kit::SIGQUIT, os::SIGQUIT),
            (kit::SIGKILL, os::SIGKILL),
            (kit::SIGUSR1, os::SIGUSR1),
            (kit::SIGUSR2, os::SIGUSR2),
            (kit::SIGPIPE, os::SIGPIPE),
            (kit::SIGTERM, os::SIGTERM),
            (kit::SIGCHLD, os::SIGCHLD),
            (kit::SIGWINCH, os::SIGWINCH),
        ];
        for (k, o) in pairs {
            assert_eq!(k, o);
        }
    }
}
