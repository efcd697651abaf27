//! What each command does end to end: connect, then run a recipe machine
//! through the driver, or read and print. [`main`] takes the validated
//! invocation from `cli` and hands it to its tool.

pub mod completions;
pub mod conchd;
mod conchd_ops;
pub mod connect;
pub mod cron;
mod cron_apply;
mod cron_export;
mod cron_history;
mod cron_ls;
mod cron_nodes;
mod cron_pause;
mod cron_run;
mod cron_show;
pub mod elect;
pub mod host;
mod metrics;
mod output;
pub mod sema;

use crate::cli::{help, parse_invocation, Invocation};
use crate::kit::exit::EXIT_USAGE;

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
        Invocation::Completions(shell) => completions::script(shell),
        Invocation::CompletionJobs(global) => completions::jobs(&global),
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
        Invocation::Elect { global, name, cmd } => elect::run(&global, &name, cmd),
        Invocation::Sema { global, name, cmd } => sema::run(&global, &name, cmd),
        Invocation::Cron { global, cmd } => cron::run(&global, cmd),
    }
}
