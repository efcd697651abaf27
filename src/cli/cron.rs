//! The cron commands: `cron add`, `ls`, `show`, `rm`, `suspend`, `resume`,
//! `export`, `apply`, `nodes`, `next` and `daemon`.

use std::time::Duration;

use super::config::{Cron, CronAdd, Invocation};
use super::validate::{parse_count, Validator};
use crate::keys;

/// One `KEY=VALUE` of a daemon's labels (or of a job's placement): a key
/// of letters, digits, `.`, `_`, `-` and `/`; a value of printable
/// characters, possibly empty.
pub(super) fn label(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or("expected KEY=VALUE")?;
    let key_char = |c: char| c.is_ascii_alphanumeric() || "._-/".contains(c);
    if k.is_empty() || !k.chars().all(key_char) {
        return Err("the key must be letters, digits, '.', '_', '-' or '/'".into());
    }
    if v.chars().any(char::is_control) {
        return Err("the value must not hold control characters".into());
    }
    Ok((k.to_string(), v.to_string()))
}

impl Validator<'_> {
    pub(super) fn cron(&self, tool: &str, rest: &[&str]) -> Result<Invocation, String> {
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
                let catch_up = match self.duration("catch-up", &[])? {
                    Some(d) if d.is_zero() => {
                        return Err("--catch-up must be more than 0 (leave it out for none)".into())
                    }
                    c => c,
                };
                let on_failure = match raw.value("on-failure") {
                    Some(c) if c.trim().is_empty() => {
                        return Err("--on-failure needs a command (one shell command line)".into())
                    }
                    c => c.map(str::to_string),
                };
                let mut placement = Vec::new();
                for w in raw.values("where") {
                    let (k, v) = parse_label("where", w)?;
                    if let Some((_, other)) = placement.iter().find(|(pk, _)| *pk == k) {
                        return Err(format!(
                            "--where {k}={v}: {k} is already required to be {other:?}, no daemon can match both"
                        ));
                    }
                    placement.push((k, v));
                }
                placement.sort();
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
                    catch_up,
                    on_failure,
                    placement,
                })
            }
            "cron show" => {
                self.no_child("cron show")?;
                Cron::Show {
                    name: self.name(rest, "cron show")?,
                    out: self.output(),
                }
            }
            "cron suspend" | "cron resume" => {
                self.no_child(tool)?;
                Cron::Suspend {
                    name: self.name(rest, tool)?,
                    suspend: tool == "cron suspend",
                }
            }
            "cron export" => {
                self.no_child("cron export")?;
                let mut names = Vec::new();
                for n in rest {
                    keys::validate_name(n).map_err(|e| format!("NAME {n:?} {e}"))?;
                    names.push(n.to_string());
                }
                Cron::Export { names }
            }
            "cron apply" => {
                self.no_child("cron apply")?;
                if let Some(extra) = rest.first() {
                    return Err(format!(
                        "unexpected argument {extra:?} (the file goes after -f)"
                    ));
                }
                let file = raw.value("file").filter(|f| !f.is_empty()).ok_or(
                    "cron apply needs -f FILE (JSON lines, as `cron export` prints; - for stdin)",
                )?;
                Cron::Apply {
                    file: file.into(),
                    prune: raw.flag("prune"),
                    dry_run: raw.flag("dry-run"),
                }
            }
            "cron nodes" => {
                self.no_child("cron nodes")?;
                if let Some(extra) = rest.first() {
                    return Err(format!("unexpected argument {extra:?}"));
                }
                Cron::Nodes { out: self.output() }
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
            "cron run" => {
                self.no_child("cron run")?;
                let name = self.name(rest, "cron run")?;
                let timeout = match self.duration("timeout", &[])? {
                    Some(d) if d.is_zero() => return Err("--timeout must be more than 0".into()),
                    t => t.unwrap_or(Duration::from_secs(10)),
                };
                Cron::Run {
                    name,
                    wait: raw.flag("wait"),
                    timeout,
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
                let mut labels = Vec::new();
                for l in raw.values("label") {
                    let (k, v) = label(l).map_err(|e| format!("--label {l:?}: {e}"))?;
                    if labels.iter().any(|(have, _)| *have == k) {
                        return Err(format!("--label {k:?} given twice"));
                    }
                    labels.push((k, v));
                }
                labels.sort();
                let metrics_file = raw.value("metrics-file").map(metrics_path).transpose()?;
                let label_output = match (raw.flag("label-output"), raw.flag("no-label-output")) {
                    (true, true) => {
                        return Err("--label-output and --no-label-output exclude each other".into())
                    }
                    (_, no) => !no,
                };
                Cron::Daemon {
                    node,
                    metrics_file,
                    label_output,
                    labels,
                }
            }
        };
        let global = self.global()?;
        Ok(Invocation::Cron { global, cmd })
    }
}

/// `KEY=VALUE` of `--where` (and of a daemon's `--label`), split at the
/// first `=`: no whitespace or control characters, so that `cron nodes` and
/// `cron show` print them unquoted and one cannot break a line of output.
pub(super) fn parse_label(opt: &str, s: &str) -> Result<(String, String), String> {
    let bad = |c: char| c.is_whitespace() || c.is_control();
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !k.chars().any(bad) && !v.chars().any(bad) => {
            Ok((k.to_string(), v.to_string()))
        }
        _ => Err(format!(
            "--{opt} {s:?}: expected KEY=VALUE (a non-empty KEY; no spaces)"
        )),
    }
}

/// `--metrics-file PATH`: its directory must exist, since the file is
/// written there under a temporary name and renamed.
fn metrics_path(p: &str) -> Result<std::path::PathBuf, String> {
    let path = std::path::PathBuf::from(p);
    let dir = match path.parent() {
        Some(d) if d.as_os_str().is_empty() => std::path::Path::new("."),
        Some(d) => d,
        None => return Err(format!("--metrics-file {p:?}: expected a file path")),
    };
    if p.ends_with('/') || path.file_name().is_none() {
        return Err(format!("--metrics-file {p:?}: expected a file path"));
    }
    if !dir.is_dir() {
        return Err(format!(
            "--metrics-file {p:?}: directory {} does not exist",
            dir.display()
        ));
    }
    Ok(path)
}
