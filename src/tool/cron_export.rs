//! `conch cron export [NAME..]`: jobs as JSON lines, each the stored job
//! (format v1) with its `name` added, which `cron apply -f` reads back.

use miniserde::json::{self, Value};

use super::connect::connect;
use super::output::print;
use crate::cli::Global;
use crate::etcd::{Op, Range, Txn};
use crate::keys::{self, Schema};
use crate::kit::exit::EXIT_UNAVAILABLE;
use crate::record::parse_object;

pub(super) fn run(global: &Global, names: &[String]) -> i32 {
    let client = match connect(global) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let schema = Schema::new(&global.prefix);
    let dir = schema.cron_job_dir();
    // One read, so the lines belong to one revision.
    let ops = if names.is_empty() {
        vec![Op::Get(Range::prefix(dir.clone()))]
    } else {
        names
            .iter()
            .map(|n| Op::Get(Range::key(schema.cron_job_key(n))))
            .collect()
    };
    let r = match client.txn(Txn {
        compare: Vec::new(),
        success: ops,
        failure: Vec::new(),
    }) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("conch: cannot read cron jobs: {e}");
            return EXIT_UNAVAILABLE;
        }
    };
    let mut text = String::new();
    let mut code = 0;
    let gets = if names.is_empty() { 1 } else { names.len() };
    for i in 0..gets {
        let kvs = r.range(i).map(|g| g.kvs.as_slice()).unwrap_or_default();
        if kvs.is_empty() {
            if let Some(n) = names.get(i) {
                eprintln!("conch: no job {n}");
                code = 1;
            }
        }
        for kv in kvs {
            let Some(name) = Schema::leaf(&dir, &kv.key).and_then(|l| keys::decode_name(l).ok())
            else {
                continue;
            };
            // Exported as stored, fields this version does not know included.
            let Some(mut o) = parse_object(&kv.value) else {
                eprintln!("conch: job {name} is not a JSON object; not exported");
                code = 1;
                continue;
            };
            o.insert("name".into(), Value::String(name));
            text.push_str(&json::to_string(&Value::Object(o)));
            text.push('\n');
        }
    }
    print(&text);
    code
}
