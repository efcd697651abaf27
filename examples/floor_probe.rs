//! The floor probe of `make bench` (figure P12), never part of the shipped
//! binary: the least any wrapper must do on this machine to run a command
//! under an etcd lease, with the transport stack conch itself uses (tonic
//! over one current-thread tokio runtime, release build, same target):
//! one process start, one HTTP/2 connection, a lease grant, a create-only
//! transaction that reads the office back, a fork/exec of the command and a
//! wait for it, a revoke. No keeper, no signals, no watch, no checks: a
//! wrapper built this way would be unsafe, which is what makes it a floor.
//!
//! Usage: floor_probe ENDPOINT NAME -- CMD [ARG...]   (ENDPOINT is host:port)

#[allow(
    clippy::all,
    clippy::pedantic,
    missing_docs,
    unreachable_pub,
    dead_code
)]
#[path = "../src/etcd/pb/mod.rs"]
mod pb;

use pb::etcdserverpb as rpc;
use rpc::{kv_client::KvClient, lease_client::LeaseClient};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(ep), Some(name), Some(cmd)) = (
        args.first(),
        args.get(1),
        args.iter()
            .position(|a| a == "--")
            .and_then(|i| args.get(i + 1..)),
    ) else {
        eprintln!("usage: floor_probe ENDPOINT NAME -- CMD [ARG...]");
        std::process::exit(64);
    };
    match run(ep, name, cmd) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("floor_probe: {e}");
            std::process::exit(69);
        }
    }
}

fn run(ep: &str, name: &str, cmd: &[String]) -> Result<i32, Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let ch = rt.block_on(
        tonic::transport::Endpoint::from_shared(format!("http://{ep}"))?
            .tcp_nodelay(true)
            .connect(),
    )?;
    let (mut kv, mut lease) = (KvClient::new(ch.clone()), LeaseClient::new(ch));
    let id = rt
        .block_on(lease.lease_grant(rpc::LeaseGrantRequest { ttl: 10, id: 0 }))?
        .into_inner()
        .id;
    let key = format!("/floor/{name}/{id:016x}").into_bytes();
    let office = rpc::RequestOp {
        request: Some(rpc::request_op::Request::RequestRange(rpc::RangeRequest {
            key: format!("/floor/{name}/").into_bytes(),
            range_end: format!("/floor/{name}0").into_bytes(),
            ..Default::default()
        })),
    };
    let put = rpc::RequestOp {
        request: Some(rpc::request_op::Request::RequestPut(rpc::PutRequest {
            key: key.clone(),
            value: b"{}".to_vec(),
            lease: id,
            ..Default::default()
        })),
    };
    let txn = rpc::TxnRequest {
        compare: vec![rpc::Compare {
            result: rpc::compare::CompareResult::Equal as i32,
            target: rpc::compare::CompareTarget::Create as i32,
            key,
            target_union: Some(rpc::compare::TargetUnion::CreateRevision(0)),
            ..Default::default()
        }],
        success: vec![put, office.clone()],
        failure: vec![office],
    };
    rt.block_on(kv.txn(txn))?;
    let status = std::process::Command::new(&cmd[0])
        .args(&cmd[1..])
        .status()?;
    rt.block_on(lease.lease_revoke(rpc::LeaseRevokeRequest { id }))?;
    Ok(status.code().unwrap_or(128))
}
