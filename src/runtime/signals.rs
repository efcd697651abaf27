//! Signals as events: each handled signal sets its flag and writes a byte
//! to one self-pipe that the event loop waits on. One pipe for all of them
//! (not a socket pair duplicated per signal): start-up cost is on every
//! run's critical path.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustix::pipe::{pipe_with, PipeFlags};
use signal_hook::SigId;

use crate::kit::signal::*;

/// The signals a wrapper reacts to. SIGCHLD wakes the reaper.
pub const HANDLED: &[i32] = &[
    SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCHLD,
];

pub struct Signals {
    read: OwnedFd,
    /// Written by the handlers; kept open until they are unregistered.
    write: OwnedFd,
    flags: Vec<(i32, Arc<AtomicBool>)>,
    ids: Vec<SigId>,
}

impl Signals {
    pub fn install() -> std::io::Result<Signals> {
        let (read, write) = pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?;
        let mut s = Signals {
            read,
            write,
            flags: Vec::with_capacity(HANDLED.len()),
            ids: Vec::with_capacity(HANDLED.len()),
        };
        let fd = s.write.as_raw_fd();
        for &sig in HANDLED {
            let flag = Arc::new(AtomicBool::new(false));
            let set = Arc::clone(&flag);
            // SAFETY: the handler only stores to an atomic and calls
            // write(2), both async-signal-safe; it does not allocate or
            // lock. `fd` stays open until Drop has unregistered it. The flag
            // is set before the byte is written, so a reader woken by the
            // byte always finds it.
            let id = unsafe {
                signal_hook::low_level::register(sig, move || {
                    set.store(true, Ordering::SeqCst);
                    // A full pipe already holds a wake-up: nothing is lost.
                    libc::write(fd, b"X".as_ptr().cast(), 1);
                })
            }?;
            s.ids.push(id);
            s.flags.push((sig, flag));
        }
        Ok(s)
    }

    /// Drains the pipe and returns the signals that arrived, in a fixed order.
    pub fn take(&self) -> Vec<i32> {
        let mut buf = [0u8; 64];
        while matches!(rustix::io::read(&self.read, &mut buf), Ok(n) if n > 0) {}
        self.flags
            .iter()
            .filter(|(_, f)| f.swap(false, Ordering::SeqCst))
            .map(|(s, _)| *s)
            .collect()
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        // Before the write end closes: its number may be reused.
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
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
