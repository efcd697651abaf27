//! The exit-code contract (docs/usage.md): scripts branch on these, so
//! each outcome keeps its number.

/// EX_USAGE: bad input, nothing written to etcd.
pub const EXIT_USAGE: i32 = 64;
/// EX_UNAVAILABLE: etcd unreachable or credentials refused; nothing started.
pub const EXIT_UNAVAILABLE: i32 = 69;
/// EX_SOFTWARE: the hold (or a waiter's lease) was lost.
pub const EXIT_LOST: i32 = 70;
/// EX_TEMPFAIL: not acquired.
pub const EXIT_NOT_ACQUIRED: i32 = 75;
