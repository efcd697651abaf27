//! The command line: parse and validate; `tool::main` runs what comes out.

pub mod args;
pub mod config;
mod cron;
pub mod duration;
mod global;
pub mod help;
pub mod options;
#[cfg(test)]
mod tests;
mod validate;

use std::ffi::OsString;

pub use config::{Global, Invocation, Output};

/// Parses and validates a full argv (program name first).
pub fn parse_invocation(
    argv: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Invocation, String> {
    let mut argv = argv.into_iter();
    let argv0 = argv
        .next()
        .and_then(|a| a.into_string().ok())
        .unwrap_or_else(|| "conch".into());
    let raw = args::parse(argv.collect())?;
    validate::validate(&raw, &argv0, env)
}
