//! Raw command-line parsing: words into a flat record of what was typed,
//! nothing checked beyond the shape of each option. `config.rs` validates.

use std::ffi::OsString;

use lexopt::Arg;

/// Every option any tool takes, as typed (the last occurrence wins).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Raw {
    /// Words that are not options, before `--`: the tool, its sub-command,
    /// NAME or SPEC.
    pub words: Vec<String>,
    /// Everything after the first `--`, untouched; `None` when there was no `--`.
    pub child: Option<Vec<OsString>>,
    /// (option as typed, value) in order, for options that take a value.
    pub values: Vec<(String, String)>,
    /// Flags (options without a value) as typed, long form.
    pub flags: Vec<String>,
    pub verbosity: i32,
}

/// Options that take a value, long form; short aliases map onto these.
pub const VALUE_OPTIONS: &[&str] = &[
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
    "timeout",
    "max",
    "schedule",
    "tz",
    "overlap",
    "keep",
    "last",
    "after",
    "count",
    "node",
    "catch-up",
    "on-failure",
    "where",
    "file",
    "metrics-file",
    "label",
];

/// Options that are flags.
pub const FLAG_OPTIONS: &[&str] = &[
    "restart",
    "nonblock",
    "who",
    "observe",
    "json",
    "replace",
    "purge",
    "help",
    "version",
    "verbose",
    "quiet",
    "prune",
    "dry-run",
    "wait",
    "label-output",
    "no-label-output",
];

impl Raw {
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeatable option, in the order typed.
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.values
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }

    /// Every option that was given, for checking which belong to the tool.
    pub fn given(&self) -> impl Iterator<Item = &str> {
        self.values
            .iter()
            .map(|(k, _)| k.as_str())
            .chain(self.flags.iter().map(String::as_str))
    }
}

/// Splits `args` (without the program name) into a [`Raw`]. The error is the
/// one line a user sees.
pub fn parse(args: Vec<OsString>) -> Result<Raw, String> {
    let mut raw = Raw::default();
    // The child's argv is cut off before lexopt sees it, so that nothing in it
    // can ever be taken for one of ours.
    let mut ours = args;
    if let Some(at) = ours.iter().position(|a| a == "--") {
        raw.child = Some(ours.split_off(at + 1));
        ours.pop();
    }
    let mut p = lexopt::Parser::from_args(ours);
    loop {
        let arg = p.next().map_err(|e| e.to_string())?;
        let Some(arg) = arg else { break };
        let long = match arg {
            Arg::Value(v) => {
                let w = v
                    .into_string()
                    .map_err(|v| format!("argument {v:?} is not valid UTF-8"))?;
                raw.words.push(w);
                continue;
            }
            Arg::Short('v') => {
                raw.verbosity += 1;
                continue;
            }
            Arg::Short('q') => {
                raw.verbosity -= 1;
                continue;
            }
            Arg::Short('h') => "help".to_string(),
            Arg::Short('V') => "version".to_string(),
            Arg::Short('f') => "file".to_string(),
            // Escaped, so that the error stays one line (found by fuzzing).
            Arg::Short(c) => return Err(format!("unknown option -{}", c.escape_debug())),
            Arg::Long(l) => l.to_string(),
        };
        match long.as_str() {
            "verbose" => raw.verbosity += 1,
            "quiet" => raw.verbosity -= 1,
            l if FLAG_OPTIONS.contains(&l) => raw.flags.push(long),
            l if VALUE_OPTIONS.contains(&l) => {
                let v = p
                    .value()
                    .map_err(|_| format!("--{long} needs a value"))?
                    .into_string()
                    .map_err(|_| format!("--{long}: value is not valid UTF-8"))?;
                raw.values.push((long, v));
            }
            _ => return Err(format!("unknown option --{}", long.escape_debug())),
        }
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn child_argv_is_untouched() {
        let raw = parse(os(&[
            "elect", "x", "--ttl", "5s", "--", "ls", "--ttl", "-v", "--",
        ]))
        .expect("parses");
        assert_eq!(raw.words, vec!["elect", "x"]);
        assert_eq!(raw.value("ttl"), Some("5s"));
        assert_eq!(raw.child, Some(os(&["ls", "--ttl", "-v", "--"])));
        assert_eq!(raw.verbosity, 0);
    }

    #[test]
    fn options_before_and_after_the_tool() {
        let a = parse(os(&["--prefix", "/p", "elect", "x", "--who"])).expect("parses");
        let b = parse(os(&["elect", "--prefix=/p", "x", "--who"])).expect("parses");
        assert_eq!(a, b);
    }

    #[test]
    fn verbosity_counts() {
        let raw = parse(os(&["-vv", "--quiet", "elect"])).expect("parses");
        assert_eq!(raw.verbosity, 1);
    }

    #[test]
    fn unknown_and_incomplete_options() {
        assert_eq!(
            parse(os(&["--frobnicate"])),
            Err("unknown option --frobnicate".into())
        );
        assert_eq!(parse(os(&["-x"])), Err("unknown option -x".into()));
        assert_eq!(
            parse(os(&["elect", "--ttl"])),
            Err("--ttl needs a value".into())
        );
    }

    #[test]
    fn unknown_option_error_is_one_line() {
        // fuzz/cli_args: `conch '--\n'` printed a two-line error.
        assert_eq!(parse(os(&["--\n"])), Err("unknown option --\\n".into()));
        assert_eq!(parse(os(&["-\n"])), Err("unknown option -\\n".into()));
    }

    #[test]
    fn no_double_dash_means_no_child() {
        let raw = parse(os(&["elect", "x", "true"])).expect("parses");
        assert_eq!(raw.child, None);
        assert_eq!(raw.words, vec!["elect", "x", "true"]);
    }
}
