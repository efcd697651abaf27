//! `conch elect --restart`: a leader-only service (docs/usage.md).

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{conch, read, scratch_dir, unique_prefix, wait_for};

/// Start instants (wall ns) and revs the child appended, one line each.
fn starts(d: &Path) -> Vec<(u128, i64)> {
    read(&d.join("starts"))
        .lines()
        .filter_map(|l| {
            let (t, r) = l.split_once(' ')?;
            Some((t.parse().ok()?, r.parse().ok()?))
        })
        .collect()
}

fn service(p: &str, body: &str, d: &Path) -> Child {
    let script = format!(
        "echo $(date +%s%N) $CONCH_REV >> {d}/starts; {body}",
        d = d.display()
    );
    conch(p)
        .args([
            "elect",
            "svc",
            "--restart",
            "--ttl",
            "6s",
            "--kill-after",
            "1s",
        ])
        .args(["--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn")
}

fn stop(mut c: Child) {
    let pid = rustix::process::Pid::from_raw(c.id() as i32).expect("pid");
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    common::wait_exit(&mut c, Duration::from_secs(10));
}

fn gaps(s: &[(u128, i64)]) -> Vec<f64> {
    s.windows(2)
        .map(|w| (w[1].0 - w[0].0) as f64 / 1e9)
        .collect()
}

#[test]
fn failing_child_is_restarted_with_doubling_delays() {
    let p = unique_prefix("backoff");
    let d = scratch_dir("backoff");
    let svc = service(&p, "exit 1", &d);
    wait_for("four starts", Duration::from_secs(20), || {
        starts(&d).len() >= 4
    });
    stop(svc);
    let s = starts(&d);
    let g = gaps(&s[..4]);
    // Each delay within ±10 %, plus spawn latency under 0.5 s.
    for (gap, base) in g.iter().zip([1.0, 2.0, 4.0]) {
        assert!(
            *gap >= base * 0.9 && *gap <= base * 1.1 + 0.5,
            "gaps {g:?}: {gap} is not {base}s ±10%"
        );
    }
    assert!(
        s.iter().all(|(_, r)| *r == s[0].1),
        "leadership kept: {s:?}"
    );
}

#[test]
fn a_child_that_ran_60s_resets_the_delay_to_1s() {
    let p = unique_prefix("reset");
    let d = scratch_dir("reset");
    // Fails twice quickly (delays 1s, 2s), then runs 61 s and fails: the
    // next delay must be 1s again, not 4s, then 2s.
    let body = format!(
        "n=$(wc -l < {d}/starts); if [ $n -eq 3 ]; then sleep 61; fi; exit 1",
        d = d.display()
    );
    let svc = service(&p, &body, &d);
    wait_for("five starts", Duration::from_secs(90), || {
        starts(&d).len() >= 5
    });
    stop(svc);
    let g = gaps(&starts(&d)[..5]);
    assert!(g[0] < 1.6 && g[1] > 1.7 && g[1] < 2.7, "{g:?}");
    // The third run lasted 61 s; the delay after it is back to 1 s (not 4 s),
    // and the one after that doubles again.
    let after_stable = g[2] - 61.0;
    assert!(
        (0.9..=1.6).contains(&after_stable),
        "delay after a stable run: {g:?}"
    );
    assert!((1.8..=2.7).contains(&g[3]), "{g:?}");
}

#[test]
fn revoked_lease_restarts_the_child_under_a_new_campaign_with_a_larger_rev() {
    let p = unique_prefix("recampaign");
    let d = scratch_dir("recampaign");
    let body = format!(
        "echo $CONCH_LEASE > {d}/lease; while :; do sleep 0.05; done",
        d = d.display()
    );
    let svc = service(&p, &body, &d);
    wait_for("first start", Duration::from_secs(10), || {
        starts(&d).len() == 1 && !read(&d.join("lease")).is_empty()
    });
    let lease = read(&d.join("lease")).trim().to_string();
    let o = common::etcdctl(&["lease", "revoke", &lease]);
    assert!(o.status.success());
    wait_for("restart after re-campaign", Duration::from_secs(15), || {
        starts(&d).len() >= 2
    });
    stop(svc);
    let s = starts(&d);
    assert!(s[1].1 > s[0].1, "CONCH_REV must grow: {s:?}");
    assert_ne!(read(&d.join("lease")).trim(), lease, "a fresh lease");
}
