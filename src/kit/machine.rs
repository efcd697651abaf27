//! What a machine is told and what it asks for: the whole vocabulary
//! between a sans-IO recipe and the runtime that carries out its actions.

use std::ffi::OsString;
use std::time::Duration;

use crate::etcd::{
    Error, KeepAliveAnswer, Lease, Range, RangeResult, Txn, TxnResult, WatchEvent, WatchSpec,
};

/// Distinguishes concurrent requests or watches of one machine.
pub type Tag = u8;

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildStatus {
    Exited(i32),
    Signaled(i32),
}

impl ChildStatus {
    /// The shell's convention: the exit code, or 128 + the signal.
    pub fn code(self) -> i32 {
        match self {
            ChildStatus::Exited(c) => c,
            ChildStatus::Signaled(s) => 128 + s,
        }
    }
}

/// Something that happened, fed to a machine with the time it was seen.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Start,
    Granted(Result<Lease, Error>),
    Txn(Tag, Result<TxnResult, Error>),
    Range(Tag, Result<RangeResult, Error>),
    Revoked(Result<(), Error>),
    Watch(Tag, Result<WatchEvent, Error>),
    KeepAlive(Result<KeepAliveAnswer, Error>),
    Reconnected(Result<(), Error>),
    /// The child `tag` started: its pid (= its process group).
    Spawned(Tag, u32),
    /// The child `tag` could not be executed: 126 (not executable) or 127
    /// (not found), with the reason.
    SpawnFailed(Tag, i32, String),
    ChildExited(Tag, ChildStatus),
    /// After the child `tag` exited: nothing of its process tree is left.
    ChildrenGone(Tag),
    /// The wall clock was stepped: the new unix-ms minus boot-ms offset.
    ClockStep(i64),
    Signal(i32),
    /// The machine's deadline passed.
    Timer,
}

/// A child to start in its own process group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnSpec {
    pub argv: Vec<OsString>,
    /// Added to the wrapper's environment.
    pub env: Vec<(String, String)>,
}

/// How loud a diagnostic line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Info,
    Debug,
}

/// Something a machine wants done. Each etcd action is answered by the
/// matching [`Input`].
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Grant {
        ttl: i64,
    },
    Txn(Tag, Txn),
    Range(Tag, Range),
    Revoke(i64),
    Watch(Tag, WatchSpec),
    Unwatch(Tag),
    /// Open (or re-open) the keep-alive stream of a lease.
    KeepAliveOpen(i64),
    KeepAliveSend,
    KeepAliveClose,
    /// Fail over to another endpoint within `budget`.
    Reconnect {
        budget: Duration,
    },
    /// Starts a child; `Tag` names it in later inputs (machines with one
    /// child use 0).
    Spawn(Tag, SpawnSpec),
    /// A signal to the child's process group and its descendants.
    SignalChild(Tag, i32),
    Log(Level, String),
    /// A line on stdout (for `--observe` style output). If it cannot be
    /// written, the machine is told `Signal(SIGPIPE)`.
    Print(String),
    Exit(i32),
}

/// A sans-IO recipe: it is told what happened and when, and answers with
/// what to do. It never reads a clock, sleeps or does I/O.
pub trait Machine {
    fn step(&mut self, input: Input, now: Duration) -> Vec<Action>;
    /// The earliest instant (on the BOOTTIME clock) at which the machine
    /// wants a [`Input::Timer`], if any.
    fn deadline(&self) -> Option<Duration>;
    /// The instant by which the machine must be able to act for safety
    /// (start a stop sequence, send SIGKILL): blocking calls made for it end
    /// by then. `None`: no such bound.
    fn must_act_by(&self) -> Option<Duration> {
        None
    }
}
