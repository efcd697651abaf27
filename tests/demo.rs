//! `make demo` must keep working: run the script with the test binary.

use std::process::Command;

#[test]
fn demo_shows_two_candidates_taking_turns() {
    let o = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/demo.sh"))
        .arg(env!("CARGO_BIN_EXE_conch"))
        .output()
        .expect("run demo");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let a = out.find("[A] done").expect("A ran");
    let b = out.find("[B] leader").expect("B ran");
    assert!(a < b, "B led only after A was done:\n{out}");
    assert!(out.contains("demo  leader="), "{out}");
    assert!(out.trim_end().ends_with("exit 1"), "{out}");
}
