//! The command line: parse, validate, then hand the invocation to its tool.

pub mod args;
pub mod config;
pub mod duration;
pub mod help;
#[cfg(test)]
mod tests;

use std::ffi::OsString;

pub use config::{Global, Invocation, Output, Verbosity, Wait};

/// EX_USAGE: bad input, nothing written to etcd.
pub const EXIT_USAGE: i32 = 64;
/// EX_UNAVAILABLE: etcd unreachable or credentials refused; nothing started.
pub const EXIT_UNAVAILABLE: i32 = 69;
/// EX_SOFTWARE: the hold (or a waiter's lease) was lost.
pub const EXIT_LOST: i32 = 70;
/// EX_TEMPFAIL: not acquired.
pub const EXIT_NOT_ACQUIRED: i32 = 75;

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
    config::validate(&raw, &argv0, env)
}

/// Runs the program; returns the process exit code.
pub fn main() -> i32 {
    let env = |k: &str| std::env::var(k).ok();
    let inv = match parse_invocation(std::env::args_os().collect(), &env) {
        Ok(inv) => inv,
        Err(msg) => {
            eprintln!("conch: {msg}");
            return EXIT_USAGE;
        }
    };
    match inv {
        Invocation::Usage => {
            eprint!("{}", help::TOP);
            eprintln!("\nMore: conch help [TOPIC], conch TOOL --help, man conch");
            EXIT_USAGE
        }
        Invocation::Version => {
            print!("{}", help::version());
            0
        }
        Invocation::Completions(shell) => crate::tool::completions::script(shell),
        Invocation::CompletionJobs(global) => crate::tool::completions::jobs(&global),
        Invocation::Help(topic) => match help::topic(topic.as_deref()) {
            Some(text) => {
                print!("{text}");
                0
            }
            None => {
                eprintln!(
                    "conch: unknown help topic {:?}: expected elect, sema, cron, completions, exit-codes or env",
                    topic.unwrap_or_default()
                );
                EXIT_USAGE
            }
        },
        Invocation::ToolHelp(tool) => {
            print!("{}", help::tool(tool));
            0
        }
        Invocation::Elect { global, name, cmd } => crate::tool::elect::run(&global, &name, cmd),
        Invocation::Sema { global, name, cmd } => crate::tool::sema::run(&global, &name, cmd),
        Invocation::Cron { global, cmd } => crate::tool::cron::run(&global, cmd),
    }
}
