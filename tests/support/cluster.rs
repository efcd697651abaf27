//! A real 3-member etcd cluster on loopback for the drills (docs/contributing.md):
//! each member has its own data directory on tmpfs, its own client
//! and peer port, and can be stopped with any signal and restarted on the
//! same data directory and ports.
#![allow(dead_code)]

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use conch::etcd::{Client, ClientConfig, Range};
use rustix::process::{kill_process, Pid, Signal};

use crate::common::{scratch_dir, wait_exit, wait_ready};

/// One member: its name, ports, scratch directory (data in `dir/data`, log
/// in `dir/etcd.log`) and its process while it runs.
pub struct Member {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
}

impl Member {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn peer(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

pub struct Cluster {
    pub members: Vec<Member>,
    token: String,
}

static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// A loopback port that nobody listens on, chosen *below* the kernel's
/// ephemeral range (32768–60999 by default): a member that is down for a
/// while must get its port back on restart, and an outgoing connection
/// (which takes its source port from the ephemeral range) could otherwise
/// hold it in the meantime.
fn stable_port() -> u16 {
    const LOW: u16 = 20000;
    const SPAN: u16 = 12000;
    if NEXT_PORT.load(Ordering::SeqCst) == 0 {
        let seed = (std::process::id() % u32::from(SPAN)) as u16;
        let _ = NEXT_PORT.compare_exchange(0, seed + 1, Ordering::SeqCst, Ordering::SeqCst);
    }
    for _ in 0..SPAN {
        let n = NEXT_PORT.fetch_add(1, Ordering::SeqCst);
        let port = LOW + n % SPAN;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {LOW}..{}", LOW + SPAN);
}

impl Cluster {
    /// Starts `n` members with one `--initial-cluster` and waits until every
    /// one of them serves linearizable reads (so a leader exists).
    pub fn start(n: usize, tag: &str) -> Cluster {
        let members = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: stable_port(),
                peer_port: stable_port(),
                dir: scratch_dir(&format!("{tag}-m{i}")),
                child: None,
            })
            .collect();
        let mut c = Cluster {
            members,
            token: format!("drill-{}-{tag}", std::process::id()),
        };
        for i in 0..n {
            c.spawn(i);
        }
        for i in 0..n {
            c.wait_ready(i);
        }
        c
    }

    /// The command line of member `i`; the same on every (re)start.
    fn command(&self, i: usize) -> Command {
        let m = &self.members[i];
        let initial: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer()))
            .collect();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(m.dir.join("etcd.log"))
            .expect("etcd log file");
        let mut cmd = Command::new("etcd");
        cmd.arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(m.dir.join("data"))
            .arg("--listen-client-urls")
            .arg(m.endpoint())
            .arg("--advertise-client-urls")
            .arg(m.endpoint())
            .arg("--listen-peer-urls")
            .arg(m.peer())
            .arg("--initial-advertise-peer-urls")
            .arg(m.peer())
            .arg("--initial-cluster")
            .arg(initial.join(","))
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--initial-cluster-token")
            .arg(&self.token)
            .arg("--log-level")
            .arg("error")
            .arg("--logger")
            .arg("zap")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        // SAFETY: prctl only, which is async-signal-safe. A member dies with
        // the test thread that started it, so a failed drill leaks nothing.
        unsafe {
            cmd.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
                    .map_err(std::io::Error::from)
            });
        }
        cmd
    }

    fn spawn(&mut self, i: usize) {
        assert!(self.members[i].child.is_none(), "member {i} already runs");
        let child = self
            .command(i)
            .spawn()
            .expect("etcd on $PATH (apt-get install etcd-server)");
        self.members[i].child = Some(child);
    }

    /// Blocks until member `i` serves linearizable reads (it has a leader
    /// and the leader has quorum), or panics after 20 s.
    pub fn wait_ready(&mut self, i: usize) {
        let m = &mut self.members[i];
        let endpoint = m.endpoint();
        let child = m.child.as_mut().expect("member runs");
        wait_ready(&endpoint, child, &m.dir);
    }

    /// Stops member `i` with `sig` and reaps it.
    pub fn stop(&mut self, i: usize, sig: Signal) {
        let mut child = self.members[i].child.take().expect("member runs");
        let pid = Pid::from_raw(child.id() as i32).expect("pid");
        kill_process(pid, sig).expect("signal etcd");
        wait_exit(&mut child, Duration::from_secs(20));
    }

    /// Freezes member `i` (SIGSTOP): its sockets stay open and nothing on
    /// them is answered, as with a stalled disk or a frozen VM.
    pub fn pause(&self, i: usize) {
        let pid = self.members[i].pid().expect("member runs");
        let pid = Pid::from_raw(pid as i32).expect("pid");
        kill_process(pid, Signal::STOP).expect("SIGSTOP etcd");
    }

    /// Thaws member `i` (SIGCONT).
    pub fn resume(&self, i: usize) {
        let pid = self.members[i].pid().expect("member runs");
        let pid = Pid::from_raw(pid as i32).expect("pid");
        kill_process(pid, Signal::CONT).expect("SIGCONT etcd");
    }

    /// Starts member `i` again on its data directory and ports; does not
    /// wait (it cannot serve before a quorum of members runs).
    pub fn restart(&mut self, i: usize) {
        self.spawn(i);
    }

    pub fn running(&self, i: usize) -> bool {
        self.members[i].child.is_some()
    }

    /// The client URLs of the members in `order`, comma-separated.
    pub fn endpoints(&self, order: &[usize]) -> String {
        order
            .iter()
            .map(|&i| self.members[i].endpoint())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// All client URLs, member 0 first.
    pub fn all_endpoints(&self) -> String {
        let all: Vec<usize> = (0..self.members.len()).collect();
        self.endpoints(&all)
    }

    /// `etcdctl` (v3 API) against the members in `order`, with short timeouts.
    pub fn etcdctl(&self, order: &[usize], args: &[&str]) -> Output {
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .env_remove("ETCDCTL_ENDPOINTS")
            .arg("--endpoints")
            .arg(self.endpoints(order))
            .arg("--dial-timeout")
            .arg("1s")
            .arg("--command-timeout")
            .arg("2s")
            .args(args)
            .output()
            .expect("etcdctl on $PATH (apt-get install etcd-client)")
    }

    /// (member id, leader id) as member `i` reports them, if it answers.
    pub fn status(&self, i: usize) -> Option<(u64, u64)> {
        let o = self.etcdctl(&[i], &["endpoint", "status", "-w", "json"]);
        if !o.status.success() {
            return None;
        }
        let out = String::from_utf8_lossy(&o.stdout);
        Some((json_u64(&out, "member_id")?, json_u64(&out, "leader")?))
    }

    /// The running member that is the raft leader, according to itself.
    pub fn leader(&self) -> Option<usize> {
        (0..self.members.len()).find(|&i| {
            self.running(i)
                && self
                    .status(i)
                    .is_some_and(|(id, leader)| id != 0 && id == leader)
        })
    }

    /// Waits for a leader that every running member agrees on.
    pub fn wait_leader(&self, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(l) = self.leader() {
                let lid = self.status(l).map(|s| s.0);
                let agreed = (0..self.members.len())
                    .filter(|&i| self.running(i))
                    .all(|i| self.status(i).map(|s| s.1) == lid);
                if agreed {
                    return l;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no agreed leader after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A facade client of the members in `order`.
    pub fn client(&self, order: &[usize]) -> Client {
        self.client_within(order, Duration::from_secs(5))
    }

    fn client_within(&self, order: &[usize], request_timeout: Duration) -> Client {
        let eps = order.iter().map(|&i| self.members[i].endpoint()).collect();
        let mut cfg = ClientConfig::new(eps);
        cfg.dial_timeout = Duration::from_secs(2);
        cfg.request_timeout = request_timeout;
        Client::connect(cfg).expect("connect to the cluster")
    }

    /// True when the members in `order` accept a write and a linearizable
    /// read through the facade within a second each.
    pub fn has_quorum(&self, order: &[usize]) -> bool {
        let c = self.client_within(order, Duration::from_secs(1));
        c.put("/drill/quorum", "ok", 0).is_ok() && c.range(Range::key("/drill/quorum")).is_ok()
    }

    /// The members' logs, for a failure message.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| {
                format!(
                    "--- {} ---\n{}",
                    m.name,
                    std::fs::read_to_string(m.dir.join("etcd.log")).unwrap_or_default()
                )
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        // Kept after a failure, for the logs; the harness sweeps them later.
        if !std::thread::panicking() {
            for m in &self.members {
                let _ = std::fs::remove_dir_all(&m.dir);
            }
        }
    }
}

/// The first unsigned number after `"key":` in `json`.
fn json_u64(json: &str, key: &str) -> Option<u64> {
    let pat = format!("\"{key}\":");
    let at = json.find(&pat)? + pat.len();
    let digits: String = json[at..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}
