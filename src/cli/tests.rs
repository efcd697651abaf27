//! One table row per option: what a user types, and what conch makes of it.

use std::collections::HashMap;
use std::ffi::OsString;
use std::time::Duration;

use super::config::{Cron, Elect, Sema};
use super::*;
use crate::kit::verbosity::Verbosity;
use crate::kit::wait::Wait;

fn run(argv: &str, env: &[(&str, &str)]) -> Result<Invocation, String> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let lookup = |k: &str| env.get(k).cloned();
    let words: Vec<OsString> = argv.split_whitespace().map(OsString::from).collect();
    parse_invocation(words, &lookup)
}

fn global(argv: &str, env: &[(&str, &str)]) -> Global {
    match run(argv, env) {
        Ok(Invocation::Elect { global, .. }) => global,
        other => panic!("{argv}: {other:?}"),
    }
}

fn err(argv: &str) -> String {
    match run(argv, &[]) {
        Err(e) => e,
        Ok(inv) => panic!("{argv}: accepted as {inv:?}"),
    }
}

type Env<'a> = &'a [(&'a str, &'a str)];

const S: fn(u64) -> Duration = Duration::from_secs;
const MS: fn(u64) -> Duration = Duration::from_millis;

#[test]
fn defaults() {
    let g = global("conch elect x -- true", &[]);
    assert_eq!(g.endpoints, vec!["http://127.0.0.1:2379"]);
    assert_eq!(g.prefix, "/conch");
    assert_eq!(g.ttl, S(10));
    assert_eq!(g.kill_after, S(3));
    assert_eq!(g.dial_timeout, S(5));
    assert_eq!(g.verbosity, Verbosity::Normal);
    assert_eq!((g.user, g.password, g.cacert), (None, None, None));
}

#[test]
fn endpoints() {
    let cases: &[(&str, Env, &[&str])] = &[
        ("--endpoints a:1,b:2", &[], &["a:1", "b:2"]),
        (
            "--endpoints unix:///run/etcd.sock",
            &[],
            &["unix:///run/etcd.sock"],
        ),
        ("", &[("CONCH_ENDPOINTS", "c:3")], &["c:3"]),
        ("", &[("ETCDCTL_ENDPOINTS", "http://d:4")], &["http://d:4"]),
        (
            "",
            &[("CONCH_ENDPOINTS", "c:3"), ("ETCDCTL_ENDPOINTS", "d:4")],
            &["c:3"],
        ),
        ("--endpoints e:5", &[("CONCH_ENDPOINTS", "c:3")], &["e:5"]),
        ("--endpoints https://f:6", &[], &["https://f:6"]),
    ];
    for (opts, env, want) in cases {
        let g = global(&format!("conch {opts} elect x -- true"), env);
        assert_eq!(g.endpoints, *want, "{opts} {env:?}");
    }
    for bad in ["a", "a:b", "unix://rel", "ftp://a:1", "a:1,,b:2", "a:70000"] {
        assert!(err(&format!("conch --endpoints {bad} elect x -- true")).contains("--endpoints"));
    }
}

#[test]
fn prefix() {
    assert_eq!(
        global("conch elect x --prefix /p -- true", &[]).prefix,
        "/p"
    );
    assert_eq!(
        global("conch elect x -- true", &[("CONCH_PREFIX", "/q")]).prefix,
        "/q"
    );
}

#[test]
fn ttl_and_kill_after() {
    let cases: &[(&str, Env, Duration, Duration)] = &[
        ("--ttl 20s", &[], S(20), S(3)),
        ("--ttl 6", &[], S(6), S(2)),
        ("--ttl 2500ms", &[], S(3), S(1)),
        ("--ttl 9s --kill-after 4s", &[], S(9), S(4)),
        ("--kill-after 500ms", &[], S(10), MS(500)),
        (
            "",
            &[("CONCH_TTL", "4s"), ("CONCH_KILL_AFTER", "2s")],
            S(4),
            S(2),
        ),
    ];
    for (opts, env, ttl, ka) in cases {
        let g = global(&format!("conch elect x {opts} -- true"), env);
        assert_eq!((g.ttl, g.kill_after), (*ttl, *ka), "{opts} {env:?}");
    }
    assert!(err("conch elect x --ttl 1s -- true").contains("at least 2s"));
    // The bound holds for the value as typed, before rounding up to seconds.
    let e = err("conch elect x --ttl 1500ms -- true");
    assert!(e.contains("--ttl 1.5s") && e.contains("at least 2s"), "{e}");
    assert!(err("conch elect x --ttl 1999ms -- true").contains("at least 2s"));
    assert!(err("conch elect x --ttl 10s --kill-after 6s -- true").contains("--kill-after"));
    assert!(err("conch elect x --ttl ten -- true").contains("--ttl"));
    let e = run("conch elect x -- true", &[("CONCH_TTL", "x")]).expect_err("bad env");
    assert!(e.starts_with("CONCH_TTL"), "{e}");
}

#[test]
fn dial_timeout() {
    assert_eq!(
        global("conch elect x --dial-timeout 250ms -- true", &[]).dial_timeout,
        MS(250)
    );
    assert!(err("conch elect x --dial-timeout 0 -- true").contains("dial-timeout"));
}

#[test]
fn tls_files_must_be_readable() {
    let e = err("conch elect x --cacert /nonexistent/ca.pem -- true");
    assert!(e.contains("--cacert") && e.contains("cannot read"), "{e}");
    let g = global("conch elect x --cacert /dev/null -- true", &[]);
    assert_eq!(g.cacert.as_deref(), Some(std::path::Path::new("/dev/null")));
    let g = global("conch elect x -- true", &[("ETCDCTL_CACERT", "/dev/null")]);
    assert!(g.cacert.is_some());
    assert!(err("conch elect x --cert /dev/null -- true").contains("--key"));
}

#[test]
fn authentication() {
    let g = global("conch elect x --user alice:s3cret -- true", &[]);
    assert_eq!(
        (g.user.as_deref(), g.password.as_deref()),
        (Some("alice"), Some("s3cret"))
    );
    let g = global("conch elect x --user bob --password pw -- true", &[]);
    assert_eq!(g.password.as_deref(), Some("pw"));
    let g = global(
        "conch elect x -- true",
        &[("CONCH_USER", "c"), ("CONCH_PASSWORD", "p")],
    );
    assert_eq!(
        (g.user.as_deref(), g.password.as_deref()),
        (Some("c"), Some("p"))
    );
    assert!(err("conch elect x --password pw -- true").contains("--user"));
    assert!(
        err("conch elect x --user u --password-file /nonexistent -- true").contains("cannot read")
    );
}

#[test]
fn verbosity() {
    assert_eq!(
        global("conch -v elect x -- true", &[]).verbosity,
        Verbosity::Verbose
    );
    assert_eq!(
        global("conch elect x --quiet -- true", &[]).verbosity,
        Verbosity::Quiet
    );
    assert_eq!(
        global("conch elect x -- true", &[("CONCH_LOG", "quiet")]).verbosity,
        Verbosity::Quiet
    );
    assert!(run("conch elect x -- true", &[("CONCH_LOG", "loud")]).is_err());
}

#[test]
fn elect_modes() {
    let cases: &[(&str, Elect)] = &[
        ("--who", Elect::Who(Output::Human)),
        ("--who --json", Elect::Who(Output::Json)),
        ("--observe --json", Elect::Observe(Output::Json)),
    ];
    for (opts, want) in cases {
        match run(&format!("conch elect x {opts}"), &[]) {
            Ok(Invocation::Elect { cmd, .. }) => assert_eq!(&cmd, want, "{opts}"),
            other => panic!("{opts}: {other:?}"),
        }
    }
    match run("conch elect x --restart --timeout 2s -- a b", &[]) {
        Ok(Invocation::Elect {
            name,
            cmd:
                Elect::Run {
                    wait,
                    restart,
                    argv,
                },
            ..
        }) => {
            assert_eq!(name, "x");
            assert_eq!(wait, Wait::Timeout(S(2)));
            assert!(restart);
            assert_eq!(argv, vec![OsString::from("a"), OsString::from("b")]);
        }
        other => panic!("{other:?}"),
    }
    match run("conch elect x --nonblock -- a", &[]) {
        Ok(Invocation::Elect {
            cmd: Elect::Run { wait, .. },
            ..
        }) => assert_eq!(wait, Wait::Nonblock),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_input_is_one_clear_line() {
    let cases = [
        ("conch -v", "missing tool"),
        ("conch frob", "unknown tool"),
        ("conch elect", "needs a NAME"),
        ("conch elect x", "missing `-- CMD"),
        ("conch elect x --", "empty command"),
        ("conch elect x true", "`--` missing"),
        ("conch elect . -- true", "NAME"),
        (
            "conch elect x --max 2 -- true",
            "--max is not an option of `conch elect`",
        ),
        ("conch elect x --who -- true", "takes no command"),
        ("conch elect x --who --observe", "do not go together"),
        (
            "conch elect x --nonblock --timeout 1s -- true",
            "do not go together",
        ),
        (
            "conch elect x --restart --nonblock -- true",
            "do not go together",
        ),
        ("conch elect x --timeout 0 -- true", "--timeout"),
        ("conch elect x --json -- true", "--json goes with"),
        ("conch sema x -- true", "needs --max"),
        ("conch sema x --max 0 -- true", "--max \"0\""),
        ("conch sema x --max -1 -- true", "--max"),
        ("conch sema x --max 70000 -- true", "1..=65535"),
        ("conch sema x --max two -- true", "1..=65535"),
        ("conch sema x --max 2 --restart -- true", "not an option"),
        ("conch cron", "cron needs a command"),
        ("conch cron frob", "unknown cron command"),
        ("conch cron add j -- true", "--schedule"),
        (
            "conch cron add j --schedule @daily --overlap never -- true",
            "--overlap",
        ),
        (
            "conch cron add j --schedule @daily --keep 0 -- true",
            "--keep",
        ),
        ("conch cron ls --last x", "--last"),
        ("conch cron next", "needs a SPEC"),
        ("conch cron next --count 0 @daily", "--count"),
        ("conch help a b", "one topic"),
        ("conch completions", "needs a SHELL"),
        ("conch completions tcsh", "expected bash, zsh or fish"),
        ("conch completions bash extra", "unexpected argument"),
        ("conch completions bash --max 2", "--max is not an option"),
    ];
    for (argv, want) in cases {
        let e = err(argv);
        assert!(e.contains(want), "{argv}: {e:?} lacks {want:?}");
        assert!(!e.contains('\n'), "{argv}: more than one line");
    }
    let long = format!("conch elect {} -- true", "n".repeat(256));
    assert!(err(&long).contains("256 bytes"));
}

#[test]
fn sema_modes() {
    match run("conch sema gpu --max 4 --timeout 1s -- train", &[]) {
        Ok(Invocation::Sema {
            cmd: Sema::Run { max, wait, .. },
            ..
        }) => {
            assert_eq!((max, wait), (4, Wait::Timeout(S(1))));
        }
        other => panic!("{other:?}"),
    }
    match run("conch sema gpu --who --json", &[]) {
        Ok(Invocation::Sema {
            cmd: Sema::Who { max, out },
            ..
        }) => {
            assert_eq!((max, out), (None, Output::Json));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn cron_commands() {
    match run("conch cron add j --schedule @daily --tz Europe/Berlin --overlap allow --timeout 1m --kill-after 5s --keep 7 --replace -- echo hi", &[]) {
        Ok(Invocation::Cron { cmd: Cron::Add(a), .. }) => {
            assert_eq!((a.name.as_str(), a.schedule.as_str(), a.tz.as_str()), ("j", "@daily", "Europe/Berlin"));
            assert!(a.overlap_allow && a.replace);
            assert_eq!((a.timeout, a.kill_after, a.keep), (Some(S(60)), S(5), 7));
            assert_eq!(a.argv, vec!["echo", "hi"]);
        }
        other => panic!("{other:?}"),
    }
    match run("conch cron ls j --json --last 3", &[]) {
        Ok(Invocation::Cron {
            cmd: Cron::Ls { name, out, last },
            ..
        }) => {
            assert_eq!((name.as_deref(), out, last), (Some("j"), Output::Json, 3));
        }
        other => panic!("{other:?}"),
    }
    match run("conch cron rm j --purge", &[]) {
        Ok(Invocation::Cron {
            cmd: Cron::Rm { name, purge },
            ..
        }) => assert!(name == "j" && purge),
        other => panic!("{other:?}"),
    }
    match run("conchd --node n1", &[]) {
        Ok(Invocation::Cron {
            cmd: Cron::Daemon { node, labels, .. },
            ..
        }) => assert!(node.as_deref() == Some("n1") && labels.is_empty()),
        other => panic!("{other:?}"),
    }
    match run("/usr/bin/conch cron daemon", &[]) {
        Ok(Invocation::Cron {
            cmd:
                Cron::Daemon {
                    node: None,
                    metrics_file: None,
                    label_output: true,
                    ..
                },
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    match run(
        "conchd --no-label-output --metrics-file /tmp/conchd.prom",
        &[],
    ) {
        Ok(Invocation::Cron {
            cmd:
                Cron::Daemon {
                    metrics_file: Some(p),
                    label_output: false,
                    ..
                },
            ..
        }) => assert_eq!(p, std::path::Path::new("/tmp/conchd.prom")),
        other => panic!("{other:?}"),
    }
    for bad in [
        "conchd --metrics-file /no/such/dir/m.prom",
        "conchd --metrics-file /tmp/",
        "conchd --label-output --no-label-output",
    ] {
        assert!(run(bad, &[]).is_err(), "{bad}");
    }
}

#[test]
fn help_and_version() {
    assert_eq!(run("conch --version", &[]), Ok(Invocation::Version));
    assert_eq!(run("conch --help", &[]), Ok(Invocation::Help(None)));
    assert_eq!(
        run("conch help env", &[]),
        Ok(Invocation::Help(Some("env".into())))
    );
    assert_eq!(
        run("conch elect --help", &[]),
        Ok(Invocation::ToolHelp("elect"))
    );
    assert_eq!(
        run("conch cron add -h", &[]),
        Ok(Invocation::ToolHelp("cron"))
    );
    for t in ["elect", "sema", "cron"] {
        let text = help::tool(t);
        assert!(
            text.contains("EXIT CODES") && text.contains("--endpoints"),
            "{t}"
        );
    }
    assert!(help::topic(Some("nope")).is_none());
    assert_eq!(run("conch", &[]), Ok(Invocation::Usage));
}

#[test]
fn completions() {
    for sh in ["bash", "zsh", "fish"] {
        assert_eq!(
            run(&format!("conch completions {sh}"), &[]),
            Ok(Invocation::Completions(sh))
        );
    }
    match run("conch --prefix /p completions jobs", &[]) {
        Ok(Invocation::CompletionJobs(g)) => assert_eq!(g.prefix, "/p"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        run("conch completions --help", &[]),
        Ok(Invocation::ToolHelp("completions"))
    );
}

/// The page and the help text of each command line shape, and the texts
/// that must name every option the parser accepts for it.
fn documents(tool: &str) -> (&'static str, String) {
    let head = tool.split(' ').next().unwrap_or(tool);
    let page = match head {
        "elect" => include_str!("../../docs/man/conch-elect.1"),
        "sema" => include_str!("../../docs/man/conch-sema.1"),
        "cron" => include_str!("../../docs/man/conch-cron.1"),
        _ => include_str!("../../docs/man/conch.1"),
    };
    (page, help::tool(head))
}

/// One source of truth: the parser's option lists. Every option it accepts
/// for a tool is in that tool's `--help` and man page, so neither can
/// silently fall behind the parser.
#[test]
fn every_accepted_option_is_in_help_and_man_page() {
    let top = include_str!("../../docs/man/conch.1");
    let conchd = include_str!("../../docs/man/conchd.8");
    // roff writes every hyphen of an option as `\-`.
    let roff = |o: &str| format!("\\-\\-{}", o.replace('-', "\\-"));
    for tool in options::TOOLS {
        let (page, help) = documents(tool);
        let mut opts: Vec<&str> = options::allowed(tool).to_vec();
        opts.extend(options::GLOBAL);
        opts.extend(["verbose", "quiet"]);
        for o in opts {
            assert!(
                help.contains(&format!("--{o}")),
                "`conch {tool} --help` lacks --{o}"
            );
            // Global options are described once, in conch(1).
            let in_page = page.contains(&roff(o))
                || (options::GLOBAL.contains(&o) || o == "verbose" || o == "quiet")
                    && top.contains(&roff(o));
            assert!(in_page, "the man page of `conch {tool}` lacks --{o}");
        }
    }
    for o in options::allowed("cron daemon")
        .iter()
        .chain(options::GLOBAL)
    {
        assert!(conchd.contains(&roff(o)), "conchd(8) lacks --{o}");
    }
    for o in args::VALUE_OPTIONS.iter().chain(args::FLAG_OPTIONS) {
        let anywhere = options::TOOLS
            .iter()
            .any(|t| options::allowed(t).contains(o))
            || options::GLOBAL.contains(o)
            || ["version", "verbose", "quiet"].contains(o);
        assert!(anywhere, "--{o} is parsed but no tool takes it");
        assert!(
            top.contains(&roff(o))
                || options::TOOLS
                    .iter()
                    .any(|t| documents(t).0.contains(&roff(o))),
            "no man page names --{o}"
        );
    }
}

#[test]
fn daemon_labels_are_repeatable_sorted_and_checked() {
    match run("conchd --label role=db --label dc=x/1 --label empty=", &[]) {
        Ok(Invocation::Cron {
            cmd: Cron::Daemon { labels, .. },
            ..
        }) => assert_eq!(
            labels,
            [("dc", "x/1"), ("empty", ""), ("role", "db")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
        ),
        other => panic!("{other:?}"),
    }
    for (argv, why) in [
        ("conchd --label role", "expected KEY=VALUE"),
        ("conchd --label =db", "the key must be"),
        ("conchd --label r\u{1}=db", "the key must be"),
        ("conchd --label role=d\u{7f}b", "control characters"),
        ("conchd --label role=db --label role=web", "given twice"),
    ] {
        let e = err(argv);
        assert!(e.contains(why) && !e.contains('\n'), "{argv}: {e}");
    }
}

/// The cron operator commands and flags.
mod cron;
