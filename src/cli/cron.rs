//! The cron commands: `cron add`, `ls`, `rm`, `next` and `daemon`.

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
                let mut labels = Vec::new();
                for l in raw.values_of("label") {
                    let (k, v) = label(l).map_err(|e| format!("--label {l:?}: {e}"))?;
                    if labels.iter().any(|(have, _)| *have == k) {
                        return Err(format!("--label {k:?} given twice"));
                    }
                    labels.push((k, v));
                }
                labels.sort();
                Cron::Daemon { node, labels }
            }
        };
        let global = self.global()?;
        Ok(Invocation::Cron { global, cmd })
    }
}
