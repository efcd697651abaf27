//! The recipes, sans-IO machines: `hold` is the lifecycle of a self-fenced
//! hold (with `hold_part`, `hold_end`, `hold_run`), `elect` and `sema` are
//! its acquisition parts, `cron` stands on its own.

pub mod cron;
pub mod elect;
pub mod hold;
mod hold_end;
mod hold_part;
mod hold_run;
pub mod observe;
pub mod queue;
pub mod sema;

#[cfg(test)]
mod harness;
