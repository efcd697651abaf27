//! How chatty diagnostics on stderr are: chosen on the command line, read
//! by the event loop and the tools.

/// How chatty diagnostics on stderr are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}
