//! The keeper: a tiny process that outlives a SIGKILLed wrapper just long
//! enough to kill what the wrapper was supervising. The wrapper tells it,
//! over a pipe, each run it starts (its id, its leader's pid and start time)
//! and each run that ended; when the pipe closes without a "done", it kills
//! every process of the runs still open, and nothing else.
//!
//! What it remembers is bounded by the runs open at once, not by the runs
//! ever started, so a daemon that runs for months keeps a keeper of constant
//! size and a kill scan of constant cost.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use super::procs::{self, Pinned};

/// The wrapper's end.
pub struct Keeper {
    pid: u32,
    stdin: Option<File>,
}

impl Keeper {
    /// Forks the keeper. Call it first thing, while the process has one
    /// thread (no runtime, no connection yet): the keeper is a plain fork
    /// of the wrapper, which costs a fraction of an exec. It moves to its own
    /// process group so that a Ctrl-C meant for the job does not reach it.
    pub fn start() -> std::io::Result<Keeper> {
        let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        // SAFETY: called while the process is single-threaded (see above), so
        // the child may run ordinary code; it leaves only through _exit.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if pid == 0 {
            drop(write);
            let _ = rustix::process::setpgid(None, None);
            // The keeper writes nothing; it must not hold the job's stdout
            // open (a `$(conch ...)` would wait for it).
            // SAFETY: plain syscalls on descriptors this process owns.
            unsafe {
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
                if null >= 0 {
                    libc::dup2(null, 1);
                    libc::close(null);
                } else {
                    libc::close(1);
                }
            }
            let code = run(read);
            // SAFETY: ends the forked copy without running the wrapper's
            // exit handlers or flushing its buffers a second time.
            unsafe { libc::_exit(code) }
        }
        Ok(Keeper {
            pid: pid as u32,
            stdin: Some(File::from(write)),
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Run `id` started: its leader `pid` (also its process group), which
    /// started at `start` (clock ticks after boot).
    pub fn guard(&mut self, id: &str, pid: u32, start: u64) {
        self.say(&format!("run {id} {pid} {start}"));
    }

    /// Run `id` is over and nothing of it is left: forget it.
    pub fn forget(&mut self, id: &str) {
        self.say(&format!("end {id}"));
    }

    /// Nothing is left to guard: the keeper exits without killing.
    pub fn release(&mut self) {
        self.say("done");
        self.stdin = None;
    }

    fn say(&mut self, line: &str) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = writeln!(s, "{line}");
        }
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.release();
    }
}

/// A run's leader, as the wrapper saw it while it was its unreaped child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Leader {
    pid: u32,
    start: u64,
}

/// The runs still open, keyed by run id.
#[derive(Debug, Default)]
pub struct Ledger {
    open: HashMap<String, Leader>,
}

/// What a line of the wrapper's pipe asks for.
#[derive(Debug, PartialEq, Eq)]
enum Said {
    Nothing,
    Done,
}

impl Ledger {
    fn apply(&mut self, line: &str) -> Said {
        let mut f = line.split(' ');
        match (f.next(), f.next(), f.next(), f.next()) {
            (Some("done"), None, ..) => return Said::Done,
            (Some("run"), Some(id), Some(pid), Some(start)) => {
                if let (Ok(pid), Ok(start)) = (pid.parse(), start.parse()) {
                    self.open.insert(id.to_string(), Leader { pid, start });
                }
            }
            (Some("end"), Some(id), None, _) => {
                self.open.remove(id);
                // A burst of overlapping runs must not pin its peak forever.
                if self.open.capacity() > 64 && self.open.len() < self.open.capacity() / 4 {
                    self.open.shrink_to_fit();
                }
            }
            _ => {}
        }
        Said::Nothing
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Bytes held for the open runs (keys, values and table), an estimate.
    pub fn heap_bytes(&self) -> usize {
        let slot = std::mem::size_of::<(String, Leader)>() + 1;
        self.open.capacity() * slot + self.open.keys().map(String::capacity).sum::<usize>()
    }

    /// One round: SIGKILL, through a pidfd, every live process that belongs
    /// to an open run: it carries the run's id in its environment, or it is
    /// in the run's process group while that group provably is still the
    /// run's (its leader lives with the start time we were told, or a
    /// process carrying the id is in it). Returns how many were signalled.
    pub fn sweep(&self, me: u32) -> usize {
        if self.open.is_empty() {
            return 0;
        }
        let groups: HashMap<u32, &str> = self
            .open
            .iter()
            .map(|(id, l)| (l.pid, id.as_str()))
            .collect();
        let mut proven: HashSet<u32> = self
            .open
            .values()
            .filter(|l| procs::stat(l.pid).is_some_and(|s| s.start == l.start))
            .map(|l| l.pid)
            .collect();
        let mut candidates = Vec::new();
        for pid in procs::all_pids() {
            if pid == me {
                continue;
            }
            let Some(s) = procs::stat(pid) else { continue };
            if s.zombie {
                continue;
            }
            let run = self.run_of(&procs::run_ids(pid));
            if let Some(run) = run {
                if groups.get(&s.pgid) == Some(&run) {
                    proven.insert(s.pgid);
                }
            }
            if run.is_some() || groups.contains_key(&s.pgid) {
                candidates.push(pid);
            }
        }
        let mut found = 0;
        for pid in candidates {
            let Some(p) = Pinned::new(pid, true) else {
                continue;
            };
            if self.run_of(&p.runs).is_some() || proven.contains(&p.stat.pgid) {
                p.signal(libc::SIGKILL);
                found += 1;
            }
        }
        found
    }

    fn run_of(&self, ids: &[String]) -> Option<&str> {
        ids.iter().find_map(|id| {
            self.open
                .get_key_value(id.as_str())
                .map(|(k, _)| k.as_str())
        })
    }
}

/// The keeper's main, reading the wrapper's pipe: returns its exit code.
fn run(pipe: OwnedFd) -> i32 {
    let mut ledger = Ledger::default();
    for line in BufReader::new(File::from(pipe)).lines() {
        let Ok(line) = line else { break };
        if ledger.apply(&line) == Said::Done {
            return 0;
        }
    }
    // The wrapper died without saying it was done. Repeat while a round
    // finds anyone: a dying process may have forked once more.
    let me = std::process::id();
    let until = Instant::now() + Duration::from_secs(2);
    while ledger.sweep(me) > 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_run_costs_the_keeper_nothing() {
        let mut l = Ledger::default();
        l.apply("run 7.100.0 4242 555");
        assert_eq!(l.len(), 1);
        let one = l.heap_bytes();
        // A day of a one-second job, with up to three runs open at once.
        for seq in 1..=86_400u32 {
            l.apply(&format!("run 7.100.{seq} {} 999", 10_000 + seq % 30_000));
            if seq >= 3 {
                l.apply(&format!("end 7.100.{}", seq - 2));
            }
        }
        l.apply("end 7.100.0");
        l.apply("end 7.100.86399");
        l.apply("end 7.100.86400");
        assert!(l.is_empty(), "{} runs remembered", l.len());
        assert!(
            l.heap_bytes() <= one.max(1) * 8,
            "{} bytes after a day, {one} for one run",
            l.heap_bytes()
        );
    }

    #[test]
    fn a_burst_of_open_runs_is_given_back() {
        let mut l = Ledger::default();
        for seq in 0..10_000 {
            l.apply(&format!("run 1.2.{seq} {} 1", seq + 1));
        }
        let peak = l.heap_bytes();
        for seq in 0..10_000 {
            l.apply(&format!("end 1.2.{seq}"));
        }
        assert!(l.heap_bytes() * 10 < peak, "{} of {peak}", l.heap_bytes());
    }

    #[test]
    fn garbage_lines_change_nothing() {
        let mut l = Ledger::default();
        for line in [
            "",
            "run",
            "run x",
            "run x y z",
            "end",
            "pgid 12",
            "done now",
        ] {
            assert_eq!(l.apply(line), Said::Nothing);
        }
        assert!(l.is_empty());
        assert_eq!(l.apply("done"), Said::Done);
    }

    #[test]
    fn the_kill_scan_of_a_long_lived_daemon_takes_as_long_as_a_new_one() {
        // Three and a half days of one-second runs that all ended, plus a few open ones
        // whose processes are gone: the scan looks only at the open ones.
        let mut l = Ledger::default();
        for seq in 0..300_000u32 {
            l.apply(&format!("run 9.9.{seq} {} 1", 1 + seq % 4_000_000));
            l.apply(&format!("end 9.9.{seq}"));
        }
        for seq in 0..4 {
            l.apply(&format!("run 9.8.{seq} {} 1", 4_100_000 + seq));
        }
        let t = Instant::now();
        assert_eq!(l.sweep(std::process::id()), 0);
        let took = t.elapsed();
        eprintln!("kill scan with {} open runs: {took:?}", l.len());
        assert!(took < Duration::from_millis(500), "scan took {took:?}");
    }
}
