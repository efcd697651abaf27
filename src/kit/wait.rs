//! How a wrapper that has to wait for its hold behaves (`--nonblock`,
//! `--timeout`).

use std::time::Duration;

/// How a wrapper that has to wait behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    Forever,
    Nonblock,
    Timeout(Duration),
}
