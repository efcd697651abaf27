//! The driver's record of the runs it started: which child, which are
//! exited but still have processes to drain, and the keeper that guards
//! them all should the wrapper be SIGKILLed.
//!
//! A run's processes are its process group plus every process that carries
//! the run's id in its environment (detached ones: `setsid`, double forks),
//! found among the wrapper's descendants (it is their subreaper). When the
//! wrapper has a single run, every descendant is that run's.

use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::process::{Pid, Signal};
use tokio::io::unix::AsyncFd;

use super::keeper::Keeper;
use super::procs::{self, Pinned};
use super::{child, clock, terminal};
use crate::kit::machine::{ChildStatus, Input, SpawnSpec, Tag};

/// What identifies one run.
struct Run {
    tag: Tag,
    id: String,
    /// The leader's pid, which is the run's process group.
    pgid: u32,
    /// The run's group holds the terminal.
    tty: bool,
}

/// A child whose main process runs (is not reaped yet: its pid and group
/// cannot be reused, so signals to the group are safe).
pub struct Running {
    pub tag: Tag,
    pub pid: u32,
    /// `None` if the pidfd could not be polled: SIGCHLD still wakes the reaper.
    pub pidfd: Option<AsyncFd<OwnedFd>>,
    run: Run,
}

pub struct Children {
    pub running: Vec<Running>,
    /// Runs whose leader exited and was reaped; some of their processes may
    /// still live.
    draining: Vec<Run>,
    keeper: Option<Keeper>,
    /// `<wrapper pid>.<wrapper start time>`: with a sequence number, a run
    /// id no other run of any wrapper on this machine has.
    prefix: String,
    seq: u64,
    /// The run chain this wrapper inherited, when a run of another conch
    /// started it.
    inherited: Option<String>,
}

/// A descendant of the wrapper and the run it belongs to, if any.
struct Member {
    tag: Option<Tag>,
    proc: Pinned,
}

impl Children {
    pub fn new(keeper: Keeper) -> Children {
        Children {
            running: Vec::new(),
            draining: Vec::new(),
            keeper: Some(keeper),
            prefix: format!("{}.{}", std::process::id(), procs::own_start()),
            seq: 0,
            inherited: std::env::var(procs::RUN_VAR).ok(),
        }
    }

    fn keeper_pid(&self) -> Option<u32> {
        self.keeper.as_ref().map(Keeper::pid)
    }

    fn runs(&self) -> impl Iterator<Item = &Run> {
        self.running.iter().map(|r| &r.run).chain(&self.draining)
    }

    /// Starts child `tag`; `register` turns its pidfd into something the
    /// loop can wait on.
    pub fn spawn(
        &mut self,
        tag: Tag,
        spec: &SpawnSpec,
        outputs: Option<super::relay::Outputs>,
        register: impl FnOnce(OwnedFd) -> std::io::Result<AsyncFd<OwnedFd>>,
    ) -> (Input, Option<String>) {
        let id = format!("{}.{}", self.prefix, self.seq);
        self.seq += 1;
        let chain = procs::chain_for(self.inherited.as_deref(), &id);
        let tty = !self.runs().any(|r| r.tty) && terminal::lendable();
        match child::spawn(spec, &chain, tty, outputs) {
            Err((code, why)) => (Input::SpawnFailed(tag, code, why), None),
            Ok(ch) => {
                let pid = ch.pid;
                // Our unreaped child: this is its start time, not another's.
                let start = procs::stat(pid).map_or(0, |s| s.start);
                if let Some(k) = self.keeper.as_mut() {
                    k.guard(&id, pid, start);
                }
                let (pidfd, warning) = match register(ch.pidfd) {
                    Ok(p) => (Some(p), None),
                    Err(e) => (None, Some(format!("pidfd not pollable: {e}"))),
                };
                self.running.push(Running {
                    tag,
                    pid,
                    pidfd,
                    run: Run {
                        tag,
                        id,
                        pgid: pid,
                        tty,
                    },
                });
                (Input::Spawned(tag, pid), warning)
            }
        }
    }

    /// Collects exited children: reports each child's exit, then, once
    /// nothing of its run is left, `ChildrenGone`.
    pub fn reap(&mut self, out: &mut Vec<Input>) {
        for (pid, status) in child::reap_all() {
            if let Some(i) = self.running.iter().position(|r| r.pid == pid) {
                let r = self.running.remove(i);
                if r.run.tty {
                    terminal::take_back_from(r.pid);
                    // Ctrl-C or Ctrl-\ at the terminal was meant for the
                    // whole job, conch included, as a shell would take it:
                    // stop rather than restart or carry on.
                    if let ChildStatus::Signaled(sig @ (libc::SIGINT | libc::SIGQUIT)) = status {
                        out.push(Input::Signal(sig));
                    }
                }
                out.push(Input::ChildExited(r.tag, status));
                self.draining.push(r.run);
            }
        }
        self.check_trees(out);
        self.follow_stops();
    }

    /// Ctrl-Z stops the child, which holds the terminal, while the shell
    /// waits for conch: conch takes the terminal back and stops too, so the
    /// shell sees the job stopped; once continued (`fg`), the child gets the
    /// terminal again if conch is in the foreground, and continues. A group
    /// nobody can continue (no job-control shell above) is not stopped by the
    /// kernel, so conch resumes the child at once.
    fn follow_stops(&self) {
        for r in self.running.iter().filter(|r| r.run.tty) {
            if !child::stopped_by_terminal(r.pid) {
                continue;
            }
            terminal::take_back_from(r.pid);
            // SAFETY: raise on our own process; it returns once continued.
            unsafe { libc::raise(libc::SIGTSTP) };
            let Some(pg) = Pid::from_raw(r.pid as i32) else {
                continue;
            };
            if terminal::lendable() {
                let _ = terminal::give_to(pg);
            }
            let _ = rustix::process::kill_process_group(pg, Signal::CONT);
        }
    }

    /// The wrapper's live descendants (but the keeper), each pinned and
    /// attributed to its run: by the id it carries, else by its process
    /// group, else to the only run there is.
    fn census(&self) -> Vec<Member> {
        let runs: Vec<&Run> = self.runs().collect();
        procs::subtree(std::process::id(), self.keeper_pid())
            .into_iter()
            .filter_map(|pid| Pinned::new(pid, true))
            .map(|proc| {
                let by_id = runs
                    .iter()
                    .find(|r| proc.runs.contains(&r.id))
                    .or_else(|| runs.iter().find(|r| r.pgid == proc.stat.pgid));
                let tag = match (by_id, runs.as_slice()) {
                    (Some(r), _) => Some(r.tag),
                    (None, [only]) => Some(only.tag),
                    (None, _) => None,
                };
                Member { tag, proc }
            })
            .collect()
    }

    fn check_trees(&mut self, out: &mut Vec<Input>) {
        if self.draining.is_empty() {
            return;
        }
        let members = self.census();
        let mut gone = Vec::new();
        self.draining.retain(|d| {
            let left = members.iter().any(|m| m.tag == Some(d.tag));
            if !left {
                gone.push(d.id.clone());
                out.push(Input::ChildrenGone(d.tag));
            }
            left
        });
        if let Some(k) = self.keeper.as_mut() {
            for id in gone {
                k.forget(&id);
            }
        }
    }

    /// `sig` to every process of run `tag`, each once.
    pub fn signal(&self, tag: Tag, sig: i32) {
        let Some(signal) = Signal::from_named_raw(sig) else {
            return;
        };
        let leader = self.running.iter().find(|r| r.tag == tag);
        if let Some(pg) = leader.and_then(|r| Pid::from_raw(r.pid as i32)) {
            let _ = rustix::process::kill_process_group(pg, signal);
        }
        for m in self.census() {
            let reached = leader.is_some_and(|r| m.proc.stat.pgid == r.pid);
            if m.tag == Some(tag) && !reached {
                m.proc.signal(sig);
            }
        }
    }

    /// Last line of defence before the process exits: nothing any run
    /// started may outlive the wrapper, and the terminal is ours again.
    pub fn finish(&mut self) {
        let deadline = clock::now() + Duration::from_secs(5);
        let me = std::process::id();
        let mut sink = Vec::new();
        loop {
            for r in &self.running {
                if let Some(pg) = Pid::from_raw(r.pid as i32) {
                    let _ = rustix::process::kill_process_group(pg, Signal::KILL);
                }
            }
            let left = procs::subtree(me, self.keeper_pid());
            if (left.is_empty() && self.running.is_empty()) || clock::now() >= deadline {
                break;
            }
            for pid in left {
                if let Some(p) = Pinned::new(pid, false) {
                    p.signal(libc::SIGKILL);
                }
            }
            std::thread::sleep(Duration::from_millis(5));
            self.reap(&mut sink);
        }
        for r in self.runs().filter(|r| r.tty) {
            terminal::take_back_from(r.pgid);
        }
        if let Some(mut k) = self.keeper.take() {
            k.release();
        }
    }
}
