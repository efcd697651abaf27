//! The pure kit under the recipes: what machines, the runtime and the tools
//! share without any I/O, async runtime or clock read.

pub mod duration;
pub mod exit;
pub mod verbosity;
pub mod wait;
