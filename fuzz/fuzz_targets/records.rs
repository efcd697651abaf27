#![no_main]
//! Readers of stored etcd values: arbitrary bytes must never panic.

use conch::record::cron::{Claim, Job, RunResult};
use conch::record::Holder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Holder::from_json(data);
    let _ = Job::from_json(data);
    let _ = Claim::from_json(data);
    let _ = RunResult::from_json(data);
});
