//! The child itself: spawning it in a new process group, marked with its
//! run's id and given the terminal when it should have it; reaping; and
//! telling a job-control stop from a deliberate one.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};

use rustix::process::{Pid, WaitOptions};

use super::{procs, spawn};
use crate::kit::machine::{ChildStatus, SpawnSpec};

/// A started child: its pid (which is also its process group) and a pidfd
/// that becomes readable when it exits.
pub struct Child {
    pub pid: u32,
    pub pidfd: OwnedFd,
}

/// The variables of conch's own environment that carry an etcd password:
/// they are conch's credentials, not the job's, and under conchd every job
/// on every host would see them. Other `CONCH_*`/`ETCDCTL_*` variables pass
/// on (scripts use them to call conch or etcdctl themselves).
pub fn secrets(
    env: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Vec<std::ffi::OsString> {
    env.filter(|(k, v)| match k.to_str() {
        Some("CONCH_PASSWORD" | "ETCDCTL_PASSWORD") => true,
        // NAME:PASS, the form --user and etcdctl's --user accept.
        Some("CONCH_USER" | "ETCDCTL_USER") => v.as_encoded_bytes().contains(&b':'),
        _ => false,
    })
    .map(|(k, _)| k)
    .collect()
}

/// Starts `spec` with execvp semantics in a new process group, with `run`
/// (the run's id chain) in its environment so that every process it starts
/// can be found again. With `tty`, the new group becomes the terminal's
/// foreground group before the command runs. The child dies with the
/// wrapper (parent-death signal), so even a SIGKILLed wrapper never leaves
/// it running. Errors are the shell's codes: 127 not found, 126 not
/// executable. No fork: the wrapper's page tables are not copied (see
/// spawn.rs).
pub fn spawn(
    spec: &SpawnSpec,
    run: &str,
    tty: bool,
    outputs: Option<super::relay::Outputs>,
) -> Result<Child, (i32, String)> {
    let Some(prog) = spec.argv.first() else {
        return Err((127, "empty command".into()));
    };
    // The environment as std's Command would build it: the wrapper's, less
    // its secrets, plus the run's variables.
    let gone = secrets(std::env::vars_os());
    let mut env: BTreeMap<OsString, OsString> = std::env::vars_os()
        .filter(|(k, _)| !gone.contains(k))
        .collect();
    for (k, v) in &spec.env {
        env.insert(k.into(), v.into());
    }
    env.insert(procs::RUN_VAR.into(), run.into());
    let env: Vec<(OsString, OsString)> = env.into_iter().collect();
    let steps = spawn::Steps {
        // conchd's relay; our copies of the write ends close below.
        outputs: outputs
            .as_ref()
            .map(|o| (o.stdout.as_raw_fd(), o.stderr.as_raw_fd())),
        parent: rustix::process::getpid().as_raw_nonzero().get(),
        tty,
    };
    let started = spawn::spawn(&spec.argv, &env, steps);
    drop(outputs);
    let name = prog.to_string_lossy();
    let pid = started.map_err(|f| match f {
        spawn::Failure::Exec(errno) => {
            let e = std::io::Error::from_raw_os_error(errno);
            match e.kind() {
                std::io::ErrorKind::NotFound => (127, format!("{name}: command not found")),
                _ => (126, format!("{name}: cannot execute: {e}")),
            }
        }
        spawn::Failure::WrapperGone => (
            126,
            format!("{name}: cannot execute: wrapper gone before exec"),
        ),
        spawn::Failure::Step(step, errno) => (
            126,
            format!(
                "{name}: cannot execute: {step}: {}",
                std::io::Error::from_raw_os_error(errno)
            ),
        ),
        spawn::Failure::Nul => (
            126,
            format!("{name}: cannot execute: a NUL byte in an argument or variable"),
        ),
    })?;
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

/// True if our child `pid` has just been stopped by a terminal's job
/// control (Ctrl-Z, or a read or write from the background), not by a
/// SIGSTOP someone sent on purpose. Consumes that stop report.
pub fn stopped_by_terminal(pid: u32) -> bool {
    // SAFETY: waitid fills the zeroed siginfo it is given; WNOHANG never
    // blocks, and without WEXITED it never reaps.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let rc = libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WSTOPPED | libc::WNOHANG,
        );
        rc == 0
            && info.si_pid() == pid as libc::pid_t
            && info.si_code == libc::CLD_STOPPED
            && matches!(
                info.si_status(),
                libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    #[test]
    fn passwords_never_reach_a_child() {
        let env = [
            ("CONCH_PASSWORD", "s3cret"),
            ("ETCDCTL_PASSWORD", "s3cret"),
            ("ETCDCTL_USER", "root:s3cret"),
            ("CONCH_USER", "alice"),
            ("ETCDCTL_ENDPOINTS", "a:2379"),
            ("PATH", "/bin"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let mut gone = secrets(env.into_iter());
        gone.sort();
        assert_eq!(gone, ["CONCH_PASSWORD", "ETCDCTL_PASSWORD", "ETCDCTL_USER"]);
    }
}
