//! The options every tool that talks to etcd shares: endpoints, prefix,
//! lease timings, TLS, credentials and verbosity, from the command line or
//! the environment.

use std::path::PathBuf;
use std::time::Duration;

use super::config::Global;
use super::validate::Validator;
use crate::kit::duration::fmt_duration;
use crate::kit::verbosity::Verbosity;

impl Validator<'_> {
    /// A file option's path, opened once here so that an unreadable file
    /// is refused before anything touches etcd.
    fn file(&self, opt: &str, vars: &[&str]) -> Result<Option<PathBuf>, String> {
        let Some((from, path)) = self.lookup(opt, vars) else {
            return Ok(None);
        };
        std::fs::File::open(&path).map_err(|e| format!("{from} {path:?}: cannot read: {e}"))?;
        Ok(Some(PathBuf::from(path)))
    }

    pub(super) fn global(&self) -> Result<Global, String> {
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
                fmt_duration(ttl)
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
