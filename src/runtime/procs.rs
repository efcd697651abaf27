//! Processes as /proc shows them, and signals that reach only the process
//! that was inspected. A pid is a number the kernel hands out again once the
//! process is reaped: before signalling one, we hold a pidfd on it and read
//! its facts through /proc while the pidfd proves the number still names
//! the same process; the signal then goes through the pidfd.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};

use rustix::process::{Pid, PidfdFlags};

/// The variable that names the runs a process belongs to: a comma-separated
/// chain of run ids, outermost first (a conch started by a run appends its
/// own). Internal: it exists so that every process a run started, detached
/// ones included, can be found again.
pub const RUN_VAR: &str = "CONCH_RUN_ID";

/// How many enclosing runs a chain remembers; nesting deeper than this is
/// not a use anybody has.
const CHAIN_MAX: usize = 8;

/// What /proc/PID/stat says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub ppid: u32,
    pub pgid: u32,
    /// Clock ticks after boot: with the pid, it names one process for the
    /// life of the machine.
    pub start: u64,
    pub zombie: bool,
}

pub fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<Stat> {
    // The command name may contain spaces and parentheses: fields resume
    // after the last ')'. Then: state ppid pgrp session tty tpgid flags
    // minflt cminflt majflt cmajflt utime stime cutime cstime priority nice
    // num_threads itrealvalue starttime.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().take(20).collect();
    if f.len() < 20 {
        return None;
    }
    Some(Stat {
        zombie: matches!(f[0], "Z" | "X"),
        ppid: f[1].parse().ok()?,
        pgid: f[2].parse().ok()?,
        start: f[19].parse().ok()?,
    })
}

/// The run ids in a process's environment (empty if it has none or cannot
/// be read).
pub fn run_ids(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|env| chain_in(&env))
        .unwrap_or_default()
}

fn chain_in(environ: &[u8]) -> Vec<String> {
    let key = format!("{RUN_VAR}=");
    environ
        .split(|&b| b == 0)
        .find_map(|var| var.strip_prefix(key.as_bytes()))
        .map(|v| {
            String::from_utf8_lossy(v)
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The chain a child of run `id` carries: the chain this process inherited,
/// then `id`.
pub fn chain_for(inherited: Option<&str>, id: &str) -> String {
    let mut ids: Vec<&str> = inherited
        .unwrap_or("")
        .split(',')
        .filter(|s| !s.is_empty() && !s.contains('='))
        .collect();
    ids.push(id);
    let skip = ids.len().saturating_sub(CHAIN_MAX);
    ids[skip..].join(",")
}

/// This process's start time, for run ids unique across wrappers.
pub fn own_start() -> u64 {
    stat(std::process::id()).map_or(0, |s| s.start)
}

/// A process held by a pidfd, with facts read while the pidfd proved the
/// pid still named it.
pub struct Pinned {
    pub pid: u32,
    pub stat: Stat,
    pub runs: Vec<String>,
    fd: OwnedFd,
}

impl Pinned {
    /// Pins `pid`, reading its stat (and its run ids if `env`). `None` if it
    /// is gone, exited, or cannot be inspected.
    pub fn new(pid: u32, env: bool) -> Option<Pinned> {
        let raw = Pid::from_raw(pid as i32)?;
        let fd = rustix::process::pidfd_open(raw, PidfdFlags::empty()).ok()?;
        let stat = stat(pid)?;
        let runs = if env { run_ids(pid) } else { Vec::new() };
        // Still not exited after the reads: the pid could not have been
        // reused while we read, so what we read was this process's.
        if stat.zombie || exited(&fd) {
            return None;
        }
        Some(Pinned {
            pid,
            stat,
            runs,
            fd,
        })
    }

    /// `sig` to exactly this process; a process that has exited meanwhile
    /// is fine.
    pub fn signal(&self, sig: i32) {
        // SAFETY: a plain syscall on a descriptor we own; no pointers but
        // the null siginfo the call allows.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
        }
    }
}

/// A pidfd becomes readable once its process has exited.
fn exited(fd: &OwnedFd) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd on the stack, zero timeout.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n != 0
}

/// Every pid in /proc.
pub fn all_pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect()
}

/// Every process below `root`, skipping the subtree of `skip`. Walks the
/// children lists of the tree only (small), and falls back to a scan of all
/// of /proc on kernels without /proc/PID/task/TID/children.
pub fn subtree(root: u32, skip: Option<u32>) -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        let Some(kids) = children_of(p) else {
            return subtree_by_scan(root, skip);
        };
        for k in kids {
            if Some(k) != skip {
                out.push(k);
                todo.push(k);
            }
        }
    }
    out
}

/// `None` when the kernel has no children files (a pid that vanished just
/// has no children).
fn children_of(pid: u32) -> Option<Vec<u32>> {
    let tasks = match std::fs::read_dir(format!("/proc/{pid}/task")) {
        Ok(t) => t,
        Err(_) => return Some(Vec::new()),
    };
    let mut out = Vec::new();
    for t in tasks.flatten() {
        match std::fs::read_to_string(t.path().join("children")) {
            Ok(text) => out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && t.path().exists() => return None,
            Err(_) => {}
        }
    }
    Some(out)
}

fn subtree_by_scan(root: u32, skip: Option<u32>) -> Vec<u32> {
    let mut kids: HashMap<u32, Vec<u32>> = HashMap::new();
    for pid in all_pids() {
        if let Some(s) = stat(pid) {
            kids.entry(s.ppid).or_default().push(pid);
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        for &k in kids.get(&p).map(Vec::as_slice).unwrap_or(&[]) {
            if Some(k) != skip {
                out.push(k);
                todo.push(k);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_odd_command_names() {
        let line = "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 98765 0 0";
        let s = parse_stat(line).expect("parsed");
        assert_eq!(
            s,
            Stat {
                ppid: 1,
                pgid: 4242,
                start: 98765,
                zombie: false
            }
        );
        assert!(parse_stat("1 (x) S 0").is_none());
    }

    #[test]
    fn chains_append_and_stay_bounded() {
        assert_eq!(chain_for(None, "1.2.3"), "1.2.3");
        assert_eq!(chain_for(Some("9.9.1"), "1.2.3"), "9.9.1,1.2.3");
        let long: Vec<String> = (0..20).map(|i| format!("{i}.0.0")).collect();
        let c = chain_for(Some(&long.join(",")), "x");
        assert_eq!(c.split(',').count(), CHAIN_MAX);
        assert!(c.ends_with(",x"));
        let env = b"A=1\0CONCH_RUN_ID=9.9.1,1.2.3\0B=2\0";
        assert_eq!(chain_in(env), vec!["9.9.1", "1.2.3"]);
        assert!(chain_in(b"CONCH_RUN_IDX=1\0").is_empty());
    }

    #[test]
    fn a_pinned_process_is_this_one() {
        let me = Pinned::new(std::process::id(), true).expect("pin self");
        assert_eq!(me.stat.start, own_start());
        assert!(Pinned::new(0, false).is_none());
    }
}
