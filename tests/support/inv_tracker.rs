//! Observes children for the invariant test. Each child appends
//! `S <holder> <pid> <start-ns> <rev> <slot> <lease>` to a shared log
//! (O_APPEND, one short line: atomic) when it starts, and
//! `E <pid> <end-ns>` if it gets to finish its workload. A child killed
//! with SIGKILL writes nothing more, so a thread polls `/proc/<pid>/stat`
//! of every open child every millisecond and records the first instant it
//! saw the child gone (a zombie counts as gone: it runs nothing).
//!
//! Measurement error: a recorded start is late by the fork+exec of `date`
//! (~1-3 ms; it makes overlaps look shorter); an observed end is late by
//! the polling period plus scheduling delay (it makes overlaps look
//! longer); an end the child wrote itself is exact to the shell's exit.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Record {
    pub holder: String,
    pub pid: u32,
    pub start: i64,
    pub rev: i64,
    pub slot: u32,
    pub lease: String,
    /// `/proc` start time, to tell a reused pid from the child.
    starttime: Option<u64>,
    pub end: Option<i64>,
    /// The child wrote its own end (it finished its workload).
    pub finished: bool,
}

#[derive(Default)]
struct State {
    recs: Vec<Record>,
    open: HashMap<u32, usize>,
    bad_lines: Vec<String>,
}

pub struct Tracker {
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// State and start time of a live, non-zombie process.
fn proc_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state); starttime is field 22.
    if matches!(f.first(), Some(&"Z") | Some(&"X") | None) {
        return None;
    }
    f.get(19)?.parse().ok()
}

impl Tracker {
    pub fn start(log: &Path) -> Tracker {
        std::fs::write(log, "").expect("create interval log");
        let mut file = std::fs::File::open(log).expect("open interval log");
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut pending = String::new();
            let mut buf = Vec::new();
            while !sp.load(Ordering::SeqCst) {
                buf.clear();
                let _ = file.read_to_end(&mut buf);
                pending.push_str(&String::from_utf8_lossy(&buf));
                let mut s = st.lock().expect("tracker lock");
                while let Some(nl) = pending.find('\n') {
                    let line: String = pending.drain(..=nl).collect();
                    parse(&mut s, line.trim_end());
                }
                let open: Vec<(u32, usize)> = s.open.iter().map(|(p, i)| (*p, *i)).collect();
                for (pid, i) in open {
                    let alive = proc_start(pid);
                    let r = &mut s.recs[i];
                    if alive.is_none() || alive != r.starttime {
                        r.end = Some(now_ns());
                        s.open.remove(&pid);
                    }
                }
                drop(s);
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        Tracker {
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// Children running now.
    pub fn open(&self) -> Vec<Record> {
        let s = self.state.lock().expect("tracker lock");
        s.open.values().map(|&i| s.recs[i].clone()).collect()
    }

    /// Every record so far.
    pub fn all(&self) -> Vec<Record> {
        self.state.lock().expect("tracker lock").recs.clone()
    }

    pub fn bad_lines(&self) -> Vec<String> {
        self.state.lock().expect("tracker lock").bad_lines.clone()
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn parse(s: &mut State, line: &str) {
    let f: Vec<&str> = line.split_whitespace().collect();
    match f.as_slice() {
        ["S", holder, pid, start, rev, slot, lease] => {
            let (Ok(pid), Ok(start), Ok(rev), Ok(slot)) =
                (pid.parse(), start.parse(), rev.parse(), slot.parse())
            else {
                s.bad_lines.push(line.to_string());
                return;
            };
            let starttime = proc_start(pid);
            s.recs.push(Record {
                holder: holder.to_string(),
                pid,
                start,
                rev,
                slot,
                lease: lease.to_string(),
                starttime,
                end: if starttime.is_some() {
                    None
                } else {
                    Some(now_ns())
                },
                finished: false,
            });
            if starttime.is_some() {
                s.open.insert(pid, s.recs.len() - 1);
            }
        }
        ["E", pid, end] => {
            let (Ok(pid), Ok(end)) = (pid.parse::<u32>(), end.parse::<i64>()) else {
                s.bad_lines.push(line.to_string());
                return;
            };
            // The latest record of this pid that has not ended by itself.
            if let Some(r) = s
                .recs
                .iter_mut()
                .rev()
                .find(|r| r.pid == pid && !r.finished)
            {
                r.end = Some(end);
                r.finished = true;
            }
            s.open.remove(&pid);
        }
        _ => s.bad_lines.push(line.to_string()),
    }
}
