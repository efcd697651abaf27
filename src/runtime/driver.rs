//! The one event loop: waits on the keep-alive stream, the watches, the
//! child's pidfd, the signal pipe and a BOOTTIME timer in a single
//! `block_on` of the runtime it owns, feeds what happened to the machine,
//! and carries out every action it returns before waiting again.

use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Instant;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::runtime::Runtime;

use super::child;
use super::children::{Children, Running};
use super::clock::{self, Timer};
use super::keeper::Keeper;
use super::relay::Relay;
use super::signals::Signals;
use crate::etcd::{Client, Error, KeepAlive, KeepAliveAnswer, Watch, WatchEvent};
use crate::kit::machine::{Action, Input, Level, Machine, Tag};

const WATCH_SLOTS: usize = 3;

/// The runtime a driver waits on, to be shared with its client
/// ([`Client::connect_on`]): one thread, so forking children stays safe.
pub fn new_runtime() -> std::io::Result<Rc<Runtime>> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map(Rc::new)
}

/// Registers a file descriptor that the value owns for its whole life.
fn register<T: AsRawFd>(rt: &Runtime, v: T) -> std::io::Result<AsyncFd<T>> {
    // SAFETY: every T passed here (Signals, Timer, OwnedFd) owns its file
    // descriptor, which stays open until the AsyncFd drops it.
    rt.block_on(async {
        unsafe { AsyncFd::register_with_interest(v, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)
    })
}

/// Owns every source of events for one machine.
pub struct Driver {
    rt: Rc<Runtime>,
    client: Client,
    /// Every etcd call made for the current step ends by then.
    act_by: Option<Instant>,
    /// The least severe level written to stderr.
    shown: Level,
    keepalive: Option<KeepAlive>,
    watches: [Option<(Tag, Watch)>; WATCH_SLOTS],
    children: Children,
    wall_offset_ms: i64,
    signals: AsyncFd<Signals>,
    timer: AsyncFd<Timer>,
    /// What the timer is armed for, while known: re-arming it to the same
    /// instant after every wake-up would be a system call per wake-up.
    armed: Option<Option<std::time::Duration>>,
    pending: VecDeque<Input>,
    /// conchd's `--label-output`: cron runs write to pipes read here.
    relay: Option<Relay>,
}

enum Wake {
    Signal,
    Child,
    KeepAlive(Result<KeepAliveAnswer, Error>),
    Watch(Tag, Result<WatchEvent, Error>),
    Timer,
    Relayed,
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

/// Ready when any child's pidfd is readable (it exited).
async fn any_readable(running: &[Running]) {
    if running.iter().all(|r| r.pidfd.is_none()) {
        return std::future::pending().await;
    }
    std::future::poll_fn(|cx| {
        for r in running {
            if let Some(fd) = &r.pidfd {
                if let std::task::Poll::Ready(Ok(mut g)) = fd.poll_read_ready(cx) {
                    g.clear_ready();
                    return std::task::Poll::Ready(());
                }
            }
        }
        std::task::Poll::Pending
    })
    .await
}

async fn relayed(relay: &mut Option<Relay>) {
    match relay {
        Some(r) => r.relay().await,
        None => std::future::pending().await,
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
    /// etcd, so a Ctrl-C during the campaign is handled, not fatal. `rt`
    /// is the runtime `client` was connected on ([`new_runtime`]).
    pub fn new(
        rt: Rc<Runtime>,
        client: Client,
        shown: Level,
        keeper: Keeper,
    ) -> std::io::Result<Driver> {
        let signals = Signals::install()?;
        let timer = Timer::new()?;
        let signals = register(&rt, signals)?;
        let timer = register(&rt, timer)?;
        child::become_subreaper();
        Ok(Driver {
            rt,
            client,
            act_by: None,
            shown,
            keepalive: None,
            watches: [None, None, None],
            children: Children::new(keeper),
            wall_offset_ms: clock::wall_offset_ms(),
            signals,
            timer,
            armed: None,
            pending: VecDeque::new(),
            relay: None,
        })
    }

    /// Relays the output of every cron run, each line labelled.
    pub fn relay_output(&mut self) {
        self.relay = Some(Relay::default());
    }

    /// Runs `m` from [`Input::Start`] until it exits; returns the exit code.
    pub fn run(&mut self, m: &mut dyn Machine) -> i32 {
        self.log(
            Level::Debug,
            &format!("connected to {}", self.client.endpoint()),
        );
        self.pending.push_back(Input::Start);
        loop {
            // After every input, carry out every action before waiting again.
            while let Some(input) = self.pending.pop_front() {
                let now = clock::now();
                let actions = m.step(input, now);
                // Blocking calls made for these actions end by the time the
                // machine must act: a hung member must not delay a self-fence.
                self.act_by = m
                    .must_act_by()
                    .map(|d| Instant::now() + d.saturating_sub(now));
                for a in actions {
                    if let Some(code) = self.perform(a) {
                        return self.finish(code);
                    }
                }
            }
            let deadline = m.deadline();
            if self.armed != Some(deadline) {
                match self.timer.get_ref().set(deadline) {
                    Ok(()) => self.armed = Some(deadline),
                    Err(e) => {
                        self.armed = None;
                        self.log(Level::Error, &format!("timer: {e}"));
                    }
                }
            }
            let wake = self.wait();
            self.absorb(wake);
            // A stepped wall clock moves every cron tick: say so.
            let offset = clock::wall_offset_ms();
            if (offset - self.wall_offset_ms).abs() > 1000 {
                self.wall_offset_ms = offset;
                self.pending.push_back(Input::ClockStep(offset));
            }
        }
    }

    fn wait(&mut self) -> Wake {
        let Driver {
            rt,
            keepalive,
            watches,
            children,
            signals,
            timer,
            relay,
            ..
        } = self;
        let [w0, w1, w2] = watches;
        let pidfds = &children.running;
        rt.block_on(async {
            tokio::select! {
                biased;
                _ = readable(Some(&*signals)) => Wake::Signal,
                _ = any_readable(pidfds) => Wake::Child,
                _ = readable(Some(&*timer)) => Wake::Timer,
                a = next_answer(keepalive) => Wake::KeepAlive(a),
                (t, e) = next_watch(w0) => Wake::Watch(t, e),
                (t, e) = next_watch(w1) => Wake::Watch(t, e),
                (t, e) = next_watch(w2) => Wake::Watch(t, e),
                _ = relayed(relay) => Wake::Relayed,
            }
        })
    }

    fn absorb(&mut self, wake: Wake) {
        match wake {
            Wake::Signal => {
                for sig in self.signals.get_ref().take() {
                    if sig == crate::kit::signal::SIGCHLD {
                        self.reap();
                    } else {
                        self.pending.push_back(Input::Signal(sig));
                    }
                }
            }
            Wake::Child => self.reap(),
            Wake::Timer => {
                self.timer.get_ref().clear();
                // Fired and spent: the same instant must be armed again.
                self.armed = None;
                self.pending.push_back(Input::Timer);
            }
            Wake::KeepAlive(r) => {
                if r.is_err() {
                    self.keepalive = None;
                }
                self.pending.push_back(Input::KeepAlive(r));
            }
            Wake::Relayed => {}
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

    fn reap(&mut self) {
        let mut inputs = Vec::new();
        self.children.reap(&mut inputs);
        if let Some(relay) = self.relay.as_mut() {
            for i in &inputs {
                if let Input::ChildrenGone(tag) = i {
                    relay.close(*tag);
                }
            }
        }
        self.pending.extend(inputs);
    }

    fn unwatch(&mut self, tag: Tag) {
        for slot in &mut self.watches {
            if slot.as_ref().is_some_and(|(t, _)| *t == tag) {
                *slot = None;
            }
        }
    }

    fn log(&self, level: Level, msg: &str) {
        if level <= self.shown {
            eprintln!("conch: {msg}");
        }
    }

    /// Carries out one action; `Some(code)` when the machine exits.
    fn perform(&mut self, a: Action) -> Option<i32> {
        let c = self.client.by(self.act_by);
        let input = match a {
            Action::Grant { ttl } => Input::Granted(c.lease_grant(ttl)),
            Action::Txn(tag, t) => Input::Txn(tag, c.txn(t)),
            Action::Range(tag, r) => Input::Range(tag, c.range(r)),
            Action::Revoke(id) => Input::Revoked(c.lease_revoke(id)),
            Action::Reconnect { budget } => {
                let r = c.failover_within(budget);
                if r.is_ok() {
                    self.log(
                        Level::Debug,
                        &format!("failed over to {}", self.client.endpoint()),
                    );
                }
                Input::Reconnected(r)
            }
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
                    // Inside the runtime, so that waking the connection's
                    // task queues it for the next wait instead of writing
                    // to the runtime's eventfd and waking the loop twice.
                    Some(k) => self.rt.block_on(async { k.send(clock::now()) }),
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
            Action::Spawn(tag, spec) => {
                let rt = &self.rt;
                let outputs = (self.relay.as_mut())
                    .and_then(|r| r.for_spawn(tag, &spec, |fd| register(rt, fd)));
                let (input, warning) = self
                    .children
                    .spawn(tag, &spec, outputs, |fd| register(rt, fd));
                if let (Some(r), Input::SpawnFailed(..)) = (self.relay.as_mut(), &input) {
                    r.close(tag);
                }
                if let Some(w) = warning {
                    self.log(Level::Error, &w);
                }
                input
            }
            Action::SignalChild(tag, sig) => {
                self.children.signal(tag, sig);
                return None;
            }
            Action::Log(level, msg) => {
                self.log(level, &msg);
                return None;
            }
            Action::Print(line) => {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                match writeln!(out, "{line}").and_then(|()| out.flush()) {
                    Ok(()) => return None,
                    // The reader is gone (`| head -1`): as the kernel would
                    // have said, had Rust not ignored the signal.
                    Err(e) => {
                        self.log(Level::Debug, &format!("stdout: {e}"));
                        Input::Signal(crate::kit::signal::SIGPIPE)
                    }
                }
            }
            Action::Exit(code) => return Some(code),
        };
        self.pending.push_back(input);
        None
    }

    fn finish(&mut self, code: i32) -> i32 {
        self.children.finish();
        code
    }
}
