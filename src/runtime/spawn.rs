//! Starting a process without copying the wrapper's page tables: `clone`
//! with `CLONE_VM | CLONE_VFORK` on a small stack of its own, as
//! `posix_spawn` does. `posix_spawn` itself cannot do the child's steps
//! before exec (parent-death signal and its race check, the terminal's
//! foreground group), and `std::process::Command` with `pre_exec` forks:
//! measured at 0.16-0.19 ms more per spawn than this on the benchmark VM.
//!
//! The child shares the wrapper's memory until it execs, with the wrapper
//! suspended meanwhile. So everything that allocates (argv, envp, the
//! candidate paths of the PATH search) is made before the clone; the child
//! only makes system calls, reads what was prepared and writes its failure
//! into [`Shared`], which the wrapper reads once it resumes. Signals are
//! blocked across the clone and the child resets every handled signal to
//! its default before unblocking, so a signal sent to it before exec can
//! never run the wrapper's handlers (and write to its self-pipe) from the
//! child.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};

use super::terminal;

/// The child's stack: it runs a few system calls' worth of code. On the
/// heap, not on the wrapper's stack: only the pages the child touches
/// count, where a 32 KiB array in this frame cost the wrapper 128 KiB of
/// peak RSS (P2).
const STACK: usize = 32 * 1024;

/// The shell's search path when the environment has no PATH (musl's, the
/// libc of the release binary).
const DEFAULT_PATH: &[u8] = b"/usr/local/bin:/bin:/usr/bin";

/// What the child does before exec, besides its new process group.
pub struct Steps {
    /// Made stdout and stderr (conchd's relay).
    pub outputs: Option<(RawFd, RawFd)>,
    /// The wrapper: the child gives up when its parent is no longer it.
    pub parent: libc::pid_t,
    /// Make the child's group the terminal's foreground group.
    pub tty: bool,
}

/// Why no program runs.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// exec (after the PATH search) failed with this errno.
    Exec(i32),
    /// The wrapper died before the parent-death signal was armed.
    WrapperGone,
    /// A step before exec failed, or the clone itself.
    Step(&'static str, i32),
    /// A NUL byte inside an argument or variable.
    Nul,
}

/// The child's step that failed, as it reports it (0: none).
const DUP: u8 = 1;
const PGID: u8 = 2;
const PRCTL: u8 = 3;
const MASK: u8 = 4;
const EXEC: u8 = 5;
const GONE: u8 = 6;

/// What both sides of the clone see: the prepared pointers in, the
/// child's failure out.
struct Shared {
    candidates: Vec<*const libc::c_char>,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    steps: Steps,
    failed: AtomicU8,
    errno: AtomicI32,
}

fn cstring(s: &[u8]) -> Result<CString, Failure> {
    CString::new(s).map_err(|_| Failure::Nul)
}

/// The paths execvp would try for `prog`, in order: `prog` itself when it
/// names a path, else each PATH entry joined with it (an empty entry is
/// the current directory).
pub fn candidates(prog: &OsStr, path: Option<&OsStr>) -> Vec<Vec<u8>> {
    let prog = prog.as_bytes();
    if prog.contains(&b'/') {
        return vec![prog.to_vec()];
    }
    let path = path.map_or(DEFAULT_PATH, |p| p.as_bytes());
    path.split(|b| *b == b':')
        .map(|dir| {
            if dir.is_empty() {
                prog.to_vec()
            } else {
                [dir, b"/", prog].concat()
            }
        })
        .collect()
}

/// Starts `argv` with exactly `env` as its environment, searching the
/// PATH of `env` as execvp does, in a new process group and after `steps`.
/// Returns the child's pid once it has exec'd.
pub fn spawn(
    argv: &[OsString],
    env: &[(OsString, OsString)],
    steps: Steps,
) -> Result<u32, Failure> {
    let Some(prog) = argv.first() else {
        return Err(Failure::Exec(libc::ENOENT));
    };
    if prog.is_empty() {
        return Err(Failure::Exec(libc::ENOENT));
    }
    let path = env.iter().rev().find(|(k, _)| k == "PATH");
    let paths = candidates(prog, path.map(|(_, v)| v.as_os_str()))
        .iter()
        .map(|p| cstring(p))
        .collect::<Result<Vec<_>, _>>()?;
    let args = argv
        .iter()
        .map(|a| cstring(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let vars = env
        .iter()
        .map(|(k, v)| cstring(&[k.as_bytes(), b"=", v.as_bytes()].concat()))
        .collect::<Result<Vec<_>, _>>()?;
    let nul_ended = |v: &[CString]| {
        let mut p: Vec<*const libc::c_char> = v.iter().map(|s| s.as_ptr()).collect();
        p.push(std::ptr::null());
        p
    };
    let (argv_p, envp_p) = (nul_ended(&args), nul_ended(&vars));
    let shared = Shared {
        candidates: paths.iter().map(|p| p.as_ptr()).collect(),
        argv: argv_p.as_ptr(),
        envp: envp_p.as_ptr(),
        steps,
        failed: AtomicU8::new(0),
        errno: AtomicI32::new(0),
    };
    // Capacity only: the child writes its frames there, nothing reads it
    // as Rust values. u128 keeps the top 16-byte aligned, as the ABI wants.
    let mut stack: Vec<u128> = Vec::with_capacity(STACK / 16);
    let top = stack
        .as_mut_ptr()
        .wrapping_add(STACK / 16)
        .cast::<libc::c_void>();
    let pid = {
        // SAFETY: sigset_t is plain data, filled by sigfillset before use;
        // pthread_sigmask only swaps this thread's mask, restored below on
        // every path.
        let old = unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            old
        };
        // SAFETY: CLONE_VFORK suspends this thread until the child execs
        // or exits, so `shared`, the C strings it points into and `stack`
        // outlive every use the child makes of them; the child runs only
        // `child`, which makes system calls and atomic stores and never
        // allocates, unwinds or returns into Rust frames of ours.
        let pid = unsafe {
            libc::clone(
                child,
                top,
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                std::ptr::from_ref(&shared).cast_mut().cast(),
            )
        };
        let clone_errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        // SAFETY: restores the mask saved above.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
        if pid < 0 {
            return Err(Failure::Step("clone", clone_errno));
        }
        pid
    };
    drop(stack);
    let failed = shared.failed.load(Ordering::SeqCst);
    if failed == 0 {
        return Ok(pid as u32);
    }
    // The child has _exit'ed: reap it here, as std does, so the loop never
    // sees a pid it did not start.
    let mut status = 0;
    // SAFETY: waits for our own child, into a local int; a signal handled
    // meanwhile interrupts the wait, which is then resumed.
    while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 && errno() == libc::EINTR {}
    let errno = shared.errno.load(Ordering::SeqCst);
    Err(match failed {
        EXEC => Failure::Exec(errno),
        GONE => Failure::WrapperGone,
        DUP => Failure::Step("dup2", errno),
        PGID => Failure::Step("setpgid", errno),
        PRCTL => Failure::Step("prctl", errno),
        MASK => Failure::Step("sigprocmask", errno),
        _ => Failure::Step("before exec", errno),
    })
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// The child, between clone and exec. Async-signal-safe only: system calls
/// through libc, atomic stores into [`Shared`], no allocation, no panic.
extern "C" fn child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Shared` of `spawn`, alive while the parent is
    // suspended (CLONE_VFORK); every pointer in it was prepared there.
    let sh = unsafe { &*arg.cast::<Shared>() };
    let fail = |step: u8| -> libc::c_int {
        sh.errno.store(errno(), Ordering::SeqCst);
        sh.failed.store(step, Ordering::SeqCst);
        // SAFETY: _exit runs no atexit handler and touches no shared state.
        unsafe { libc::_exit(127) }
    };
    // SAFETY (the block): plain system calls on this process's own signal
    // table (not shared: no CLONE_SIGHAND), fds and attributes.
    unsafe {
        // Every handler the wrapper installed goes back to the default
        // before signals are unblocked: they would run on the wrapper's
        // memory. SIGPIPE, which Rust's runtime ignores, too, as std does.
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        for sig in 1..=libc::SIGRTMAX() {
            let mut cur: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut cur) != 0 {
                continue;
            }
            let handled = cur.sa_sigaction != libc::SIG_DFL && cur.sa_sigaction != libc::SIG_IGN;
            if handled || sig == libc::SIGPIPE {
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
        if let Some((out, err)) = sh.steps.outputs {
            for (from, to) in [(out, 1), (err, 2)] {
                // dup2 onto itself keeps close-on-exec: clear it instead.
                let r = if from == to {
                    libc::fcntl(to, libc::F_SETFD, 0)
                } else {
                    libc::dup2(from, to)
                };
                if r < 0 {
                    return fail(DUP);
                }
            }
        }
        if libc::setpgid(0, 0) != 0 {
            return fail(PGID);
        }
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
            return fail(PRCTL);
        }
        // The wrapper may have died before the prctl took effect.
        if libc::getppid() != sh.steps.parent {
            return fail(GONE);
        }
        if sh.steps.tty {
            // Before exec, so the command's first read finds the terminal
            // already its own; a failure only leaves it in the background.
            if let Some(me) = rustix::process::Pid::from_raw(libc::getpid()) {
                let _ = terminal::give_to(me);
            }
        }
        // Exec keeps the mask: the command starts with nothing blocked.
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        if libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) != 0 {
            return fail(MASK);
        }
        // execvp's search: a missing candidate or a directory in the way
        // passes on to the next; permission denied is remembered; any
        // other error ends the search.
        let mut denied = false;
        for &path in &sh.candidates {
            libc::execve(path, sh.argv, sh.envp);
            match errno() {
                libc::EACCES => denied = true,
                libc::ENOENT | libc::ENOTDIR => {}
                _ => return fail(EXEC),
            }
        }
        if denied {
            *libc::__errno_location() = libc::EACCES;
        }
    }
    fail(EXEC)
}

#[cfg(test)]
#[path = "spawn_tests.rs"]
mod tests;
