//! Signal numbers as machines see them, and which ones end a hold. Plain
//! numbers (Linux's, the only platform with pidfds) so that recipes need no
//! signal library; the runtime checks them against its own.

pub const SIGHUP: i32 = 1;
pub const SIGINT: i32 = 2;
pub const SIGQUIT: i32 = 3;
pub const SIGKILL: i32 = 9;
pub const SIGUSR1: i32 = 10;
pub const SIGUSR2: i32 = 12;
/// What a write to a pipe nobody reads raises; the runtime ignores the
/// signal itself and hands a failed stdout line to the machine as this.
pub const SIGPIPE: i32 = 13;
pub const SIGTERM: i32 = 15;
pub const SIGCHLD: i32 = 17;
pub const SIGWINCH: i32 = 28;

/// Fatal to the wrapper: forwarded, then the stop sequence and resign.
pub fn is_fatal(sig: i32) -> bool {
    matches!(sig, SIGTERM | SIGINT | SIGHUP | SIGQUIT)
}
