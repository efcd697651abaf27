//! The cron commands: `cron add`, `ls`, `rm`, `next` and `daemon`.

use std::time::Duration;

use super::config::{Cron, CronAdd, Invocation};
use super::validate::{parse_count, Validator};
use crate::keys;

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
                }
            }
        };
        let global = self.global()?;
        Ok(Invocation::Cron { global, cmd })
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
