//! Validated configuration: turns a [`Raw`] plus the environment into what
//! the tools run on. Every refusal here is exit 64 before anything touches etcd.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use super::args::Raw;
use super::duration::parse_duration;
use crate::keys;

/// How chatty diagnostics on stderr are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

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

/// How a wrapper that has to wait behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    Forever,
    Nonblock,
    Timeout(Duration),
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
    "cron daemon",
    "completions",
];

/// The shells `conch completions` writes for.
pub const SHELLS: &[&str] = &["bash", "zsh", "fish"];

/// The options of one tool beyond [`GLOBAL`].
pub fn allowed(tool: &str) -> &'static [&'static str] {
    match tool {
        "elect" => &["restart", "nonblock", "timeout", "who", "observe", "json"],
        "sema" => &["max", "nonblock", "timeout", "who", "json"],
        "cron add" => &["schedule", "tz", "overlap", "timeout", "keep", "replace"],
        "cron ls" => &["json", "last"],
        "cron rm" => &["purge"],
        "cron next" => &["tz", "after", "count", "json"],
        "cron daemon" => &["node"],
        _ => &[],
    }
}

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
            Some((&"daemon", r)) => ("cron daemon", r),
            None if raw.flag("help") => ("cron", rest),
            Some((other, _)) => {
                return Err(format!(
                    "unknown cron command {other:?}: expected add, ls, rm, next or daemon"
                ))
            }
            None => return Err("cron needs a command: add, ls, rm, next or daemon".into()),
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

fn parse_count(opt: &str, s: &str, min: u32) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(format!(
            "--{opt} {s:?}: expected an integer of at least {min}"
        )),
    }
}

struct Validator<'a> {
    raw: &'a Raw,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Validator<'_> {
    /// An option's value, else the first environment variable that is set
    /// and not empty, with the name it came from for error messages.
    fn lookup(&self, opt: &str, vars: &[&str]) -> Option<(String, String)> {
        if let Some(v) = self.raw.value(opt) {
            return Some((format!("--{opt}"), v.to_string()));
        }
        vars.iter().find_map(|var| {
            (self.env)(var)
                .filter(|v| !v.is_empty())
                .map(|v| (var.to_string(), v))
        })
    }

    fn duration(&self, opt: &str, vars: &[&str]) -> Result<Option<Duration>, String> {
        match self.lookup(opt, vars) {
            None => Ok(None),
            Some((from, text)) => parse_duration(&text)
                .map(Some)
                .map_err(|e| format!("{from}: {e}")),
        }
    }

    fn name(&self, rest: &[&str], tool: &str) -> Result<String, String> {
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

    fn output(&self) -> Output {
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

    fn no_child(&self, what: &str) -> Result<(), String> {
        if self.raw.child.is_some() {
            return Err(format!("{what} takes no command after `--`"));
        }
        Ok(())
    }

    fn child(&self) -> Result<Vec<OsString>, String> {
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

    fn file(&self, opt: &str, vars: &[&str]) -> Result<Option<PathBuf>, String> {
        let Some((from, path)) = self.lookup(opt, vars) else {
            return Ok(None);
        };
        std::fs::File::open(&path).map_err(|e| format!("{from} {path:?}: cannot read: {e}"))?;
        Ok(Some(PathBuf::from(path)))
    }

    fn global(&self) -> Result<Global, String> {
        let endpoints = self
            .lookup("endpoints", &["CONCH_ENDPOINTS", "ETCDCTL_ENDPOINTS"])
            .map(|(_, v)| v)
            .unwrap_or_else(|| "http://127.0.0.1:2379".into());
        let endpoints: Vec<String> = endpoints.split(',').map(|e| e.trim().to_string()).collect();
        for e in &endpoints {
            check_endpoint(e)?;
        }
        let prefix = self
            .lookup("prefix", &["CONCH_PREFIX"])
            .map(|(_, v)| v)
            .unwrap_or_else(|| "/conch".into());
        if prefix.trim_end_matches('/').is_empty() && prefix != "/" || prefix.is_empty() {
            return Err("--prefix must not be empty".into());
        }
        let ttl = self
            .duration("ttl", &["CONCH_TTL"])?
            .unwrap_or(Duration::from_secs(10));
        // The bound applies to the value as typed: 1500ms rounded up would
        // pass as 2s and hide that the user asked for less than etcd grants.
        if ttl < Duration::from_secs(2) {
            return Err(format!(
                "--ttl {}: must be at least 2s (etcd raises shorter leases to its minimum)",
                super::duration::fmt_duration(ttl)
            ));
        }
        // etcd leases are whole seconds; rounding up here keeps every derived
        // timing in step with what etcd will grant.
        let ttl = Duration::from_secs(ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0));
        let kill_after = match self.duration("kill-after", &["CONCH_KILL_AFTER"])? {
            Some(k) => k,
            None if ttl < Duration::from_secs(9) => ttl / 3,
            None => Duration::from_secs(3),
        };
        if kill_after > ttl / 2 {
            return Err(format!(
                "--kill-after: must be at most half the TTL ({}s), so that two keep-alives can fail before the child must stop",
                ttl.as_secs_f64() / 2.0
            ));
        }
        let dial_timeout = self
            .duration("dial-timeout", &[])?
            .unwrap_or(Duration::from_secs(5));
        if dial_timeout.is_zero() {
            return Err("--dial-timeout must be more than 0".into());
        }
        let cacert = self.file("cacert", &["CONCH_TLS_CACERT", "ETCDCTL_CACERT"])?;
        let cert = self.file("cert", &["CONCH_TLS_CERT", "ETCDCTL_CERT"])?;
        let key = self.file("key", &["CONCH_TLS_KEY", "ETCDCTL_KEY"])?;
        if cert.is_some() != key.is_some() {
            return Err("--cert and --key go together".into());
        }
        let (user, mut password) = match self.lookup("user", &["CONCH_USER"]) {
            None => (None, None),
            Some((_, u)) => match u.split_once(':') {
                Some((n, p)) => (Some(n.to_string()), Some(p.to_string())),
                None => (Some(u), None),
            },
        };
        if let Some(path) = self.raw.value("password-file") {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--password-file {path:?}: cannot read: {e}"))?;
            password = Some(text.trim_end_matches(['\n', '\r']).to_string());
        } else if let Some((_, p)) = self.lookup("password", &["CONCH_PASSWORD"]) {
            password = Some(p);
        }
        if user.as_deref() == Some("") {
            return Err("--user: empty user name".into());
        }
        if password.is_some() && user.is_none() {
            return Err("a password needs --user".into());
        }
        let verbosity = match self.raw.verbosity {
            0 => match (self.env)("CONCH_LOG").as_deref() {
                None | Some("") | Some("normal") => Verbosity::Normal,
                Some("quiet") => Verbosity::Quiet,
                Some("verbose") | Some("debug") => Verbosity::Verbose,
                Some(other) => {
                    return Err(format!(
                        "CONCH_LOG={other:?}: expected quiet, normal or verbose"
                    ))
                }
            },
            n if n < 0 => Verbosity::Quiet,
            _ => Verbosity::Verbose,
        };
        Ok(Global {
            endpoints,
            prefix,
            ttl,
            kill_after,
            dial_timeout,
            cacert,
            cert,
            key,
            user,
            password,
            verbosity,
        })
    }

    fn cron(&self, tool: &str, rest: &[&str]) -> Result<Invocation, String> {
        let raw = self.raw;
        let cmd = match tool {
            "cron add" => {
                let name = self.name(rest, "cron add")?;
                let schedule = raw
                    .value("schedule")
                    .ok_or("cron add needs --schedule SPEC")?
                    .to_string();
                let overlap_allow = match raw.value("overlap") {
                    None | Some("skip") => false,
                    Some("allow") => true,
                    Some(o) => return Err(format!("--overlap {o:?}: expected skip or allow")),
                };
                let timeout = match self.duration("timeout", &[])? {
                    Some(d) if d.is_zero() => return Err("--timeout must be more than 0".into()),
                    t => t,
                };
                let kill_after = self
                    .duration("kill-after", &[])?
                    .unwrap_or(Duration::from_secs(3));
                let keep = raw
                    .value("keep")
                    .map(|k| parse_count("keep", k, 1))
                    .transpose()?
                    .unwrap_or(100);
                let argv = self
                    .child()?
                    .into_iter()
                    .map(|a| {
                        a.into_string()
                            .map_err(|a| format!("command argument {a:?} is not valid UTF-8"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Cron::Add(CronAdd {
                    name,
                    schedule,
                    tz: raw.value("tz").unwrap_or("UTC").to_string(),
                    overlap_allow,
                    timeout,
                    kill_after,
                    keep,
                    replace: raw.flag("replace"),
                    argv,
                })
            }
            "cron ls" => {
                self.no_child("cron ls")?;
                let name = match rest {
                    [] => None,
                    [_] => Some(self.name(rest, "cron ls")?),
                    [_, extra, ..] => return Err(format!("unexpected argument {extra:?}")),
                };
                let last = raw
                    .value("last")
                    .map(|k| parse_count("last", k, 1))
                    .transpose()?
                    .unwrap_or(20);
                Cron::Ls {
                    name,
                    out: self.output(),
                    last,
                }
            }
            "cron rm" => {
                self.no_child("cron rm")?;
                Cron::Rm {
                    name: self.name(rest, "cron rm")?,
                    purge: raw.flag("purge"),
                }
            }
            "cron next" => {
                self.no_child("cron next")?;
                let spec = match rest {
                    [spec] => spec.to_string(),
                    [] => return Err("cron next needs a SPEC (quote it: '*/5 * * * *')".into()),
                    [_, extra, ..] => {
                        return Err(format!(
                            "unexpected argument {extra:?} (quote the SPEC: '*/5 * * * *')"
                        ))
                    }
                };
                let count = raw
                    .value("count")
                    .map(|k| parse_count("count", k, 1))
                    .transpose()?
                    .unwrap_or(5);
                Cron::Next {
                    spec,
                    tz: raw.value("tz").unwrap_or("UTC").to_string(),
                    after: raw.value("after").map(str::to_string),
                    count,
                    out: self.output(),
                }
            }
            _ => {
                self.no_child("cron daemon")?;
                if let Some(extra) = rest.first() {
                    return Err(format!("unexpected argument {extra:?}"));
                }
                let node = raw.value("node").map(str::to_string);
                if let Some(n) = &node {
                    keys::validate_name(n).map_err(|e| format!("--node {n:?} {e}"))?;
                }
                Cron::Daemon { node }
            }
        };
        let global = self.global()?;
        Ok(Invocation::Cron { global, cmd })
    }
}

/// Accepts `host:port`, `http://host:port`, `https://host:port` and
/// `unix:///path`.
fn check_endpoint(e: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("--endpoints {e:?}: {why}"));
    if e.is_empty() {
        return bad("empty endpoint");
    }
    if let Some(path) = e.strip_prefix("unix://") {
        if !path.starts_with('/') {
            return bad("expected unix:///absolute/path");
        }
        return Ok(());
    }
    let hostport = e
        .strip_prefix("http://")
        .or_else(|| e.strip_prefix("https://"))
        .unwrap_or(e);
    if hostport.contains("://") {
        return bad("expected http://, https:// or unix://");
    }
    let hostport = hostport.trim_end_matches('/');
    let Some((host, port)) = hostport.rsplit_once(':') else {
        return bad("expected host:port");
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return bad("expected host:port with a port in 1..=65535");
    }
    Ok(())
}
