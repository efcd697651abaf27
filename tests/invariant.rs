//! The invariant tests (docs/contributing.md, "the sacred ones"): bounded
//! concurrency with honest overlap accounting, under a seeded random
//! schedule of faults, against the real etcd.
//!
//! K wrappers compete for one office (`elect`) or one semaphore (`sema
//! --max N`) and are re-spawned whenever they exit, so contention lasts the
//! whole run. Each child runs a short or long workload and logs its start,
//! fencing token and slot; the harness observes every end (see
//! `support/inv_tracker.rs`). The faults: SIGKILL of a wrapper, `etcdctl
//! lease revoke` of a holder's lease, SIGSTOP/SIGCONT of a wrapper for up to
//! 2×TTL, a network partition between one wrapper and etcd, and the death of
//! a wrapper's first endpoint while its second one hangs. Each wrapper has
//! three endpoints: its own proxy to etcd, a member that accepts and never
//! answers, and a second proxy of its own to etcd (`support/faultproxy.rs`);
//! a partition black-holes both proxies, a failover fault kills the first.
//!
//! `CONCH_SEED=N cargo test --test invariant -- --nocapture` replays the
//! fault schedule of seed N (which holder a fault hits depends on timing).

mod common;
#[path = "support/faultproxy.rs"]
mod faultproxy;
#[path = "support/interval_check.rs"]
mod interval_check;
#[path = "support/inv_tracker.rs"]
mod inv_tracker;
#[path = "support/splitmix.rs"]
mod splitmix;

use std::fmt::Write as _;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use conch::etcd::{Client, Range};
use conch::keys::Schema;
use faultproxy::{Fault as NetFault, Proxy};
use interval_check::{check, describe, ms, Bounds, Fault, Interval, Kind, KINDS, MS};
use inv_tracker::{now_ns, Tracker};
use rustix::process::{kill_process, Pid, Signal};
use splitmix::SplitMix;

const TTL: Duration = Duration::from_secs(3);
const KILL_AFTER: &str = "1s";
/// The keeper's contract: a SIGKILLed wrapper's child is gone within 1 s.
const KILL_WINDOW: Duration = Duration::from_secs(1);
const FIRST_FAULT: Duration = Duration::from_secs(4);
const SCHEDULE: Duration = Duration::from_secs(70);
const FAULTS: usize = 25;
/// A fault finds no eligible target for this long: it is skipped.
const FAULT_PATIENCE: Duration = Duration::from_secs(3);
const CLEAN: Duration = Duration::from_secs(8);
const CONVERGE: Duration = Duration::from_secs(20);
const STEADY: Duration = Duration::from_secs(3);
const SLACK: i64 = 5 * MS;
const DEFAULT_SEED: u64 = 20_240_601;
const NAME: &str = "inv";

#[derive(Clone, Copy)]
enum Tool {
    Elect,
    Sema(u32),
}

impl Tool {
    fn limit(self) -> usize {
        match self {
            Tool::Elect => 1,
            Tool::Sema(n) => n as usize,
        }
    }
}

fn seed() -> u64 {
    match std::env::var("CONCH_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("CONCH_SEED={s:?}: expected a decimal u64")),
        Err(_) => DEFAULT_SEED,
    }
}

#[derive(Clone, Debug)]
struct Planned {
    at: Duration,
    kind: Kind,
    dur: Duration,
    pick: u64,
}

/// The fault schedule: FAULTS faults, kinds in equal numbers in a seeded
/// order, spread over SCHEDULE with jitter; pauses and partitions last
/// 0.3 s .. 2×TTL, so some are survived and some are not.
fn plan(seed: u64) -> Vec<Planned> {
    let mut rng = SplitMix::new(seed);
    let mut kinds: Vec<Kind> = (0..FAULTS).map(|i| KINDS[i % KINDS.len()]).collect();
    for i in (1..kinds.len()).rev() {
        let j = rng.range(0, i as u64) as usize;
        kinds.swap(i, j);
    }
    let first = FIRST_FAULT.as_millis() as u64;
    let gap = (SCHEDULE.as_millis() as u64 - first) / FAULTS as u64;
    let max_dur = 2 * TTL.as_millis() as u64;
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| {
            let at = first + i as u64 * gap + rng.range(0, gap * 3 / 4);
            let dur = match kind {
                Kind::Pause | Kind::Partition | Kind::Failover => rng.range(300, max_dur),
                _ => 0,
            };
            Planned {
                at: Duration::from_millis(at),
                kind,
                dur: Duration::from_millis(dur),
                pick: rng.next_u64(),
            }
        })
        .collect()
}

/// One wrapper process (a generation of a contender).
struct Gen {
    id: String,
    child: Child,
    /// The workload its child will run (ms), unless in the final phase.
    work_ms: u64,
    ignores_term: bool,
    faults: Vec<Kind>,
    killed: bool,
    termed: bool,
}

struct Exit {
    id: String,
    status: ExitStatus,
    ignores_term: bool,
    faults: Vec<Kind>,
    killed: bool,
    termed: bool,
}

impl Exit {
    /// 0, 70 (after a loss we caused), 69 (etcd unreachable through a
    /// partition), 143 / 137 (our SIGTERM; 137 when the child ignored it
    /// and was killed), SIGKILL (ours).
    fn expected(&self) -> bool {
        match (self.status.code(), self.status.signal()) {
            (Some(0), _) => true,
            // A dead endpoint beside a healthy one never costs the hold.
            (Some(70), _) => self.faults.iter().any(|&k| k != Kind::Failover),
            (Some(69), _) => self.faults.contains(&Kind::Partition),
            (Some(143), _) => self.termed,
            (Some(137), _) => self.termed && self.ignores_term,
            (None, Some(9)) => self.killed,
            _ => false,
        }
    }
}

/// A contender: its own two proxies to etcd and the current generation.
struct Contender {
    first: Proxy,
    third: Proxy,
    gens: u32,
    run: Option<Gen>,
    respawn_at: Option<Instant>,
    /// Under a pause or a partition: no other fault, no respawn.
    busy: bool,
}

/// A pause or partition waiting to end.
struct Ending {
    fault: usize,
    contender: usize,
    at: Instant,
}

struct Run {
    tool: Tool,
    /// The second endpoint of every contender: accepts, never answers.
    hung: String,
    prefix: String,
    dir: PathBuf,
    log: PathBuf,
    final_flag: PathBuf,
    rng: SplitMix,
    cs: Vec<Contender>,
    exits: Vec<Exit>,
    faults: Vec<Fault>,
    endings: Vec<Ending>,
    tracker: Tracker,
    etcd: Client,
    t0: Instant,
    origin: i64,
    respawn: bool,
    notes: Vec<String>,
}

impl Run {
    fn new(tool: Tool, k: usize, tag: &str, seed: u64) -> Run {
        let endpoint = &common::etcd().endpoint;
        let (hung, _) = faultproxy::hung_endpoint();
        let dir = common::scratch_dir(tag);
        let log = dir.join("intervals.log");
        let tracker = Tracker::start(&log);
        let mut rng = SplitMix::new(seed ^ 0x5EED_D41E);
        let now = Instant::now();
        let cs = (0..k)
            .map(|_| Contender {
                first: Proxy::to(endpoint),
                third: Proxy::to(endpoint),
                gens: 0,
                run: None,
                respawn_at: Some(now + Duration::from_millis(rng.range(0, 300))),
                busy: false,
            })
            .collect();
        Run {
            tool,
            hung,
            prefix: common::unique_prefix(tag),
            final_flag: dir.join("final"),
            dir,
            log,
            rng,
            cs,
            exits: Vec::new(),
            faults: Vec::new(),
            endings: Vec::new(),
            tracker,
            etcd: common::client(),
            t0: now,
            origin: now_ns(),
            respawn: true,
            notes: Vec::new(),
        }
    }

    fn spawn(&mut self, i: usize) {
        let c = &mut self.cs[i];
        c.gens += 1;
        let id = format!("c{i}g{}", c.gens);
        let ignores_term = self.rng.chance(30);
        let work = if self.rng.chance(50) {
            self.rng.range(150, 800)
        } else {
            self.rng.range(1500, 8000)
        };
        let trap = if ignores_term { "trap '' TERM; " } else { "" };
        let script = format!(
            "{trap}echo \"S $INV_ID $$ $(date +%s%N) $CONCH_REV ${{CONCH_SLOT:-0}} $CONCH_LEASE\" \
             >> {log}; if [ -e {fin} ]; then sleep 1000; else sleep {s}.{ms:03}; fi; \
             echo \"E $$ $(date +%s%N)\" >> {log}",
            log = self.log.display(),
            fin = self.final_flag.display(),
            s = work / 1000,
            ms = work % 1000,
        );
        let mut cmd = common::conch(&self.prefix);
        let endpoints = format!("{},{},{}", c.first.url(), self.hung, c.third.url());
        cmd.env("CONCH_ENDPOINTS", endpoints)
            .env("INV_ID", &id)
            .args(["-v", "--ttl", &format!("{}s", TTL.as_secs())])
            .args(["--kill-after", KILL_AFTER]);
        match self.tool {
            Tool::Elect => cmd.args(["elect", NAME]),
            Tool::Sema(n) => cmd.args(["sema", NAME, "--max", &n.to_string()]),
        };
        let err = std::fs::File::create(self.dir.join(format!("{id}.err"))).expect("log");
        let child = cmd
            .args(["--", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("spawn conch");
        c.run = Some(Gen {
            id,
            child,
            work_ms: work,
            ignores_term,
            faults: Vec::new(),
            killed: false,
            termed: false,
        });
        c.respawn_at = None;
    }

    fn rel(&self) -> String {
        format!("{:.1}", self.t0.elapsed().as_secs_f64() * 1000.0)
    }

    /// One step of the driver: reap, end pauses and partitions, respawn.
    fn tick(&mut self) {
        let now = Instant::now();
        for i in 0..self.cs.len() {
            let exited = match self.cs[i].run.as_mut() {
                Some(g) => g.child.try_wait().expect("try_wait"),
                None => None,
            };
            if let Some(status) = exited {
                let g = self.cs[i].run.take().expect("gen");
                self.exits.push(Exit {
                    id: g.id,
                    status,
                    ignores_term: g.ignores_term,
                    faults: g.faults,
                    killed: g.killed,
                    termed: g.termed,
                });
                if self.respawn {
                    let delay = Duration::from_millis(self.rng.range(0, 400));
                    self.cs[i].respawn_at = Some(now + delay);
                }
            }
        }
        let due: Vec<Ending> = {
            let (due, rest) = std::mem::take(&mut self.endings)
                .into_iter()
                .partition(|e| e.at <= now);
            self.endings = rest;
            due
        };
        for e in due {
            let c = &mut self.cs[e.contender];
            let t = now_ns();
            match self.faults[e.fault].kind {
                Kind::Pause => {
                    if let Some(g) = &c.run {
                        signal(g, Signal::CONT);
                    }
                }
                _ => {
                    c.first.set(NetFault::Pass);
                    c.third.set(NetFault::Pass);
                }
            }
            self.faults[e.fault].end = t;
            c.busy = false;
        }
        for i in 0..self.cs.len() {
            let c = &self.cs[i];
            if self.respawn && c.run.is_none() && !c.busy && c.respawn_at.is_some_and(|t| t <= now)
            {
                self.spawn(i);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }

    /// Contenders that may take a fault now; those among them whose
    /// current generation's child is running, with its lease; and those
    /// holders whose child has more than `left` of work left (a fault on
    /// them shows what a loss does, rather than a child ending by itself).
    #[allow(clippy::type_complexity)]
    fn targets(&self, left: Duration) -> (Vec<usize>, Vec<(usize, String)>, Vec<(usize, String)>) {
        let open = self.tracker.open();
        let now = now_ns();
        // One fault per wrapper: a second one on a hold already being lost
        // would be charged to the wrong cause.
        let eligible: Vec<usize> = (0..self.cs.len())
            .filter(|&i| !self.cs[i].busy)
            .filter(|&i| self.cs[i].run.as_ref().is_some_and(|g| g.faults.is_empty()))
            .collect();
        let mut holders = Vec::new();
        let mut lasting = Vec::new();
        for &i in &eligible {
            let Some(g) = self.cs[i].run.as_ref() else {
                continue;
            };
            let Some(r) = open.iter().find(|r| r.holder == g.id) else {
                continue;
            };
            holders.push((i, r.lease.clone()));
            if r.start + g.work_ms as i64 * MS - left.as_nanos() as i64 > now {
                lasting.push((i, r.lease.clone()));
            }
        }
        (eligible, holders, lasting)
    }

    /// Injects `p`; false when no contender is eligible right now. Three
    /// faults in four hit a holder (a revoke always does), for the first
    /// half of FAULT_PATIENCE only one whose child has work left past the
    /// time the fault needs to show its effect.
    fn inject(&mut self, p: &Planned, waited: Duration) -> bool {
        let left = match p.kind {
            Kind::Kill | Kind::Revoke => Duration::from_millis(1500),
            Kind::Pause | Kind::Partition | Kind::Failover => {
                p.dur.min(TTL) + Duration::from_secs(1)
            }
        };
        let (eligible, holders, lasting) = self.targets(left);
        let pick = (p.pick >> 8) as usize;
        let on_holder = p.kind == Kind::Revoke || !p.pick.is_multiple_of(4);
        let (i, lease) = if on_holder && !lasting.is_empty() {
            lasting[pick % lasting.len()].clone()
        } else if on_holder && waited < FAULT_PATIENCE / 2 {
            return false;
        } else if on_holder && !holders.is_empty() {
            holders[pick % holders.len()].clone()
        } else if p.kind == Kind::Revoke || eligible.is_empty() {
            return false;
        } else {
            (eligible[pick % eligible.len()], String::new())
        };
        let on_holder = holders.iter().any(|(h, _)| *h == i);
        let at = now_ns();
        let c = &mut self.cs[i];
        let g = c.run.as_mut().expect("eligible has a generation");
        match p.kind {
            Kind::Kill => {
                signal(g, Signal::KILL);
                g.killed = true;
            }
            Kind::Revoke => {
                let o = common::etcdctl(&["lease", "revoke", &lease]);
                if !o.status.success() {
                    let why = String::from_utf8_lossy(&o.stderr).trim().to_string();
                    self.notes.push(format!("revoke of {lease} failed: {why}"));
                }
            }
            Kind::Pause => signal(g, Signal::STOP),
            Kind::Partition => {
                c.first.set(NetFault::BlackHole);
                c.third.set(NetFault::BlackHole);
            }
            Kind::Failover => c.first.set(NetFault::Refuse),
        }
        g.faults.push(p.kind);
        let target = g.id.clone();
        if matches!(p.kind, Kind::Pause | Kind::Partition | Kind::Failover) {
            c.busy = true;
            self.endings.push(Ending {
                fault: self.faults.len(),
                contender: i,
                at: Instant::now() + p.dur,
            });
        }
        self.faults.push(Fault {
            kind: p.kind,
            target,
            on_holder,
            at,
            end: at,
        });
        true
    }

    /// Exactly min(N, K) children hold (all started after the final flag,
    /// all of live generations, on distinct slots), every wrapper is alive,
    /// and etcd agrees: K queue keys (candidates), N slot keys.
    fn converged(&self, since: i64) -> Result<(), String> {
        let k = self.cs.len();
        let limit = self.tool.limit().min(k);
        let open = self.tracker.open();
        let live: Vec<&String> = self
            .cs
            .iter()
            .filter_map(|c| c.run.as_ref().map(|g| &g.id))
            .collect();
        if live.len() != k {
            return Err(format!("{} of {k} wrappers alive", live.len()));
        }
        if open.len() != limit {
            return Err(format!("{} children running, want {limit}", open.len()));
        }
        if let Some(r) = open.iter().find(|r| r.start < since) {
            return Err(format!("{} still runs a pre-final workload", r.holder));
        }
        if let Some(r) = open.iter().find(|r| !live.contains(&&r.holder)) {
            return Err(format!("{} outlived its wrapper", r.holder));
        }
        let mut slots: Vec<u32> = open.iter().map(|r| r.slot).collect();
        slots.sort();
        slots.dedup();
        if slots.len() != open.len() {
            return Err(format!("shared slots: {open:?}"));
        }
        let s = Schema::new(&self.prefix);
        let count = |dir: String| {
            self.etcd
                .range(Range::prefix(dir).count_only())
                .map(|r| r.count as usize)
                .unwrap_or(usize::MAX)
        };
        let (queue, slot_keys) = match self.tool {
            Tool::Elect => (count(s.elect_dir(NAME)), limit),
            Tool::Sema(n) => (
                count(s.sema_queue_dir(NAME, n)),
                count(s.sema_slot_dir(NAME, n)),
            ),
        };
        if queue != k || slot_keys != limit {
            return Err(format!(
                "etcd shows {queue} queue keys (want {k}), {slot_keys} slot keys (want {limit})"
            ));
        }
        Ok(())
    }
}

impl Drop for Run {
    /// A run that panicked leaves no wrapper behind, stopped or not.
    fn drop(&mut self) {
        for c in &mut self.cs {
            c.first.set(NetFault::Pass);
            c.third.set(NetFault::Pass);
            if let Some(g) = c.run.as_mut() {
                signal(g, Signal::CONT);
                let _ = g.child.kill();
                let _ = g.child.wait();
            }
        }
    }
}

fn signal(g: &Gen, sig: Signal) {
    if let Some(pid) = Pid::from_raw(g.child.id() as i32) {
        let _ = kill_process(pid, sig);
    }
}

fn scenario(tool: Tool, k: usize, tag: &str, salt: u64) {
    let seed = seed();
    let started = Instant::now();
    println!(
        "invariant {tag}: CONCH_SEED={seed} (replay: CONCH_SEED={seed} cargo test --test invariant)"
    );
    let schedule = plan(seed.wrapping_add(salt));
    let mut run = Run::new(tool, k, tag, seed.wrapping_add(salt));
    let mut violations: Vec<String> = Vec::new();

    // Faults.
    let mut next = 0;
    let mut waiting_since: Option<Instant> = None;
    while next < schedule.len() || !run.endings.is_empty() {
        run.tick();
        let Some(p) = schedule.get(next) else {
            continue;
        };
        if run.t0.elapsed() < p.at {
            continue;
        }
        let waited = waiting_since.get_or_insert_with(Instant::now).elapsed();
        if run.inject(p, waited) {
            next += 1;
            waiting_since = None;
        } else if waited > FAULT_PATIENCE {
            let note = format!(
                "{:?} at {} ms skipped: no eligible target",
                p.kind,
                run.rel()
            );
            run.notes.push(note);
            next += 1;
            waiting_since = None;
        }
    }
    let last_fault = now_ns();

    // A clean stretch, then the final phase: every child that starts from
    // now on runs until stopped, so the holders must settle.
    let clean_until = Instant::now() + CLEAN;
    while Instant::now() < clean_until {
        run.tick();
    }
    std::fs::write(&run.final_flag, "").expect("final flag");
    let final_ns = now_ns();
    let converge_start = Instant::now();
    let mut converged_after = None;
    let mut why = String::new();
    while converge_start.elapsed() < CONVERGE {
        run.tick();
        match run.converged(final_ns) {
            Ok(()) => {
                converged_after = Some(converge_start.elapsed());
                break;
            }
            Err(e) => why = e,
        }
    }
    if converged_after.is_none() {
        violations.push(format!(
            "no convergence within {CONVERGE:?} after the final phase began: {why}"
        ));
    } else {
        let exits_before = run.exits.len();
        let holders: Vec<String> = run.tracker.open().into_iter().map(|r| r.holder).collect();
        let steady_until = Instant::now() + STEADY;
        while Instant::now() < steady_until {
            run.tick();
            let now: Vec<String> = run.tracker.open().into_iter().map(|r| r.holder).collect();
            if let Err(e) = run.converged(final_ns) {
                violations.push(format!("converged state did not last: {e}"));
                break;
            }
            if now != holders || run.exits.len() != exits_before {
                violations.push(format!(
                    "converged state changed: holders {holders:?} -> {now:?}, {} exits",
                    run.exits.len() - exits_before
                ));
                break;
            }
        }
    }

    // Stop every wrapper with SIGTERM.
    run.respawn = false;
    for c in &mut run.cs {
        if let Some(g) = c.run.as_mut() {
            signal(g, Signal::CONT);
            signal(g, Signal::TERM);
            g.termed = true;
        }
    }
    let stop_start = Instant::now();
    while run.cs.iter().any(|c| c.run.is_some()) {
        if stop_start.elapsed() > Duration::from_secs(15) {
            for c in &mut run.cs {
                if let Some(g) = c.run.as_mut() {
                    violations.push(format!("{} ignored SIGTERM for 15 s", g.id));
                    let _ = g.child.kill();
                }
            }
        }
        run.tick();
    }
    std::thread::sleep(Duration::from_millis(50));
    run.tracker.stop();

    // The interval log.
    let o = run.origin;
    let mut ivs = Vec::new();
    for r in run.tracker.all() {
        let end = r.end.unwrap_or_else(|| {
            violations.push(format!(
                "child {} (pid {}) still runs after its wrapper exited",
                r.holder, r.pid
            ));
            now_ns()
        });
        ivs.push(Interval {
            holder: r.holder,
            pid: r.pid,
            slot: r.slot,
            rev: r.rev,
            start: r.start,
            end,
        });
    }
    for l in run.tracker.bad_lines() {
        violations.push(format!("unparsable interval log line: {l:?}"));
    }
    let bounds = Bounds {
        limit: tool.limit(),
        ttl: TTL.as_nanos() as i64,
        kill_window: KILL_WINDOW.as_nanos() as i64,
        slack: SLACK,
        origin: o,
    };
    let report = check(&ivs, &run.faults, &bounds);
    violations.extend(report.violations.iter().cloned());
    for e in run.exits.iter().filter(|e| !e.expected()) {
        violations.push(format!(
            "{} exited with {:?} (faults {:?}, killed {}, terminated {}): unexpected; see {}/{}.err",
            e.id,
            e.status,
            e.faults,
            e.killed,
            e.termed,
            run.dir.display(),
            e.id
        ));
    }

    // The summary.
    let mut out = String::new();
    let _ = writeln!(
        out,
        "invariant {tag}: seed {seed}, K={k}, limit {}, TTL {TTL:?}, kill-after {KILL_AFTER}, \
         {} intervals, {} wrapper exits, {} faults, last fault ended at {} ms, \
         converged {converged_after:?} after the final phase began, total {:.1} s",
        tool.limit(),
        ivs.len(),
        run.exits.len(),
        run.faults.len(),
        ms(last_fault, o),
        started.elapsed().as_secs_f64()
    );
    let mut codes = std::collections::BTreeMap::new();
    for e in &run.exits {
        let c = e.status.code().map_or_else(
            || format!("signal {}", e.status.signal().unwrap_or(0)),
            |c| c.to_string(),
        );
        *codes.entry(c).or_insert(0) += 1;
    }
    let _ = writeln!(out, "  wrapper exits: {codes:?}");
    let _ = writeln!(out, "  faults:");
    for (f, st) in run.faults.iter().zip(&report.stats) {
        let child_end = ivs
            .iter()
            .filter(|iv| iv.holder == f.target && iv.start <= f.at && iv.end > f.at)
            .map(|iv| iv.end - f.reference())
            .max();
        let _ = writeln!(
            out,
            "    {:>9} ms {:?} {} holder={} until {} ms; excess {} ms, closed {} ms after {}; \
             target's child ended {} ms after it",
            ms(f.at, o),
            f.kind,
            f.target,
            f.on_holder,
            ms(f.end, o),
            ms(st.excess, 0),
            st.closed_after.map_or("-".into(), |c| ms(c, 0)),
            if f.kind == Kind::Pause {
                "SIGCONT"
            } else {
                "the fault"
            },
            child_end.map_or("-".into(), |c| ms(c, 0)),
        );
        if let Some(gap) = handover_gap(&ivs, f) {
            let _ = writeln!(
                out,
                "              the partitioned child was gone {} ms before the next holder of its slot started",
                ms(gap, 0)
            );
        }
    }
    let _ = writeln!(out, "  per kind (largest):");
    for kind in KINDS {
        let of: Vec<usize> = (0..run.faults.len())
            .filter(|&i| run.faults[i].kind == kind)
            .collect();
        let excess = of
            .iter()
            .map(|&i| report.stats[i].excess)
            .max()
            .unwrap_or(0);
        let closed = of
            .iter()
            .filter_map(|&i| report.stats[i].closed_after)
            .max();
        let bound = match kind {
            Kind::Kill => format!("{} ms after the kill", KILL_WINDOW.as_millis()),
            Kind::Revoke => format!("{} ms after the revoke", TTL.as_millis()),
            Kind::Pause => format!("{} ms after SIGCONT", TTL.as_millis()),
            Kind::Partition | Kind::Failover => "0 ms (none allowed)".into(),
        };
        let gaps: Vec<i64> = of
            .iter()
            .filter_map(|&i| handover_gap(&ivs, &run.faults[i]))
            .collect();
        let gap = match gaps.iter().min() {
            Some(g) => format!(
                "; {} lost the hold, smallest handover gap {} ms",
                gaps.len(),
                ms(*g, 0)
            ),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "    {kind:?}: {} faults ({} on holders), largest excess {} ms, closed {} ms{gap}; \
             bound {bound}",
            of.len(),
            of.iter().filter(|&&i| run.faults[i].on_holder).count(),
            ms(excess, 0),
            closed.map_or("-".into(), |c| ms(c, 0)),
        );
    }
    for n in &run.notes {
        let _ = writeln!(out, "  note: {n}");
    }
    println!("{out}");
    if !violations.is_empty() {
        let mut all = String::new();
        for iv in &ivs {
            let _ = writeln!(all, "    {}", describe(iv, o));
        }
        panic!(
            "invariant {tag} FAILED with CONCH_SEED={seed} ({} violations; logs in {}):\n  {}\n\n\
             {out}\n  intervals:\n{all}",
            violations.len(),
            run.dir.display(),
            violations.join("\n  ")
        );
    }
    if std::env::var_os("INV_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&run.dir);
    } else {
        println!("logs kept in {}", run.dir.display());
    }
}

/// For a partition that cost its target the hold (the child ended while
/// the partition lasted): the time from that child's end to the start of
/// the next holder of the same office or slot.
fn handover_gap(ivs: &[Interval], f: &Fault) -> Option<i64> {
    if f.kind != Kind::Partition {
        return None;
    }
    let h = ivs
        .iter()
        .find(|h| h.holder == f.target && h.start <= f.at && h.end > f.at && h.end <= f.end)?;
    ivs.iter()
        .filter(|g| g.slot == h.slot && g.start > h.start && g.holder != h.holder)
        .map(|g| g.start - h.end)
        .min()
}

#[test]
fn elect_keeps_at_most_one_holder_under_faults() {
    scenario(Tool::Elect, 4, "inv-elect", 1);
}

#[test]
fn sema_keeps_at_most_n_holders_under_faults() {
    scenario(Tool::Sema(2), 6, "inv-sema", 2);
}

// The checker itself must be able to fail: hand-made interval logs.

fn iv(holder: &str, slot: u32, rev: i64, start_ms: i64, end_ms: i64) -> Interval {
    Interval {
        holder: holder.into(),
        pid: 1,
        slot,
        rev,
        start: start_ms * MS,
        end: end_ms * MS,
    }
}

fn fault(kind: Kind, target: &str, at_ms: i64, end_ms: i64) -> Fault {
    Fault {
        kind,
        target: target.into(),
        on_holder: true,
        at: at_ms * MS,
        end: end_ms * MS,
    }
}

const B: Bounds = Bounds {
    limit: 1,
    ttl: 3000 * MS,
    kill_window: 1000 * MS,
    slack: 5 * MS,
    origin: 0,
};

#[test]
fn checker_reports_an_overlap_outside_any_window() {
    let log = [iv("a", 0, 10, 0, 1000), iv("b", 0, 12, 900, 2000)];
    let r = check(&log, &[], &B);
    assert_eq!(r.violations.len(), 1, "{:?}", r.violations);
    assert!(r.violations[0].contains("outside every fault window"));
    assert!(r.violations[0].contains("100.0 ms"), "{}", r.violations[0]);
    // A fault on someone else does not excuse it.
    let r = check(&log, &[fault(Kind::Revoke, "c", 800, 800)], &B);
    assert_eq!(r.violations.len(), 1, "{:?}", r.violations);
}

#[test]
fn checker_accepts_an_overlap_inside_the_window_and_within_slack() {
    let log = [iv("a", 0, 10, 0, 1000), iv("b", 0, 12, 900, 2000)];
    let r = check(&log, &[fault(Kind::Revoke, "a", 850, 850)], &B);
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert_eq!(r.stats[0].excess, 100 * MS);
    assert_eq!(r.stats[0].closed_after, Some(150 * MS));
    let touching = [iv("a", 0, 10, 0, 1000), iv("b", 0, 12, 997, 2000)];
    assert!(check(&touching, &[], &B).violations.is_empty());
}

#[test]
fn checker_reports_a_window_that_does_not_close() {
    // Revoked at 100 ms; the old child runs on until 3500 ms.
    let log = [iv("a", 0, 10, 0, 3500), iv("b", 0, 12, 200, 5000)];
    let r = check(&log, &[fault(Kind::Revoke, "a", 100, 100)], &B);
    let v = r.violations.join("\n");
    assert!(v.contains("more than 1 holders for 400.0 ms"), "{v}");
    assert!(v.contains("ran until 3500.0 ms, past 3100.0 ms"), "{v}");
    // A pause's window counts from the SIGCONT.
    let p = [fault(Kind::Pause, "a", 100, 1000)];
    assert!(check(&log, &p, &B).violations.is_empty());
    let p = [fault(Kind::Pause, "a", 100, 400)];
    assert_eq!(check(&log, &p, &B).violations.len(), 1);
    // A kill's window is one second.
    let k = [fault(Kind::Kill, "a", 100, 100)];
    assert!(!check(&log, &k, &B).violations.is_empty());
}

#[test]
fn checker_allows_no_overlap_after_a_partition() {
    let log = [iv("a", 0, 10, 0, 3000), iv("b", 0, 12, 2990, 5000)];
    let r = check(&log, &[fault(Kind::Partition, "a", 500, 4000)], &B);
    let v = r.violations.join("\n");
    assert!(v.contains("during a partition or failover window"), "{v}");
    assert!(
        v.contains("started 10.0 ms before the partitioned child ended"),
        "{v}"
    );
    let ok = [iv("a", 0, 10, 0, 3000), iv("b", 0, 12, 3200, 5000)];
    let r = check(&ok, &[fault(Kind::Partition, "a", 500, 4000)], &B);
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    // A hold already lost to a revoke is the revoke's overlap.
    let f = [
        fault(Kind::Revoke, "a", 2000, 2000),
        fault(Kind::Partition, "a", 2500, 4000),
    ];
    let r = check(&log, &f, &B);
    assert!(r.violations.is_empty(), "{:?}", r.violations);
}

#[test]
fn checker_allows_no_overlap_after_a_dead_endpoint() {
    let log = [iv("a", 0, 10, 0, 3000), iv("b", 0, 12, 2990, 5000)];
    let r = check(&log, &[fault(Kind::Failover, "a", 500, 4000)], &B);
    let v = r.violations.join("\n");
    assert!(v.contains("during a partition or failover window"), "{v}");
    let ok = [iv("a", 0, 10, 0, 3000), iv("b", 0, 12, 3200, 5000)];
    let r = check(&ok, &[fault(Kind::Failover, "a", 500, 4000)], &B);
    assert!(r.violations.is_empty(), "{:?}", r.violations);
}

#[test]
fn checker_reports_fencing_tokens_that_do_not_increase() {
    let log = [
        iv("a", 0, 10, 0, 100),
        iv("b", 1, 11, 0, 100),
        iv("c", 0, 9, 200, 300),
        iv("d", 1, 11, 200, 300),
    ];
    let b = Bounds { limit: 2, ..B };
    let r = check(&log, &[], &b);
    assert_eq!(r.violations.len(), 2, "{:?}", r.violations);
    assert!(r.violations.iter().all(|v| v.contains("fencing token")));
}

#[test]
fn checker_counts_n_for_a_semaphore() {
    let log = [
        iv("a", 0, 10, 0, 1000),
        iv("b", 1, 11, 0, 1000),
        iv("c", 0, 12, 500, 1500),
    ];
    let b = Bounds { limit: 2, ..B };
    let v = check(&log, &[], &b).violations.join("\n");
    assert!(v.contains("more than 2 holders for 500.0 ms"), "{v}");
    assert!(v.contains("slot 0 shared"), "{v}");
    // Three holders are fine with N=3, two on one slot are not.
    let b3 = Bounds { limit: 3, ..B };
    let r = check(&log, &[], &b3);
    assert_eq!(r.violations.len(), 1, "{:?}", r.violations);
    assert!(r.violations[0].contains("slot 0 shared"));
    let r = check(&log, &[fault(Kind::Pause, "a", 400, 400)], &b);
    assert!(r.violations.is_empty(), "{:?}", r.violations);
}

#[test]
fn the_schedule_is_deterministic_and_balanced() {
    let a = plan(7);
    let b = plan(7);
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    assert_ne!(format!("{a:?}"), format!("{:?}", plan(8)));
    for kind in KINDS {
        assert_eq!(
            a.iter().filter(|p| p.kind == kind).count(),
            FAULTS / KINDS.len()
        );
    }
    assert!(a.windows(2).all(|w| w[0].at < w[1].at));
    assert!(a.last().expect("faults").at <= SCHEDULE);
}
