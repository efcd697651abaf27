//! Watch and LeaseKeepAlive streams. Both open lazily: the HTTP/2 stream is
//! started by the first `next()`, inside the event loop's wait, so opening
//! one never costs the caller a round trip of its own. Their async `next()`
//! is for the crate's one event loop, which awaits it together with its own
//! file descriptors; everyone else waits through [`Client::next_event`] and
//! [`Client::next_answer`].

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use super::convert::{self, status};
use super::pb::etcdserverpb as rpc;
use super::pb::etcdserverpb::{lease_client::LeaseClient, watch_client::WatchClient};
use super::{Client, Error, ErrorKind, Event, Result};

type Opening<T> = Pin<
    Box<dyn Future<Output = std::result::Result<tonic::Response<Streaming<T>>, tonic::Status>>>,
>;

enum State<T> {
    Opening(Opening<T>),
    Open(Box<Streaming<T>>),
}

impl<T> State<T> {
    async fn message(&mut self, op: &'static str) -> Result<T> {
        if let State::Opening(fut) = self {
            let stream = fut.await.map_err(|s| status(op, s))?.into_inner();
            *self = State::Open(Box::new(stream));
        }
        let State::Open(stream) = self else {
            return Err(Error::new(ErrorKind::Other, op, "stream not open"));
        };
        match stream.message().await {
            Ok(Some(m)) => Ok(m),
            Ok(None) => Err(Error::new(
                ErrorKind::Unavailable,
                op,
                "stream closed by etcd",
            )),
            Err(s) => Err(status(op, s)),
        }
    }
}

/// What to watch: one key or a range, from a revision, with filters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WatchSpec {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    /// 0 means "from now"; to miss nothing, Range first and watch from its
    /// revision + 1.
    pub start_revision: i64,
    /// Deletions only (what a waiter needs).
    pub no_put: bool,
    pub no_delete: bool,
    pub prev_kv: bool,
    pub progress_notify: bool,
}

impl WatchSpec {
    pub fn key(key: impl Into<Vec<u8>>) -> WatchSpec {
        WatchSpec {
            key: key.into(),
            ..WatchSpec::default()
        }
    }

    pub fn prefix(prefix: impl Into<Vec<u8>>) -> WatchSpec {
        let key = prefix.into();
        WatchSpec {
            range_end: crate::keys::prefix_end(&key),
            key,
            ..WatchSpec::default()
        }
    }

    pub fn from_revision(mut self, rev: i64) -> WatchSpec {
        self.start_revision = rev;
        self
    }

    pub fn deletes_only(mut self) -> WatchSpec {
        self.no_put = true;
        self
    }

    pub fn puts_only(mut self) -> WatchSpec {
        self.no_delete = true;
        self
    }

    pub fn with_prev_kv(mut self) -> WatchSpec {
        self.prev_kv = true;
        self
    }
}

/// What a watch delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// Changes, all at or below `revision` (the store's revision when sent).
    Events { revision: i64, events: Vec<Event> },
    /// Nothing changed up to `revision`.
    Progress { revision: i64 },
    /// The start revision was compacted: the watch is over. Range again and
    /// watch from the new revision + 1; never retry the same start.
    Compacted { compact_revision: i64 },
    /// etcd ended the watch (e.g. the member lost its leader).
    Canceled { reason: String },
}

/// One watch on its own gRPC stream.
pub struct Watch {
    // Dropping the sender would end the request stream, and with it the watch.
    _tx: mpsc::Sender<rpc::WatchRequest>,
    state: State<rpc::WatchResponse>,
}

impl Watch {
    /// The next thing that happened. An error means the stream is gone
    /// (re-open it after a failover); `Compacted`/`Canceled` end the watch.
    pub(crate) async fn next(&mut self) -> Result<WatchEvent> {
        loop {
            let resp = self.state.message("watch").await?;
            if resp.compact_revision != 0 {
                return Ok(WatchEvent::Compacted {
                    compact_revision: resp.compact_revision,
                });
            }
            if resp.canceled {
                return Ok(WatchEvent::Canceled {
                    reason: resp.cancel_reason,
                });
            }
            if resp.created && resp.events.is_empty() {
                continue;
            }
            let revision = convert::header_rev(&resp.header, "watch")?;
            if resp.events.is_empty() {
                return Ok(WatchEvent::Progress { revision });
            }
            return Ok(WatchEvent::Events {
                revision,
                events: resp.events.into_iter().map(convert::event).collect(),
            });
        }
    }
}

/// A keep-alive answer: the TTL etcd reports (≤ 0: the lease is gone) and
/// the send time of the request it answers, as the caller gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepAliveAnswer {
    pub ttl: i64,
    pub sent_at: Duration,
}

/// A LeaseKeepAlive stream for one lease.
pub struct KeepAlive {
    lease: i64,
    tx: mpsc::Sender<rpc::LeaseKeepAliveRequest>,
    state: State<rpc::LeaseKeepAliveResponse>,
    sent: VecDeque<Duration>,
}

impl KeepAlive {
    /// Queues one keep-alive request; `sent_at` comes back with its answer.
    pub fn send(&mut self, sent_at: Duration) -> Result<()> {
        self.tx
            .try_send(rpc::LeaseKeepAliveRequest { id: self.lease })
            .map_err(|_| Error::new(ErrorKind::Unavailable, "keep-alive", "stream closed"))?;
        self.sent.push_back(sent_at);
        Ok(())
    }

    /// Requests sent and not yet answered.
    pub fn outstanding(&self) -> usize {
        self.sent.len()
    }

    pub fn lease(&self) -> i64 {
        self.lease
    }

    /// The next answer. An error means the stream is gone: every lease it
    /// kept alive is at risk, so re-open at once (on another endpoint).
    pub(crate) async fn next(&mut self) -> Result<KeepAliveAnswer> {
        loop {
            let resp = self.state.message("keep-alive").await?;
            if resp.id != self.lease {
                continue;
            }
            let Some(sent_at) = self.sent.pop_front() else {
                return Err(Error::new(
                    ErrorKind::Other,
                    "keep-alive",
                    "answer to a request that was never sent",
                ));
            };
            return Ok(KeepAliveAnswer {
                ttl: resp.ttl,
                sent_at,
            });
        }
    }
}

impl Client {
    /// Waits up to `within` for the next thing `w` delivers; a timeout is
    /// an error of kind `Timeout` and leaves the watch usable.
    pub fn next_event(&self, w: &mut Watch, within: Duration) -> Result<WatchEvent> {
        self.wait_for("watch", within, w.next())
    }

    /// Waits up to `within` for the next keep-alive answer.
    pub fn next_answer(&self, ka: &mut KeepAlive, within: Duration) -> Result<KeepAliveAnswer> {
        self.wait_for("keep-alive", within, ka.next())
    }

    fn wait_for<T>(
        &self,
        op: &'static str,
        within: Duration,
        fut: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        self.rt
            .block_on(async { tokio::time::timeout(within, fut).await })
            .unwrap_or_else(|_| {
                Err(Error::new(
                    ErrorKind::Timeout,
                    op,
                    format!("nothing within {}ms", within.as_millis()),
                ))
            })
    }

    /// Prepares a watch; the stream opens on the first [`Watch::next`].
    pub fn watch(&self, spec: WatchSpec) -> Watch {
        use rpc::watch_create_request::FilterType;
        let mut filters = Vec::new();
        if spec.no_put {
            filters.push(FilterType::Noput as i32);
        }
        if spec.no_delete {
            filters.push(FilterType::Nodelete as i32);
        }
        let create = rpc::WatchRequest {
            request_union: Some(rpc::watch_request::RequestUnion::CreateRequest(
                rpc::WatchCreateRequest {
                    key: spec.key,
                    range_end: spec.range_end,
                    start_revision: spec.start_revision,
                    progress_notify: spec.progress_notify,
                    filters,
                    prev_kv: spec.prev_kv,
                    ..Default::default()
                },
            )),
        };
        let (tx, rx) = mpsc::channel(4);
        // Capacity 4 and a fresh channel: this cannot fail.
        let _ = tx.try_send(create);
        let req = self.request(ReceiverStream::new(rx), true);
        let ch = self.channel();
        Watch {
            _tx: tx,
            state: State::Opening(Box::pin(
                async move { WatchClient::new(ch).watch(req).await },
            )),
        }
    }

    /// Prepares a keep-alive stream for `lease`; nothing is sent until
    /// [`KeepAlive::send`], and the stream opens on the first `next()`.
    pub fn keep_alive(&self, lease: i64) -> KeepAlive {
        let (tx, rx) = mpsc::channel(8);
        let req = self.request(ReceiverStream::new(rx), true);
        let ch = self.channel();
        KeepAlive {
            lease,
            tx,
            state: State::Opening(Box::pin(async move {
                LeaseClient::new(ch).lease_keep_alive(req).await
            })),
            sent: VecDeque::new(),
        }
    }
}
