//! The keeper: a tiny process that outlives a SIGKILLed wrapper just long
//! enough to kill what the wrapper was supervising. The wrapper tells it,
//! over a pipe, the child's process group and the environment marker every
//! descendant inherits; when the pipe closes without a "done", it kills
//! them all.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::OwnedFd;

use rustix::process::{Pid, Signal};

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

    /// Tells the keeper what to kill should the wrapper die.
    pub fn guard(&mut self, pgid: u32, marker: &str) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = writeln!(s, "pgid {pgid}\nmark {marker}");
        }
    }

    /// Nothing is left to guard: the keeper exits without killing.
    pub fn release(&mut self) {
        if let Some(mut s) = self.stdin.take() {
            let _ = writeln!(s, "done");
        }
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.release();
    }
}

/// The keeper's main, reading the wrapper's pipe: returns its exit code.
fn run(pipe: OwnedFd) -> i32 {
    let mut pgids: Vec<u32> = Vec::new();
    let mut marks: Vec<Vec<u8>> = Vec::new();
    for line in BufReader::new(File::from(pipe)).lines() {
        let Ok(line) = line else { break };
        if line == "done" {
            return 0;
        }
        if let Some(p) = line.strip_prefix("pgid ").and_then(|p| p.parse().ok()) {
            pgids.push(p);
        } else if let Some(m) = line.strip_prefix("mark ") {
            marks.push(m.as_bytes().to_vec());
        }
    }
    // The wrapper died without saying it was done.
    for pg in &pgids {
        if let Some(pg) = Pid::from_raw(*pg as i32) {
            let _ = rustix::process::kill_process_group(pg, Signal::KILL);
        }
    }
    // Descendants that left the group (setsid, double fork) still carry the
    // wrapper's marker in their environment. Repeat while a kill round finds
    // anyone: a dying process may have forked once more.
    for _ in 0..20 {
        let found = kill_marked(&marks);
        if found == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    0
}

fn kill_marked(marks: &[Vec<u8>]) -> usize {
    if marks.is_empty() {
        return 0;
    }
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut found = 0;
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let hit = env
            .split(|&b| b == 0)
            .any(|var| marks.iter().any(|m| var == m.as_slice()));
        if hit {
            if let Some(p) = Pid::from_raw(pid as i32) {
                if rustix::process::kill_process(p, Signal::KILL).is_ok() {
                    found += 1;
                }
            }
        }
    }
    found
}
