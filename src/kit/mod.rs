//! The pure kit under the recipes: no async runtime, no system calls, no
//! clock reads. Time comes in as an argument, effects go out as actions.

pub mod backoff;
pub mod duration;
pub mod exit;
pub mod fence;
pub mod machine;
pub mod session;
pub mod signal;
pub mod supervise;
pub mod timers;
pub mod verbosity;
pub mod wait;
