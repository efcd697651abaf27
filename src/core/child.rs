//! The child and its process tree: spawning in a new process group, signals
//! to the whole tree, reaping, and telling when nothing of it is left.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

use rustix::process::{Pid, Signal, WaitOptions};

use super::{ChildStatus, SpawnSpec};

/// A started child: its pid (which is also its process group) and a pidfd
/// that becomes readable when it exits.
pub struct Child {
    pub pid: u32,
    pub pidfd: OwnedFd,
}

/// Starts `spec` with execvp semantics in a new process group. The child
/// dies with the wrapper (parent-death signal), so even a SIGKILLed wrapper
/// never leaves it running. Errors are the shell's codes: 127 not found,
/// 126 not executable.
pub fn spawn(spec: &SpawnSpec) -> Result<Child, (i32, String)> {
    let Some((prog, args)) = spec.argv.split_first() else {
        return Err((127, "empty command".into()));
    };
    let parent = rustix::process::getpid();
    let mut cmd = Command::new(prog);
    cmd.args(args).process_group(0);
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    // SAFETY: only async-signal-safe syscalls (prctl, getppid) run between
    // fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
            // The wrapper may have died before the prctl took effect.
            if rustix::process::getppid() != Some(parent) {
                return Err(std::io::Error::other("wrapper gone before exec"));
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| {
        let name = prog.to_string_lossy();
        match e.kind() {
            std::io::ErrorKind::NotFound => (127, format!("{name}: command not found")),
            _ => (126, format!("{name}: cannot execute: {e}")),
        }
    })?;
    let pid = child.id();
    // std's Child is dropped without waiting: reaping is ours (waitpid -1
    // also collects adopted orphans).
    drop(child);
    let raw = Pid::from_raw(pid as i32).ok_or((126, "bad pid".to_string()))?;
    let pidfd = rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty())
        .map_err(|e| (126, format!("pidfd_open: {e}")))?;
    Ok(Child { pid, pidfd })
}

/// Makes the wrapper the reaper of every orphan among its descendants, so
/// that a double-forked grandchild is still stopped and reaped by it.
pub fn become_subreaper() {
    let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
}

/// Reaps every child that has exited, without blocking.
pub fn reap_all() -> Vec<(u32, ChildStatus)> {
    let mut out = Vec::new();
    while let Ok(Some((pid, status))) = rustix::process::wait(WaitOptions::NOHANG) {
        let st = if let Some(sig) = status.terminating_signal() {
            ChildStatus::Signaled(sig)
        } else {
            ChildStatus::Exited(status.exit_status().unwrap_or(0))
        };
        out.push((pid.as_raw_nonzero().get() as u32, st));
    }
    out
}

/// Every process below `root` in the process tree, found through /proc
/// (their parent links), skipping the subtree of `skip`.
pub fn descendants(root: u32, skip: Option<u32>) -> Vec<u32> {
    let mut kids: HashMap<u32, Vec<u32>> = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(ppid) = parent_of(pid) {
            kids.entry(ppid).or_default().push(pid);
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

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields resume
    // after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The wrapper's own children other than `skip`, from
/// /proc/self/task/*/children (one small read per thread).
pub fn direct_children(skip: Option<u32>) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return descendants(std::process::id(), skip);
    };
    for t in tasks.flatten() {
        let Ok(text) = std::fs::read_to_string(t.path().join("children")) else {
            // Kernel without CONFIG_PROC_CHILDREN: the slow way.
            return descendants(std::process::id(), skip);
        };
        out.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
                .filter(|&p| Some(p) != skip),
        );
    }
    out
}

/// Sends `sig` to the process group `pgid` and to every descendant of
/// `root` except the keeper's subtree. Processes already gone are fine.
pub fn signal_tree(pgid: Option<u32>, root: u32, sig: i32, keeper: Option<u32>) {
    let Some(sig) = Signal::from_named_raw(sig) else {
        return;
    };
    if let Some(pg) = pgid.and_then(|p| Pid::from_raw(p as i32)) {
        let _ = rustix::process::kill_process_group(pg, sig);
    }
    for p in descendants(root, keeper) {
        if let Some(pid) = Pid::from_raw(p as i32) {
            let _ = rustix::process::kill_process(pid, sig);
        }
    }
}

/// True while any process of group `pgid` exists.
pub fn group_alive(pgid: u32) -> bool {
    Pid::from_raw(pgid as i32)
        .is_some_and(|pg| rustix::process::test_kill_process_group(pg).is_ok())
}
