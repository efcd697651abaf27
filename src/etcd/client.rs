//! Connection, failover and the blocking unary calls.

use std::cell::RefCell;
use std::future::Future;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use super::convert::{self, status};
use super::pb::etcdserverpb as rpc;
use super::pb::etcdserverpb::lease_client::LeaseClient;
use super::pb::etcdserverpb::{auth_client::AuthClient, kv_client::KvClient};
use super::{Error, ErrorKind, Lease, LeaseStatus, Range, RangeResult, Result, Txn, TxnResult};

/// How to reach etcd.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port`, `http://host:port` or `unix:///path`, tried in order.
    pub endpoints: Vec<String>,
    /// Budget for reaching any endpoint, at start and on every failover.
    pub dial_timeout: Duration,
    /// Budget for one unary call.
    pub request_timeout: Duration,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl ClientConfig {
    pub fn new(endpoints: Vec<String>) -> ClientConfig {
        ClientConfig {
            endpoints,
            dial_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            user: None,
            password: None,
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
    conn: RefCell<Conn>,
}

fn endpoint_for(addr: &str) -> std::result::Result<(Endpoint, Option<String>), String> {
    if let Some(path) = addr.strip_prefix("unix://") {
        // The authority is only a label here: the connector ignores it.
        return Ok((
            Endpoint::from_static("http://localhost"),
            Some(path.to_string()),
        ));
    }
    if addr.starts_with("https://") {
        return Err("https:// endpoints are not supported by this build yet".into());
    }
    let uri = if addr.starts_with("http://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    Endpoint::from_shared(uri)
        .map(|e| (e, None))
        .map_err(|e| e.to_string())
}

async fn dial(addr: &str, timeout: Duration) -> std::result::Result<Channel, String> {
    let (ep, unix) = endpoint_for(addr)?;
    let ep = ep
        .connect_timeout(timeout)
        .tcp_nodelay(true)
        // A member that vanished without a FIN is noticed within seconds,
        // not after the kernel's TCP timeouts.
        .http2_keep_alive_interval(Duration::from_secs(2))
        .keep_alive_timeout(Duration::from_secs(2))
        .keep_alive_while_idle(true);
    let connect = async {
        match unix {
            None => ep.connect().await.map_err(|e| source_chain(&e)),
            Some(path) => {
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
        }
    };
    match tokio::time::timeout(timeout, connect).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {}ms", timeout.as_millis())),
    }
}

/// tonic's transport errors say "transport error" and hide the cause one
/// or two levels down.
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        text.push_str(": ");
        text.push_str(&s.to_string());
        cur = s.source();
    }
    text
}

impl Client {
    /// Connects to the first endpoint that answers within the dial timeout
    /// (going round the list until it runs out), then authenticates if a user
    /// is configured.
    pub fn connect(cfg: ClientConfig) -> Result<Client> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| Error::new(ErrorKind::Other, "connect", e.to_string()))?;
        let (index, channel) = rt.block_on(Self::dial_any(&cfg, 0))?;
        let client = Client {
            rt,
            cfg,
            conn: RefCell::new(Conn {
                index,
                channel,
                token: None,
            }),
        };
        client.authenticate()?;
        Ok(client)
    }

    async fn dial_any(cfg: &ClientConfig, start: usize) -> Result<(usize, Channel)> {
        let n = cfg.endpoints.len();
        if n == 0 {
            return Err(Error::new(ErrorKind::Other, "connect", "no endpoints"));
        }
        let deadline = Instant::now() + cfg.dial_timeout;
        let mut last = String::new();
        let mut attempt = 0;
        loop {
            let i = (start + attempt) % n;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match dial(&cfg.endpoints[i], left).await {
                Ok(ch) => return Ok((i, ch)),
                Err(e) => last = format!("{}: {e}", cfg.endpoints[i]),
            }
            attempt += 1;
            if attempt % n == 0 {
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
        let (index, channel) = self.rt.block_on(Self::dial_any(&cfg, start))?;
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
        let resp = self.run_timed("authenticate", async move {
            AuthClient::new(ch)
                .authenticate(rpc::AuthenticateRequest { name, password })
                .await
        })?;
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

    fn run_timed<T, F>(&self, op: &'static str, fut: F) -> Result<tonic::Response<T>>
    where
        F: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let limit = self.cfg.request_timeout;
        match self
            .rt
            .block_on(async { tokio::time::timeout(limit, fut).await })
        {
            Ok(r) => r.map_err(|s| status(op, s)),
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
        let deadline = Instant::now() + self.cfg.dial_timeout;
        loop {
            match self.run_timed(op, call(self.channel(), self)) {
                Ok(r) => return Ok(r.into_inner()),
                Err(e) if e.kind == ErrorKind::Auth && !reauthed && e.detail.contains("token") => {
                    reauthed = true;
                    self.authenticate()?;
                }
                Err(e) if idempotent && e.is_unavailable() && Instant::now() < deadline => {
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
