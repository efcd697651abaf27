//! The driver's record of the children it started: which run, which are
//! exited but still have a process tree to drain, and the keeper that
//! guards them all should the wrapper be SIGKILLed.

use std::os::fd::OwnedFd;
use std::time::Duration;

use tokio::io::unix::AsyncFd;

use super::child;
use super::keeper::Keeper;
use super::{clock, Input, SpawnSpec, Tag};

/// A child whose main process runs.
pub struct Running {
    pub tag: Tag,
    pub pid: u32,
    /// `None` if the pidfd could not be polled: SIGCHLD still wakes the reaper.
    pub pidfd: Option<AsyncFd<OwnedFd>>,
}

/// A child that exited; its process group may still have members.
struct Draining {
    tag: Tag,
    pgid: u32,
}

pub struct Children {
    pub running: Vec<Running>,
    draining: Vec<Draining>,
    keeper: Option<Keeper>,
}

impl Children {
    pub fn new(keeper: Keeper) -> Children {
        Children {
            running: Vec::new(),
            draining: Vec::new(),
            keeper: Some(keeper),
        }
    }

    fn keeper_pid(&self) -> Option<u32> {
        self.keeper.as_ref().map(Keeper::pid)
    }

    /// Alone: one child and nothing else of ours, so every orphan we adopt
    /// is its descendant.
    fn alone(&self) -> bool {
        self.running.len() + self.draining.len() == 1
    }

    /// Starts child `tag`; `register` turns its pidfd into something the
    /// loop can wait on.
    pub fn spawn(
        &mut self,
        tag: Tag,
        spec: &SpawnSpec,
        register: impl FnOnce(OwnedFd) -> std::io::Result<AsyncFd<OwnedFd>>,
    ) -> (Input, Option<String>) {
        let marker = spec
            .env
            .iter()
            .find(|(k, _)| k == "CONCH_LEASE")
            .map(|(k, v)| format!("{k}={v}"));
        match child::spawn(spec) {
            Err((code, why)) => (Input::SpawnFailed(tag, code, why), None),
            Ok(ch) => {
                let pid = ch.pid;
                if let (Some(k), Some(m)) = (self.keeper.as_mut(), marker) {
                    k.guard(pid, &m);
                }
                let (pidfd, warning) = match register(ch.pidfd) {
                    Ok(p) => (Some(p), None),
                    Err(e) => (None, Some(format!("pidfd not pollable: {e}"))),
                };
                self.running.push(Running { tag, pid, pidfd });
                (Input::Spawned(tag, pid), warning)
            }
        }
    }

    /// Collects exited children: reports each child's exit, then, once
    /// nothing of its tree is left, `ChildrenGone`.
    pub fn reap(&mut self, out: &mut Vec<Input>) {
        for (pid, status) in child::reap_all() {
            if let Some(i) = self.running.iter().position(|r| r.pid == pid) {
                let r = self.running.remove(i);
                out.push(Input::ChildExited(r.tag, status));
                self.draining.push(Draining {
                    tag: r.tag,
                    pgid: pid,
                });
            }
        }
        self.check_trees(out);
    }

    fn check_trees(&mut self, out: &mut Vec<Input>) {
        let alone = self.alone();
        let keeper = self.keeper_pid();
        self.draining.retain(|d| {
            // Orphans of a lone child are re-parented to us (subreaper), so
            // "no child of ours but the keeper" means "nothing left". With
            // several children, only the group can be told apart.
            let gone = !child::group_alive(d.pgid)
                && (!alone || child::direct_children(keeper).is_empty());
            if gone {
                out.push(Input::ChildrenGone(d.tag));
            }
            !gone
        });
    }

    /// `sig` to child `tag`'s group and descendants.
    pub fn signal(&self, tag: Tag, sig: i32) {
        let keeper = self.keeper_pid();
        if let Some(r) = self.running.iter().find(|r| r.tag == tag) {
            let root = if self.alone() {
                std::process::id()
            } else {
                r.pid
            };
            child::signal_tree(Some(r.pid), root, sig, keeper);
        } else if let Some(d) = self.draining.iter().find(|d| d.tag == tag) {
            let root = if self.alone() {
                std::process::id()
            } else {
                d.pgid
            };
            child::signal_tree(Some(d.pgid), root, sig, keeper);
        }
    }

    /// Last line of defence before the process exits: nothing of any child's
    /// tree may outlive the wrapper.
    pub fn finish(&mut self) {
        let deadline = clock::now() + Duration::from_secs(5);
        let mut sink = Vec::new();
        while !(self.running.is_empty() && self.draining.is_empty()) && clock::now() < deadline {
            let keeper = self.keeper_pid();
            for r in &self.running {
                child::signal_tree(Some(r.pid), std::process::id(), 9, keeper);
            }
            for d in &self.draining {
                child::signal_tree(Some(d.pgid), std::process::id(), 9, keeper);
            }
            std::thread::sleep(Duration::from_millis(5));
            self.reap(&mut sink);
        }
        if let Some(mut k) = self.keeper.take() {
            k.release();
        }
    }
}
