use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use super::*;

fn os(s: &str) -> OsString {
    s.into()
}

fn steps() -> Steps {
    Steps {
        outputs: None,
        // SAFETY: getpid cannot fail.
        parent: unsafe { libc::getpid() },
        tty: false,
    }
}

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("conch-spawn-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// Waits for `pid` and returns its exit code.
fn wait(pid: u32) -> i32 {
    let mut status = 0;
    // SAFETY: waits for a child of this process, into a local int.
    let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
    assert_eq!(r, pid as libc::pid_t);
    assert!(libc::WIFEXITED(status), "status {status:#x}");
    libc::WEXITSTATUS(status)
}

fn path_env() -> Vec<(OsString, OsString)> {
    vec![(os("PATH"), os("/usr/local/bin:/usr/bin:/bin"))]
}

#[test]
fn candidates_follow_execvp() {
    let c = |p: &str, path: Option<&str>| {
        candidates(OsStr::new(p), path.map(OsStr::new))
            .into_iter()
            .map(|v| String::from_utf8(v).expect("utf-8"))
            .collect::<Vec<_>>()
    };
    assert_eq!(c("./x", Some("/a")), ["./x"]);
    assert_eq!(c("/bin/x", None), ["/bin/x"]);
    assert_eq!(c("x", Some("/a::/b")), ["/a/x", "x", "/b/x"]);
    assert_eq!(c("x", None), ["/usr/local/bin/x", "/bin/x", "/usr/bin/x"]);
}

#[test]
fn runs_a_program_found_on_the_path_in_its_own_group() {
    let pid = spawn(&[os("sleep"), os("0.3")], &path_env(), steps()).expect("spawn");
    // SAFETY: a query about our own child.
    let pgid = unsafe { libc::getpgid(pid as libc::pid_t) };
    assert_eq!(pgid, pid as libc::pid_t, "the child leads a new group");
    assert_eq!(wait(pid), 0);
}

#[test]
fn not_found_and_not_executable_are_told_apart() {
    let d = scratch("errors");
    assert_eq!(
        spawn(&[os("conch-no-such-command")], &path_env(), steps()),
        Err(Failure::Exec(libc::ENOENT))
    );
    let missing = d.join("missing");
    assert_eq!(
        spawn(&[missing.into_os_string()], &path_env(), steps()),
        Err(Failure::Exec(libc::ENOENT))
    );
    assert_eq!(
        spawn(&[os("")], &path_env(), steps()),
        Err(Failure::Exec(libc::ENOENT))
    );
    let plain = d.join("plain");
    std::fs::write(&plain, "#!/bin/sh\n").expect("write");
    assert_eq!(
        spawn(&[plain.into_os_string()], &path_env(), steps()),
        Err(Failure::Exec(libc::EACCES))
    );
    // A directory is not executable either.
    assert_eq!(
        spawn(&[d.clone().into_os_string()], &path_env(), steps()),
        Err(Failure::Exec(libc::EACCES))
    );
    assert_eq!(
        spawn(&[os("a\0b")], &path_env(), steps()),
        Err(Failure::Nul)
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// As execvp: a candidate that is not executable is passed over for a
/// later one that is, and only when none runs is it "permission denied".
#[test]
fn the_search_passes_a_non_executable_candidate() {
    let d = scratch("search");
    let (a, b) = (d.join("a"), d.join("b"));
    for dir in [&a, &b] {
        std::fs::create_dir_all(dir).expect("dir");
    }
    std::fs::write(a.join("tool"), "#!/bin/sh\nexit 3\n").expect("write");
    std::fs::write(b.join("tool"), "#!/bin/sh\nexit 7\n").expect("write");
    let exec = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(b.join("tool"), exec).expect("chmod");
    let path = format!("{}:{}:/usr/bin:/bin", a.display(), b.display());
    let env = [(os("PATH"), os(&path))];
    let pid = spawn(&[os("tool")], &env, steps()).expect("the second candidate runs");
    assert_eq!(wait(pid), 7);
    let env = [(os("PATH"), os(&a.display().to_string()))];
    assert_eq!(
        spawn(&[os("tool")], &env, steps()),
        Err(Failure::Exec(libc::EACCES))
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// The command gets exactly the environment given, the outputs it is
/// given, and starts with no signal blocked and SIGPIPE at its default,
/// whatever the wrapper's own mask and dispositions (grep and env, unlike
/// a shell, leave both as they found them).
#[test]
fn environment_outputs_and_signal_state() {
    let d = scratch("state");
    let run = |argv: &[&str], env: &[(OsString, OsString)]| {
        let out = std::fs::File::create(d.join("out")).expect("out");
        let err = std::fs::File::create(d.join("err")).expect("err");
        let mut s = steps();
        s.outputs = Some((out.as_raw_fd(), err.as_raw_fd()));
        let argv: Vec<OsString> = argv.iter().map(|a| os(a)).collect();
        // SAFETY: sigset_t is plain data set up by sigemptyset/sigaddset;
        // the mask is this test thread's own and restored before any
        // assertion.
        let old = unsafe {
            let mut usr2: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut usr2);
            libc::sigaddset(&mut usr2, libc::SIGUSR2);
            libc::pthread_sigmask(libc::SIG_BLOCK, &usr2, &mut old);
            old
        };
        let pid = spawn(&argv, env, s);
        // SAFETY: restores the mask saved above.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
        let code = wait(pid.expect("spawn"));
        let read = |f: &str| std::fs::read_to_string(d.join(f)).expect("read");
        (code, read("out"), read("err"))
    };
    let status = [
        "grep",
        "-h",
        "^Sig",
        "/proc/self/status",
        "/conch-no-such-file",
    ];
    let (code, out, err) = run(&status, &path_env());
    assert_eq!(code, 2, "grep found a missing file: {err}");
    assert!(err.contains("conch-no-such-file"), "stderr: {err}");
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
            .unwrap_or_else(|| panic!("{name} in {out}"))
    };
    assert_eq!(field("SigBlk:"), 0, "{out}");
    assert_eq!(field("SigIgn:") & (1 << (libc::SIGPIPE - 1)), 0, "{out}");
    let mut env = path_env();
    env.push((os("CONCH_SPAWN_TEST"), os("yes")));
    let (code, out, _) = run(&["env"], &env);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "PATH=/usr/local/bin:/usr/bin:/bin\nCONCH_SPAWN_TEST=yes\n"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_child_whose_parent_is_not_the_wrapper_gives_up() {
    let mut s = steps();
    s.parent = 1;
    assert_eq!(
        spawn(&[os("true")], &path_env(), s),
        Err(Failure::WrapperGone)
    );
}
