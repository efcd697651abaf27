//! `conch elect` end to end: the campaign (through the machine and the
//! driver), `--who` and `--observe`.

use super::connect::{hold, watch, with_client};
use super::host::{host_name, wall_offset_ms};
use super::output::HolderText;
use crate::cli::config::Elect as Cmd;
use crate::cli::{Global, Output};
use crate::etcd::{Client, KeyValue, Range};
use crate::keys::Schema;
use crate::kit::exit::EXIT_UNAVAILABLE;
use crate::recipe::elect::{Config, Elect};
use crate::recipe::hold::Common;
use crate::recipe::observe::{self, json_holder, Observe};
use crate::record::Holder;

pub fn run(global: &Global, name: &str, cmd: Cmd) -> i32 {
    let schema = Schema::new(&global.prefix);
    match cmd {
        Cmd::Who(out) => with_client(global, |c| who(c, &schema, name, out)),
        Cmd::Observe(out) => {
            let cfg = observe::Config {
                name: name.to_string(),
                dir: schema.elect_dir(name),
                json: out == Output::Json,
                dial_timeout: global.dial_timeout,
                wall_offset_ms: wall_offset_ms(),
            };
            watch(global, &mut Observe::new(cfg))
        }
        Cmd::Run {
            wait,
            restart,
            argv,
        } => {
            let common = Common {
                name: name.to_string(),
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
            let cfg = Config {
                hold: common,
                schema,
                part: (),
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
            EXIT_UNAVAILABLE
        })?;
    Ok((r.revision, r.kvs))
}

fn human_line(name: &str, kv: &KeyValue) -> String {
    let h = HolderText::of(&Holder::from_json(&kv.value).unwrap_or_default());
    format!(
        "{name}  leader={} pid={} rev={} since={} cmd={}",
        h.host, h.pid, kv.create_revision, h.since, h.cmd
    )
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
