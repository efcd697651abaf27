//! The recipes, one sans-IO machine per file.

pub mod cron;
pub mod elect;
pub mod hold;
pub mod observe;
pub mod queue;
pub mod sema;
