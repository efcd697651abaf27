//! A pseudo-terminal for tests: a process started with the slave as its
//! stdin, stdout, stderr and controlling terminal (a session of its own,
//! as a login shell has), and the test on the master side typing and
//! reading what appears on the screen.
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Pty {
    master: File,
    slave: std::path::PathBuf,
    screen: String,
}

impl Pty {
    /// A new pty pair with the kernel's default settings (canonical mode,
    /// echo, ^C sends SIGINT).
    pub fn open() -> Pty {
        // SAFETY: the usual posix_openpt sequence; the returned descriptor
        // is owned by the File from here on, and ptsname_r writes into a
        // buffer of the size we pass.
        unsafe {
            let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
            assert!(fd >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
            let master = File::from_raw_fd(fd);
            assert_eq!(libc::grantpt(fd), 0, "grantpt");
            assert_eq!(libc::unlockpt(fd), 0, "unlockpt");
            let mut buf = [0 as libc::c_char; 128];
            assert_eq!(
                libc::ptsname_r(fd, buf.as_mut_ptr(), buf.len()),
                0,
                "ptsname_r"
            );
            let name = std::ffi::CStr::from_ptr(buf.as_ptr())
                .to_string_lossy()
                .to_string();
            let flags = libc::fcntl(fd, libc::F_GETFL);
            assert_eq!(libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK), 0);
            Pty {
                master,
                slave: name.into(),
                screen: String::new(),
            }
        }
    }

    /// Starts `cmd` as the leader of a new session whose controlling
    /// terminal is the slave, so that it is the terminal's foreground job.
    pub fn spawn(&self, mut cmd: Command) -> Child {
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(&self.slave)
            .expect("open the pty slave");
        let io = |f: &File| Stdio::from(f.try_clone().expect("dup the slave"));
        cmd.stdin(io(&slave)).stdout(io(&slave)).stderr(io(&slave));
        // SAFETY: setsid and ioctl only, both async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.spawn().expect("spawn under the pty")
    }

    /// Types `bytes` at the keyboard.
    pub fn type_in(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).expect("write the pty master");
    }

    /// Everything shown on the screen so far.
    pub fn screen(&mut self) -> &str {
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.master.read(&mut buf) {
            if n == 0 {
                break;
            }
            self.screen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        &self.screen
    }

    /// Waits until the screen shows `text`, or panics with the screen after
    /// `limit`.
    pub fn expect(&mut self, text: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.screen().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} on the screen after {limit:?}; it shows {:?}",
                self.screen
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The terminal's foreground process group.
    pub fn foreground(&self) -> Option<u32> {
        // SAFETY: a query on a descriptor we own.
        let pg = unsafe { libc::tcgetpgrp(self.master.as_raw_fd()) };
        (pg > 0).then_some(pg as u32)
    }
}
