//! The blocking etcd v3 facade: the only module that sees tonic or prost.
//! Everything it returns is one of the small types below.
//!
//! Simple commands call the blocking methods of [`Client`]. The event loop
//! hands the client the runtime it waits on, makes each request through
//! [`Client::by`] with the instant it must act by, and awaits the `next()`
//! of a [`Watch`] or a [`KeepAlive`] together with its own file descriptors.

mod bounded;
mod client;
mod config;
mod convert;
mod dial;
#[allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]
mod pb;
mod stream;
mod tls;

pub use bounded::Bounded;
pub use client::Client;
pub use config::{ClientConfig, TlsFiles};
pub use stream::{KeepAlive, KeepAliveAnswer, Watch, WatchEvent, WatchSpec};

use std::fmt;

/// What kind of failure, as far as the caller's next move goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No member answered (down, partitioned, no leader): retrying, maybe on
    /// another endpoint, can help.
    Unavailable,
    /// The call timed out: a write's outcome is unknown.
    Timeout,
    /// The lease does not exist (any more).
    LeaseNotFound,
    /// The revision asked for was compacted away: re-read at the current one.
    Compacted,
    /// Credentials were refused, or the user lacks the permission.
    Auth,
    /// The TLS files are unusable, or a TLS handshake was refused (server
    /// certificate not trusted, client certificate missing or refused).
    Tls,
    /// Anything else etcd refused or answered unexpectedly.
    Other,
}

/// One failed etcd operation: what was tried and why it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub op: &'static str,
    pub detail: String,
}

impl Error {
    pub fn new(kind: ErrorKind, op: &'static str, detail: impl Into<String>) -> Error {
        Error {
            kind,
            op,
            detail: detail.into(),
        }
    }

    /// Retrying (on another endpoint if need be) may help.
    pub fn is_unavailable(&self) -> bool {
        matches!(self.kind, ErrorKind::Unavailable | ErrorKind::Timeout)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.op, self.detail)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// A key with its value and MVCC metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyValue {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: i64,
}

/// What a Range read: the store's revision at the time, the keys, and the
/// total count (which exceeds `kvs.len()` under a limit or with count-only).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RangeResult {
    pub revision: i64,
    pub kvs: Vec<KeyValue>,
    pub count: i64,
}

/// A read of one key, or of every key in `[key, range_end)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Range {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    /// 0 reads the newest revision.
    pub revision: i64,
    pub count_only: bool,
    /// Ascending by create revision (queue order) instead of by key.
    pub by_create: bool,
    /// 0 means no limit.
    pub limit: i64,
    /// Descending by key (with `limit`: the last keys of the range).
    pub newest_first: bool,
    /// Keys and revisions without values.
    pub keys_only: bool,
}

impl Range {
    pub fn key(key: impl Into<Vec<u8>>) -> Range {
        Range {
            key: key.into(),
            ..Range::default()
        }
    }

    pub fn prefix(prefix: impl Into<Vec<u8>>) -> Range {
        let key = prefix.into();
        Range {
            range_end: crate::keys::prefix_end(&key),
            key,
            ..Range::default()
        }
    }

    pub fn at(mut self, revision: i64) -> Range {
        self.revision = revision;
        self
    }

    pub fn count_only(mut self) -> Range {
        self.count_only = true;
        self
    }

    pub fn by_create(mut self) -> Range {
        self.by_create = true;
        self
    }

    pub fn limit(mut self, n: i64) -> Range {
        self.limit = n;
        self
    }
}

/// What a transaction guard compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Version(i64),
    CreateRevision(i64),
    ModRevision(i64),
    Lease(i64),
    Value(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Equal,
    Greater,
    Less,
    NotEqual,
}

/// One guard of a transaction. With a non-empty `range_end` it must hold for
/// every key in the range, and holds for an empty range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    pub op: CmpOp,
    pub target: Target,
}

impl Compare {
    pub fn key(key: impl Into<Vec<u8>>, op: CmpOp, target: Target) -> Compare {
        Compare {
            key: key.into(),
            range_end: Vec::new(),
            op,
            target,
        }
    }

    /// `key` does not exist.
    pub fn absent(key: impl Into<Vec<u8>>) -> Compare {
        Compare::key(key, CmpOp::Equal, Target::CreateRevision(0))
    }

    /// No key under `prefix` exists.
    pub fn prefix_empty(prefix: impl Into<Vec<u8>>) -> Compare {
        let key = prefix.into();
        Compare {
            range_end: crate::keys::prefix_end(&key),
            key,
            op: CmpOp::Equal,
            target: Target::CreateRevision(0),
        }
    }
}

/// One operation of a transaction branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
        lease: i64,
    },
    Get(Range),
    Delete {
        key: Vec<u8>,
        range_end: Vec<u8>,
    },
    Txn(Txn),
}

impl Op {
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>, lease: i64) -> Op {
        Op::Put {
            key: key.into(),
            value: value.into(),
            lease,
        }
    }

    pub fn delete(key: impl Into<Vec<u8>>) -> Op {
        Op::Delete {
            key: key.into(),
            range_end: Vec::new(),
        }
    }

    pub fn delete_prefix(prefix: impl Into<Vec<u8>>) -> Op {
        let key = prefix.into();
        Op::Delete {
            range_end: crate::keys::prefix_end(&key),
            key,
        }
    }
}

/// `if all(compare) then success else failure`, atomically.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Txn {
    pub compare: Vec<Compare>,
    pub success: Vec<Op>,
    pub failure: Vec<Op>,
}

/// The result of one operation of the branch that ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    Range(RangeResult),
    Put,
    Delete { deleted: i64 },
    Txn(TxnResult),
}

/// Which branch ran, the revision after it, and one result per operation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TxnResult {
    pub revision: i64,
    pub succeeded: bool,
    pub results: Vec<OpResult>,
}

impl TxnResult {
    /// The `i`-th result if it is a Range.
    pub fn range(&self, i: usize) -> Option<&RangeResult> {
        match self.results.get(i) {
            Some(OpResult::Range(r)) => Some(r),
            _ => None,
        }
    }

    /// The `i`-th result if it is a nested transaction.
    pub fn txn(&self, i: usize) -> Option<&TxnResult> {
        match self.results.get(i) {
            Some(OpResult::Txn(t)) => Some(t),
            _ => None,
        }
    }
}

/// A granted lease: its ID and the TTL etcd actually granted (it raises
/// short TTLs to its minimum without saying so).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub id: i64,
    pub ttl: i64,
}

/// A lease's remaining life, from LeaseTimeToLive; `ttl` is -1 when gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseStatus {
    pub ttl: i64,
    pub granted_ttl: i64,
}

/// One change seen on a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// For a delete: the key, and `mod_revision` = the deleting revision.
    pub kv: KeyValue,
    /// The value before, when the watch asked for `prev_kv`.
    pub prev: Option<KeyValue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}
