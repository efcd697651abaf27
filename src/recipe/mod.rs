//! The recipes, one sans-IO machine per file.

pub mod cron;
pub mod elect;
pub mod hold;
mod hold_end;
mod hold_part;
mod hold_run;
pub mod queue;
pub mod sema;

#[cfg(test)]
mod harness;
