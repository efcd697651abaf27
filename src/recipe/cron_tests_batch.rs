//! The jobs of one claim group due at one tick: claimed in one request,
//! each claim decided alone; their results recorded in one request.

use super::*;

/// The transactions of one request: those of a batch, or itself.
pub(super) fn unbatch(t: &Txn) -> Vec<&Txn> {
    let nested: Vec<&Txn> = t
        .success
        .iter()
        .filter_map(|op| match op {
            Op::Txn(t) => Some(t),
            _ => None,
        })
        .collect();
    if t.compare.is_empty() && !nested.is_empty() && nested.len() == t.success.len() {
        nested
    } else {
        vec![t]
    }
}

/// The transaction result an answer carries.
pub(super) fn answered(input: Input) -> TxnResult {
    match input {
        Input::Txn(_, Ok(t)) => t,
        other => panic!("not a txn answer: {other:?}"),
    }
}

/// The answer to a batch of requests, from the answers of its parts.
pub(super) fn batch_answer(revision: i64, parts: Vec<TxnResult>) -> TxnResult {
    TxnResult {
        revision,
        succeeded: true,
        results: parts.into_iter().map(OpResult::Txn).collect(),
    }
}

fn spawns(acts: &[Action]) -> Vec<(Tag, SpawnSpec)> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Spawn(tag, spec) => Some((*tag, spec.clone())),
            _ => None,
        })
        .collect()
}

fn requests(acts: &[Action], tag: Tag) -> Vec<&Txn> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Txn(t, txn) if *t == tag => Some(txn),
            _ => None,
        })
        .collect()
}

#[test]
fn two_jobs_due_together_are_claimed_in_one_request_and_each_decided_alone() {
    let j = job("@every 10s");
    let mut h = Harness::serving(cfg(), &[("a", &j), ("b", &j)]);
    let acts = h.run_to(S(10));
    let [batch] = requests(&acts, CLAIM)[..] else {
        panic!("not one claim request: {acts:?}");
    };
    let parts = unbatch(batch);
    assert_eq!(parts.len(), 2, "{batch:?}");
    assert_eq!(
        claimed(&acts),
        [("a".to_string(), T0 + 10), ("b".to_string(), T0 + 10)]
    );
    // a's claim wins, b's finds another daemon's fire key.
    let answer = batch_answer(
        91,
        vec![
            answered(won(0)),
            answered(lost(
                0,
                false,
                Some(fire_kv("b", T0 + 10, &other_node(0), 90)),
            )),
        ],
    );
    let acts = h.step(Input::Txn(CLAIM, Ok(answer)), MS(10_010));
    let started = spawns(&acts);
    assert_eq!(started.len(), 1, "{acts:?}");
    let (_, spec) = &started[0];
    assert_eq!(env(spec, "CONCH_JOB"), "a");
    assert_eq!(env(spec, "CONCH_REV"), "91", "the request's revision");
}

#[test]
fn a_batch_lost_in_transit_is_sent_again_for_each_of_its_claims() {
    let j = job("@every 10s");
    let mut h = Harness::serving(cfg(), &[("a", &j), ("b", &j)]);
    let acts = h.run_to(S(10));
    assert_eq!(requests(&acts, CLAIM).len(), 1);
    let err = Error::new(
        crate::etcd::ErrorKind::Unavailable,
        "txn",
        "transport error",
    );
    h.step(Input::Txn(CLAIM, Err(err)), MS(10_050));
    let acts = h.step(Input::Timer, MS(10_200));
    assert_eq!(
        claimed(&acts),
        [("a".to_string(), T0 + 10), ("b".to_string(), T0 + 10)],
        "both again: {acts:?}"
    );
}

#[test]
fn runs_that_end_together_record_their_results_in_one_request() {
    let j = job("@every 10s");
    let mut h = Harness::serving(cfg(), &[("a", &j), ("b", &j)]);
    h.run_to(S(10));
    let answer = batch_answer(91, vec![answered(won(0)), answered(won(0))]);
    let acts = h.step(Input::Txn(CLAIM, Ok(answer)), MS(10_010));
    let tags: Vec<Tag> = spawns(&acts).iter().map(|(t, _)| *t).collect();
    let [ta, tb] = tags[..] else {
        panic!("two runs: {acts:?}");
    };
    for tag in [ta, tb] {
        h.step(Input::Spawned(tag, 1000 + u32::from(tag)), MS(10_020));
    }
    for tag in [ta, tb] {
        h.step(Input::ChildExited(tag, ChildStatus::Exited(0)), MS(10_030));
    }
    let acts = h.step(Input::ChildrenGone(ta), MS(10_030));
    assert!(
        requests(&acts, FINISH).is_empty(),
        "a waits for b: {acts:?}"
    );
    let acts = h.step(Input::ChildrenGone(tb), MS(10_031));
    let [batch] = requests(&acts, FINISH)[..] else {
        panic!("not one result request: {acts:?}");
    };
    let runs: Vec<Op> = unbatch(batch)
        .iter()
        .map(|t| t.success[1].clone())
        .collect();
    assert_eq!(
        runs,
        [
            Op::delete(tick_key(TickKind::Run, "a", T0 + 10)),
            Op::delete(tick_key(TickKind::Run, "b", T0 + 10)),
        ]
    );
    let answer = batch_answer(
        95,
        vec![
            answered(finished(95, "a", &[T0 + 10])),
            answered(finished(95, "b", &[T0 + 10])),
        ],
    );
    h.step(Input::Txn(FINISH, Ok(answer)), MS(10_040));
    assert!(h.m.finishes.is_empty() && h.m.unrecorded.is_empty());
}

#[test]
fn a_result_waits_for_others_at_most_its_hold() {
    let mut h = Harness::serving(cfg(), &[("j", &allow(job("@every 10s")))]);
    let a = h.win(S(10), 77);
    let b = h.win(S(20), 88);
    h.step(Input::ChildExited(b, ChildStatus::Exited(0)), S(21));
    assert!(h.step(Input::ChildrenGone(b), S(21)).is_empty());
    assert_eq!(
        h.m.deadline(),
        Some(S(21) + FINISH_HOLD),
        "a wake-up to send it"
    );
    let acts = h.step(Input::Timer, S(21) + FINISH_HOLD);
    assert_eq!(requests(&acts, FINISH).len(), 1, "alone, a still running");
    assert!(h.m.runs.contains_key(&a));
}

#[test]
fn two_ticks_of_one_job_are_never_in_one_request() {
    // Woken late, two ticks of each job are due in one step. etcd checks a
    // request's compares before applying any of it, so T0+20's overlap
    // compare must come in a request after the one that puts T0+10's run
    // marker, or both would run at once under --overlap skip.
    let j = job("@every 10s");
    let mut h = Harness::serving(cfg(), &[("a", &j), ("b", &j)]);
    let acts = h.step(Input::Timer, S(20));
    let per_request: Vec<Vec<(String, i64)>> = requests(&acts, CLAIM)
        .into_iter()
        .map(|t| unbatch(t).into_iter().map(claim_target).collect())
        .collect();
    let at = |name: &str, tick| (name.to_string(), tick);
    assert_eq!(
        per_request,
        [
            vec![at("a", T0 + 10), at("b", T0 + 10)],
            vec![at("a", T0 + 20), at("b", T0 + 20)],
        ]
    );
}
