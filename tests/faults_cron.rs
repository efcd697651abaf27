//! `conchd` under network faults, against a real etcd reached through a
//! fault-injection proxy: claims whose outcome is unknown, a lease lost
//! while claims are in flight, long outages, a hung member, and history
//! trimming under clock skew.

mod common;
#[path = "support/faultproxy.rs"]
mod faultproxy;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{client, conch, read, scratch_dir, unique_prefix, wait_for};
use conch::etcd::{Compare, Op, Txn};
use conch::keys::{Schema, TickKind};
use conch::record::cron::{Claim, Outcome, RunResult};
use faultproxy::{Fault, Proxy};

const LONG: Duration = Duration::from_secs(30);

fn daemon(p: &str, node: &str, endpoints: &str, ttl: &str, d: &Path) -> Child {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_conchd"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CONCH_") || k.starts_with("ETCDCTL_") {
            c.env_remove(k);
        }
    }
    c.env("CONCH_ENDPOINTS", endpoints)
        .args(["--prefix", p, "--ttl", ttl, "--node", node])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d.join(format!("{node}.log"))).expect("log"))
        .spawn()
        .expect("conchd")
}

fn outcomes(p: &str, name: &str) -> BTreeMap<i64, Outcome> {
    ticks(p, TickKind::Result, name)
        .into_iter()
        .filter_map(|(t, v)| Some((t, RunResult::from_json(&v)?.outcome)))
        .collect()
}

fn now_ms() -> i64 {
    (common::wall_ns() / 1_000_000) as i64
}

/// Sleeps until `ms` past a whole wall-clock second.
fn sleep_until_ms_into_second(ms: i64) {
    let now = now_ms();
    let mut at = now - now.rem_euclid(1000) + ms;
    if at <= now + 50 {
        at += 1000;
    }
    std::thread::sleep(Duration::from_millis((at - now) as u64));
}

/// Every line the runs appended: job, tick (unix s), CONCH_LEASE.
fn runs_seen(d: &Path) -> Vec<(String, i64, String)> {
    read(&d.join("runs"))
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let job = f.next()?.to_string();
            let tick = conch::schedule::parse_rfc3339(f.next()?).ok()?;
            let lease = f.next()?.to_string();
            Some((job, tick, lease))
        })
        .collect()
}

fn run_script(d: &Path) -> String {
    format!(
        "echo $CONCH_JOB $CONCH_TICK $CONCH_LEASE >> {}/runs",
        d.display()
    )
}

/// Issue 5: a daemon whose clock lags claims a tick late but inside its
/// grace. Trimming must leave the fire key of such a tick in place, or the
/// late claim succeeds and the tick runs twice. The test plays the lagging
/// daemon itself with the very claim a daemon makes (create-only on the
/// fire key), 1.5 s behind, for ticks it has seen claimed.
#[test]
fn trimming_keeps_fire_keys_a_lagging_daemon_could_still_claim() {
    let p = unique_prefix("trim-skew");
    let d = scratch_dir("trim-skew");
    let mut a = daemon(&p, "a", &common::etcd().endpoint, "3s", &d);
    add(
        &p,
        "job",
        &["--schedule", "@every 1s", "--keep", "1"],
        "true",
    );
    wait_for("a claimed and recorded tick", LONG, || {
        !ticks(&p, TickKind::Result, "job").is_empty()
    });
    let s = Schema::new(&p);
    let c = client();
    let mut seen: BTreeSet<i64> = BTreeSet::new();
    let mut tried: BTreeSet<i64> = BTreeSet::new();
    let mut doubled = Vec::new();
    let until = now_ms() + 6000;
    while now_ms() < until {
        seen.extend(ticks(&p, TickKind::Fire, "job").keys().copied());
        let lagging = now_ms() - 1500;
        let tick = lagging.div_euclid(1000);
        // Inside its grace (1 s for @every 1s) on the lagging clock, and
        // already claimed by the real daemon: a late claim must fail.
        if seen.contains(&tick) && tried.insert(tick) {
            let fire = s.cron_tick_key(TickKind::Fire, "job", tick);
            let won = c
                .txn(Txn {
                    compare: vec![Compare::absent(fire.clone())],
                    success: vec![Op::put(fire, "lagging daemon", 0)],
                    failure: vec![],
                })
                .expect("txn")
                .succeeded;
            if won {
                doubled.push(tick);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(term(&mut a).code(), Some(0));
    assert!(tried.len() >= 3, "too few late claims tried: {tried:?}");
    assert!(
        doubled.is_empty(),
        "a lagging daemon re-claimed trimmed ticks {doubled:?} (tried {tried:?})"
    );
    // Nothing seen in the last minute was trimmed, despite --keep 1.
    let fires = ticks(&p, TickKind::Fire, "job");
    assert!(seen.iter().all(|t| fires.contains_key(t)));
}

/// Issue 4: the lease a run is told (`CONCH_LEASE`) is the one its claim
/// transaction put the marker on, also when the daemon loses its lease
/// while claims are in flight (replies slowed down so that the fence runs
/// out between the answers of one tick's claims).
#[test]
fn conch_lease_is_the_lease_of_the_claim_even_when_the_lease_is_lost_meanwhile() {
    let p = unique_prefix("lease-env");
    let d = scratch_dir("lease-env");
    let proxy = Proxy::to(&common::etcd().endpoint);
    let mut a = daemon(&p, "a", &proxy.url(), "5s", &d);
    for job in ["j1", "j2", "j3"] {
        add(
            &p,
            job,
            &["--schedule", "@every 1s", "--overlap", "allow"],
            &run_script(&d),
        );
    }
    wait_for("runs of every job", LONG, || {
        let r = runs_seen(&d);
        ["j1", "j2", "j3"]
            .iter()
            .all(|j| r.iter().any(|(job, _, _)| job == j))
    });
    sleep_until_ms_into_second(900);
    proxy.set(Fault::Delay(Duration::from_millis(600)));
    std::thread::sleep(Duration::from_secs(8));
    proxy.set(Fault::Pass);
    let healed = now_ms() / 1000;
    wait_for("runs after the fault", LONG, || {
        runs_seen(&d).iter().any(|(_, t, _)| *t > healed + 2)
    });
    assert_eq!(term(&mut a).code(), Some(0));
    let log = read(&d.join("a.log"));
    let mut checked = 0;
    for (job, tick, lease) in runs_seen(&d) {
        assert_ne!(lease, "0000000000000000", "{job} {tick}: zero lease\n{log}");
        let fire = ticks(&p, TickKind::Fire, &job);
        let Some(v) = fire.get(&tick) else { continue };
        assert_eq!(
            Claim::from_json(v).lease,
            lease,
            "{job} {tick}: CONCH_LEASE is not the claim's lease\n{log}"
        );
        checked += 1;
    }
    assert!(checked > 3);
}

/// Issue 6: a claim whose reply is lost is retried within its grace; the
/// daemon recognises its own earlier success, or removes its run marker,
/// so an orphaned marker on its live lease does not make every later tick
/// `skipped`.
#[test]
fn a_claim_with_an_unknown_outcome_leaves_no_orphaned_run_marker() {
    let p = unique_prefix("unknown-claim");
    let d = scratch_dir("unknown-claim");
    let proxy = Proxy::to(&common::etcd().endpoint);
    // The default TTL: the lease outlives the fault, so an orphaned marker
    // on it would stay.
    let mut a = daemon(&p, "a", &proxy.url(), "30s", &d);
    add(
        &p,
        "job",
        &["--schedule", "@every 1s", "--overlap", "skip"],
        &run_script(&d),
    );
    wait_for("a run", LONG, || !outcomes(&p, "job").is_empty());
    sleep_until_ms_into_second(950);
    let fault_at = now_ms() / 1000;
    proxy.set(Fault::DropReplies);
    std::thread::sleep(Duration::from_millis(5500));
    proxy.set(Fault::Pass);
    let healed = now_ms() / 1000;
    // Not wait_for: on failure the log and the outcomes say why.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while std::time::Instant::now() < deadline
        && outcomes(&p, "job")
            .iter()
            .filter(|(t, o)| **t > healed && **o == Outcome::Ok)
            .count()
            < 3
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = read(&d.join("a.log"));
    let fires = ticks(&p, TickKind::Fire, "job");
    let results = ticks(&p, TickKind::Result, "job");
    let markers = ticks(&p, TickKind::Run, "job");
    let runs = runs_seen(&d);
    for t in fires.keys().filter(|t| **t > fault_at && **t <= healed) {
        let ran = runs.iter().filter(|(_, rt, _)| rt == t).count();
        assert!(ran <= 1, "tick {t} ran {ran} times\n{log}");
        // Ran once and recorded, or never ran and left no marker behind.
        if ran == 0 {
            assert!(
                !markers.contains_key(t),
                "tick {t}: run marker without a run\n{log}"
            );
        }
        if ran == 1 {
            assert!(
                results.contains_key(t),
                "tick {t} ran without a result\n{log}"
            );
        }
    }
    let later: Vec<Outcome> = outcomes(&p, "job")
        .into_iter()
        .filter(|(t, _)| *t > healed)
        .map(|(_, o)| o)
        .collect();
    assert!(
        later.contains(&Outcome::Ok),
        "later ticks all skipped: {later:?}\n{log}"
    );
    assert_eq!(term(&mut a).code(), Some(0));
}

/// Issue 6, the other outcome: the reply of a claim that applied is lost,
/// the connection heals inside the grace, and the retry reads back the
/// daemon's own fire key: the tick runs, once.
#[test]
fn a_claim_whose_reply_was_lost_runs_once_when_the_retry_finds_it_ours() {
    let p = unique_prefix("lost-reply");
    let d = scratch_dir("lost-reply");
    let proxy = Proxy::to(&common::etcd().endpoint);
    let mut a = daemon(&p, "a", &proxy.url(), "30s", &d);
    // @every 2s: a grace of 2 s, the first attempt gets 1 s of it.
    add(&p, "job", &["--schedule", "@every 2s"], &run_script(&d));
    wait_for("a run", LONG, || !outcomes(&p, "job").is_empty());
    let mut tick = now_ms().div_euclid(1000) + 1;
    if tick % 2 != 0 {
        tick += 1;
    }
    let wait = tick * 1000 - 50 - now_ms();
    std::thread::sleep(Duration::from_millis(wait.max(0) as u64));
    proxy.set(Fault::DropReplies);
    std::thread::sleep(Duration::from_millis(550));
    proxy.set(Fault::Pass);
    wait_for("the tick's result", LONG, || {
        outcomes(&p, "job").contains_key(&tick)
    });
    wait_for("a later result", LONG, || {
        outcomes(&p, "job").keys().any(|t| *t > tick)
    });
    assert_eq!(term(&mut a).code(), Some(0));
    let log = read(&d.join("a.log"));
    let when = conch::schedule::fmt_rfc3339_utc(tick);
    assert!(
        log.contains(&format!("tick {when}: outcome unknown")),
        "the reply was lost:\n{log}"
    );
    let ran = runs_seen(&d).iter().filter(|(_, t, _)| *t == tick).count();
    assert_eq!(ran, 1, "ran once\n{log}");
    assert_eq!(outcomes(&p, "job").get(&tick), Some(&Outcome::Ok), "{log}");
}

/// Issue 9: an idle daemon outlives an etcd outage longer than it used to
/// tolerate, keeps the result of a run that finished during it, and writes
/// that result once etcd is back.
#[test]
fn conchd_outlives_a_long_outage_and_records_the_result_afterwards() {
    let p = unique_prefix("outage");
    let d = scratch_dir("outage");
    let proxy = Proxy::to(&common::etcd().endpoint);
    let mut a = daemon(&p, "a", &proxy.url(), "3s", &d);
    let script = format!(
        "touch {d}/started; while [ ! -e {d}/go ]; do sleep 0.05; done; sleep 0.5",
        d = d.display()
    );
    add(&p, "job", &["--schedule", "@every 1s"], &script);
    wait_for("running", LONG, || d.join("started").exists());
    // The run goes on without its job: the daemon is idle but for it.
    let o = conch(&p).args(["cron", "rm", "job"]).output().expect("rm");
    assert!(o.status.success());
    let tick = *ticks(&p, TickKind::Fire, "job")
        .keys()
        .next()
        .expect("claimed");
    // The run ends half a second into the outage, while the loop is free
    // to see it: its result cannot be written.
    proxy.set(Fault::BlackHole);
    std::fs::write(d.join("go"), "").expect("go");
    // Longer than every limit the daemon used to give up after.
    let outage = Duration::from_secs(20);
    std::thread::sleep(outage / 2);
    proxy.set(Fault::Refuse);
    std::thread::sleep(outage / 2);
    assert!(
        a.try_wait().expect("try_wait").is_none(),
        "conchd exited during the outage\n{}",
        read(&d.join("a.log"))
    );
    proxy.set(Fault::Pass);
    let healed = std::time::Instant::now();
    wait_for("the result recorded after the outage", LONG, || {
        ticks(&p, TickKind::Result, "job").contains_key(&tick)
    });
    eprintln!("result recorded {:?} after the outage", healed.elapsed());
    assert!(a.try_wait().expect("try_wait").is_none());
    assert_eq!(
        outcomes(&p, "job").get(&tick),
        Some(&Outcome::Ok),
        "{}",
        read(&d.join("a.log"))
    );
    assert!(ticks(&p, TickKind::Run, "job").is_empty(), "marker removed");
    assert_eq!(term(&mut a).code(), Some(0));
}

/// Issue 16: with endpoints [hung, healthy], a member that stops answering
/// at a tick must not hold the daemon's loop past the grace of its other
/// jobs' ticks: the daemon fails over instead of waiting.
#[test]
fn a_hung_member_does_not_make_other_ticks_miss() {
    let p = unique_prefix("hung");
    let d = scratch_dir("hung");
    let proxy = Proxy::to(&common::etcd().endpoint);
    let endpoints = format!("{},{}", proxy.url(), common::etcd().endpoint);
    let mut a = daemon(&p, "a", &endpoints, "3s", &d);
    for job in ["j1", "j2"] {
        add(
            &p,
            job,
            &["--schedule", "@every 1s", "--overlap", "allow"],
            &run_script(&d),
        );
    }
    wait_for("both jobs ran", LONG, || {
        !outcomes(&p, "j1").is_empty() && !outcomes(&p, "j2").is_empty()
    });
    sleep_until_ms_into_second(900);
    let fault_at = now_ms() / 1000;
    proxy.set(Fault::BlackHole);
    let until = fault_at + 8;
    wait_for("the window after the fault", LONG, || {
        now_ms() / 1000 > until
    });
    let log = read(&d.join("a.log"));
    assert_eq!(term(&mut a).code(), Some(0));
    assert!(!log.contains("missed"), "a tick was missed:\n{log}");
    // The tick at the fault may be lost to it; every later one ran.
    for job in ["j1", "j2"] {
        let fires = ticks(&p, TickKind::Fire, job);
        let late = fires
            .iter()
            .filter(|(t, _)| **t > fault_at)
            .map(|(t, v)| Claim::from_json(v).at_ms as i64 - t * 1000)
            .max();
        eprintln!("{job}: latest claim after the fault {late:?} ms after its tick");
        let absent: Vec<i64> = (fault_at + 2..=until)
            .filter(|t| !fires.contains_key(t))
            .collect();
        assert!(absent.is_empty(), "{job}: ticks {absent:?} not run\n{log}");
    }
}

fn add(p: &str, name: &str, extra: &[&str], script: &str) {
    common::cron_add(p, name, extra, script)
}

fn term(c: &mut Child) -> std::process::ExitStatus {
    common::term(c, LONG)
}

fn ticks(p: &str, kind: TickKind, name: &str) -> BTreeMap<i64, Vec<u8>> {
    common::cron_ticks(p, kind, name)
}
