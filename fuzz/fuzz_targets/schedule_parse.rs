#![no_main]
//! Schedule, zone and timestamp parsing, and `next_tick` on whatever parses:
//! none of it may panic. Input: 3 x 8 bytes of instants, then the schedule.

use std::sync::OnceLock;

use conch::schedule::{next_tick, parse_rfc3339, Schedule, Zone};
use libfuzzer_sys::fuzz_target;

fn berlin() -> &'static Zone {
    static Z: OnceLock<Zone> = OnceLock::new();
    Z.get_or_init(|| Zone::parse("Europe/Berlin").expect("bundled zone"))
}

fuzz_target!(|data: &[u8]| {
    let (head, tail) = data.split_at(data.len().min(24));
    let Ok(text) = std::str::from_utf8(tail) else {
        return;
    };
    let _ = Zone::parse(text);
    let _ = parse_rfc3339(text);
    let Ok(schedule) = Schedule::parse(text) else {
        return;
    };
    let _ = (
        schedule.to_string(),
        schedule.never_fires(),
        schedule.is_interval_like(),
    );
    let utc = Zone::utc();
    for chunk in head.chunks(8) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        let t = i64::from_le_bytes(b);
        for t in [t, t % 400_000_000_000, t % 2_000_000_000] {
            for zone in [&utc, berlin()] {
                if let Some(next) = next_tick(&schedule, zone, t) {
                    assert!(next > t, "{schedule}: {next} <= {t}");
                }
            }
        }
    }
});
