//! What `conchd` tells its host, against a real etcd and a real daemon:
//! the metrics file (`--metrics-file`), systemd notifications
//! (`$NOTIFY_SOCKET`) and labelled job output (`--label-output`).

mod common;
#[path = "support/prom.rs"]
mod prom;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{client, conch, cron_add, cron_ticks, read, scratch_dir, unique_prefix, wait_for};
use conch::etcd::Range;
use conch::keys::{Schema, TickKind};
use conch::record::cron::{Outcome, RunResult};
use prom::{get, parse_prometheus};

const LONG: Duration = Duration::from_secs(30);

fn conchd(p: &str, node: &str, d: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_conchd"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CONCH_") || k.starts_with("NOTIFY_") || k.starts_with("WATCHDOG_") {
            c.env_remove(k);
        }
    }
    c.env("CONCH_ENDPOINTS", &common::etcd().endpoint)
        .args(["--prefix", p, "--ttl", "3s", "--node", node])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d.join(format!("{node}.log"))).expect("log"));
    c
}

fn term(c: &mut Child) -> std::process::ExitStatus {
    common::term(c, LONG)
}

/// Status → count, as `cron ls NAME --json` shows the job's history.
fn ls_statuses(p: &str, name: &str) -> BTreeMap<String, u64> {
    let o = conch(p)
        .args(["cron", "ls", name, "--json", "--last", "1000"])
        .output()
        .expect("ls");
    assert!(o.status.success());
    let mut out = BTreeMap::new();
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let st = line
            .split("\"status\":\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_else(|| panic!("no status in {line}"));
        *out.entry(st.to_string()).or_default() += 1;
    }
    out
}

/// tick → how it ended, for the results of job `name`.
fn outcomes(p: &str, name: &str) -> BTreeMap<i64, Outcome> {
    cron_ticks(p, TickKind::Result, name)
        .into_iter()
        .filter_map(|(t, v)| Some((t, RunResult::from_json(&v)?.outcome)))
        .collect()
}

#[test]
fn metrics_file_parses_and_its_counters_match_cron_ls() {
    let p = unique_prefix("metrics");
    let d = scratch_dir("metrics");
    let file = d.join("conchd.prom");
    cron_add(&p, "good", &["--schedule", "@every 1s"], "true");
    cron_add(&p, "bad", &["--schedule", "@every 1s"], "exit 3");
    let mut daemon = conchd(
        &p,
        "m1",
        &d,
        &["--metrics-file", file.to_str().expect("utf-8")],
    )
    .spawn()
    .expect("conchd");
    // Every read while the daemon rewrites the file finds a whole file.
    let mut reads = 0;
    wait_for(
        "three results of each job in the metrics file",
        LONG,
        || {
            let Ok(text) = std::fs::read_to_string(&file) else {
                return false;
            };
            reads += 1;
            let s = parse_prometheus(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            get(
                &s,
                "conch_cron_runs_total",
                &[("job", "good"), ("status", "ok")],
            ) >= Some(3.0)
                && get(
                    &s,
                    "conch_cron_runs_total",
                    &[("job", "bad"), ("status", "failed(3)")],
                ) >= Some(3.0)
        },
    );
    assert!(reads > 1);
    assert_eq!(term(&mut daemon).code(), Some(0));
    // The last write happens on the way out, after the last result.
    let text = read(&file);
    let s = parse_prometheus(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    for job in ["good", "bad"] {
        let ls = ls_statuses(&p, job);
        // Results this daemon wrote: not ticks nobody claimed (`missed`).
        let is_result = |st: &str| !["missed", "running", "zombie"].contains(&st);
        let recorded: u64 = ls
            .iter()
            .filter(|(st, _)| is_result(st))
            .map(|(_, n)| n)
            .sum();
        assert!(recorded >= 3, "{ls:?}");
        for (st, n) in &ls {
            if is_result(st) {
                let m = get(&s, "conch_cron_runs_total", &[("job", job), ("status", st)]);
                assert_eq!(m, Some(*n as f64), "{job} {st}: ls {ls:?}\n{text}");
            }
        }
        let won = get(&s, "conch_cron_claims_won_total", &[("job", job)]);
        assert_eq!(won, Some(recorded as f64), "{text}");
        let tried = get(&s, "conch_cron_claim_attempts_total", &[("job", job)]);
        assert!(tried >= won, "{text}");
        let late = get(&s, "conch_cron_last_lateness_seconds", &[("job", job)]);
        assert!(late.is_some_and(|l| (0.0..5.0).contains(&l)), "{text}");
    }
    let failed = ls_statuses(&p, "bad")["failed(3)"] as f64;
    assert_eq!(
        get(&s, "conch_cron_failures_total", &[("job", "bad")]),
        Some(failed)
    );
    assert_eq!(
        get(&s, "conch_cron_failures_total", &[("job", "good")]),
        Some(0.0)
    );
    // The last status is the newest result's (SIGTERM may have cut a run).
    let newest = outcomes(&p, "bad")
        .into_values()
        .next_back()
        .expect("a result");
    let status = newest.label();
    assert_eq!(
        get(
            &s,
            "conch_cron_last_status",
            &[("job", "bad"), ("status", &status)]
        ),
        Some(1.0),
        "{text}"
    );
    // The last success is the end of the newest ok result in etcd.
    let newest_ok = cron_ticks(&p, TickKind::Result, "good")
        .values()
        .filter_map(|v| RunResult::from_json(v))
        .filter(|r| r.outcome == Outcome::Ok)
        .map(|r| r.end_ms)
        .max()
        .expect("an ok result");
    let last = get(
        &s,
        "conch_cron_last_success_timestamp_seconds",
        &[("job", "good")],
    );
    assert_eq!(last, Some(newest_ok as f64 / 1000.0), "{text}");
    assert_eq!(
        get(
            &s,
            "conch_cron_last_success_timestamp_seconds",
            &[("job", "bad")]
        ),
        None
    );
    assert_eq!(get(&s, "conch_cron_lease_losses_total", &[]), Some(0.0));
    assert_eq!(
        get(&s, "conch_cron_daemon_info", &[("node", "m1")]),
        Some(1.0)
    );
    assert_eq!(get(&s, "conch_cron_runs_in_progress", &[]), Some(0.0));
}

/// The datagrams that arrive on `sock` within `limit`, until `until` holds.
fn collect(
    sock: &UnixDatagram,
    limit: Duration,
    mut until: impl FnMut(&[String]) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !until(&got) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "timed out; got {got:?}");
        sock.set_read_timeout(Some(left)).expect("timeout");
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    got
}

#[test]
fn sd_notify_ready_after_registering_watchdog_while_serving_stopping_on_sigterm() {
    let p = unique_prefix("notify");
    let d = scratch_dir("notify");
    let path = d.join("notify.sock");
    let sock = UnixDatagram::bind(&path).expect("bind");
    let mut daemon = conchd(&p, "s1", &d, &[])
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "400000")
        .spawn()
        .expect("conchd");
    let got = collect(&sock, LONG, |g| g.iter().any(|m| m.contains("READY=1")));
    // Registered first: the node key is there when READY=1 arrives.
    let node = Schema::new(&p).cron_node_key("s1");
    let kvs = client().range(Range::key(node)).expect("range").kvs;
    assert_eq!(kvs.len(), 1, "READY=1 before the node key: {got:?}");
    // Pinged at half of WATCHDOG_USEC: a few within two seconds.
    let got = collect(&sock, LONG, |g| {
        g.iter().filter(|m| m.as_str() == "WATCHDOG=1").count() >= 3
    });
    assert!(!got.iter().any(|m| m.contains("STOPPING")), "{got:?}");
    let pid = rustix::process::Pid::from_raw(daemon.id() as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("kill");
    collect(&sock, LONG, |g| g.iter().any(|m| m == "STOPPING=1"));
    assert_eq!(common::wait_exit(&mut daemon, LONG).code(), Some(0));

    // An abstract socket (`@name`), as systemd may hand out.
    let name = format!("conch-test{p}");
    let addr =
        <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(
            name.as_bytes(),
        )
        .expect("abstract");
    let sock = UnixDatagram::bind_addr(&addr).expect("bind abstract");
    let mut daemon = conchd(&p, "s2", &d, &[])
        .env("NOTIFY_SOCKET", format!("@{name}"))
        .spawn()
        .expect("conchd");
    let got = collect(&sock, LONG, |g| g.iter().any(|m| m.contains("READY=1")));
    assert!(
        !got.iter().any(|m| m.contains("WATCHDOG")),
        "no WATCHDOG_USEC: {got:?}"
    );
    assert_eq!(term(&mut daemon).code(), Some(0));
}

/// `[JOB TICK] ` at the start of `line`: the job and the rest.
fn labelled(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('[')?;
    let (label, text) = rest.split_once("] ")?;
    let (job, tick) = label.split_once(' ')?;
    // RFC 3339, UTC, whole seconds: 2026-12-04T20:00:00Z.
    let ok = tick.len() == 20 && tick.ends_with('Z') && tick.as_bytes()[10] == b'T';
    ok.then_some((job, text))
}

#[test]
fn job_output_is_labelled_per_line_and_lines_never_mix() {
    let p = unique_prefix("label");
    let d = scratch_dir("label");
    // Two jobs at once, each writing lines longer than a pipe's atomic
    // write (4 KiB), a last line without a newline, and one stderr line;
    // `a` also writes one line longer than the 64 KiB cut.
    let body = |c: &str| c.repeat(9000);
    for (job, c) in [("a", "x"), ("b", "y")] {
        let script = format!(
            "i=0; while [ $i -lt 20 ]; do echo \"{job}-$i-{}\"; i=$((i+1)); done; \
             echo \"{job}-err\" >&2; {} printf '{job}-tail'",
            body(c),
            if job == "a" {
                "head -c 70000 /dev/zero | tr '\\0' z; echo;"
            } else {
                ""
            }
        );
        cron_add(&p, job, &["--schedule", "@every 1s"], &script);
    }
    // A run that leaves a detached process holding its stdout: the run
    // still ends when its own processes are gone.
    cron_add(
        &p,
        "c",
        &["--schedule", "@every 2s", "--kill-after", "1s"],
        "echo c-start; setsid sh -c 'trap \"\" TERM; sleep 20; echo c-late' & echo c-end",
    );
    let out = d.join("out");
    let mut daemon = conchd(&p, "l1", &d, &[])
        .stdout(std::fs::File::create(&out).expect("out"))
        .spawn()
        .expect("conchd");
    let oks = |j: &str| {
        outcomes(&p, j)
            .into_iter()
            .filter(|(_, o)| *o == Outcome::Ok)
            .map(|(t, _)| conch::schedule::fmt_rfc3339_utc(t))
            .collect::<BTreeSet<String>>()
    };
    wait_for("three ok runs of a, b and c", LONG, || {
        ["a", "b", "c"].iter().all(|j| oks(j).len() >= 3)
    });
    assert_eq!(term(&mut daemon).code(), Some(0));
    let text = read(&out);
    let mut lines_of: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        let (job, rest) = labelled(line).unwrap_or_else(|| panic!("unlabelled: {:.80}", line));
        let tick = line[1 + job.len() + 1..line.find(']').expect("]")].to_string();
        lines_of
            .entry((job.to_string(), tick))
            .or_default()
            .push(rest.to_string());
    }
    let results: BTreeSet<(String, String)> = ["a", "b", "c"]
        .iter()
        .flat_map(|j| {
            cron_ticks(&p, TickKind::Result, j)
                .into_keys()
                .map(move |t| (j.to_string(), conch::schedule::fmt_rfc3339_utc(t)))
        })
        .collect();
    for key in lines_of.keys() {
        assert!(
            results.contains(key),
            "output of a tick without a result: {key:?}"
        );
    }
    // Runs that ended ok wrote everything (SIGTERM may have cut the last).
    for (job, c) in [("a", "x"), ("b", "y")] {
        let ok = oks(job);
        let runs: Vec<_> = lines_of
            .iter()
            .filter(|((j, t), _)| j == job && ok.contains(t))
            .collect();
        assert!(runs.len() >= 3, "{job}: {} ok runs relayed", runs.len());
        for ((_, tick), lines) in runs {
            // Whole lines, in order, each from this run only.
            let want: Vec<String> = (0..20).map(|i| format!("{job}-{i}-{}", body(c))).collect();
            // (Lengths, not the lines: a failure must not print megabytes.)
            let sizes = |ls: &[String]| ls.iter().map(String::len).collect::<Vec<_>>();
            assert!(lines.len() >= 21, "{job} {tick}: {:?}", sizes(lines));
            assert!(
                lines[..20] == want[..],
                "{job} {tick}: mixed or cut: {:?}",
                sizes(lines)
            );
            let mut rest = lines[20..].to_vec();
            if job == "a" {
                let z = |n: usize| "z".repeat(n);
                let pieces = [z(64 * 1024), z(70000 - 64 * 1024)];
                assert!(rest[..2] == pieces[..], "64 KiB pieces: {:?}", sizes(&rest));
                rest.drain(..2);
            }
            assert_eq!(rest, [format!("{job}-tail")], "{job} {tick}");
        }
    }
    let ok = oks("c");
    let c_runs: Vec<_> = lines_of
        .iter()
        .filter(|((j, t), _)| j == "c" && ok.contains(t))
        .collect();
    assert!(c_runs.len() >= 3);
    for (_, lines) in c_runs {
        assert_eq!(lines, &["c-start", "c-end"]);
    }
    // Its run ends once its own processes are gone (the holder is stopped
    // after --kill-after 1s), not when the holder would close the pipe (20s).
    for r in cron_ticks(&p, TickKind::Result, "c").values() {
        let r = RunResult::from_json(r).expect("result");
        assert!(r.end_ms - r.start_ms < 10_000, "{r:?}");
    }
    let log = read(&d.join("l1.log"));
    for job in ["a", "b"] {
        let errs = log
            .lines()
            .filter(|l| labelled(l).is_some_and(|(j, t)| j == job && t == format!("{job}-err")))
            .count();
        assert!(
            errs >= 3,
            "{job}: stderr lines labelled on the daemon's stderr\n{log}"
        );
    }
}

#[test]
fn no_label_output_leaves_job_output_bare() {
    let p = unique_prefix("bare");
    let d = scratch_dir("bare");
    cron_add(
        &p,
        "plain",
        &["--schedule", "@every 1s"],
        "echo plain-$CONCH_TICK",
    );
    let out = d.join("out");
    let mut daemon = conchd(&p, "b1", &d, &["--no-label-output"])
        .stdout(std::fs::File::create(&out).expect("out"))
        .spawn()
        .expect("conchd");
    wait_for("two results", LONG, || {
        cron_ticks(&p, TickKind::Result, "plain").len() >= 2
    });
    assert_eq!(term(&mut daemon).code(), Some(0));
    let text = read(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 2, "{text}");
    assert!(lines.iter().all(|l| l.starts_with("plain-20")), "{text}");
}

/// The reader above is strict enough to catch a bad file.
#[test]
fn the_prometheus_reader_rejects_what_prometheus_would() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{job=\"x\\\"y\"} 3\n";
    let s = parse_prometheus(good).expect("good");
    assert_eq!(get(&s, "a_total", &[("job", "x\"y")]), Some(3.0));
    for bad in [
        "a_total 1\n",                                               // no TYPE
        "# TYPE a_total counter\na_total 1",                         // cut short
        "# TYPE a_total counter\na_total{job=\"x\"y\"} 1\n",         // unescaped
        "# TYPE a_total counter\na_total one\n",                     // not a number
        "# TYPE a_total counter\na_total 1\na_total 2\n",            // twice
        "# TYPE a counter\na 1\n",                                   // counter name
        "# TYPE a_total counter\n# TYPE a_total gauge\na_total 1\n", // TYPE twice
    ] {
        assert!(parse_prometheus(bad).is_err(), "{bad:?}");
    }
}
