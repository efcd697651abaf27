#![no_main]
//! Key-segment codec: decoding never panics, and every valid NAME round-trips
//! through a segment free of '/'.

use conch::keys::{decode_name, encode_name, validate_name};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: &str| {
    if let Ok(name) = decode_name(s) {
        assert_eq!(encode_name(&name), s, "non-canonical segment accepted");
    }
    if validate_name(s).is_ok() {
        let seg = encode_name(s);
        assert!(!seg.contains('/'), "{seg:?}");
        assert_eq!(decode_name(&seg).as_deref(), Ok(s));
    }
});
