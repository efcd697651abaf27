//! Conversions between the generated protobuf types and the facade's own.
//! An answer missing a part etcd always sends becomes an error, not a panic.

use super::pb::{etcdserverpb as rpc, mvccpb};
use super::{
    CmpOp, Compare, Error, ErrorKind, Event, EventKind, KeyValue, Op, OpResult, Range, RangeResult,
    Result, Target, Txn, TxnResult,
};

pub(super) fn header_rev(h: &Option<rpc::ResponseHeader>, op: &'static str) -> Result<i64> {
    h.as_ref()
        .map(|h| h.revision)
        .ok_or_else(|| Error::new(ErrorKind::Other, op, "answer without a header"))
}

pub(super) fn kv(k: mvccpb::KeyValue) -> KeyValue {
    KeyValue {
        key: k.key,
        value: k.value,
        create_revision: k.create_revision,
        mod_revision: k.mod_revision,
        version: k.version,
        lease: k.lease,
    }
}

pub(super) fn event(e: mvccpb::Event) -> Event {
    Event {
        kind: if e.r#type == mvccpb::event::EventType::Delete as i32 {
            EventKind::Delete
        } else {
            EventKind::Put
        },
        kv: e.kv.map(kv).unwrap_or_default(),
        prev: e.prev_kv.map(kv),
    }
}

pub(super) fn range_req(r: Range) -> rpc::RangeRequest {
    use rpc::range_request::{SortOrder, SortTarget};
    let (order, target) = if r.by_create {
        (SortOrder::Ascend, SortTarget::Create)
    } else if r.newest_first {
        (SortOrder::Descend, SortTarget::Key)
    } else {
        (SortOrder::None, SortTarget::Key)
    };
    rpc::RangeRequest {
        key: r.key,
        range_end: r.range_end,
        limit: r.limit,
        revision: r.revision,
        sort_order: order as i32,
        sort_target: target as i32,
        count_only: r.count_only,
        keys_only: r.keys_only,
        ..Default::default()
    }
}

pub(super) fn range_resp(r: rpc::RangeResponse) -> Result<RangeResult> {
    Ok(RangeResult {
        revision: header_rev(&r.header, "range")?,
        kvs: r.kvs.into_iter().map(kv).collect(),
        count: r.count,
    })
}

fn compare(c: Compare) -> rpc::Compare {
    use rpc::compare::{CompareResult as R, CompareTarget as T, TargetUnion as U};
    let result = match c.op {
        CmpOp::Equal => R::Equal,
        CmpOp::Greater => R::Greater,
        CmpOp::Less => R::Less,
        CmpOp::NotEqual => R::NotEqual,
    };
    let (target, union) = match c.target {
        Target::Version(v) => (T::Version, U::Version(v)),
        Target::CreateRevision(v) => (T::Create, U::CreateRevision(v)),
        Target::ModRevision(v) => (T::Mod, U::ModRevision(v)),
        Target::Lease(v) => (T::Lease, U::Lease(v)),
        Target::Value(v) => (T::Value, U::Value(v)),
    };
    rpc::Compare {
        result: result as i32,
        target: target as i32,
        key: c.key,
        range_end: c.range_end,
        target_union: Some(union),
    }
}

fn op(o: Op) -> rpc::RequestOp {
    use rpc::request_op::Request;
    let request = match o {
        Op::Put { key, value, lease } => Request::RequestPut(rpc::PutRequest {
            key,
            value,
            lease,
            ..Default::default()
        }),
        Op::Get(r) => Request::RequestRange(range_req(r)),
        Op::Delete { key, range_end } => Request::RequestDeleteRange(rpc::DeleteRangeRequest {
            key,
            range_end,
            ..Default::default()
        }),
        Op::Txn(t) => Request::RequestTxn(txn_req(t)),
    };
    rpc::RequestOp {
        request: Some(request),
    }
}

pub(super) fn txn_req(t: Txn) -> rpc::TxnRequest {
    rpc::TxnRequest {
        compare: t.compare.into_iter().map(compare).collect(),
        success: t.success.into_iter().map(op).collect(),
        failure: t.failure.into_iter().map(op).collect(),
    }
}

pub(super) fn txn_resp(t: rpc::TxnResponse) -> Result<TxnResult> {
    use rpc::response_op::Response;
    let revision = header_rev(&t.header, "txn")?;
    let mut results = Vec::with_capacity(t.responses.len());
    for r in t.responses {
        results.push(match r.response {
            Some(Response::ResponseRange(r)) => OpResult::Range(range_resp(r)?),
            Some(Response::ResponsePut(_)) => OpResult::Put,
            Some(Response::ResponseDeleteRange(d)) => OpResult::Delete { deleted: d.deleted },
            Some(Response::ResponseTxn(t)) => OpResult::Txn(txn_resp(t)?),
            None => {
                return Err(Error::new(
                    ErrorKind::Other,
                    "txn",
                    "empty operation result",
                ))
            }
        });
    }
    Ok(TxnResult {
        revision,
        succeeded: t.succeeded,
        results,
    })
}

/// Classifies a gRPC status by what the caller can do about it.
pub(super) fn status(op: &'static str, s: tonic::Status) -> Error {
    use tonic::Code;
    // A transport failure hides its cause (a TLS alert, a reset) in the
    // status's source, under a generic message.
    let cause = std::error::Error::source(&s)
        .map(source_chain)
        .unwrap_or_default();
    if let Some(why) = super::tls::tls_refusal(&cause) {
        return Error::new(ErrorKind::Tls, op, why);
    }
    let msg = s.message();
    let kind = match s.code() {
        Code::Unavailable | Code::Aborted => ErrorKind::Unavailable,
        // A transport failure surfaces as Unknown with the cause in the text.
        Code::Unknown if msg.contains("transport") || msg.contains("connect") => {
            ErrorKind::Unavailable
        }
        // hyper cancels the calls in flight when the connection closes.
        Code::Cancelled if cause.contains("connection closed") => ErrorKind::Unavailable,
        Code::DeadlineExceeded => ErrorKind::Timeout,
        Code::NotFound if msg.contains("lease not found") => ErrorKind::LeaseNotFound,
        Code::OutOfRange if msg.contains("compacted") => ErrorKind::Compacted,
        Code::Unauthenticated | Code::PermissionDenied => ErrorKind::Auth,
        Code::InvalidArgument if msg.contains("user name") || msg.contains("authentication") => {
            ErrorKind::Auth
        }
        // etcd says "no leader" / "leader changed" / "timed out" with these.
        Code::Internal | Code::Unknown if msg.contains("leader") || msg.contains("timed out") => {
            ErrorKind::Unavailable
        }
        _ => ErrorKind::Other,
    };
    let detail = if !cause.is_empty() {
        cause
    } else if msg.is_empty() {
        format!("{:?}", s.code())
    } else {
        msg.to_string()
    };
    Error::new(kind, op, detail)
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
