//! The binaries as a user runs them: help, version, and bad input.

use std::process::{Command, Output};

fn conch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_conch"))
        .args(args)
        // A stray CONCH_* in the developer's shell must not change the answers.
        .env_remove("CONCH_ENDPOINTS")
        .env_remove("CONCH_LOG")
        .output()
        .expect("run conch")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn bad_input_exits_64_with_one_line_naming_the_argument() {
    let cases: &[(&[&str], &str)] = &[
        (&["elect"], "NAME"),
        (&["elect", "x", "--ttl", "1s", "--", "true"], "--ttl"),
        (&["sema", "x", "--max", "0", "--", "true"], "--max"),
        (&["elect", "x", "--bogus", "--", "true"], "--bogus"),
        (&["elect", "", "--", "true"], "NAME"),
        (
            &["elect", "x", "--cacert", "/nonexistent", "--", "true"],
            "--cacert",
        ),
        (
            &["--endpoints", "nope", "elect", "x", "--", "true"],
            "--endpoints",
        ),
    ];
    for (args, names) in cases {
        let o = conch(args);
        assert_eq!(o.status.code(), Some(64), "{args:?}");
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("conch: ") && err.contains(names),
            "{args:?}: {err}"
        );
        assert!(o.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn help_describes_options_and_exit_codes() {
    for tool in ["elect", "sema", "cron"] {
        let o = conch(&[tool, "--help"]);
        assert_eq!(o.status.code(), Some(0));
        let out = String::from_utf8_lossy(&o.stdout);
        for needle in ["--endpoints", "--ttl", "--kill-after", "EXIT CODES", "75"] {
            assert!(out.contains(needle), "{tool} --help lacks {needle}");
        }
    }
    let o = conch(&["help", "exit-codes"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("70"));
    let o = conch(&["help", "env"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("CONCH_REV"));
}

#[test]
fn version() {
    let o = conch(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("conch "));
}

#[test]
fn conchd_is_the_cron_daemon() {
    let o = Command::new(env!("CARGO_BIN_EXE_conchd"))
        .args(["--node", "."])
        .output()
        .expect("run conchd");
    assert_eq!(o.status.code(), Some(64), "{}", stderr(&o));
    assert!(stderr(&o).contains("--node"));
}
