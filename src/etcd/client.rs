//! Connection, failover and the blocking unary calls.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use super::convert::{self, status};
use super::pb::etcdserverpb as rpc;
use super::pb::etcdserverpb::lease_client::LeaseClient;
use super::pb::etcdserverpb::{auth_client::AuthClient, kv_client::KvClient};
use super::tls::{self, Tls};
use super::{Error, ErrorKind, Lease, LeaseStatus, Range, RangeResult, Result, Txn, TxnResult};

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
    /// Budget for reaching any endpoint, at start and on every failover.
    pub dial_timeout: Duration,
    /// Budget for one unary call.
    pub request_timeout: Duration,
    pub user: Option<String>,
    pub password: Option<String>,
    pub tls: TlsFiles,
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
        }
    }
}

struct Conn {
    index: usize,
    channel: Channel,
    token: Option<AsciiMetadataValue>,
}

/// A connection to one etcd member at a time, with its own current-thread
/// runtime: every method blocks, and [`Client::block_on`] lets the event loop
/// wait on streams together with other sources.
pub struct Client {
    rt: Runtime,
    cfg: ClientConfig,
    /// Built once from [`TlsFiles`]; `None` when no endpoint uses TLS.
    tls: Option<Tls>,
    conn: RefCell<Conn>,
    /// Unary calls end by then at the latest (see [`Client::set_deadline`]).
    deadline: Cell<Option<Instant>>,
}

/// Why one dial failed: worth retrying, or a TLS refusal that will not
/// change by itself.
enum DialError {
    Retry(String),
    Tls(String),
}

/// How bytes reach a member: tonic dials plain TCP itself; TLS and unix
/// sockets go through a connector of ours.
enum Transport {
    Tcp,
    Unix(String),
    Tls { host: String, port: u16, tls: Tls },
}

fn endpoint_for(
    addr: &str,
    cfg: &ClientConfig,
    tls: Option<&Tls>,
) -> std::result::Result<(Endpoint, Transport), DialError> {
    if let Some(path) = addr.strip_prefix("unix://") {
        // The authority is only a label here: the connector ignores it.
        return Ok((
            Endpoint::from_static("http://localhost"),
            Transport::Unix(path.to_string()),
        ));
    }
    let secure = tls::uses_tls(addr, cfg);
    let bare = addr
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/');
    // tonic sees http:// even for TLS: the handshake is ours (see tls.rs).
    let ep = Endpoint::from_shared(format!("http://{bare}"))
        .map_err(|e| DialError::Retry(format!("{addr}: not an endpoint: {e}")))?;
    if !secure {
        return Ok((ep, Transport::Tcp));
    }
    // load() refused https:// without a CA before any dial.
    let Some(tls) = tls else {
        return Err(DialError::Tls("https:// needs --cacert".into()));
    };
    let uri = ep.uri();
    let host = uri.host().unwrap_or_default().to_string();
    let port = uri.port_u16().unwrap_or(2379);
    Ok((
        ep,
        Transport::Tls {
            host,
            port,
            tls: tls.clone(),
        },
    ))
}

const CLIENT_CERT_REFUSED: &str = "etcd refused the client certificate";

/// Sorts a failed TLS handshake (as tls.rs words it) from other dial
/// failures: a certificate that does not verify will not verify on retry.
pub(super) fn tls_refusal(text: &str) -> Option<String> {
    if let Some(i) = text.find("etcd's server certificate is") {
        return Some(text[i..].to_string());
    }
    if let Some(i) = text.find("etcd refused the TLS handshake") {
        let alert = &text[i..];
        return Some(if tls::is_client_cert_alert(alert) {
            format!(
                "{CLIENT_CERT_REFUSED} ({})",
                alert.trim_start_matches("etcd refused the TLS handshake ")
            )
        } else {
            alert.to_string()
        });
    }
    // A refusal after the handshake (TLS 1.3 checks the client certificate
    // then) surfaces from the HTTP/2 layer as rustls' own text.
    if let Some(i) = text.find("received fatal alert: ") {
        let name = text[i + "received fatal alert: ".len()..]
            .split(|c: char| !c.is_ascii_alphanumeric())
            .next()
            .unwrap_or_default();
        let alert = tls::alert_words(name);
        return Some(if tls::is_client_cert_alert(&alert) {
            format!("{CLIENT_CERT_REFUSED} (alert: {alert})")
        } else {
            format!("etcd refused the TLS session (alert: {alert})")
        });
    }
    if text.contains("InvalidContentType") || text.contains("corrupt message") {
        return Some("TLS handshake failed: is this endpoint serving TLS?".to_string());
    }
    None
}

async fn dial(
    addr: &str,
    timeout: Duration,
    cfg: &ClientConfig,
    tls: Option<&Tls>,
) -> std::result::Result<Channel, DialError> {
    let (ep, transport) = endpoint_for(addr, cfg, tls)?;
    let secure = matches!(transport, Transport::Tls { .. });
    let ep = ep
        .connect_timeout(timeout)
        .tcp_nodelay(true)
        // A member that vanished without a FIN is noticed within seconds,
        // not after the kernel's TCP timeouts.
        .http2_keep_alive_interval(Duration::from_secs(2))
        .keep_alive_timeout(Duration::from_secs(2))
        .keep_alive_while_idle(true);
    let connect = async {
        match transport {
            Transport::Tcp => ep.connect().await.map_err(|e| source_chain(&e)),
            Transport::Unix(path) => {
                let connector = tower::service_fn(move |_| {
                    let path = path.clone();
                    async move {
                        let s = tokio::net::UnixStream::connect(path).await?;
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
                    }
                });
                ep.connect_with_connector(connector)
                    .await
                    .map_err(|e| source_chain(&e))
            }
            Transport::Tls { host, port, tls } => {
                let connector = tower::service_fn(move |_| {
                    let (host, tls) = (host.clone(), tls.clone());
                    async move {
                        let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
                        tcp.set_nodelay(true)?;
                        let s = tls.handshake(&host, tcp).await?;
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
                    }
                });
                ep.connect_with_connector(connector)
                    .await
                    .map_err(|e| source_chain(&e))
            }
        }
    };
    let connected = async {
        let ch = connect.await?;
        if secure {
            probe(ch.clone()).await?;
        }
        Ok::<_, String>(ch)
    };
    match tokio::time::timeout(timeout, connected).await {
        Ok(Ok(ch)) => Ok(ch),
        Ok(Err(text)) => Err(match tls_refusal(&text) {
            Some(why) => DialError::Tls(why),
            None => DialError::Retry(text),
        }),
        Err(_) => Err(DialError::Retry(format!(
            "no answer within {}ms",
            timeout.as_millis()
        ))),
    }
}

/// Proves that a TLS member accepted the session. Under TLS 1.3 the client's
/// handshake completes before the server has checked the client
/// certificate, so a refusal only shows on the first call, where it races
/// with the call itself. The probe is a Range without a key: etcd rejects it
/// before it reaches auth, raft or the store, and any answer of etcd's
/// own (a status without a transport cause) proves the session.
async fn probe(ch: Channel) -> std::result::Result<(), String> {
    match KvClient::new(ch).range(rpc::RangeRequest::default()).await {
        Ok(_) => Ok(()),
        Err(s) => match std::error::Error::source(&s) {
            None => Ok(()),
            Some(cause) => Err(source_chain(cause)),
        },
    }
}

/// Adds to a refusal what the user can do about it: which TLS file a
/// refused client certificate points at, which user lacks a permission.
fn explain(cfg: &ClientConfig, mut e: Error) -> Error {
    if e.kind == ErrorKind::Auth {
        match &cfg.user {
            Some(user) if e.detail.contains("permission denied") => {
                e.detail = format!(
                    "{} (user {user:?} has no role that grants it on these keys: check the user's roles and --prefix)",
                    e.detail
                );
            }
            None if e.detail.contains("user name is empty") => {
                e.detail = format!(
                    "{} (etcd has authentication enabled: give --user NAME[:PASS])",
                    e.detail
                );
            }
            _ => {}
        }
    }
    if e.kind == ErrorKind::Tls {
        let better = match &cfg.tls.cert {
            None => "etcd requires a client certificate: give --cert and --key".to_string(),
            Some(c) => format!(
                "etcd refused the client certificate --cert {} (is it signed by a CA in etcd's --trusted-ca-file?)",
                c.display()
            ),
        };
        e.detail = e.detail.replacen(CLIENT_CERT_REFUSED, &better, 1);
    }
    e
}

/// tonic's transport errors say "transport error" and hide the cause one
/// or two levels down.
pub(super) fn source_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let part = s.to_string();
        // Some layers repeat their source's text in their own.
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cur = s.source();
    }
    text
}

impl Client {
    /// Connects to the first endpoint that answers within the dial timeout
    /// (going round the list until it runs out), then authenticates if a user
    /// is configured.
    pub fn connect(cfg: ClientConfig) -> Result<Client> {
        let tls = tls::load(&cfg)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| Error::new(ErrorKind::Other, "connect", e.to_string()))?;
        let (index, channel) = rt
            .block_on(Self::dial_any(&cfg, tls.as_ref(), 0))
            .map_err(|e| explain(&cfg, e))?;
        let client = Client {
            rt,
            cfg,
            tls,
            conn: RefCell::new(Conn {
                index,
                channel,
                token: None,
            }),
            deadline: Cell::new(None),
        };
        client.authenticate()?;
        Ok(client)
    }

    async fn dial_any(
        cfg: &ClientConfig,
        tls: Option<&Tls>,
        start: usize,
    ) -> Result<(usize, Channel)> {
        let n = cfg.endpoints.len();
        if n == 0 {
            return Err(Error::new(ErrorKind::Other, "connect", "no endpoints"));
        }
        let deadline = Instant::now() + cfg.dial_timeout;
        let mut last = String::new();
        let mut attempt = 0;
        // TLS refusals in the current round of the list.
        let mut refused = 0;
        loop {
            let i = (start + attempt) % n;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match dial(&cfg.endpoints[i], left, cfg, tls).await {
                Ok(ch) => return Ok((i, ch)),
                Err(DialError::Retry(e)) => last = format!("{}: {e}", cfg.endpoints[i]),
                Err(DialError::Tls(e)) => {
                    last = format!("{}: {e}", cfg.endpoints[i]);
                    refused += 1;
                }
            }
            attempt += 1;
            if attempt % n == 0 {
                if refused == n {
                    // Every member refused the TLS handshake: no retry
                    // will make a certificate verify.
                    return Err(Error::new(ErrorKind::Tls, "connect", last));
                }
                refused = 0;
                // Every endpoint refused at once: pause instead of spinning.
                tokio::time::sleep(Duration::from_millis(100).min(left)).await;
            }
        }
        Err(Error::new(
            ErrorKind::Unavailable,
            "connect",
            format!(
                "no etcd endpoint answered within {}ms (tried {}); last error: {last}",
                cfg.dial_timeout.as_millis(),
                cfg.endpoints.join(", ")
            ),
        ))
    }

    /// The endpoint in use, for diagnostics.
    pub fn endpoint(&self) -> String {
        self.cfg.endpoints[self.conn.borrow().index].clone()
    }

    /// Drops the current connection and connects to the next endpoint that
    /// answers (the same one again if it is the only one alive).
    pub fn failover(&self) -> Result<()> {
        self.failover_within(self.cfg.dial_timeout)
    }

    /// [`Client::failover`] within `budget` instead of the dial timeout: a
    /// holder may not wait past the moment its child must start stopping.
    pub fn failover_within(&self, budget: Duration) -> Result<()> {
        let start = self.conn.borrow().index + 1;
        let mut cfg = self.cfg.clone();
        cfg.dial_timeout = budget.max(Duration::from_millis(50));
        let (index, channel) = self
            .rt
            .block_on(Self::dial_any(&cfg, self.tls.as_ref(), start))
            .map_err(|e| explain(&cfg, e))?;
        {
            let mut c = self.conn.borrow_mut();
            c.index = index;
            c.channel = channel;
        }
        self.authenticate()
    }

    fn authenticate(&self) -> Result<()> {
        let Some(name) = self.cfg.user.clone() else {
            return Ok(());
        };
        let password = self.cfg.password.clone().unwrap_or_default();
        let ch = self.conn.borrow().channel.clone();
        let resp = match self.run_timed("authenticate", async move {
            AuthClient::new(ch)
                .authenticate(rpc::AuthenticateRequest { name, password })
                .await
        }) {
            Ok(r) => r,
            // As etcd's own client does: a cluster without authentication
            // takes every request without a token.
            Err(e) if e.detail.contains("authentication is not enabled") => return Ok(()),
            Err(e) => return Err(e),
        };
        let token = MetadataValue::try_from(resp.into_inner().token)
            .map_err(|_| Error::new(ErrorKind::Auth, "authenticate", "token is not ASCII"))?;
        self.conn.borrow_mut().token = Some(token);
        Ok(())
    }

    /// Runs a future on the client's runtime; the event loop's one wait.
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.rt.block_on(fut)
    }

    pub(super) fn channel(&self) -> Channel {
        self.conn.borrow().channel.clone()
    }

    /// Wraps a message with the metadata every call carries; streams also
    /// ask for `hasleader`, so a member cut off from quorum cancels them.
    pub(super) fn request<T>(&self, msg: T, stream: bool) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        if stream {
            req.metadata_mut()
                .insert("hasleader", AsciiMetadataValue::from_static("true"));
        }
        if let Some(t) = &self.conn.borrow().token {
            req.metadata_mut().insert("token", t.clone());
        }
        req
    }

    /// Bounds every unary call (and its retries) until `at`: the event loop
    /// sets it to the machine's next deadline, so a call to a member that
    /// hangs cannot hold a holder past the moment its child must stop.
    pub fn set_deadline(&self, at: Option<Instant>) {
        self.deadline.set(at);
    }

    /// The time one call may take now.
    fn call_limit(&self) -> Duration {
        let limit = self.cfg.request_timeout;
        match self.deadline.get() {
            // Never zero: a call that cannot even be sent only adds a retry.
            Some(at) => limit.min(
                at.saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(50)),
            ),
            None => limit,
        }
    }

    fn run_timed<T, F>(&self, op: &'static str, fut: F) -> Result<tonic::Response<T>>
    where
        F: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let limit = self.call_limit();
        match self
            .rt
            .block_on(async { tokio::time::timeout(limit, fut).await })
        {
            Ok(r) => r.map_err(|s| explain(&self.cfg, status(op, s))),
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                op,
                format!(
                    "no answer within {}ms from {}",
                    limit.as_millis(),
                    self.endpoint()
                ),
            )),
        }
    }

    /// One unary call. `idempotent` calls are retried on other endpoints
    /// while the dial budget lasts; writes are not, since their outcome is
    /// unknown after a timeout. An expired auth token is renewed once.
    fn unary<T, F, Fut>(&self, op: &'static str, idempotent: bool, call: F) -> Result<T>
    where
        F: Fn(Channel, &Client) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut reauthed = false;
        let mut retried = false;
        let mut deadline = Instant::now() + self.cfg.dial_timeout;
        if let Some(at) = self.deadline.get() {
            deadline = deadline.min(at);
        }
        loop {
            match self.run_timed(op, call(self.channel(), self)) {
                Ok(r) => return Ok(r.into_inner()),
                Err(e) if e.kind == ErrorKind::Auth && !reauthed && e.detail.contains("token") => {
                    reauthed = true;
                    self.authenticate()?;
                }
                Err(e) if idempotent && e.is_unavailable() && Instant::now() < deadline => {
                    // A member that accepts connections and then drops every
                    // call (a plaintext client at a TLS port, say) must not
                    // make this a busy loop.
                    if retried {
                        let left = deadline.saturating_duration_since(Instant::now());
                        std::thread::sleep(left.min(Duration::from_millis(100)));
                    }
                    retried = true;
                    self.failover()?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub fn range(&self, r: Range) -> Result<RangeResult> {
        let req = convert::range_req(r);
        let resp = self.unary("range", true, |ch, c| {
            let req = c.request(req.clone(), false);
            async move { KvClient::new(ch).range(req).await }
        })?;
        convert::range_resp(resp)
    }

    pub fn put(
        &self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        lease: i64,
    ) -> Result<i64> {
        let req = rpc::PutRequest {
            key: key.into(),
            value: value.into(),
            lease,
            ..Default::default()
        };
        let resp = self.unary("put", false, |ch, c| {
            let req = c.request(req.clone(), false);
            async move { KvClient::new(ch).put(req).await }
        })?;
        convert::header_rev(&resp.header, "put")
    }

    /// Deletes `[key, range_end)` (one key when `range_end` is empty);
    /// returns how many keys went.
    pub fn delete(&self, key: impl Into<Vec<u8>>, range_end: Vec<u8>) -> Result<i64> {
        let req = rpc::DeleteRangeRequest {
            key: key.into(),
            range_end,
            ..Default::default()
        };
        let resp = self.unary("delete", false, |ch, c| {
            let req = c.request(req.clone(), false);
            async move { KvClient::new(ch).delete_range(req).await }
        })?;
        Ok(resp.deleted)
    }

    pub fn txn(&self, t: Txn) -> Result<TxnResult> {
        let req = convert::txn_req(t);
        let resp = self.unary("txn", false, |ch, c| {
            let req = c.request(req.clone(), false);
            async move { KvClient::new(ch).txn(req).await }
        })?;
        convert::txn_resp(resp)
    }

    /// Compacts history up to `revision` (tests and maintenance).
    pub fn compact(&self, revision: i64) -> Result<()> {
        let req = rpc::CompactionRequest {
            revision,
            physical: true,
        };
        self.unary("compact", false, |ch, c| {
            let req = c.request(req, false);
            async move { KvClient::new(ch).compact(req).await }
        })?;
        Ok(())
    }

    pub fn lease_grant(&self, ttl_secs: i64) -> Result<Lease> {
        let req = rpc::LeaseGrantRequest {
            ttl: ttl_secs,
            id: 0,
        };
        let resp = self.unary("lease grant", true, |ch, c| {
            let req = c.request(req, false);
            async move { LeaseClient::new(ch).lease_grant(req).await }
        })?;
        if !resp.error.is_empty() || resp.id == 0 {
            return Err(Error::new(ErrorKind::Other, "lease grant", resp.error));
        }
        Ok(Lease {
            id: resp.id,
            ttl: resp.ttl,
        })
    }

    /// Revokes a lease; a lease that is already gone counts as revoked.
    pub fn lease_revoke(&self, id: i64) -> Result<()> {
        let req = rpc::LeaseRevokeRequest { id };
        match self.unary("lease revoke", true, |ch, c| {
            let req = c.request(req, false);
            async move { LeaseClient::new(ch).lease_revoke(req).await }
        }) {
            Ok(_) => Ok(()),
            Err(e) if e.kind == ErrorKind::LeaseNotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub fn lease_time_to_live(&self, id: i64) -> Result<LeaseStatus> {
        let req = rpc::LeaseTimeToLiveRequest { id, keys: false };
        let resp = self.unary("lease ttl", true, |ch, c| {
            let req = c.request(req, false);
            async move { LeaseClient::new(ch).lease_time_to_live(req).await }
        })?;
        Ok(LeaseStatus {
            ttl: resp.ttl,
            granted_ttl: resp.granted_ttl,
        })
    }
}
