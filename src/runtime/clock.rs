//! Time on `CLOCK_BOOTTIME`, which keeps counting through a suspend (tokio's
//! timers run on CLOCK_MONOTONIC, which does not), and a timerfd on it.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use rustix::time::{
    clock_gettime, timerfd_create, timerfd_settime, ClockId, Itimerspec, TimerfdClockId,
    TimerfdFlags, TimerfdTimerFlags, Timespec,
};

/// Now, as time since boot.
pub fn now() -> Duration {
    let t = clock_gettime(ClockId::Boottime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Unix milliseconds minus BOOTTIME milliseconds: what turns a machine's
/// clock-free instants into wall time. It changes when the wall clock is
/// stepped.
pub fn wall_offset_ms() -> i64 {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    wall - now().as_millis() as i64
}

/// A one-shot timer on the BOOTTIME clock, readable when it fires.
pub struct Timer {
    fd: OwnedFd,
}

impl Timer {
    pub fn new() -> std::io::Result<Timer> {
        let fd = timerfd_create(
            TimerfdClockId::Boottime,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        Ok(Timer { fd })
    }

    /// Fires at the absolute instant `at` (now if it has passed); `None`
    /// disarms.
    pub fn set(&self, at: Option<Duration>) -> std::io::Result<()> {
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let value = match at {
            // An all-zero value would disarm: the earliest real instant is 1ns.
            Some(at) => Timespec {
                tv_sec: at.as_secs() as i64,
                tv_nsec: i64::from(at.subsec_nanos().max(u32::from(at.as_secs() == 0))),
            },
            None => zero,
        };
        let spec = Itimerspec {
            it_interval: zero,
            it_value: value,
        };
        timerfd_settime(&self.fd, TimerfdTimerFlags::ABSTIME, &spec)?;
        Ok(())
    }

    /// Clears a fired timer so that it stops being readable.
    pub fn clear(&self) {
        let mut buf = [0u8; 8];
        let _ = rustix::io::read(&self.fd, &mut buf);
    }
}

impl AsRawFd for Timer {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}
