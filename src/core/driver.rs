//! The one event loop: waits on the keep-alive stream, the watches, the
//! child's pidfd, the signal pipe and a BOOTTIME timer in a single
//! `block_on`, feeds what happened to the machine, and carries out every
//! action it returns before waiting again.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::child;
use super::clock::{self, Timer};
use super::keeper::Keeper;
use super::signals::Signals;
use super::{Action, Input, Level, Machine, Tag};
use crate::cli::Verbosity;
use crate::etcd::{Client, Error, KeepAlive, KeepAliveAnswer, Watch, WatchEvent};

const WATCH_SLOTS: usize = 3;

struct Running {
    pid: u32,
    /// `None` if the pidfd could not be polled: SIGCHLD still wakes the reaper.
    pidfd: Option<AsyncFd<OwnedFd>>,
}

/// Registers a file descriptor that the value owns for its whole life.
fn register<T: AsRawFd>(client: &Client, v: T) -> std::io::Result<AsyncFd<T>> {
    // SAFETY: every T passed here (Signals, Timer, OwnedFd) owns its file
    // descriptor, which stays open until the AsyncFd drops it.
    client.block_on(async {
        unsafe { AsyncFd::register_with_interest(v, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)
    })
}

/// Owns every source of events for one machine.
pub struct Driver {
    client: Client,
    verbosity: Verbosity,
    keepalive: Option<KeepAlive>,
    watches: [Option<(Tag, Watch)>; WATCH_SLOTS],
    running: Option<Running>,
    /// The last child's process group, until its whole tree is gone.
    pgid: Option<u32>,
    tree_gone: bool,
    keeper: Option<Keeper>,
    signals: AsyncFd<Signals>,
    timer: AsyncFd<Timer>,
    pending: VecDeque<Input>,
}

enum Wake {
    Signal,
    Child,
    KeepAlive(Result<KeepAliveAnswer, Error>),
    Watch(Tag, Result<WatchEvent, Error>),
    Timer,
}

async fn next_watch(slot: &mut Option<(Tag, Watch)>) -> (Tag, Result<WatchEvent, Error>) {
    match slot {
        Some((tag, w)) => (*tag, w.next().await),
        None => std::future::pending().await,
    }
}

async fn next_answer(ka: &mut Option<KeepAlive>) -> Result<KeepAliveAnswer, Error> {
    match ka {
        Some(k) if k.outstanding() > 0 => k.next().await,
        _ => std::future::pending().await,
    }
}

async fn readable<T: AsRawFd>(fd: Option<&AsyncFd<T>>) {
    match fd {
        Some(fd) => {
            if let Ok(mut g) = fd.readable().await {
                g.clear_ready();
            }
        }
        None => std::future::pending().await,
    }
}

impl Driver {
    /// Sets up signals and the timer. Called before anything is written to
    /// etcd, so a Ctrl-C during the campaign is handled, not fatal.
    pub fn new(client: Client, verbosity: Verbosity) -> std::io::Result<Driver> {
        let signals = Signals::install()?;
        let timer = Timer::new()?;
        let signals = register(&client, signals)?;
        let timer = register(&client, timer)?;
        child::become_subreaper();
        Ok(Driver {
            client,
            verbosity,
            keepalive: None,
            watches: [None, None, None],
            running: None,
            pgid: None,
            tree_gone: true,
            keeper: None,
            signals,
            timer,
            pending: VecDeque::new(),
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs `m` from [`Input::Start`] until it exits; returns the exit code.
    pub fn run(&mut self, m: &mut dyn Machine) -> i32 {
        self.pending.push_back(Input::Start);
        loop {
            // After every input, carry out every action before waiting again.
            while let Some(input) = self.pending.pop_front() {
                let actions = m.step(input, clock::now());
                for a in actions {
                    if let Some(code) = self.perform(a) {
                        return self.finish(code);
                    }
                }
            }
            if let Err(e) = self.timer.get_ref().set(m.deadline()) {
                self.log(Level::Error, &format!("timer: {e}"));
            }
            let wake = self.wait();
            self.absorb(wake);
        }
    }

    fn wait(&mut self) -> Wake {
        let Driver {
            client,
            keepalive,
            watches,
            running,
            signals,
            timer,
            ..
        } = self;
        let [w0, w1, w2] = watches;
        let pidfd = running.as_ref().and_then(|r| r.pidfd.as_ref());
        client.block_on(async {
            tokio::select! {
                biased;
                _ = readable(Some(&*signals)) => Wake::Signal,
                _ = readable(pidfd) => Wake::Child,
                _ = readable(Some(&*timer)) => Wake::Timer,
                a = next_answer(keepalive) => Wake::KeepAlive(a),
                (t, e) = next_watch(w0) => Wake::Watch(t, e),
                (t, e) = next_watch(w1) => Wake::Watch(t, e),
                (t, e) = next_watch(w2) => Wake::Watch(t, e),
            }
        })
    }

    fn absorb(&mut self, wake: Wake) {
        match wake {
            Wake::Signal => {
                for sig in self.signals.get_ref().take() {
                    if sig == signal_hook::consts::SIGCHLD {
                        self.reap();
                    } else {
                        self.pending.push_back(Input::Signal(sig));
                    }
                }
            }
            Wake::Child => self.reap(),
            Wake::Timer => {
                self.timer.get_ref().clear();
                self.pending.push_back(Input::Timer);
            }
            Wake::KeepAlive(r) => {
                if r.is_err() {
                    self.keepalive = None;
                }
                self.pending.push_back(Input::KeepAlive(r));
            }
            Wake::Watch(tag, r) => {
                let over = !matches!(
                    r,
                    Ok(WatchEvent::Events { .. } | WatchEvent::Progress { .. })
                );
                if over {
                    self.unwatch(tag);
                }
                self.pending.push_back(Input::Watch(tag, r));
            }
        }
    }

    fn keeper_pid(&self) -> Option<u32> {
        self.keeper.as_ref().map(Keeper::pid)
    }

    /// Collects exited children; reports the child's exit, then, once
    /// nothing of its tree is left, `ChildrenGone`.
    fn reap(&mut self) {
        for (pid, status) in child::reap_all() {
            if self.running.as_ref().is_some_and(|r| r.pid == pid) {
                self.running = None;
                self.pending.push_back(Input::ChildExited(status));
            }
        }
        self.check_tree();
    }

    fn check_tree(&mut self) {
        if self.running.is_some() || self.tree_gone {
            return;
        }
        // Orphans of the child are re-parented to us (subreaper), so with the
        // child gone, "no child of ours but the keeper" means "nothing left".
        let group = self.pgid.is_some_and(child::group_alive);
        if !group && child::direct_children(self.keeper_pid()).is_empty() {
            self.tree_gone = true;
            self.pgid = None;
            self.pending.push_back(Input::ChildrenGone);
        }
    }

    fn unwatch(&mut self, tag: Tag) {
        for slot in &mut self.watches {
            if slot.as_ref().is_some_and(|(t, _)| *t == tag) {
                *slot = None;
            }
        }
    }

    fn log(&self, level: Level, msg: &str) {
        let shown = match level {
            Level::Error => true,
            Level::Info => self.verbosity >= Verbosity::Normal,
            Level::Debug => self.verbosity >= Verbosity::Verbose,
        };
        if shown {
            eprintln!("conch: {msg}");
        }
    }

    /// Carries out one action; `Some(code)` when the machine exits.
    fn perform(&mut self, a: Action) -> Option<i32> {
        let c = &self.client;
        let input = match a {
            Action::Grant { ttl } => Input::Granted(c.lease_grant(ttl)),
            Action::Txn(tag, t) => Input::Txn(tag, c.txn(t)),
            Action::Range(tag, r) => Input::Range(tag, c.range(r)),
            Action::Revoke(id) => Input::Revoked(c.lease_revoke(id)),
            Action::Reconnect { budget } => Input::Reconnected(c.failover_within(budget)),
            Action::Watch(tag, spec) => {
                self.unwatch(tag);
                let w = self.client.watch(spec);
                match self.watches.iter_mut().find(|s| s.is_none()) {
                    Some(slot) => *slot = Some((tag, w)),
                    None => self.log(Level::Error, "internal: no free watch slot"),
                }
                return None;
            }
            Action::Unwatch(tag) => {
                self.unwatch(tag);
                return None;
            }
            Action::KeepAliveOpen(lease) => {
                self.keepalive = Some(self.client.keep_alive(lease));
                return None;
            }
            Action::KeepAliveSend => {
                let sent = match self.keepalive.as_mut() {
                    Some(k) => k.send(clock::now()),
                    None => Err(Error::new(
                        crate::etcd::ErrorKind::Unavailable,
                        "keep-alive",
                        "no stream",
                    )),
                };
                match sent {
                    Ok(()) => return None,
                    Err(e) => Input::KeepAlive(Err(e)),
                }
            }
            Action::KeepAliveClose => {
                self.keepalive = None;
                return None;
            }
            Action::Spawn(spec) => self.spawn(spec),
            Action::SignalChild(sig) => {
                if !self.tree_gone {
                    child::signal_tree(self.pgid, sig, self.keeper_pid());
                }
                return None;
            }
            Action::Log(level, msg) => {
                self.log(level, &msg);
                return None;
            }
            Action::Print(line) => {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
                return None;
            }
            Action::Exit(code) => return Some(code),
        };
        self.pending.push_back(input);
        None
    }

    fn spawn(&mut self, spec: super::SpawnSpec) -> Input {
        if self.keeper.is_none() {
            match Keeper::start() {
                Ok(k) => self.keeper = Some(k),
                // Without a keeper a SIGKILLed wrapper would leak the child's
                // detached descendants: refuse rather than run unguarded.
                Err(e) => return Input::SpawnFailed(126, format!("cannot start keeper: {e}")),
            }
        }
        let marker = spec
            .env
            .iter()
            .find(|(k, _)| k == "CONCH_LEASE")
            .map(|(k, v)| format!("{k}={v}"));
        match child::spawn(&spec) {
            Err((code, why)) => Input::SpawnFailed(code, why),
            Ok(ch) => {
                let pid = ch.pid;
                if let (Some(k), Some(m)) = (self.keeper.as_mut(), marker) {
                    k.guard(pid, &m);
                }
                let pidfd = match register(&self.client, ch.pidfd) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        self.log(Level::Error, &format!("pidfd not pollable: {e}"));
                        None
                    }
                };
                self.running = Some(Running { pid, pidfd });
                self.pgid = Some(pid);
                self.tree_gone = false;
                Input::Spawned(pid)
            }
        }
    }

    /// Last line of defence before the process exits: nothing of the child's
    /// tree may outlive the wrapper.
    fn finish(&mut self, code: i32) -> i32 {
        if !self.tree_gone {
            child::signal_tree(self.pgid, signal_hook::consts::SIGKILL, self.keeper_pid());
            let deadline = clock::now() + Duration::from_secs(5);
            while !self.tree_gone && clock::now() < deadline {
                self.reap();
                std::thread::sleep(Duration::from_millis(5));
                if self.running.is_none() {
                    self.check_tree();
                }
            }
        }
        if let Some(mut k) = self.keeper.take() {
            k.release();
        }
        code
    }
}
