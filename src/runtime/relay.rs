//! conchd's output relay (`--label-output`): a run's stdout and stderr are
//! pipes that the event loop reads, and each complete line goes to the
//! daemon's own stdout or stderr as `[JOB TICK] line`, written whole, so
//! lines of runs that share the daemon's output never mix.
//!
//! No thread per run: the read ends are non-blocking and polled by the one
//! loop. A run's streams are read until its process tree is gone; then
//! what is buffered is drained, a last partial line is written, and the
//! pipe is closed, even if a process that escaped the run still holds the
//! other end (it gets EPIPE): the run's end never waits for a pipe.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::task::{Context, Poll};

use tokio::io::unix::AsyncFd;

use crate::kit::machine::{SpawnSpec, Tag};

/// A line longer than this is written in pieces of this size, each with the
/// prefix, so that one run cannot make the daemon buffer without bound.
pub const MAX_LINE: usize = 64 * 1024;
/// The most read from one pipe per wake of the loop.
const WAKE_BUDGET: usize = 256 * 1024;
/// The most read from one pipe when its run is over.
const CLOSE_BUDGET: usize = 1024 * 1024;

struct Stream {
    tag: Tag,
    fd: AsyncFd<OwnedFd>,
    lines: Lines,
}

/// What one pipe gave that is not written yet.
struct Lines {
    prefix: Vec<u8>,
    err: bool,
    buf: Vec<u8>,
    eof: bool,
}

/// The read ends of every relayed run.
#[derive(Default)]
pub struct Relay {
    streams: Vec<Stream>,
}

/// The write ends a child gets as its stdout and stderr.
pub struct Outputs {
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// `[JOB TICK] `, from the variables every cron run is given; `None` for a
/// child that is not a cron run (it is never relayed).
pub fn label(spec: &SpawnSpec) -> Option<String> {
    let var = |k: &str| spec.env.iter().find(|(n, _)| n == k).map(|(_, v)| v);
    Some(format!("[{} {}] ", var("CONCH_JOB")?, var("CONCH_TICK")?))
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    use rustix::pipe::{pipe_with, PipeFlags};
    // Close-on-exec: no other child inherits a run's pipe; the run gets its
    // ends through dup2, which clears the flag on fds 1 and 2.
    let (r, w) = pipe_with(PipeFlags::CLOEXEC)?;
    // Only our end is non-blocking: the child sees an ordinary pipe.
    // SAFETY: fcntl on a descriptor we own, with flags only.
    if unsafe { libc::fcntl(r.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((r, w))
}

/// The labelled lines of `buf`, and how much of it they took: every
/// complete line, lines longer than [`MAX_LINE`] in pieces, and with `all`
/// the partial line at the end too.
fn labelled(buf: &[u8], prefix: &[u8], all: bool) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut line = |l: &[u8]| {
        out.extend_from_slice(prefix);
        out.extend_from_slice(l);
        out.push(b'\n');
    };
    let mut start = 0;
    loop {
        // One byte more than a piece: a line of exactly MAX_LINE is one
        // line, not a piece and an empty line.
        let window = &buf[start..buf.len().min(start + MAX_LINE + 1)];
        if let Some(n) = window.iter().position(|b| *b == b'\n') {
            line(&window[..n]);
            start += n + 1;
        } else if window.len() > MAX_LINE {
            line(&window[..MAX_LINE]);
            start += MAX_LINE;
        } else {
            break;
        }
    }
    if all && start < buf.len() {
        line(&buf[start..]);
        start = buf.len();
    }
    (out, start)
}

impl Lines {
    /// Writes every complete line, and with `all` what is left too, in one
    /// write: the daemon is the only writer of its stdout and stderr, so
    /// whole lines never mix with another run's.
    fn flush(&mut self, all: bool) {
        let (out, used) = labelled(&self.buf, &self.prefix, all);
        self.buf.drain(..used);
        if out.is_empty() {
            return;
        }
        // A daemon whose output is gone keeps running its jobs.
        let _ = if self.err {
            std::io::stderr().lock().write_all(&out)
        } else {
            std::io::stdout().lock().write_all(&out)
        };
    }

    /// Reads what the pipe holds now, up to `budget` bytes, so that a run
    /// that writes without pause cannot hold the loop: (anything or EOF
    /// came, the pipe was drained to EAGAIN or EOF).
    fn read_now(&mut self, fd: &OwnedFd, budget: usize) -> (bool, bool) {
        let mut chunk = [0u8; 16 * 1024];
        let mut got = false;
        let mut read = 0;
        let drained = loop {
            if self.eof {
                break true;
            }
            if read >= budget {
                break false;
            }
            match rustix::io::read(fd.as_fd(), &mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    got = true;
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    got = true;
                    read += n;
                    if self.buf.len() >= MAX_LINE {
                        self.flush(false);
                    }
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => break true,
                // An error that will not go away: stop reading.
                Err(_) => {
                    self.eof = true;
                    got = true;
                }
            }
        };
        self.flush(self.eof);
        (got, drained)
    }
}

impl Relay {
    /// Pipes for the run `tag` labelled `label`; `register` hands a read
    /// end to the loop's reactor.
    fn open(
        &mut self,
        tag: Tag,
        label: &str,
        register: impl Fn(OwnedFd) -> std::io::Result<AsyncFd<OwnedFd>>,
    ) -> std::io::Result<Outputs> {
        let (out_r, stdout) = pipe()?;
        let (err_r, stderr) = pipe()?;
        for (r, err) in [(out_r, false), (err_r, true)] {
            self.streams.push(Stream {
                tag,
                fd: register(r)?,
                lines: Lines {
                    prefix: label.as_bytes().to_vec(),
                    err,
                    buf: Vec::new(),
                    eof: false,
                },
            });
        }
        Ok(Outputs { stdout, stderr })
    }

    /// The pipes a cron run writes to; `None` for any other child, and if
    /// pipes cannot be made (the run then inherits the daemon's output, and
    /// the daemon says so).
    pub fn for_spawn(
        &mut self,
        tag: Tag,
        spec: &SpawnSpec,
        register: impl Fn(OwnedFd) -> std::io::Result<AsyncFd<OwnedFd>>,
    ) -> Option<Outputs> {
        let label = label(spec)?;
        match self.open(tag, &label, register) {
            Ok(o) => Some(o),
            Err(e) => {
                self.close(tag);
                eprintln!("conch: output relay: {e}; this run's output is not labelled");
                None
            }
        }
    }

    /// The run `tag` is over (its tree is gone, or it never started):
    /// writes what its pipes hold and closes them.
    pub fn close(&mut self, tag: Tag) {
        for s in self.streams.iter_mut().filter(|s| s.tag == tag) {
            // What the run wrote is in the pipe (64 KiB by default); more
            // can only come from a process that escaped the run.
            s.lines.read_now(s.fd.get_ref(), CLOSE_BUDGET);
            s.lines.flush(true);
        }
        self.streams.retain(|s| s.tag != tag);
    }

    /// Ready once some pipe had something to read; what it had is written
    /// by then. Never ready without open pipes.
    pub async fn relay(&mut self) {
        std::future::poll_fn(|cx| self.poll_relay(cx)).await
    }

    fn poll_relay(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut any = false;
        for s in self.streams.iter_mut().filter(|s| !s.lines.eof) {
            let Stream { fd, lines, .. } = s;
            if let Poll::Ready(Ok(mut g)) = fd.poll_read_ready(cx) {
                let (got, drained) = lines.read_now(fd.get_ref(), WAKE_BUDGET);
                any |= got;
                if drained && !lines.eof {
                    // Read to EAGAIN: the next edge wakes us (this registers
                    // the waker again).
                    g.clear_ready();
                    any |= matches!(fd.poll_read_ready(cx), Poll::Ready(Ok(_)));
                }
            }
        }
        if any {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(buf: &[u8], all: bool) -> (Vec<String>, usize) {
        let (out, used) = labelled(buf, b"[j t] ", all);
        let text = String::from_utf8(out).expect("utf-8");
        (
            text.lines()
                .map(|l| l.len().to_string() + ":" + &l[..l.len().min(12)])
                .collect(),
            used,
        )
    }

    #[test]
    fn complete_lines_now_the_partial_one_at_the_end() {
        assert_eq!(
            lines(b"one\n\ntwo\nthr", false),
            (
                vec![
                    "9:[j t] one".into(),
                    "6:[j t] ".into(),
                    "9:[j t] two".into()
                ],
                9
            )
        );
        assert_eq!(lines(b"thr", true), (vec!["9:[j t] thr".into()], 3));
        assert_eq!(lines(b"", true), (vec![], 0));
    }

    #[test]
    fn lines_longer_than_64_kib_go_in_pieces_and_exactly_64_kib_is_one_line() {
        let mut buf = vec![b'a'; MAX_LINE];
        buf.push(b'\n');
        let (l, used) = lines(&buf, false);
        assert_eq!((l.len(), used), (1, MAX_LINE + 1));
        let mut buf = vec![b'b'; MAX_LINE * 2 + 10];
        let (l, used) = lines(&buf, false);
        assert_eq!(l.len(), 2, "two whole pieces, 10 bytes kept");
        assert_eq!(used, MAX_LINE * 2);
        buf.push(b'\n');
        let (l, _) = lines(&buf, false);
        assert_eq!(l.len(), 3);
        assert!(l[2].starts_with("16:"), "{l:?}");
    }
}
