//! `conch cron nodes`: the live daemons, read from their registrations
//! (each on its daemon's lease, so only live ones exist), with the runs
//! each has in progress (its run markers). `ls` and `show` use the same
//! read to tell a job that no live daemon may claim.

use std::collections::BTreeMap;

use miniserde::json::{self, Number, Object, Value};

use super::connect::connect;
use super::output::{cells, print, render, rfc3339_ms};
use crate::cli::{Global, Output};
use crate::etcd::{Client, Op, Range, Txn};
use crate::keys::{self, Schema, TickKind};
use crate::kit::exit::EXIT_UNAVAILABLE;
use crate::kit::verbosity::Verbosity;
use crate::record::cron::{Claim, Node};

/// A registered daemon: its ID (the key's last segment) and record.
pub(super) struct Live {
    pub(super) id: String,
    pub(super) node: Node,
    pub(super) running: u64,
}

/// Every registered daemon, sorted by ID, with its runs in progress; both
/// read in one transaction so the counts belong to the same instant.
pub(super) fn live(client: &Client, schema: &Schema) -> Result<Vec<Live>, crate::etcd::Error> {
    let dir = schema.cron_node_dir();
    let runs = schema.cron_kind_dir(TickKind::Run);
    let r = client.txn(Txn {
        compare: Vec::new(),
        success: vec![
            Op::Get(Range::prefix(dir.clone())),
            Op::Get(Range::prefix(runs)),
        ],
        failure: Vec::new(),
    })?;
    let mut running: BTreeMap<String, u64> = BTreeMap::new();
    for kv in r.range(1).map(|g| g.kvs.as_slice()).unwrap_or_default() {
        *running.entry(Claim::from_json(&kv.value).node).or_default() += 1;
    }
    let mut out = Vec::new();
    for kv in r.range(0).map(|g| g.kvs.as_slice()).unwrap_or_default() {
        let Some(id) = Schema::leaf(&dir, &kv.key).and_then(|l| keys::decode_name(l).ok()) else {
            continue;
        };
        // A registration that is not one still says a daemon is there.
        let node = Node::from_json(&kv.value).unwrap_or_else(|| Node {
            host: "?".into(),
            ..Node::default()
        });
        let running = running.get(&id).copied().unwrap_or(0);
        out.push(Live { id, node, running });
    }
    Ok(out)
}

/// Whether some live daemon may claim a job placed with `placement`; a job
/// without placement is matched by any daemon, live or not yet started.
pub(super) fn matched(nodes: &[Live], placement: &[(String, String)]) -> bool {
    placement.is_empty() || nodes.iter().any(|l| l.node.matches(placement))
}

/// `role=db,dc=x`, as typed.
pub(super) fn labels_text(labels: &[(String, String)]) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(",")
}

pub(super) fn labels_json(labels: &[(String, String)]) -> Value {
    let mut o = Object::new();
    for (k, v) in labels {
        o.insert(k.clone(), Value::String(v.clone()));
    }
    Value::Object(o)
}

pub(super) fn run(global: &Global, out: Output) -> i32 {
    let client = match connect(global) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let nodes = match live(&client, &Schema::new(&global.prefix)) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("conch: cannot read the daemons: {e}");
            return EXIT_UNAVAILABLE;
        }
    };
    let mut text = String::new();
    match out {
        Output::Json => {
            for l in &nodes {
                let mut o = Object::new();
                o.insert("id".into(), Value::String(l.id.clone()));
                o.insert("host".into(), Value::String(l.node.host.clone()));
                o.insert("pid".into(), Value::Number(Number::U64(l.node.pid)));
                o.insert("version".into(), Value::String(l.node.version.clone()));
                let since = (l.node.started_ms > 0).then(|| rfc3339_ms(l.node.started_ms));
                o.insert("since".into(), since.map_or(Value::Null, Value::String));
                o.insert("running".into(), Value::Number(Number::U64(l.running)));
                o.insert("labels".into(), labels_json(&l.node.labels));
                text.push_str(&json::to_string(&Value::Object(o)));
                text.push('\n');
            }
        }
        Output::Human => {
            let mut table = vec![cells(&[
                "ID", "HOST", "PID", "VERSION", "SINCE", "RUNNING", "LABELS",
            ])];
            for l in &nodes {
                let or_dash = |s: String| if s.is_empty() { "-".into() } else { s };
                table.push(vec![
                    l.id.clone(),
                    l.node.host.clone(),
                    l.node.pid.to_string(),
                    or_dash(l.node.version.clone()),
                    if l.node.started_ms > 0 {
                        rfc3339_ms(l.node.started_ms)
                    } else {
                        "-".into()
                    },
                    l.running.to_string(),
                    or_dash(labels_text(&l.node.labels)),
                ]);
            }
            if nodes.is_empty() {
                if global.verbosity >= Verbosity::Normal {
                    eprintln!("conch: no live daemons");
                }
            } else {
                text = render(&table);
            }
        }
    }
    print(&text);
    0
}
