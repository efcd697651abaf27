//! Operator features of the daemon: suspended jobs, `cron run` requests,
//! catch-up, the failure hook.

use super::catchup::catch_up_tick;
use super::*;
use crate::record::cron::Request;

fn request_put(name: &str, tick: i64, until_ms: u64, rev: i64) -> Input {
    let kv = KeyValue {
        key: schema().cron_manual_key(name, tick).into_bytes(),
        value: Request {
            by: "ops@h".into(),
            at_ms: 0,
            until_ms,
        }
        .to_json()
        .into_bytes(),
        create_revision: rev,
        mod_revision: rev,
        version: 1,
        lease: 0,
    };
    let events = vec![Event {
        kind: EventKind::Put,
        kv,
        prev: None,
    }];
    Input::Watch(
        WATCH_MANUAL,
        Ok(WatchEvent::Events {
            revision: rev,
            events,
        }),
    )
}

fn hourly() -> Job {
    // T0 is a whole hour: no tick of this job falls in these tests.
    job("@every 3600s")
}

#[test]
fn a_suspended_job_claims_nothing_and_its_resume_claims_only_later_ticks() {
    let mut j = job("@every 10s");
    j.suspended = true;
    let mut h = Harness::serving(cfg(), &[("j", &j)]);
    assert!(claims(&h.run_to(S(30))).is_empty());
    assert!(h.logged("not claimed: suspended"));
    j.suspended = false;
    j.paused_at_ms = Some((T0 * 1000 + 35_000) as u64);
    h.step(put_event("j", &j, 9), S(35));
    assert_eq!(claimed(&h.run_to(S(40))), [("j".to_string(), T0 + 40)]);
}

#[test]
fn a_run_request_is_claimed_once_guarded_by_the_request_which_the_claim_deletes() {
    let mut h = Harness::serving(cfg(), &[("j", &hourly())]);
    let req = schema().cron_manual_key("j", T0 + 5);
    let acts = h.step(request_put("j", T0 + 5, u64::MAX, 21), S(6));
    let [t] = &claims(&acts)[..] else {
        panic!("{acts:?}");
    };
    assert_eq!(claim_target(t), ("j".to_string(), T0 + 5));
    let guard = Compare::key(req.clone(), CmpOp::Greater, Target::CreateRevision(0));
    assert!(t.compare.contains(&guard), "{t:?}");
    assert!(t.success.contains(&Op::delete(req.clone())));
    let Op::Txn(skip) = &t.failure[0] else {
        panic!("{t:?}");
    };
    assert!(skip.compare.contains(&guard) && skip.success.contains(&Op::delete(req)));
    assert_eq!(Claim::from_json(&fire_value(t)).cause, Cause::Manual);
    // The same request seen again (a re-read) while its claim is in flight
    // sends no second claim.
    assert!(claims(&h.step(request_put("j", T0 + 5, u64::MAX, 21), S(6))).is_empty());
    let (_, spec) = the_spawn(&h.step(won(22), S(6)));
    assert_eq!(env(&spec, "CONCH_TICK"), "2027-01-15T08:00:05Z");
    assert!(h.m.manual.is_empty());
}

#[test]
fn an_expired_or_suspended_request_is_not_claimed() {
    let mut j = hourly();
    let mut h = Harness::serving(cfg(), &[("j", &j)]);
    let until = (T0 * 1000 + 5_000) as u64;
    let acts = h.step(request_put("j", T0 + 4, until, 21), S(6));
    assert!(claims(&acts).is_empty());
    let req = schema().cron_manual_key("j", T0 + 4);
    let cleanup = Txn {
        compare: vec![Compare::key(
            req.clone(),
            CmpOp::Equal,
            Target::ModRevision(21),
        )],
        success: vec![Op::delete(req)],
        failure: vec![],
    };
    assert_eq!(acts, [Action::Txn(TRIM, cleanup)], "removed, if unchanged");
    assert!(h.logged("expired run request"));
    j.suspended = true;
    h.step(put_event("j", &j, 22), S(7));
    assert!(claims(&h.step(request_put("j", T0 + 7, u64::MAX, 23), S(7))).is_empty());
    // Resumed while the request still stands: claimed then.
    j.suspended = false;
    let acts = h.step(put_event("j", &j, 24), S(8));
    assert_eq!(claimed(&acts), [("j".to_string(), T0 + 7)]);
}

#[test]
fn a_request_claimed_against_an_old_definition_is_claimed_again_against_the_new() {
    let mut h = Harness::serving(cfg(), &[("j", &hourly())]);
    assert_eq!(
        claims(&h.step(request_put("j", T0 + 5, u64::MAX, 21), S(6))).len(),
        1
    );
    let mut j = hourly();
    j.keep = 5;
    // Replaced while the claim is in flight: no second claim beside it.
    assert!(claims(&h.step(put_event("j", &j, 22), S(6))).is_empty());
    let acts = h.step(lost(23, false, None), S(6));
    let [t] = &claims(&acts)[..] else {
        panic!("{acts:?}");
    };
    assert_eq!(
        t.compare[0],
        Compare::key(
            schema().cron_job_key("j"),
            CmpOp::Equal,
            Target::ModRevision(22)
        )
    );
    // Refused again with the job unchanged: the request is gone; done.
    assert!(claims(&h.step(lost(24, false, None), S(6))).is_empty());
    assert!(h.m.manual.is_empty());
}

fn state(j: Job) -> JobState {
    JobState {
        schedule: Schedule::parse(&j.schedule).expect("schedule"),
        zone: Zone::parse(&j.tz).expect("zone"),
        job: j,
        mod_rev: 1,
        next: None,
    }
}

#[test]
fn catch_up_reaches_the_latest_tick_only_within_its_window() {
    let ms = |s: i64| s * 1000;
    let mut j = job("@every 10s");
    assert_eq!(catch_up_tick(&state(j.clone()), ms(T0 + 37)), None, "off");
    j.catch_up_ms = Some(25_000);
    assert_eq!(
        catch_up_tick(&state(j.clone()), ms(T0 + 37) + 500),
        Some(T0 + 30)
    );
    assert_eq!(catch_up_tick(&state(j.clone()), ms(T0 + 30)), Some(T0 + 30));
    j.catch_up_ms = Some(5_000);
    assert_eq!(
        catch_up_tick(&state(j.clone()), ms(T0 + 37)),
        None,
        "older than D"
    );
    j.catch_up_ms = Some(86_400_000);
    j.paused_at_ms = Some(ms(T0 + 31) as u64);
    assert_eq!(
        catch_up_tick(&state(j.clone()), ms(T0 + 37)),
        None,
        "suspended then"
    );
    j.paused_at_ms = None;
    j.added_at_ms = ms(T0 + 30) as u64;
    assert_eq!(catch_up_tick(&state(j.clone()), ms(T0 + 37)), Some(T0 + 30));
    j.added_at_ms = ms(T0 + 30) as u64 + 1;
    assert_eq!(
        catch_up_tick(&state(j.clone()), ms(T0 + 37)),
        None,
        "before added"
    );
    // A day of `@every 1s` is bisected, not walked.
    let mut every = job("@every 1s");
    every.catch_up_ms = Some(86_400_000);
    assert_eq!(catch_up_tick(&state(every), ms(T0) + 999), Some(T0));
}

#[test]
fn a_registration_claims_one_catch_up_tick_and_only_for_jobs_that_opt_in() {
    let mut h = Harness::new(cfg());
    h.step(Input::Start, S(0));
    h.step(Input::Granted(Ok(Lease { id: L1, ttl: 60 })), S(0));
    let mut j = job("@every 10s");
    j.catch_up_ms = Some(60_000);
    let kvs = vec![
        job_kv("late", &j.to_json(), 5),
        job_kv("plain", &job("@every 10s").to_json(), 6),
    ];
    let acts = h.step(registered(20, kvs), S(25));
    let [t] = &claims(&acts)[..] else {
        panic!("{acts:?}");
    };
    assert_eq!(claim_target(t), ("late".to_string(), T0 + 20));
    assert_eq!(Claim::from_json(&fire_value(t)).cause, Cause::CatchUp);
    // Its next scheduled tick is still the first after now.
    assert_eq!(h.next_of("late"), Some(T0 + 30));
}

#[test]
fn a_failed_run_starts_its_hook_once_and_an_ok_run_does_not() {
    let mut j = allow(job("@every 10s"));
    j.on_failure = vec!["page".into(), "ops".into()];
    let mut h = Harness::serving(cfg(), &[("j", &j)]);
    let tag = h.win(S(10), 30);
    h.step(Input::ChildExited(tag, ChildStatus::Exited(2)), S(11));
    let acts = h.step(Input::ChildrenGone(tag), S(11));
    assert!(acts.iter().any(|a| matches!(a, Action::Txn(FINISH, _))));
    let (hook, spec) = the_spawn(&acts);
    assert_eq!(spec.argv, ["page", "ops"]);
    crate::recipe::harness::assert_env(
        &spec.env,
        &[
            ("CONCH_JOB", "j"),
            ("CONCH_TICK", "2027-01-15T08:00:10Z"),
            ("CONCH_STATUS", "failed"),
            ("CONCH_NODE", NODE),
            ("CONCH_EXIT", "2"),
        ],
    );
    h.step(Input::Spawned(hook, 2000), S(11));
    // The hook fails too: logged, no result, never run again.
    h.step(Input::ChildExited(hook, ChildStatus::Exited(1)), S(12));
    let acts = h.step(Input::ChildrenGone(hook), S(12));
    assert!(
        acts.iter()
            .all(|a| !matches!(a, Action::Txn(..) | Action::Spawn(..))),
        "{acts:?}"
    );
    assert!(h.logged("failure hook of tick 2027-01-15T08:00:10Z failed with exit 1"));
    let tag = h.win(S(20), 40);
    h.step(Input::ChildExited(tag, ChildStatus::Exited(0)), S(21));
    assert!(!has_spawn(&h.step(Input::ChildrenGone(tag), S(21))));
}

#[test]
fn a_hook_is_stopped_with_the_daemon_and_holds_no_run_marker() {
    let mut j = job("@every 10s");
    j.on_failure = vec!["page".into()];
    let mut h = Harness::serving(cfg(), &[("j", &j)]);
    let tag = h.win(S(10), 30);
    h.step(Input::ChildExited(tag, ChildStatus::Signaled(9)), S(11));
    let (hook, spec) = the_spawn(&h.step(Input::ChildrenGone(tag), S(11)));
    assert_eq!(env(&spec, "CONCH_STATUS"), "killed");
    assert_eq!(env(&spec, "CONCH_SIGNAL"), "9");
    h.step(Input::Spawned(hook, 2000), S(11));
    // Re-registered on a new lease: no marker for the hook's tick.
    let gone = Input::KeepAlive(Ok(KeepAliveAnswer {
        ttl: 0,
        sent_at: S(12),
    }));
    h.step(gone, S(12));
    let acts = h.step(Input::Granted(Ok(Lease { id: L2, ttl: 60 })), S(12));
    let register = acts
        .iter()
        .find_map(|a| match a {
            Action::Txn(REGISTER, t) => Some(t.clone()),
            _ => None,
        })
        .expect("register");
    assert_eq!(
        register.success.len(),
        3,
        "node, jobs and the node set only: {register:?}"
    );
    let acts = h.step(Input::Signal(15), S(13));
    assert!(acts.contains(&Action::SignalChild(hook, 15)), "{acts:?}");
}
