//! The real-etcd test harness: one single-node `etcd` from `$PATH` per test
//! binary, in a temporary directory on tmpfs when there is one, on free
//! loopback ports. No test double of etcd exists anywhere in this project.
#![allow(dead_code)]

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use conch::etcd::{Client, ClientConfig};

/// A running etcd: its client URL and data directory.
pub struct Etcd {
    pub endpoint: String,
    pub dir: PathBuf,
    pub pid: u32,
}

static ETCD: OnceLock<Etcd> = OnceLock::new();

/// The etcd of this test binary, started on first use.
pub fn etcd() -> &'static Etcd {
    ETCD.get_or_init(start_shared)
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn scratch_root() -> PathBuf {
    let shm = Path::new("/dev/shm");
    // fsync stalls on a real disk make time-bound tests flaky; tmpfs has none.
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Removes data directories left by earlier test processes that are gone
/// (a process killed mid-run cannot clean up after itself).
fn sweep_stale(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix("conch-test-") else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        if !pid.is_empty() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

static DIRS: AtomicUsize = AtomicUsize::new(0);

/// A fresh scratch directory for this process.
pub fn scratch_dir(tag: &str) -> PathBuf {
    let root = scratch_root();
    let n = DIRS.fetch_add(1, Ordering::SeqCst);
    let dir = root.join(format!("conch-test-{}-{tag}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// The command line of one single-node etcd.
pub fn etcd_command(dir: &Path, client_port: u16, peer_port: u16) -> Command {
    let client = format!("http://127.0.0.1:{client_port}");
    let peer = format!("http://127.0.0.1:{peer_port}");
    let mut cmd = Command::new("etcd");
    cmd.arg("--name")
        .arg("t")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--listen-client-urls")
        .arg(&client)
        .arg("--advertise-client-urls")
        .arg(&client)
        .arg("--listen-peer-urls")
        .arg(&peer)
        .arg("--initial-advertise-peer-urls")
        .arg(&peer)
        .arg("--initial-cluster")
        .arg(format!("t={peer}"))
        .arg("--log-level")
        .arg("error")
        .arg("--logger")
        .arg("zap")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.join("etcd.log")).expect("etcd log file"),
        ));
    // SAFETY: prctl only, which is async-signal-safe. etcd dies with the
    // thread that spawned it, and that thread lives as long as the process.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(std::io::Error::from)
        });
    }
    cmd
}

/// Blocks until etcd at `endpoint` serves reads, or panics after 20 s.
pub fn wait_ready(endpoint: &str, child: &mut Child, dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(dir.join("etcd.log")).unwrap_or_default();
            panic!("etcd exited early ({status}):\n{log}");
        }
        let mut cfg = ClientConfig::new(vec![endpoint.to_string()]);
        cfg.dial_timeout = Duration::from_millis(500);
        if let Ok(c) = Client::connect(cfg) {
            if c.range(conch::etcd::Range::key("/ready")).is_ok() {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "etcd at {endpoint} not ready after 20s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_shared() -> Etcd {
    let root = scratch_root();
    sweep_stale(&root);
    let (tx, rx) = mpsc::channel();
    // The parent-death signal follows the spawning *thread*: spawn from one
    // that never exits, so etcd lives exactly as long as the test process.
    std::thread::spawn(move || {
        let dir = scratch_dir("etcd");
        let (cp, pp) = (free_port(), free_port());
        let mut child = etcd_command(&dir, cp, pp)
            .spawn()
            .expect("etcd on $PATH (apt-get install etcd-server)");
        let endpoint = format!("http://127.0.0.1:{cp}");
        wait_ready(&endpoint, &mut child, &dir);
        let _ = tx.send(Etcd {
            endpoint,
            dir,
            pid: child.id(),
        });
        loop {
            std::thread::park();
        }
    });
    rx.recv().expect("etcd started")
}

static PREFIXES: AtomicUsize = AtomicUsize::new(0);

/// A key prefix no other test of any binary uses.
pub fn unique_prefix(test: &str) -> String {
    let n = PREFIXES.fetch_add(1, Ordering::SeqCst);
    format!("/t/{}-{test}-{n}", std::process::id())
}

/// A client of the shared etcd.
pub fn client() -> Client {
    Client::connect(ClientConfig::new(vec![etcd().endpoint.clone()])).expect("connect")
}

/// Waits until `cond` holds, polling every 20 ms, or panics with `what`
/// after `limit`. Conditions, not sleeps: a test never guesses a duration.
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `etcdctl` against the shared etcd with the v3 API.
pub fn etcdctl(args: &[&str]) -> std::process::Output {
    Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg("--endpoints")
        .arg(&etcd().endpoint)
        .args(args)
        .output()
        .expect("etcdctl on $PATH (apt-get install etcd-client)")
}

/// A `conch` command against the shared etcd, under `prefix`, with a
/// clean environment as far as conch's own variables go.
pub fn conch(prefix: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_conch"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CONCH_") || k.starts_with("ETCDCTL_") {
            c.env_remove(k);
        }
    }
    c.env("CONCH_ENDPOINTS", &etcd().endpoint)
        .env("CONCH_PREFIX", prefix);
    c
}

/// Reads a file the child writes, or "" while it does not exist.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// True while a process with this pid exists (zombies count as gone).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Wall-clock nanoseconds, comparable with `date +%s%N` in a child.
pub fn wall_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Waits for a child process with a deadline; kills it and panics on
/// timeout so that no test hangs.
pub fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process {} still running after {limit:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A `--timeout 1s` that ran out: exit 75 after one second, well before two.
pub fn assert_timed_out_after_1s(code: Option<i32>, took: Duration) {
    assert_eq!(code, Some(75), "exit code after {took:?}");
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(2),
        "took {took:?}"
    );
}

/// `conch cron add NAME EXTRA.. -- sh -c SCRIPT` under `prefix`; it must
/// succeed.
pub fn cron_add(prefix: &str, name: &str, extra: &[&str], script: &str) {
    let o = conch(prefix)
        .args(["cron", "add", name])
        .args(extra)
        .args(["--", "sh", "-c", script])
        .output()
        .expect("cron add");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// SIGTERM to `c`, then its exit status within `limit`.
pub fn term(c: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let pid = rustix::process::Pid::from_raw(c.id() as i32).expect("pid");
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    wait_exit(c, limit)
}

/// tick → value, for one key family of a cron job under `prefix`.
pub fn cron_ticks(
    prefix: &str,
    kind: conch::keys::TickKind,
    name: &str,
) -> std::collections::BTreeMap<i64, Vec<u8>> {
    use conch::keys::{parse_tick, Schema};
    let dir = Schema::new(prefix).cron_tick_dir(kind, name);
    client()
        .range(conch::etcd::Range::prefix(dir.clone()))
        .expect("range")
        .kvs
        .into_iter()
        .filter_map(|kv| Some((Schema::leaf(&dir, &kv.key).and_then(parse_tick)?, kv.value)))
        .collect()
}
