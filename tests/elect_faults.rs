//! `conch elect` when etcd itself goes away and comes back (docs/fencing.md: a
//! lost connection is not yet a lost hold). Uses an etcd of its own, since
//! it restarts it.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{etcd_command, free_port, read, scratch_dir, wait_exit, wait_for, wait_ready};

#[test]
fn holder_and_waiter_survive_an_etcd_restart_while_their_leases_live() {
    let d = scratch_dir("restart");
    let (cp, pp) = (free_port(), free_port());
    let endpoint = format!("http://127.0.0.1:{cp}");
    let mut etcd = etcd_command(&d, cp, pp).spawn().expect("etcd");
    wait_ready(&endpoint, &mut etcd, &d);

    let run = |tag: &str, script: String| {
        std::process::Command::new(env!("CARGO_BIN_EXE_conch"))
            .env("CONCH_ENDPOINTS", &endpoint)
            .args(["-v", "--prefix", "/restart", "--ttl", "15s", "elect", "o"])
            .args(["--", "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join(format!("{tag}.err"))).expect("log"))
            .spawn()
            .expect("spawn")
    };
    let go = d.join("go");
    let mut a = run(
        "a",
        format!(
            "echo $CONCH_REV > {d}/a; while [ ! -e {go} ]; do sleep 0.02; done",
            d = d.display(),
            go = go.display()
        ),
    );
    wait_for("a holds", Duration::from_secs(10), || {
        !read(&d.join("a")).is_empty()
    });
    let mut b = run("b", format!("echo $CONCH_REV > {}/b", d.display()));
    // b's campaign is visible as a second candidate key.
    let c = conch::etcd::Client::connect(conch::etcd::ClientConfig::new(vec![endpoint.clone()]))
        .expect("connect");
    wait_for("b waits", Duration::from_secs(10), || {
        c.range(conch::etcd::Range::prefix("/restart/v1/elect/o/").count_only())
            .is_ok_and(|r| r.count == 2)
    });
    drop(c);

    etcd.kill().expect("kill etcd");
    let _ = etcd.wait();
    std::thread::sleep(Duration::from_secs(2));
    let mut etcd = etcd_command(&d, cp, pp).spawn().expect("etcd again");
    wait_ready(&endpoint, &mut etcd, &d);

    // Give the wrappers time to notice and reconnect; the holder must still
    // hold and the waiter must still wait.
    for w in ["a", "b"] {
        wait_for("reconnected", Duration::from_secs(10), || {
            read(&d.join(format!("{w}.err"))).contains("reconnected")
        });
    }
    assert!(
        a.try_wait().expect("a").is_none(),
        "holder exited: {}",
        read(&d.join("a.err"))
    );
    assert!(
        b.try_wait().expect("b").is_none(),
        "waiter exited: {}",
        read(&d.join("b.err"))
    );
    assert!(
        read(&d.join("b")).is_empty(),
        "no second leader while a holds"
    );

    std::fs::write(&go, "").expect("go");
    assert_eq!(
        wait_exit(&mut a, Duration::from_secs(10)).code(),
        Some(0),
        "{}",
        read(&d.join("a.err"))
    );
    assert_eq!(
        wait_exit(&mut b, Duration::from_secs(10)).code(),
        Some(0),
        "{}",
        read(&d.join("b.err"))
    );
    let rev = |f: &str| read(&d.join(f)).trim().parse::<i64>().expect("rev");
    assert!(rev("b") > rev("a"));
    let _ = etcd.kill();
    let _ = etcd.wait();
}
