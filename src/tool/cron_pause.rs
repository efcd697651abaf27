//! `conch cron suspend | resume NAME`: flips `suspended` and stamps
//! `paused_at` by a read-modify-write guarded by the job's mod revision, so
//! a `cron add --replace` or `apply` that lands in between is never
//! overwritten with the old definition.

use super::connect::connect;
use super::host::now_ms;
use crate::cli::Global;
use crate::etcd::{CmpOp, Compare, Op, Range, Target, Txn};
use crate::keys::Schema;
use crate::kit::exit::EXIT_UNAVAILABLE;
use crate::kit::verbosity::Verbosity;
use crate::record::cron::Job;

/// Each lost race means someone else wrote the job just then; a few tries
/// cover any human pace of edits without looping on a writer gone wild.
const TRIES: usize = 5;

pub(super) fn run(global: &Global, name: &str, suspend: bool) -> i32 {
    let client = match connect(global) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let key = Schema::new(&global.prefix).cron_job_key(name);
    let (verb, done) = if suspend {
        ("suspend", "suspended")
    } else {
        ("resume", "resumed")
    };
    for _ in 0..TRIES {
        let kv = match client.range(Range::key(key.clone())) {
            Ok(r) => r.kvs.into_iter().next(),
            Err(e) => {
                eprintln!("conch: cannot read job {name}: {e}");
                return EXIT_UNAVAILABLE;
            }
        };
        let Some(kv) = kv else {
            eprintln!("conch: no job {name}");
            return 1;
        };
        let mut job = match Job::from_json(&kv.value) {
            Ok(j) => j,
            Err(reason) => {
                eprintln!("conch: job {name} is invalid ({reason}): replace it first");
                return 1;
            }
        };
        if job.suspended == suspend {
            // Not written: a second `suspend` must not move `paused_at`,
            // the mark catch-up never reaches back past.
            if global.verbosity >= Verbosity::Normal {
                let state = if suspend {
                    "suspended"
                } else {
                    "not suspended"
                };
                eprintln!("conch: job {name} is already {state}");
            }
            return 0;
        }
        job.suspended = suspend;
        job.paused_at_ms = Some(now_ms());
        let txn = Txn {
            compare: vec![Compare::key(
                key.clone(),
                CmpOp::Equal,
                Target::ModRevision(kv.mod_revision),
            )],
            success: vec![Op::put(key.clone(), job.to_json(), 0)],
            failure: Vec::new(),
        };
        match client.txn(txn) {
            Ok(r) if r.succeeded => {
                if global.verbosity >= Verbosity::Normal {
                    eprintln!("conch: {done} {name}");
                }
                return 0;
            }
            Ok(_) => continue,
            Err(e) => {
                eprintln!("conch: cannot {verb} job {name}: {e}");
                return EXIT_UNAVAILABLE;
            }
        }
    }
    eprintln!("conch: job {name} kept changing; not {done} (try again)");
    1
}
