#![no_main]
//! The command line: any argv (split on NUL bytes) either parses or yields a
//! one-line error; never a panic.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut argv = vec![OsString::from("conch")];
    if !data.is_empty() {
        argv.extend(
            data.split(|b| *b == 0)
                .map(|a| OsString::from_vec(a.to_vec())),
        );
    }
    let env = |_: &str| -> Option<String> { None };
    if let Err(e) = conch::cli::parse_invocation(argv, &env) {
        assert!(!e.contains('\n'), "multi-line error: {e:?}");
    }
});
