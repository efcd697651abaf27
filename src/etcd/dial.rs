//! Reaching a member. Endpoints are dialed concurrently, each given a
//! short head start over the next in the list, and a member counts as
//! reached only once it has answered a request: a dead, hung or
//! SYN-dropping endpoint then costs the others nothing but that head start.
//! A single endpoint at first connect skips that request (nothing to choose
//! among); the client holds its first call to the dial's budget instead.

use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tonic::transport::Channel;

use tonic::transport::Endpoint;

use super::config::ClientConfig;
use super::convert::source_chain;
use super::pb::etcdserverpb as rpc;
use super::pb::etcdserverpb::kv_client::KvClient;
use super::tls::{self, tls_refusal, Tls};
use super::{Error, ErrorKind, Result};

/// How long each endpoint waits for the one before it: a healthy member
/// answers well within it, so the order given is kept while all are up.
const STAGGER: Duration = Duration::from_millis(100);

/// Pause before dialing again an endpoint that failed at once (refused,
/// reset), so a list of dead endpoints is not a busy loop.
const REDIAL: Duration = Duration::from_millis(100);

/// HTTP/2 pings. etcd (grpc-go) enforces a minimum of 5 s between pings
/// and no pings while no stream is open, and answers a client that pings
/// more often with GOAWAY, tearing down every stream; grpc-go's own clients
/// clamp the interval to 10 s. A hung member is found by the request and
/// keep-alive timeouts instead; these pings only catch a connection whose
/// peer vanished while nothing else was being said.
const PING_INTERVAL: Duration = Duration::from_secs(10);
const PING_TIMEOUT: Duration = Duration::from_secs(5);

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

/// Connects to one of `endpoints`, trying `start` first and then the
/// others in list order, all before `until`. Returns the index reached.
/// Without `prove` the member is not asked for an answer (the caller's
/// first call then stands in for the check): only worth it where there is
/// no member to choose among, a single endpoint.
pub(super) async fn dial_any(
    cfg: &ClientConfig,
    tls: Option<&Tls>,
    start: usize,
    until: Instant,
    prove: bool,
) -> Result<(usize, Channel)> {
    let endpoints = &cfg.endpoints;
    let n = endpoints.len();
    if n == 0 {
        return Err(Error::new(ErrorKind::Other, "connect", "no endpoints"));
    }
    let begun = Instant::now();
    // Position k in the order of preference is endpoint order[k].
    let order: Vec<usize> = (0..n).map(|k| (start + k) % n).collect();
    let mut next_at: Vec<Option<Instant>> =
        (0..n).map(|k| Some(begun + STAGGER * k as u32)).collect();
    let mut launched = vec![false; n];
    let mut refused_tls = vec![false; n];
    let mut last = String::new();
    let mut set = JoinSet::new();
    loop {
        let now = Instant::now();
        if now >= until {
            break;
        }
        for k in 0..n {
            if next_at[k].is_some_and(|t| t <= now) {
                next_at[k] = None;
                launched[k] = true;
                let addr = endpoints[order[k]].clone();
                let (cfg, tls) = (cfg.clone(), tls.cloned());
                set.spawn(async move { (k, dial(&addr, until, &cfg, tls.as_ref(), prove).await) });
            }
        }
        let wake = next_at.iter().flatten().copied().fold(until, Instant::min);
        tokio::select! {
            Some(joined) = set.join_next() => {
                // A dial task cannot panic short of a bug in tonic; its
                // endpoint then stays out of this round.
                let Ok((k, r)) = joined else { continue };
                let i = order[k];
                match r {
                    Ok(ch) => return Ok((i, ch)),
                    Err(DialError::Tls(e)) => {
                        last = format!("{}: {e}", endpoints[i]);
                        // A certificate that does not verify will not on
                        // a retry: every member refusing ends the dial.
                        refused_tls[k] = true;
                        if refused_tls.iter().all(|r| *r) {
                            return Err(Error::new(ErrorKind::Tls, "connect", last));
                        }
                    }
                    Err(DialError::Retry(e)) => {
                        last = format!("{}: {e}", endpoints[i]);
                        next_at[k] = Some(Instant::now() + REDIAL);
                    }
                }
                // This one failed: the next in line need not wait its turn.
                if let Some(j) = (0..n).find(|&j| !launched[j]) {
                    next_at[j] = Some(Instant::now());
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    }
    let budget = until.saturating_duration_since(begun);
    Err(Error::new(
        ErrorKind::Unavailable,
        "connect",
        format!(
            "no etcd endpoint answered within {}ms (tried {}); last error: {}",
            budget.as_millis(),
            endpoints.join(", "),
            if last.is_empty() {
                "none answered in time"
            } else {
                &last
            }
        ),
    ))
}

/// One endpoint, up to a proven answer (with `prove`), by `until`.
async fn dial(
    addr: &str,
    until: Instant,
    cfg: &ClientConfig,
    tls: Option<&Tls>,
    prove: bool,
) -> std::result::Result<Channel, DialError> {
    let timeout = until.saturating_duration_since(Instant::now());
    let (ep, transport) = endpoint_for(addr, cfg, tls)?;
    let ep = ep.connect_timeout(timeout).tcp_nodelay(true);
    let ep = if cfg.pings {
        ep.http2_keep_alive_interval(PING_INTERVAL)
            .keep_alive_timeout(PING_TIMEOUT)
            .keep_alive_while_idle(false)
    } else {
        ep
    };
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
    // tonic's connect returns before the server has said a word: only an
    // answer proves that a member (not a frozen process, not a port that
    // merely accepts) is there.
    let connected = async {
        let ch = connect.await?;
        if prove {
            probe(ch.clone()).await?;
        }
        Ok::<_, String>(ch)
    };
    match tokio::time::timeout_at(until.into(), connected).await {
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

/// Proves that the member answers, and under TLS that it accepted the
/// session: under TLS 1.3 the client's handshake completes before the
/// server has checked the client certificate, so a refusal only shows on
/// the first call. The probe is a Range without a key: etcd rejects it
/// before it reaches auth, raft or the store, and any answer of etcd's own
/// (a status without a transport cause) proves the connection.
async fn probe(ch: Channel) -> std::result::Result<(), String> {
    match KvClient::new(ch).range(rpc::RangeRequest::default()).await {
        Ok(_) => Ok(()),
        Err(s) => match std::error::Error::source(&s) {
            None => Ok(()),
            Some(cause) => Err(source_chain(cause)),
        },
    }
}
