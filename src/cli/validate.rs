//! Validation: turns a [`Raw`] plus the environment into an
//! [`Invocation`]. Every refusal here is exit 64 before anything touches
//! etcd.

use std::ffi::OsString;
use std::time::Duration;

use super::args::Raw;
use super::config::{Elect, Invocation, Output, Sema};
use super::duration::parse_duration;
use super::options::{allowed, GLOBAL, SHELLS};
use crate::keys;
use crate::kit::wait::Wait;

/// Validates `raw`. `argv0` is the program name (`conchd` means the cron
/// daemon); `env` looks up environment variables.
pub fn validate(
    raw: &Raw,
    argv0: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Invocation, String> {
    let daemon_by_name = std::path::Path::new(argv0)
        .file_name()
        .is_some_and(|n| n == "conchd");
    let mut words: Vec<&str> = raw.words.iter().map(String::as_str).collect();
    if daemon_by_name {
        words.insert(0, "cron");
        words.insert(1, "daemon");
    }
    if raw.flag("version") && words.is_empty() {
        return Ok(Invocation::Version);
    }
    if words.is_empty() && raw == &Raw::default() {
        return Ok(Invocation::Usage);
    }
    let Some((&tool, rest)) = words.split_first() else {
        if raw.flag("help") {
            return Ok(Invocation::Help(None));
        }
        return Err(
            "missing tool: expected elect, sema, cron, completions or help (see conch --help)"
                .into(),
        );
    };
    let (tool, rest): (&str, &[&str]) = match tool {
        "help" => {
            return match rest {
                [] => Ok(Invocation::Help(None)),
                [topic] => Ok(Invocation::Help(Some(topic.to_string()))),
                _ => Err(format!("help takes one topic, got {}", rest.len())),
            }
        }
        "elect" => ("elect", rest),
        "sema" => ("sema", rest),
        "completions" => ("completions", rest),
        "cron" => match rest.split_first() {
            Some((&"add", r)) => ("cron add", r),
            Some((&"ls", r)) => ("cron ls", r),
            Some((&"rm", r)) => ("cron rm", r),
            Some((&"next", r)) => ("cron next", r),
            Some((&"run", r)) => ("cron run", r),
            Some((&"daemon", r)) => ("cron daemon", r),
            Some((&"show", r)) => ("cron show", r),
            Some((&"suspend", r)) => ("cron suspend", r),
            Some((&"resume", r)) => ("cron resume", r),
            Some((&"export", r)) => ("cron export", r),
            Some((&"apply", r)) => ("cron apply", r),
            Some((&"nodes", r)) => ("cron nodes", r),
            None if raw.flag("help") => ("cron", rest),
            Some((other, _)) => {
                return Err(format!(
                    "unknown cron command {other:?}: expected add, ls, show, rm, suspend, resume, export, apply, nodes, next or daemon"
                ))
            }
            None => return Err("cron needs a command: add, ls, show, rm, suspend, resume, export, apply, nodes, next or daemon".into()),
        },
        other => {
            return Err(format!(
                "unknown tool {other:?}: expected elect, sema, cron, completions or help"
            ))
        }
    };
    if raw.flag("help") {
        return Ok(Invocation::ToolHelp(match tool {
            "elect" => "elect",
            "sema" => "sema",
            "completions" => "completions",
            _ => "cron",
        }));
    }
    let tool_opts = allowed(tool);
    for opt in raw.given() {
        // The cron job's own grace shares the global option's name.
        if !GLOBAL.contains(&opt) && !tool_opts.contains(&opt) {
            return Err(format!("--{opt} is not an option of `conch {tool}`"));
        }
    }
    let v = Validator { raw, env };
    match tool {
        "elect" => {
            let name = v.name(rest, "elect")?;
            let global = v.global()?;
            let cmd = if raw.flag("who") || raw.flag("observe") {
                v.no_child("--who/--observe")?;
                v.conflicts(&["who", "observe", "restart", "nonblock", "timeout"])?;
                if raw.flag("who") {
                    Elect::Who(v.output())
                } else {
                    Elect::Observe(v.output())
                }
            } else {
                v.reject("json", "--json goes with --who or --observe")?;
                Elect::Run {
                    wait: v.wait()?,
                    restart: raw.flag("restart"),
                    argv: v.child()?,
                }
            };
            if matches!(cmd, Elect::Run { restart: true, .. }) && raw.flag("nonblock") {
                return Err("--restart and --nonblock do not go together".into());
            }
            Ok(Invocation::Elect { global, name, cmd })
        }
        "sema" => {
            let name = v.name(rest, "sema")?;
            let global = v.global()?;
            let max = raw.value("max").map(parse_max).transpose()?;
            let cmd = if raw.flag("who") {
                v.no_child("--who")?;
                v.conflicts(&["who", "nonblock", "timeout"])?;
                Sema::Who {
                    max,
                    out: v.output(),
                }
            } else {
                v.reject("json", "--json goes with --who")?;
                let max = max.ok_or("sema needs --max N (an integer in 1..=65535)")?;
                Sema::Run {
                    max,
                    wait: v.wait()?,
                    argv: v.child()?,
                }
            };
            Ok(Invocation::Sema { global, name, cmd })
        }
        "completions" => {
            v.no_child("completions")?;
            match rest {
                ["jobs"] => Ok(Invocation::CompletionJobs(v.global()?)),
                [shell] => SHELLS
                    .iter()
                    .find(|s| *s == shell)
                    .map(|s| Invocation::Completions(s))
                    .ok_or_else(|| format!("completions {shell:?}: expected bash, zsh or fish")),
                [] => Err("completions needs a SHELL: bash, zsh or fish".into()),
                [_, extra, ..] => Err(format!("unexpected argument {extra:?}")),
            }
        }
        _ => v.cron(tool, rest),
    }
}

fn parse_max(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(n),
        _ => Err(format!("--max {s:?}: expected an integer in 1..=65535")),
    }
}

pub(super) fn parse_count(opt: &str, s: &str, min: u32) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(format!(
            "--{opt} {s:?}: expected an integer of at least {min}"
        )),
    }
}

/// The raw arguments and the environment, with the checks every tool
/// shares; the global options are in `global.rs`, the cron commands in
/// `cron.rs`.
pub(super) struct Validator<'a> {
    pub(super) raw: &'a Raw,
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
}

impl Validator<'_> {
    /// An option's value, else the first environment variable that is set
    /// and not empty, with the name it came from for error messages.
    pub(super) fn lookup(&self, opt: &str, vars: &[&str]) -> Option<(String, String)> {
        if let Some(v) = self.raw.value(opt) {
            return Some((format!("--{opt}"), v.to_string()));
        }
        vars.iter().find_map(|var| {
            (self.env)(var)
                .filter(|v| !v.is_empty())
                .map(|v| (var.to_string(), v))
        })
    }

    pub(super) fn duration(&self, opt: &str, vars: &[&str]) -> Result<Option<Duration>, String> {
        match self.lookup(opt, vars) {
            None => Ok(None),
            Some((from, text)) => parse_duration(&text)
                .map(Some)
                .map_err(|e| format!("{from}: {e}")),
        }
    }

    pub(super) fn name(&self, rest: &[&str], tool: &str) -> Result<String, String> {
        match rest {
            [name] => {
                keys::validate_name(name).map_err(|e| format!("NAME {name:?} {e}"))?;
                Ok(name.to_string())
            }
            [] => Err(format!("`conch {tool}` needs a NAME")),
            [_, extra, ..] => Err(format!(
                "unexpected argument {extra:?} (is `--` missing before the command?)"
            )),
        }
    }

    pub(super) fn output(&self) -> Output {
        if self.raw.flag("json") {
            Output::Json
        } else {
            Output::Human
        }
    }

    fn reject(&self, opt: &str, why: &str) -> Result<(), String> {
        if self.raw.flag(opt) || self.raw.value(opt).is_some() {
            return Err(why.to_string());
        }
        Ok(())
    }

    fn conflicts(&self, opts: &[&str]) -> Result<(), String> {
        let given: Vec<&str> = opts
            .iter()
            .copied()
            .filter(|o| self.raw.flag(o) || self.raw.value(o).is_some())
            .collect();
        if given.len() > 1 {
            return Err(format!(
                "--{} and --{} do not go together",
                given[0], given[1]
            ));
        }
        Ok(())
    }

    pub(super) fn no_child(&self, what: &str) -> Result<(), String> {
        if self.raw.child.is_some() {
            return Err(format!("{what} takes no command after `--`"));
        }
        Ok(())
    }

    pub(super) fn child(&self) -> Result<Vec<OsString>, String> {
        match &self.raw.child {
            None => Err("missing `-- CMD [ARG...]`: the command to run".into()),
            Some(argv) if argv.is_empty() => Err("empty command after `--`".into()),
            Some(argv) if argv[0].is_empty() => Err("empty command name after `--`".into()),
            Some(argv) => Ok(argv.clone()),
        }
    }

    fn wait(&self) -> Result<Wait, String> {
        self.conflicts(&["nonblock", "timeout"])?;
        if self.raw.flag("nonblock") {
            return Ok(Wait::Nonblock);
        }
        match self.duration("timeout", &[])? {
            None => Ok(Wait::Forever),
            Some(d) if d.is_zero() => Err("--timeout must be more than 0".into()),
            Some(d) => Ok(Wait::Timeout(d)),
        }
    }
}
