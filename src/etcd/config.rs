//! How to reach etcd: endpoints, budgets, credentials and TLS files.

use std::path::PathBuf;
use std::time::Duration;

/// TLS material for `https://` endpoints, as file paths: read (and checked)
/// when the client connects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA bundle that signed the members' certificates: the only trust
    /// anchors, since no system CA store is assumed.
    pub ca: Option<PathBuf>,
    /// A client certificate (PEM, chain allowed) and its private key, for
    /// members started with `--client-cert-auth`.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// How to reach etcd.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port`, `http://host:port`, `https://host:port` or
    /// `unix:///path`, tried in order. A bare `host:port` uses TLS when a CA
    /// is given (as etcdctl does), plain HTTP/2 otherwise.
    pub endpoints: Vec<String>,
    /// Budget for reaching any endpoint, at start and on every failover,
    /// up to a member's first answer.
    pub dial_timeout: Duration,
    /// Budget for one write; reads and lease calls, which are retried on
    /// other members, get the larger of this and the dial timeout in all.
    /// A deadline given with `Client::by` cuts every budget short.
    pub request_timeout: Duration,
    pub user: Option<String>,
    pub password: Option<String>,
    pub tls: TlsFiles,
    /// HTTP/2 pings on a connection with open streams, to notice a peer
    /// that vanished while nothing else was being said. A client that keeps
    /// a lease alive says something every few seconds and notices an
    /// unanswered keep-alive on its own: it turns them off, since each ping
    /// timer costs an idle holder wake-ups (the figures are in the README).
    pub pings: bool,
}

impl ClientConfig {
    pub fn new(endpoints: Vec<String>) -> ClientConfig {
        ClientConfig {
            endpoints,
            dial_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            user: None,
            password: None,
            tls: TlsFiles::default(),
            pings: true,
        }
    }
}
