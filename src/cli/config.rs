//! Validated configuration: what a command line means once
//! [`validate`](super::validate::validate) accepted it, and what the tools
//! run on.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::kit::verbosity::Verbosity;
use crate::kit::wait::Wait;

/// Options shared by every tool that talks to etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Global {
    pub endpoints: Vec<String>,
    pub prefix: String,
    /// Whole seconds, at least 2.
    pub ttl: Duration,
    pub kill_after: Duration,
    pub dial_timeout: Duration,
    pub cacert: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub verbosity: Verbosity,
}

/// What `--who` / `--observe` print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Human,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Elect {
    Run {
        wait: Wait,
        restart: bool,
        argv: Vec<OsString>,
    },
    Who(Output),
    Observe(Output),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sema {
    Run {
        max: u32,
        wait: Wait,
        argv: Vec<OsString>,
    },
    Who {
        max: Option<u32>,
        out: Output,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronAdd {
    pub name: String,
    pub schedule: String,
    pub tz: String,
    pub overlap_allow: bool,
    pub timeout: Option<Duration>,
    pub kill_after: Duration,
    pub keep: u32,
    pub replace: bool,
    pub argv: Vec<String>,
    /// `--catch-up D`: the oldest unclaimed tick one catch-up run may take.
    pub catch_up: Option<Duration>,
    /// `--on-failure CMD`: a shell command line, run by `/bin/sh -c`.
    pub on_failure: Option<String>,
    /// `--where KEY=VALUE`, repeatable, sorted by key.
    pub placement: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cron {
    Add(CronAdd),
    Ls {
        name: Option<String>,
        out: Output,
        last: u32,
    },
    Rm {
        name: String,
        purge: bool,
    },
    Next {
        spec: String,
        tz: String,
        after: Option<String>,
        count: u32,
        out: Output,
    },
    Daemon {
        node: Option<String>,
        /// `--metrics-file`: where to write the Prometheus text.
        metrics_file: Option<PathBuf>,
        /// Prefix each line of a job's output with `[JOB TICK]` (the default).
        label_output: bool,
        /// `--label KEY=VALUE`, sorted by key, each key once.
        labels: Vec<(String, String)>,
    },
    Show {
        name: String,
        out: Output,
    },
    /// `cron suspend` (true) or `cron resume` (false).
    Suspend {
        name: String,
        suspend: bool,
    },
    /// `cron export [NAME..]`: every job when `names` is empty.
    Export {
        names: Vec<String>,
    },
    Apply {
        /// `-` reads stdin.
        file: PathBuf,
        prune: bool,
        dry_run: bool,
    },
    Nodes {
        out: Output,
    },
    /// `cron run NAME`: one run now, claimed within `timeout`.
    Run {
        name: String,
        wait: bool,
        timeout: Duration,
    },
}

/// One validated invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// `conch` alone: the short usage, exit 64.
    Usage,
    Version,
    /// `conch completions SHELL`: the script for bash, zsh or fish.
    Completions(&'static str),
    /// `conch completions jobs`: cron job names, for the scripts.
    CompletionJobs(Global),
    Help(Option<String>),
    ToolHelp(&'static str),
    Elect {
        global: Global,
        name: String,
        cmd: Elect,
    },
    Sema {
        global: Global,
        name: String,
        cmd: Sema,
    },
    Cron {
        global: Global,
        cmd: Cron,
    },
}
