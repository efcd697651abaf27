//! The fleet cost of `conchd` against a real etcd: one claim transaction
//! per tick however many daemons run (counted by etcd's own `/metrics`),
//! one claim and one result request for the jobs of a group due together,
//! a stopped first-ranked daemon costing one stagger, and placement.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{scratch_dir, unique_prefix, wait_for};
use conch::etcd::{Client, ClientConfig, Range};
use conch::keys::{parse_tick, Schema, TickKind};
use conch::record::cron::{Job, RunResult};

const LONG: Duration = Duration::from_secs(60);
/// The stagger between ranks, as conchd(8) documents it.
const STAGGER_MS: i64 = 250;

/// The rank hash as docs/cron.md writes it down (FNV-1a 64 over
/// `node 0x00 group 0x00 tick`, then the splitmix64 finalizer), written
/// out again here: a fleet of mixed versions relies on it staying this.
fn score(node: &str, group: &str, tick: i64) -> u64 {
    let bytes = format!("{node}\0{group}\0{tick}");
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The first-ranked daemon for a tick of the fleet's only job: with at
/// most eight jobs there is one claim group, `0/1`.
fn first_ranked<'a>(nodes: &[&'a str], tick: i64) -> &'a str {
    nodes
        .iter()
        .copied()
        .min_by_key(|n| (score(n, "0/1", tick), *n))
        .expect("nodes")
}

/// An etcd of this test alone, so that its `/metrics` count only our
/// daemons. It dies with the test's thread.
struct OwnEtcd {
    child: Child,
    endpoint: String,
}

impl OwnEtcd {
    fn start(tag: &str) -> OwnEtcd {
        let dir = scratch_dir(tag);
        let port = common::free_port();
        let mut child = common::etcd_command(&dir, port, common::free_port())
            .spawn()
            .expect("etcd on $PATH");
        let endpoint = format!("http://127.0.0.1:{port}");
        common::wait_ready(&endpoint, &mut child, &dir);
        OwnEtcd { child, endpoint }
    }

    fn client(&self) -> Client {
        Client::connect(ClientConfig::new(vec![self.endpoint.clone()])).expect("connect")
    }

    /// `grpc_server_handled_total` by gRPC method, from etcd's `/metrics`.
    fn handled(&self) -> BTreeMap<String, u64> {
        let addr = self.endpoint.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr).expect("metrics");
        write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("ask");
        let mut text = String::new();
        s.read_to_string(&mut text).expect("metrics");
        let mut by = BTreeMap::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("grpc_server_handled_total{") else {
                continue;
            };
            let method = rest
                .split("grpc_method=\"")
                .nth(1)
                .and_then(|m| m.split('"').next())
                .unwrap_or("?");
            let n: f64 = line
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            *by.entry(method.to_string()).or_insert(0) += n as u64;
        }
        by
    }
}

impl Drop for OwnEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn daemon(endpoint: &str, p: &str, node: &str, extra: &[&str], d: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_conchd"))
        .env("CONCH_ENDPOINTS", endpoint)
        .args(["--prefix", p, "--node", node, "-v"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d.join(format!("{node}.log"))).expect("log"))
        .spawn()
        .expect("conchd")
}

/// Stores a job the way `cron add` does, with a placement.
fn add(c: &Client, p: &str, name: &str, placement: &[(&str, &str)], d: &Path) {
    let job = Job {
        schedule: "@every 1s".into(),
        tz: "UTC".into(),
        argv: [
            "sh",
            "-c",
            &format!("echo $CONCH_TICK >> {}/runs", d.display()),
        ]
        .map(String::from)
        .to_vec(),
        kill_after_ms: 3000,
        keep: 100,
        placement: placement
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Job::default()
    };
    c.put(Schema::new(p).cron_job_key(name), job.to_json(), 0)
        .expect("put job");
}

fn ticks(c: &Client, p: &str, kind: TickKind, name: &str) -> BTreeMap<i64, Vec<u8>> {
    let dir = Schema::new(p).cron_tick_dir(kind, name);
    c.range(Range::prefix(dir.clone()))
        .expect("range")
        .kvs
        .into_iter()
        .filter_map(|kv| Some((Schema::leaf(&dir, &kv.key).and_then(parse_tick)?, kv.value)))
        .collect()
}

fn results(c: &Client, p: &str, name: &str) -> BTreeMap<i64, RunResult> {
    ticks(c, p, TickKind::Result, name)
        .into_iter()
        .filter_map(|(t, v)| Some((t, RunResult::from_json(&v)?)))
        .collect()
}

/// Every tick ran once: the runs file has no tick twice, and every fire
/// key has its result.
fn each_tick_once(c: &Client, p: &str, name: &str, d: &Path) {
    let runs: Vec<String> = common::read(&d.join("runs"))
        .lines()
        .map(str::to_string)
        .collect();
    let mut unique = runs.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), runs.len(), "a tick ran twice: {runs:?}");
    let fires = ticks(c, p, TickKind::Fire, name);
    let results = results(c, p, name);
    assert_eq!(fires.len(), runs.len(), "one run per claimed tick");
    assert!(fires.keys().all(|t| results.contains_key(t)));
    let ts: Vec<i64> = fires.keys().copied().collect();
    assert!(ts.windows(2).all(|w| w[1] - w[0] == 1), "a gap: {ts:?}");
}

fn signal(c: &Child, sig: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(c.id() as i32).expect("pid");
    rustix::process::kill_process(pid, sig).expect("kill");
}

#[test]
fn five_daemons_send_one_claim_per_tick_and_a_stopped_first_costs_its_stagger() {
    let etcd = OwnEtcd::start("fleet-etcd");
    let c = etcd.client();
    let (p, d) = (unique_prefix("fleet"), scratch_dir("fleet"));
    let nodes = ["n1", "n2", "n3", "n4", "n5"];
    // A long TTL keeps the stopped daemon in the node set, ranked, for
    // the whole window below.
    let mut ds: Vec<Child> = nodes
        .iter()
        .map(|n| daemon(&etcd.endpoint, &p, n, &["--ttl", "30s"], &d))
        .collect();
    add(&c, &p, "every", &[], &d);
    wait_for("a warm fleet", LONG, || results(&c, &p, "every").len() >= 2);

    // Healthy: claims per tick from etcd's own counters.
    let before = etcd.handled();
    let fired = ticks(&c, &p, TickKind::Fire, "every").len();
    wait_for("six more ticks", LONG, || {
        ticks(&c, &p, TickKind::Fire, "every").len() >= fired + 6
    });
    let after = etcd.handled();
    let n = (ticks(&c, &p, TickKind::Fire, "every").len() - fired) as f64;
    let txns = (after.get("Txn").unwrap_or(&0) - before.get("Txn").unwrap_or(&0)) as f64;
    eprintln!("healthy: {n} ticks, {txns} txns ({:.2} per tick)", txns / n);
    // Per tick: the claim and the result (each a txn). Every daemon
    // claiming, as before ranking, made it 5 + 1. With five daemons, two
    // have no turn at a tick: they must still wake for their own turns.
    assert!(
        txns <= 2.5 * n + 2.0,
        "{txns} txns for {n} ticks: more than one claim per tick"
    );
    for m in ["Put", "DeleteRange", "LeaseGrant"] {
        assert_eq!(after.get(m), before.get(m), "{m}: writes beyond the txns");
    }

    // The first daemon stopped: the ticks it ranked first are claimed by
    // the next one, one stagger late, not missed.
    signal(&ds[0], rustix::process::Signal::STOP);
    let stopped = (common::wall_ns() / 1_000_000_000) as i64 + 1;
    let its_ticks = || {
        results(&c, &p, "every")
            .into_iter()
            .filter(|(t, _)| *t > stopped && first_ranked(&nodes, *t) == "n1")
            .collect::<Vec<_>>()
    };
    wait_for("a tick the stopped daemon ranked first", LONG, || {
        !its_ticks().is_empty()
    });
    for (tick, r) in its_ticks() {
        assert_ne!(r.node, "n1");
        let late = r.start_ms as i64 - tick * 1000;
        eprintln!("n1 stopped: tick {tick} run by {} {late}ms late", r.node);
        // One stagger, plus a generous allowance for a loaded machine.
        assert!(late <= STAGGER_MS + 500, "tick {tick} ran {late}ms late");
    }
    signal(&ds[0], rustix::process::Signal::CONT);
    for c in &mut ds {
        assert_eq!(common::term(c, LONG).code(), Some(0));
    }
    each_tick_once(&c, &p, "every", &d);
}

#[test]
fn four_jobs_due_together_cost_two_requests_per_tick_not_two_per_job() {
    let etcd = OwnEtcd::start("group-etcd");
    let c = etcd.client();
    let (p, d) = (unique_prefix("group"), scratch_dir("group"));
    let mut ds: Vec<Child> = ["g1", "g2", "g3", "g4", "g5"]
        .iter()
        .map(|n| daemon(&etcd.endpoint, &p, n, &[], &d))
        .collect();
    let jobs = ["j1", "j2", "j3", "j4"];
    let dirs: Vec<_> = jobs
        .iter()
        .map(|j| scratch_dir(&format!("group-{j}")))
        .collect();
    for (j, dj) in jobs.iter().zip(&dirs) {
        add(&c, &p, j, &[], dj);
    }
    let fired = || -> usize {
        jobs.iter()
            .map(|j| ticks(&c, &p, TickKind::Fire, j).len())
            .sum()
    };
    wait_for("a warm fleet", LONG, || {
        jobs.iter().all(|j| results(&c, &p, j).len() >= 2)
    });
    let before = etcd.handled();
    let from = fired();
    wait_for("six more ticks of each job", LONG, || fired() >= from + 24);
    let after = etcd.handled();
    let n = (fired() - from) as f64;
    let txns = (after.get("Txn").unwrap_or(&0) - before.get("Txn").unwrap_or(&0)) as f64;
    eprintln!(
        "four jobs: {n} job-ticks, {txns} txns ({:.2} per job-tick)",
        txns / n
    );
    // One claim request and one result request per tick for the four;
    // sent one job at a time it was two per job and tick.
    assert!(
        txns <= 0.75 * n + 2.0,
        "{txns} txns for {n} job-ticks: not batched"
    );
    for m in ["Put", "DeleteRange", "LeaseGrant"] {
        assert_eq!(after.get(m), before.get(m), "{m}: writes beyond the txns");
    }
    for c in &mut ds {
        assert_eq!(common::term(c, LONG).code(), Some(0));
    }
    for (j, dj) in jobs.iter().zip(&dirs) {
        each_tick_once(&c, &p, j, dj);
    }
}

#[test]
fn a_placed_job_runs_only_on_the_daemon_whose_labels_match() {
    let endpoint = common::etcd().endpoint.clone();
    let c = common::client();
    let (p, d) = (unique_prefix("placed"), scratch_dir("placed"));
    let mut ds = vec![
        daemon(&endpoint, &p, "db", &["--label", "role=db"], &d),
        daemon(&endpoint, &p, "web", &["--label", "role=web"], &d),
        daemon(&endpoint, &p, "plain", &[], &d),
    ];
    add(&c, &p, "backup", &[("role", "db")], &d);
    wait_for("six runs", LONG, || results(&c, &p, "backup").len() >= 6);
    for c in &mut ds {
        assert_eq!(common::term(c, LONG).code(), Some(0));
    }
    let by: Vec<(i64, String)> = results(&c, &p, "backup")
        .into_iter()
        .map(|(t, r)| (t, r.node))
        .collect();
    assert!(by.iter().all(|(_, n)| n == "db"), "{by:?}");
    each_tick_once(&c, &p, "backup", &d);
}
