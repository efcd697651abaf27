//! What a child inherits from conch's environment: everything but the
//! etcd passwords, which are conch's credentials and not the job's.

mod common;

#[test]
fn a_child_never_sees_an_etcd_password() {
    let out = common::conch(&common::unique_prefix("childenv"))
        // No authentication on the test etcd: a user is then ignored, as
        // etcd's own client does, and the run goes ahead.
        .env("CONCH_USER", "alice")
        .env("CONCH_PASSWORD", "s3cret-conch")
        .env("ETCDCTL_USER", "root:s3cret-user")
        .env("ETCDCTL_PASSWORD", "s3cret-etcdctl")
        .env("ETCDCTL_DIAL_TIMEOUT", "3s")
        .args(["elect", "childenv", "--", "env"])
        .output()
        .expect("run conch");
    let env = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !env.contains("s3cret"),
        "a password reached the child:\n{env}"
    );
    for gone in ["CONCH_PASSWORD=", "ETCDCTL_PASSWORD=", "ETCDCTL_USER="] {
        assert!(
            !env.lines().any(|l| l.starts_with(gone)),
            "{gone} in:\n{env}"
        );
    }
    // The rest is passed on: scripts call conch or etcdctl themselves.
    assert!(env.lines().any(|l| l == "CONCH_USER=alice"), "{env}");
    assert!(env.lines().any(|l| l == "ETCDCTL_DIAL_TIMEOUT=3s"), "{env}");
    assert!(env.lines().any(|l| l.starts_with("CONCH_REV=")), "{env}");
}
