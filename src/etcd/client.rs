//! Connection, failover and the blocking unary calls.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::Channel;

use super::config::ClientConfig;
use super::convert::{self, status};
use super::dial;
use super::pb::etcdserverpb as rpc;
use super::pb::etcdserverpb::lease_client::LeaseClient;
use super::pb::etcdserverpb::{auth_client::AuthClient, kv_client::KvClient};
use super::tls::{self, Tls};
use super::{Error, ErrorKind, Lease, LeaseStatus, Range, RangeResult, Result, Txn, TxnResult};

/// How long an idempotent call waits for one member before it tries
/// another (doubled on every retry): a healthy member answers in
/// milliseconds, a hung one never.
const ANSWER_PATIENCE: Duration = Duration::from_secs(1);

struct Conn {
    index: usize,
    channel: Channel,
    /// Set while the first connection, dialed without the connect check,
    /// has not answered yet.
    unproven: Option<Unproven>,
    token: Option<AsciiMetadataValue>,
}

/// The connect check skipped. With a single endpoint there is no member to
/// choose among, so the check's Range would only add a round trip before
/// the first real call, which proves the member as well when it is held to
/// the same budget: what was left of the dial timeout when the dial
/// returned, counted from that first call. Only the first dial skips the
/// check; a redial (failover) proves its member within its own deadline,
/// so no later connection is ever held to this one's budget.
#[derive(Clone, Copy)]
struct Unproven {
    left: Duration,
    /// `left` after the first call on the connection began.
    by: Option<Instant>,
}

/// A connection to one etcd member at a time. Every method blocks, running
/// its call on a current-thread runtime that the caller hands in (the event
/// loop shares its own) or that [`Client::connect`] makes for a simple tool.
pub struct Client {
    pub(super) rt: Rc<Runtime>,
    cfg: ClientConfig,
    /// Built once from [`TlsFiles`]; `None` when no endpoint uses TLS.
    tls: Option<Tls>,
    conn: RefCell<Conn>,
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
        e.detail = e.detail.replacen(tls::CLIENT_CERT_REFUSED, &better, 1);
    }
    e
}

impl Client {
    /// Connects to an endpoint that answers within the dial timeout (all
    /// are tried, the first ones first), then authenticates if a user is
    /// configured.
    pub fn connect(cfg: ClientConfig) -> Result<Client> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| Error::new(ErrorKind::Other, "connect", e.to_string()))?;
        Client::connect_on(cfg, Rc::new(rt))
    }

    /// [`Client::connect`] on the caller's runtime (a current-thread one
    /// with I/O and time enabled), which then drives both these calls and
    /// the caller's own waits.
    pub fn connect_on(cfg: ClientConfig, rt: Rc<Runtime>) -> Result<Client> {
        let tls = tls::load(&cfg)?;
        let until = Instant::now() + cfg.dial_timeout;
        let check = cfg.endpoints.len() > 1;
        let (index, channel) = rt
            .block_on(dial::dial_any(&cfg, tls.as_ref(), 0, until, check))
            .map_err(|e| explain(&cfg, e))?;
        let unproven = (!check).then(|| Unproven {
            left: until.saturating_duration_since(Instant::now()),
            by: None,
        });
        let client = Client {
            rt,
            cfg,
            tls,
            conn: RefCell::new(Conn {
                index,
                channel,
                unproven,
                token: None,
            }),
        };
        client.authenticate(None)?;
        Ok(client)
    }

    /// The endpoint in use, for diagnostics.
    pub fn endpoint(&self) -> String {
        self.cfg.endpoints[self.conn.borrow().index].clone()
    }

    /// Drops the current connection and connects to another endpoint that
    /// answers, the current one last (it may be the only one alive).
    pub fn failover(&self) -> Result<()> {
        self.failover_at(None)
    }

    pub(super) fn failover_at(&self, at: Option<Instant>) -> Result<()> {
        self.failover_by(self.cfg.dial_timeout, at)
    }

    /// [`Client::failover`] within `budget` instead of the dial timeout: a
    /// holder may not wait past the moment its child must start stopping.
    pub fn failover_within(&self, budget: Duration) -> Result<()> {
        self.failover_by(budget, None)
    }

    pub(super) fn failover_by(&self, budget: Duration, at: Option<Instant>) -> Result<()> {
        self.failover_until(until(budget, at))
    }

    fn failover_until(&self, until: Instant) -> Result<()> {
        let start = self.conn.borrow().index + 1;
        // A redial always proves its member: its deadline then never
        // outlives the dial (the reverted 73bf630 carried an unanswered
        // dial's deadline over to every later connection).
        let (index, channel) = self
            .rt
            .block_on(dial::dial_any(
                &self.cfg,
                self.tls.as_ref(),
                start,
                until,
                true,
            ))
            .map_err(|e| explain(&self.cfg, e))?;
        {
            let mut c = self.conn.borrow_mut();
            c.index = index;
            c.channel = channel;
            c.unproven = None;
        }
        self.authenticate(Some(until))
    }

    fn authenticate(&self, at: Option<Instant>) -> Result<()> {
        let Some(name) = self.cfg.user.clone() else {
            return Ok(());
        };
        let password = self.cfg.password.clone().unwrap_or_default();
        let ch = self.conn.borrow().channel.clone();
        let until = until(self.cfg.request_timeout, at);
        let resp = match self.run_timed("authenticate", until, async move {
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

    /// The instant by which an unproven connection must answer, fixed by
    /// the first call that asks; `None` once it has answered.
    fn unproven_by(&self) -> Option<Instant> {
        let mut c = self.conn.borrow_mut();
        let u = c.unproven.as_mut()?;
        Some(*u.by.get_or_insert_with(|| Instant::now() + u.left))
    }

    fn unproven_past(&self) -> bool {
        let c = self.conn.borrow();
        c.unproven
            .and_then(|u| u.by)
            .is_some_and(|by| Instant::now() >= by)
    }

    /// The error of a member that did not answer its first call in time:
    /// what the connect check would have said, kind and wording.
    fn unanswered(&self) -> Error {
        Error::new(
            ErrorKind::Unavailable,
            "connect",
            format!(
                "no etcd endpoint answered within {}ms (tried {}); last error: none answered in time",
                self.cfg.dial_timeout.as_millis(),
                self.cfg.endpoints.join(", ")
            ),
        )
    }

    fn run_timed<T, F>(
        &self,
        op: &'static str,
        until: Instant,
        fut: F,
    ) -> Result<tonic::Response<T>>
    where
        F: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        // The first call on an unproven connection stands in for the
        // connect check: it ends by the check's deadline, when that comes
        // first, and says what the check would have said.
        let first = self.unproven_by().filter(|by| *by < until);
        let until = first.unwrap_or(until);
        let limit = until.saturating_duration_since(Instant::now());
        let timed_out = || {
            if first.is_some() {
                return self.unanswered();
            }
            Error::new(
                ErrorKind::Timeout,
                op,
                format!(
                    "no answer within {}ms from {}",
                    limit.as_millis(),
                    self.endpoint()
                ),
            )
        };
        if limit.is_zero() {
            return Err(timed_out());
        }
        match self
            .rt
            .block_on(async { tokio::time::timeout_at(until.into(), fut).await })
        {
            Ok(r) => {
                // Any answer of etcd's own (no transport cause) proves it.
                let answered = match &r {
                    Ok(_) => true,
                    Err(s) => std::error::Error::source(s).is_none(),
                };
                if answered {
                    self.conn.borrow_mut().unproven = None;
                }
                r.map_err(|s| explain(&self.cfg, status(op, s)))
            }
            Err(_) => Err(timed_out()),
        }
    }

    /// One unary call, ended by the request timeout or the caller's
    /// deadline `at`, whichever comes first. `idempotent` calls give each member a short
    /// while to answer (doubling on every retry) and then try another, so a
    /// hung member costs a moment, not the whole budget; writes are never
    /// retried, since their outcome is unknown after a timeout. An expired
    /// auth token is renewed once.
    fn unary<T, F, Fut>(
        &self,
        op: &'static str,
        idempotent: bool,
        at: Option<Instant>,
        call: F,
    ) -> Result<T>
    where
        F: Fn(Channel, &Client) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut reauthed = false;
        let mut retried = false;
        let budget = if idempotent {
            self.cfg.request_timeout.max(self.cfg.dial_timeout)
        } else {
            self.cfg.request_timeout
        };
        let until = until(budget, at);
        let mut patience = ANSWER_PATIENCE;
        loop {
            let attempt = if idempotent && self.cfg.endpoints.len() > 1 {
                until.min(Instant::now() + patience)
            } else {
                until
            };
            match self.run_timed(op, attempt, call(self.channel(), self)) {
                Ok(r) => return Ok(r.into_inner()),
                Err(e) if e.kind == ErrorKind::Auth && !reauthed && e.detail.contains("token") => {
                    reauthed = true;
                    self.authenticate(Some(until))?;
                }
                // A member that has not answered by the check's deadline
                // is as unreachable as one whose connect check failed.
                Err(e) if self.unproven_past() => return Err(e),
                Err(e) if idempotent && e.is_unavailable() && Instant::now() < until => {
                    // A member that accepts connections and then drops every
                    // call must not make this a busy loop.
                    if retried {
                        let left = until.saturating_duration_since(Instant::now());
                        std::thread::sleep(left.min(Duration::from_millis(100)));
                    }
                    retried = true;
                    patience *= 2;
                    // Failing over from a member that never answered stays
                    // within the first contact's budget.
                    let by = self.unproven_by().map_or(until, |by| by.min(until));
                    self.failover_until(by)?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub fn range(&self, r: Range) -> Result<RangeResult> {
        self.range_by(r, None)
    }

    pub(super) fn range_by(&self, r: Range, at: Option<Instant>) -> Result<RangeResult> {
        let req = convert::range_req(r);
        let resp = self.unary("range", true, at, |ch, c| {
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
        let resp = self.unary("put", false, None, |ch, c| {
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
        let resp = self.unary("delete", false, None, |ch, c| {
            let req = c.request(req.clone(), false);
            async move { KvClient::new(ch).delete_range(req).await }
        })?;
        Ok(resp.deleted)
    }

    pub fn txn(&self, t: Txn) -> Result<TxnResult> {
        self.txn_by(t, None)
    }

    pub(super) fn txn_by(&self, t: Txn, at: Option<Instant>) -> Result<TxnResult> {
        let req = convert::txn_req(t);
        let resp = self.unary("txn", false, at, |ch, c| {
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
        self.unary("compact", false, None, |ch, c| {
            let req = c.request(req, false);
            async move { KvClient::new(ch).compact(req).await }
        })?;
        Ok(())
    }

    pub fn lease_grant(&self, ttl_secs: i64) -> Result<Lease> {
        self.lease_grant_by(ttl_secs, None)
    }

    pub(super) fn lease_grant_by(&self, ttl_secs: i64, at: Option<Instant>) -> Result<Lease> {
        let req = rpc::LeaseGrantRequest {
            ttl: ttl_secs,
            id: 0,
        };
        let resp = self.unary("lease grant", true, at, |ch, c| {
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
        self.lease_revoke_by(id, None)
    }

    pub(super) fn lease_revoke_by(&self, id: i64, at: Option<Instant>) -> Result<()> {
        let req = rpc::LeaseRevokeRequest { id };
        match self.unary("lease revoke", true, at, |ch, c| {
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
        let resp = self.unary("lease ttl", true, None, |ch, c| {
            let req = c.request(req, false);
            async move { LeaseClient::new(ch).lease_time_to_live(req).await }
        })?;
        Ok(LeaseStatus {
            ttl: resp.ttl,
            granted_ttl: resp.granted_ttl,
        })
    }
}

/// `budget` from now, but never past the caller's deadline `at`.
fn until(budget: Duration, at: Option<Instant>) -> Instant {
    let own = Instant::now() + budget;
    at.map_or(own, |at| at.min(own))
}
