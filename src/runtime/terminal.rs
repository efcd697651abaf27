//! The controlling terminal: lent to the child's process group for a run
//! and taken back after, as a job-control shell does, so that an
//! interactive child reads its terminal instead of being stopped by
//! SIGTTIN, and Ctrl-C reaches the child the way a user expects.

use std::sync::atomic::{AtomicBool, Ordering};

use rustix::process::Pid;

static NEVER: AtomicBool = AtomicBool::new(false);

/// For a daemon whose runs are background jobs: keep the terminal, so that
/// Ctrl-C stops the daemon rather than one run.
pub fn never_lend() {
    NEVER.store(true, Ordering::SeqCst);
}

/// True when the next child should get the terminal: stdin is a terminal
/// and our process group is its foreground group (a `conch ... &` in the
/// background keeps its children in the background too).
pub fn lendable() -> bool {
    if NEVER.load(Ordering::SeqCst) {
        return false;
    }
    // SAFETY: plain queries of fd 0 (which may be closed: then they fail).
    unsafe { libc::isatty(0) == 1 && libc::tcgetpgrp(0) == libc::getpgrp() }
}

/// Makes `pgid` the terminal's foreground group. Called by the child
/// between fork and exec (it is then a background group, hence SIGTTOU is
/// ignored around the call) and by the wrapper to take the terminal back.
/// Async-signal-safe: sigaction and ioctl only.
pub fn give_to(pgid: Pid) -> std::io::Result<()> {
    // SAFETY: sigaction with a zeroed struct and SIG_IGN / the saved
    // previous action, and tcsetpgrp on fd 0; no allocation.
    unsafe {
        let mut ign: libc::sigaction = std::mem::zeroed();
        ign.sa_sigaction = libc::SIG_IGN;
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGTTOU, &ign, &mut old) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let r = libc::tcsetpgrp(0, pgid.as_raw_nonzero().get());
        let err = std::io::Error::last_os_error();
        libc::sigaction(libc::SIGTTOU, &old, std::ptr::null_mut());
        if r != 0 {
            return Err(err);
        }
    }
    Ok(())
}

/// Gives the terminal back to our own process group if `pgid` still has
/// it: after a `bg` the shell holds it, and it is not ours to take.
pub fn take_back_from(pgid: u32) {
    // SAFETY: a query of fd 0 (which may be closed: then it fails).
    let fg = unsafe { libc::tcgetpgrp(0) };
    if fg > 0 && fg as u32 == pgid {
        let _ = give_to(rustix::process::getpgrp());
    }
}
