//! `conch elect` end to end: the campaign (through the machine and the
//! driver), `--who` and `--observe`.

use std::collections::BTreeMap;

use super::{hold, host_name, wall_offset_ms, with_client};
use crate::cli::config::Elect as Cmd;
use crate::cli::{Global, Output};
use crate::etcd::{Client, EventKind, KeyValue, Range, WatchEvent, WatchSpec};
use crate::keys::Schema;
use crate::recipe::elect::{Config, Elect};
use crate::record::{self, Holder};

pub fn run(global: &Global, name: &str, cmd: Cmd) -> i32 {
    let schema = Schema::new(&global.prefix);
    match cmd {
        Cmd::Who(out) => with_client(global, |c| who(c, &schema, name, out)),
        Cmd::Observe(out) => with_client(global, |c| observe(c, &schema, name, out)),
        Cmd::Run {
            wait,
            restart,
            argv,
        } => {
            let cfg = Config {
                name: name.to_string(),
                schema,
                ttl: global.ttl,
                kill_after: global.kill_after,
                wait,
                restart,
                argv,
                host: host_name(),
                pid: std::process::id(),
                wall_offset_ms: wall_offset_ms(),
                seed: u64::from(std::process::id()) ^ wall_offset_ms() as u64,
            };
            hold(global, &mut Elect::new(cfg))
        }
    }
}

/// The office's candidates in queue order (lowest create revision first).
fn read_office(client: &Client, schema: &Schema, name: &str) -> Result<(i64, Vec<KeyValue>), i32> {
    let r = client
        .range(Range::prefix(schema.elect_dir(name)).by_create())
        .map_err(|e| {
            eprintln!("conch: cannot read the office: {e}");
            crate::cli::EXIT_UNAVAILABLE
        })?;
    Ok((r.revision, r.kvs))
}

fn rfc3339_ms(ms: u64) -> String {
    crate::schedule::fmt_rfc3339_utc((ms / 1000) as i64)
}

fn human_line(name: &str, kv: &KeyValue) -> String {
    let h = Holder::from_json(&kv.value).unwrap_or_default();
    format!(
        "{name}  leader={} pid={} rev={} since={} cmd={}",
        h.host.as_deref().unwrap_or("?"),
        h.pid.map_or("?".into(), |p| p.to_string()),
        kv.create_revision,
        h.since_ms.map_or("?".into(), rfc3339_ms),
        if h.argv.is_empty() {
            "?".into()
        } else {
            h.argv.join(" ")
        },
    )
}

fn json_holder(kv: &KeyValue, waiting: Option<usize>) -> String {
    // Unknown fields of the stored value are kept: readers of --json see
    // what a newer writer stored.
    let mut o = record::parse_object(&kv.value).unwrap_or_default();
    use miniserde::json::{Number, Value};
    o.insert("rev".into(), Value::Number(Number::I64(kv.create_revision)));
    o.insert(
        "key".into(),
        Value::String(String::from_utf8_lossy(&kv.key).to_string()),
    );
    if let Some(w) = waiting {
        o.insert("waiting".into(), Value::Number(Number::U64(w as u64)));
    }
    miniserde::json::to_string(&Value::Object(o))
}

fn who(client: &Client, schema: &Schema, name: &str, out: Output) -> i32 {
    let (_, kvs) = match read_office(client, schema, name) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let Some(leader) = kvs.first() else {
        return 1;
    };
    match out {
        Output::Human => println!("{}", human_line(name, leader)),
        Output::Json => println!("{}", json_holder(leader, Some(kvs.len() - 1))),
    }
    0
}

fn observe(client: &Client, schema: &Schema, name: &str, out: Output) -> i32 {
    let dir = schema.elect_dir(name);
    let mut last: Option<Option<Vec<u8>>> = None;
    loop {
        let (rev, kvs) = match read_office(client, schema, name) {
            Ok(r) => r,
            Err(code) => return code,
        };
        let mut office: BTreeMap<Vec<u8>, KeyValue> =
            kvs.into_iter().map(|kv| (kv.key.clone(), kv)).collect();
        report(name, &office, &mut last, out);
        let mut w = client.watch(WatchSpec::prefix(dir.clone()).from_revision(rev + 1));
        loop {
            match client.block_on(w.next()) {
                Ok(WatchEvent::Events { events, .. }) => {
                    for e in events {
                        match e.kind {
                            EventKind::Put => {
                                office.insert(e.kv.key.clone(), e.kv);
                            }
                            EventKind::Delete => {
                                office.remove(&e.kv.key);
                            }
                        }
                    }
                    report(name, &office, &mut last, out);
                }
                Ok(WatchEvent::Progress { .. }) => {}
                // Compacted, canceled or broken: read again and re-watch.
                Ok(_) => break,
                Err(e) => {
                    if e.is_unavailable() && client.failover().is_err() {
                        eprintln!("conch: lost etcd: {e}");
                        return crate::cli::EXIT_UNAVAILABLE;
                    }
                    break;
                }
            }
        }
    }
}

fn report(
    name: &str,
    office: &BTreeMap<Vec<u8>, KeyValue>,
    last: &mut Option<Option<Vec<u8>>>,
    out: Output,
) {
    let leader = office.values().min_by_key(|kv| kv.create_revision);
    let key = leader.map(|kv| kv.key.clone());
    if last.as_ref() == Some(&key) {
        return;
    }
    *last = Some(key);
    let now = crate::schedule::fmt_rfc3339_utc(
        wall_offset_ms() / 1000 + crate::runtime::clock::now().as_secs() as i64,
    );
    let line = match (leader, out) {
        (Some(kv), Output::Human) => {
            let h = Holder::from_json(&kv.value).unwrap_or_default();
            format!(
                "{now}  leader {} pid={} rev={}",
                h.host.as_deref().unwrap_or("?"),
                h.pid.map_or("?".into(), |p| p.to_string()),
                kv.create_revision
            )
        }
        (None, Output::Human) => format!("{now}  vacant"),
        (Some(kv), Output::Json) => format!(
            "{{\"time\":{},\"name\":{},\"leader\":{}}}",
            record::quote(&now),
            record::quote(name),
            json_holder(kv, None)
        ),
        (None, Output::Json) => format!(
            "{{\"time\":{},\"name\":{},\"leader\":null}}",
            record::quote(&now),
            record::quote(name)
        ),
    };
    println!("{line}");
}
