//! The option lists: which options each command line shape takes. They
//! are the one source that help texts, man pages and completions are
//! checked against or built from.

/// The options every tool takes (with `verbose` and `quiet`, which the
/// splitter counts). With [`allowed`] this is the option list that help
/// texts, man pages and completions are checked against or built from.
pub const GLOBAL: &[&str] = &[
    "endpoints",
    "prefix",
    "ttl",
    "kill-after",
    "dial-timeout",
    "cacert",
    "cert",
    "key",
    "user",
    "password",
    "password-file",
    "help",
];

/// Every command line shape, as `allowed` names it.
pub const TOOLS: &[&str] = &[
    "elect",
    "sema",
    "cron add",
    "cron ls",
    "cron rm",
    "cron next",
    "cron run",
    "cron daemon",
    "cron show",
    "cron suspend",
    "cron resume",
    "cron export",
    "cron apply",
    "cron nodes",
    "completions",
];

/// The shells `conch completions` writes for.
pub const SHELLS: &[&str] = &["bash", "zsh", "fish"];

/// The options of one tool beyond [`GLOBAL`].
pub fn allowed(tool: &str) -> &'static [&'static str] {
    match tool {
        "elect" => &["restart", "nonblock", "timeout", "who", "observe", "json"],
        "sema" => &["max", "nonblock", "timeout", "who", "json"],
        "cron add" => &[
            "schedule",
            "tz",
            "overlap",
            "timeout",
            "keep",
            "replace",
            "catch-up",
            "on-failure",
            "where",
        ],
        "cron ls" => &["json", "last"],
        "cron rm" => &["purge"],
        "cron next" => &["tz", "after", "count", "json"],
        "cron run" => &["wait", "timeout"],
        "cron daemon" => &[
            "node",
            "label",
            "metrics-file",
            "label-output",
            "no-label-output",
        ],
        "cron show" => &["json"],
        "cron apply" => &["file", "prune", "dry-run"],
        "cron nodes" => &["json"],
        _ => &[],
    }
}
