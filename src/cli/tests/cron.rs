//! The cron operator commands and the new `cron add` flags: what a user
//! types, what conch makes of it, and the one line it refuses bad input with.

use std::ffi::OsString;

use super::super::config::Cron;
use super::super::{parse_invocation, Invocation, Output};
use super::{run, S};

#[test]
fn cron_add_takes_catch_up_failure_hook_and_placement() {
    match run("conch cron add j --schedule @daily --catch-up 10m --on-failure page --where role=db --where dc=x=y -- true", &[]) {
        Ok(Invocation::Cron { cmd: Cron::Add(a), .. }) => {
            assert_eq!(a.catch_up, Some(S(600)));
            assert_eq!(a.on_failure.as_deref(), Some("page"));
            // Sorted by key; the value is everything after the first `=`.
            assert_eq!(
                a.placement,
                vec![("dc".into(), "x=y".into()), ("role".into(), "db".into())]
            );
        }
        other => panic!("{other:?}"),
    }
    match run("conch cron add j --schedule @daily -- true", &[]) {
        Ok(Invocation::Cron {
            cmd: Cron::Add(a), ..
        }) => {
            assert_eq!((a.catch_up, a.on_failure), (None, None));
            assert!(a.placement.is_empty());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn cron_operator_commands() {
    let cases: &[(&str, Cron)] = &[
        (
            "conch cron show j --json",
            Cron::Show {
                name: "j".into(),
                out: Output::Json,
            },
        ),
        (
            "conch cron suspend j",
            Cron::Suspend {
                name: "j".into(),
                suspend: true,
            },
        ),
        (
            "conch cron resume j",
            Cron::Suspend {
                name: "j".into(),
                suspend: false,
            },
        ),
        ("conch cron export", Cron::Export { names: vec![] }),
        (
            "conch cron export a b",
            Cron::Export {
                names: vec!["a".into(), "b".into()],
            },
        ),
        (
            "conch cron apply -f jobs.jsonl --prune --dry-run",
            Cron::Apply {
                file: "jobs.jsonl".into(),
                prune: true,
                dry_run: true,
            },
        ),
        (
            "conch cron apply --file -",
            Cron::Apply {
                file: "-".into(),
                prune: false,
                dry_run: false,
            },
        ),
        ("conch cron nodes", Cron::Nodes { out: Output::Human }),
    ];
    for (argv, want) in cases {
        match run(argv, &[]) {
            Ok(Invocation::Cron { cmd, .. }) => assert_eq!(&cmd, want, "{argv}"),
            other => panic!("{argv}: {other:?}"),
        }
    }
}

/// One row per new option and command: the refusal is one line that names
/// what is wrong (and, being a parse error, comes before any etcd access).
#[test]
fn cron_operator_bad_input_is_one_line() {
    let add = "conch cron add j --schedule @daily";
    let cases = [
        (
            format!("{add} --catch-up 0 -- true"),
            "--catch-up must be more than 0",
        ),
        (format!("{add} --catch-up soon -- true"), "--catch-up"),
        (format!("{add} --on-failure '' -- true"), "--on-failure"),
        (
            format!("{add} --on-failure -- true"),
            "--on-failure needs a value",
        ),
        (format!("{add} --where role -- true"), "expected KEY=VALUE"),
        (format!("{add} --where =db -- true"), "expected KEY=VALUE"),
        (
            format!("{add} --where role=db --where role=web -- true"),
            "no daemon can match both",
        ),
        ("conch cron show".into(), "needs a NAME"),
        ("conch cron show a b".into(), "unexpected argument"),
        ("conch cron show j -- true".into(), "takes no command"),
        (
            "conch cron show j --last 3".into(),
            "--last is not an option of `conch cron show`",
        ),
        ("conch cron suspend".into(), "needs a NAME"),
        ("conch cron resume .".into(), "NAME"),
        (
            "conch cron suspend j --json".into(),
            "--json is not an option",
        ),
        ("conch cron export ..".into(), "NAME"),
        (
            "conch cron export --prune".into(),
            "--prune is not an option",
        ),
        ("conch cron apply".into(), "needs -f FILE"),
        ("conch cron apply jobs.jsonl".into(), "unexpected argument"),
        ("conch cron apply -f".into(), "--file needs a value"),
        (
            "conch cron apply -f x --json".into(),
            "--json is not an option",
        ),
        (
            "conch cron add j --schedule @daily --dry-run -- true".into(),
            "--dry-run is not an option",
        ),
        ("conch cron nodes extra".into(), "unexpected argument"),
        (
            "conch cron nodes --where a=b".into(),
            "--where is not an option",
        ),
    ];
    for (argv, want) in &cases {
        // `run` splits on whitespace: '' stands for an empty argument.
        let words: Vec<OsString> = argv
            .split_whitespace()
            .map(|w| OsString::from(if w == "''" { "" } else { w }))
            .collect();
        let e = match parse_invocation(words, &|_| None) {
            Err(e) => e,
            Ok(inv) => panic!("{argv}: accepted as {inv:?}"),
        };
        assert!(e.contains(want), "{argv}: {e:?} lacks {want:?}");
        assert!(!e.contains('\n'), "{argv}: more than one line");
    }
}
