//! The recipes, one sans-IO machine per file.

pub mod cron;
pub mod elect;
pub mod hold;
pub mod queue;
pub mod sema;
