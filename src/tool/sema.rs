//! `conch sema` end to end: the contender (through the machine and the
//! driver) and `--who`.

use std::collections::BTreeMap;

use super::connect::{hold, with_client};
use super::host::{host_name, wall_offset_ms};
use super::output::HolderText;
use crate::cli::config::Sema as Cmd;
use crate::cli::{Global, Output};
use crate::etcd::{Client, KeyValue, Range};
use crate::keys::{self, Schema};
use crate::kit::exit::EXIT_UNAVAILABLE;
use crate::recipe::hold::Common;
use crate::recipe::sema::{Config, Sema};
use crate::record::{self, Holder};

pub fn run(global: &Global, name: &str, cmd: Cmd) -> i32 {
    let schema = Schema::new(&global.prefix);
    match cmd {
        Cmd::Who { max, out } => with_client(global, |c| who(c, &schema, name, max, out)),
        Cmd::Run { max, wait, argv } => {
            let common = Common {
                name: name.to_string(),
                ttl: global.ttl,
                kill_after: global.kill_after,
                wait,
                restart: false,
                argv,
                host: host_name(),
                pid: std::process::id(),
                wall_offset_ms: wall_offset_ms(),
                seed: 0,
            };
            let cfg = Config {
                hold: common,
                schema,
                part: max,
            };
            hold(global, &mut Sema::new(cfg))
        }
    }
}

/// One queue of the semaphore: its holders (slot, queue entry, slot key)
/// and its waiters in order.
struct Queue {
    holders: Vec<(u32, Option<KeyValue>, KeyValue)>,
    waiters: Vec<KeyValue>,
}

fn read_queues(client: &Client, schema: &Schema, name: &str) -> Result<BTreeMap<u32, Queue>, i32> {
    let dir = schema.sema_dir(name);
    let r = client
        .range(Range::prefix(dir.clone()).by_create())
        .map_err(|e| {
            eprintln!("conch: cannot read the semaphore: {e}");
            EXIT_UNAVAILABLE
        })?;
    // Per --max: its queue entries, and its slots with their index.
    type Raw = (Vec<KeyValue>, Vec<(u32, KeyValue)>);
    let mut queues: BTreeMap<u32, Raw> = BTreeMap::new();
    for kv in r.kvs {
        let Some(rest) = kv.key.strip_prefix(dir.as_bytes()) else {
            continue;
        };
        let rest = String::from_utf8_lossy(rest).to_string();
        let mut parts = rest.splitn(3, '/');
        let (Some(n), Some(kind), Some(leaf)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Ok(n) = n.parse::<u32>() else { continue };
        let e = queues.entry(n).or_default();
        match (kind, leaf.parse::<u32>()) {
            ("q", _) => e.0.push(kv),
            ("slot", Ok(i)) => e.1.push((i, kv)),
            _ => {}
        }
    }
    Ok(queues
        .into_iter()
        .map(|(n, (queue, mut slots))| {
            slots.sort_by_key(|(i, _)| *i);
            let holder_keys: Vec<Vec<u8>> = slots
                .iter()
                .map(|(_, s)| {
                    let lease = String::from_utf8_lossy(&s.value).to_string();
                    format!("{}{lease}", schema.sema_queue_dir(name, n)).into_bytes()
                })
                .collect();
            let holders = slots
                .into_iter()
                .zip(&holder_keys)
                .map(|((i, s), k)| (i, queue.iter().find(|q| &q.key == k).cloned(), s))
                .collect();
            let waiters = queue
                .into_iter()
                .filter(|q| !holder_keys.contains(&q.key))
                .collect();
            (n, Queue { holders, waiters })
        })
        .collect())
}

fn who(client: &Client, schema: &Schema, name: &str, max: Option<u32>, out: Output) -> i32 {
    let mut queues = match read_queues(client, schema, name) {
        Ok(q) => q,
        Err(code) => return code,
    };
    if let Some(n) = max {
        queues.retain(|k, _| *k == n);
    } else if queues.len() > 1 {
        let ns: Vec<String> = queues.keys().map(u32::to_string).collect();
        eprintln!(
            "conch: warning: {name} has {} queues (--max {}): contenders that disagree on --max do not count against each other",
            queues.len(),
            ns.join(", ")
        );
    }
    let held = queues.values().any(|q| !q.holders.is_empty());
    match out {
        Output::Human => {
            for (n, q) in &queues {
                for (i, entry, slot) in &q.holders {
                    let h = entry
                        .as_ref()
                        .and_then(|e| Holder::from_json(&e.value))
                        .unwrap_or_default();
                    let h = HolderText::of(&h);
                    println!(
                        "{name}  max={n} slot={i} host={} pid={} rev={} since={} cmd={}",
                        h.host, h.pid, slot.create_revision, h.since, h.cmd
                    );
                }
                for (rank, w) in q.waiters.iter().enumerate() {
                    let h = HolderText::of(&Holder::from_json(&w.value).unwrap_or_default());
                    println!(
                        "{name}  max={n} waiting rank={} host={} pid={} since={}",
                        rank + q.holders.len(),
                        h.host,
                        h.pid,
                        h.since
                    );
                }
            }
        }
        Output::Json => println!("{}", who_json(name, &queues)),
    }
    if held {
        0
    } else {
        1
    }
}

fn who_json(name: &str, queues: &BTreeMap<u32, Queue>) -> String {
    use miniserde::json::{Array, Number, Object, Value};
    let entry = |n: u32, kv: Option<&KeyValue>| {
        let mut o = kv
            .and_then(|kv| record::parse_object(&kv.value))
            .unwrap_or_default();
        o.insert("max".into(), Value::Number(Number::U64(u64::from(n))));
        if let Some(kv) = kv {
            o.insert(
                "key".into(),
                Value::String(String::from_utf8_lossy(&kv.key).to_string()),
            );
        }
        o
    };
    let mut holders = Array::new();
    let mut waiters = Array::new();
    for (n, q) in queues {
        for (i, e, slot) in &q.holders {
            let mut o = entry(*n, e.as_ref());
            o.insert("slot".into(), Value::Number(Number::U64(u64::from(*i))));
            o.insert(
                "rev".into(),
                Value::Number(Number::I64(slot.create_revision)),
            );
            o.insert(
                "slot_key".into(),
                Value::String(String::from_utf8_lossy(&slot.key).to_string()),
            );
            if e.is_none() {
                let lease = String::from_utf8_lossy(&slot.value).to_string();
                if keys::parse_lease_hex(&lease).is_some() {
                    o.insert("lease".into(), Value::String(lease));
                }
            }
            holders.push(Value::Object(o));
        }
        for (rank, w) in q.waiters.iter().enumerate() {
            let mut o = entry(*n, Some(w));
            o.insert(
                "rank".into(),
                Value::Number(Number::U64((rank + q.holders.len()) as u64)),
            );
            waiters.push(Value::Object(o));
        }
    }
    let mut top = Object::new();
    top.insert("name".into(), Value::String(name.to_string()));
    top.insert("holders".into(), Value::Array(holders));
    top.insert("waiters".into(), Value::Array(waiters));
    miniserde::json::to_string(&Value::Object(top))
}
