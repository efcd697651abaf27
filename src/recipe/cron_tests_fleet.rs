//! Which daemon of a fleet claims a tick, and when: rank 0 at the tick,
//! the next ranks after their stagger and only if a read shows the tick
//! unclaimed; daemons outside the job's placement never.

use super::*;
use crate::recipe::cron::rank::{rank, rank_key, STAGGER_MS};

/// The daemons `ids` (with `labels`) as seen on the node watch.
fn nodes_seen(ids: &[&str], labels: &[(&str, &str)], revision: i64) -> Input {
    let node = Node {
        host: "h".into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Node::default()
    };
    let events = ids
        .iter()
        .map(|id| Event {
            kind: EventKind::Put,
            kv: KeyValue {
                key: schema().cron_node_key(id).into_bytes(),
                value: node.to_json().into_bytes(),
                mod_revision: revision,
                ..KeyValue::default()
            },
            prev: None,
        })
        .collect();
    Input::Watch(WATCH_NODES, Ok(WatchEvent::Events { revision, events }))
}

/// Another daemon's ID that ranks `NODE` at `want` for the job's tick,
/// with `NODE` and one other daemon.
fn peers_ranking_us(want: usize, job: &str, tick: i64) -> [String; 2] {
    let names: Vec<String> = (0..200).map(|i| format!("peer{i}")).collect();
    for a in &names {
        for b in &names {
            let set = [NODE, a.as_str(), b.as_str()];
            if a != b && rank(NODE, set.into_iter(), &rank_key(job, 1), tick) == want {
                return [a.clone(), b.clone()];
            }
        }
    }
    panic!("no peers rank {NODE} at {want}");
}

fn check_of(acts: &[Action]) -> Option<&Range> {
    acts.iter().find_map(|a| match a {
        Action::Range(CHECK, r) => Some(r),
        _ => None,
    })
}

fn read(kvs: Vec<KeyValue>) -> Input {
    Input::Range(
        CHECK,
        Ok(RangeResult {
            revision: 30,
            count: kvs.len() as i64,
            kvs,
        }),
    )
}

/// A daemon serving `backup` (`@every 10s`) among `peers`.
fn among(peers: &[String], j: &Job) -> Harness {
    let mut h = Harness::serving(cfg(), &[("backup", j)]);
    let ids: Vec<&str> = peers.iter().map(String::as_str).chain([NODE]).collect();
    assert!(h.step(nodes_seen(&ids, &[], 21), S(1)).is_empty());
    h
}

#[test]
fn the_first_ranked_claims_at_the_tick_alone() {
    let tick = T0 + 10;
    let mut h = among(&peers_ranking_us(0, "backup", tick), &job("@every 10s"));
    let acts = h.run_to(S(10));
    assert_eq!(claimed(&acts), [("backup".to_string(), tick)]);
    assert!(check_of(&acts).is_none(), "the first claims without a read");
}

#[test]
fn the_second_ranked_reads_at_its_turn_and_claims_only_an_unclaimed_tick() {
    let tick = T0 + 10;
    let peers = peers_ranking_us(1, "backup", tick);
    let turn = MS(10_000 + STAGGER_MS as u64);
    let mut h = among(&peers, &job("@every 10s"));
    assert!(h.run_to(S(10)).is_empty(), "nothing at the tick itself");
    assert_eq!(h.m.deadline(), Some(turn));
    assert!(h.run_to(turn - MS(1)).is_empty());
    let acts = h.run_to(turn);
    assert!(claims(&acts).is_empty(), "a read, not a write");
    assert_eq!(check_of(&acts), Some(&Range::key(fire("backup", tick))));
    // The first ranked was dead: the tick is claimed one stagger late.
    let acts = h.step(read(vec![]), turn + MS(3));
    assert_eq!(claimed(&acts), [("backup".to_string(), tick)]);
    assert!(h.logged("unclaimed at this daemon's turn"));

    // Healthy: its fire key is read back and this daemon writes nothing.
    let mut h = among(&peers, &job("@every 10s"));
    check_of(&h.run_to(turn)).expect("a read");
    let taken = fire_kv("backup", tick, &other_node(0), 25);
    assert!(h.step(read(vec![taken]), turn + MS(3)).is_empty());
}

#[test]
fn a_failed_read_claims_anyway_since_the_claim_decides() {
    let tick = T0 + 10;
    let mut h = among(&peers_ranking_us(2, "backup", tick), &job("@every 10s"));
    let turn = MS(10_000 + 2 * STAGGER_MS as u64);
    check_of(&h.run_to(turn)).expect("the third reads at twice the stagger");
    let e = Error::new(crate::etcd::ErrorKind::Unavailable, "range", "no leader");
    let acts = h.step(Input::Range(CHECK, Err(e)), turn + MS(3));
    assert_eq!(claimed(&acts), [("backup".to_string(), tick)]);
}

#[test]
fn ranks_past_the_third_never_act_and_a_departed_peer_moves_us_up() {
    let tick = T0 + 10;
    let job_ = job("@every 10s");
    // Ranked fourth among five: neither a read nor a claim for that tick.
    let names: Vec<String> = (0..400).map(|i| format!("p{i}")).collect();
    let ahead: Vec<String> = names
        .iter()
        .filter(|n| {
            rank(
                NODE,
                [NODE, n.as_str()].into_iter(),
                &rank_key("backup", 1),
                tick,
            ) == 1
        })
        .take(3)
        .cloned()
        .collect();
    let mut h = among(&ahead, &job_);
    // It does not even wake for that tick: a tick wakes a few daemons, not
    // the fleet.
    let wake = h.m.deadline().expect("a deadline");
    assert!(wake > MS(10_500), "woke at {wake:?}");
    let acts = h.run_to(S(15));
    assert!(
        claims(&acts).is_empty() && check_of(&acts).is_none(),
        "{acts:?}"
    );
    assert!(!h.logged("missed"), "passed over, not missed");
    // The three before it leave (their leases expired): the next tick is
    // this daemon's alone, claimed at its instant.
    let keys: Vec<String> = ahead.iter().map(|n| schema().cron_node_key(n)).collect();
    h.step(
        crate::recipe::harness::deletes(WATCH_NODES, &keys, 40),
        S(15),
    );
    let acts = h.run_to(S(20));
    assert_eq!(claimed(&acts), [("backup".to_string(), T0 + 20)]);
}

#[test]
fn a_daemon_outside_the_placement_never_claims_and_one_inside_does() {
    let mut j = job("@every 10s");
    j.placement = vec![("role".into(), "db".into())];
    let mut h = Harness::serving(cfg(), &[("backup", &j)]);
    let acts = h.run_to(S(60));
    assert!(
        claims(&acts).is_empty() && check_of(&acts).is_none(),
        "{acts:?}"
    );
    assert!(h.logged("placed elsewhere"));

    // Labelled role=db (and more), alone among web daemons: it claims
    // every tick, since the others do not count in the ranking.
    let cfg = Config {
        labels: vec![("dc".into(), "x".into()), ("role".into(), "db".into())],
        ..cfg()
    };
    let mut h = Harness::serving(cfg, &[("backup", &j)]);
    let peers = ["w1", "w2", "w3", "w4", "w5"];
    h.step(nodes_seen(&peers, &[("role", "web")], 21), S(1));
    for k in 1..=6 {
        let acts = h.run_to(S(10 * k));
        assert_eq!(claimed(&acts), [("backup".to_string(), T0 + 10 * k as i64)]);
        h.step(lost(30, false, None), S(10 * k));
    }
}

#[test]
fn the_node_set_is_read_at_registration_and_watched_from_the_next_revision() {
    let mut h = Harness::new(cfg());
    h.step(Input::Start, S(0));
    h.step(Input::Granted(Ok(Lease { id: L1, ttl: 60 })), S(0));
    let node = |id: &str| KeyValue {
        key: schema().cron_node_key(id).into_bytes(),
        value: Node::default().to_json().into_bytes(),
        ..KeyValue::default()
    };
    let garbage = KeyValue {
        value: b"not json".to_vec(),
        ..node("junk")
    };
    let nodes = RangeResult {
        revision: 20,
        count: 3,
        kvs: vec![node("n1"), node("n2"), garbage],
    };
    let jobs = RangeResult {
        revision: 20,
        count: 0,
        kvs: vec![],
    };
    let answer = TxnResult {
        revision: 20,
        succeeded: true,
        results: vec![OpResult::Put, OpResult::Range(jobs), OpResult::Range(nodes)],
    };
    let acts = h.step(Input::Txn(REGISTER, Ok(answer)), S(0));
    let spec = WatchSpec::prefix(schema().cron_node_dir()).from_revision(21);
    assert!(acts.contains(&Action::Watch(WATCH_NODES, spec)), "{acts:?}");
    assert_eq!(h.m.nodes.keys().collect::<Vec<_>>(), ["n1", "n2"]);
    // A compacted watch reads the node set again.
    let acts = h.step(
        Input::Watch(
            WATCH_NODES,
            Ok(WatchEvent::Compacted {
                compact_revision: 30,
            }),
        ),
        S(1),
    );
    assert_eq!(
        acts,
        [Action::Range(
            NODES,
            Range::prefix(schema().cron_node_dir())
        )]
    );
}

#[test]
fn among_ten_a_daemon_acts_on_exactly_its_turns_and_wakes_for_nothing_else() {
    // Ten daemons, a job every second: most ticks are no turn of this one,
    // and passing them over must not make it sleep through its turns.
    let peers: Vec<String> = (1..10).map(|i| format!("n{}", i + 1)).collect();
    let mut h = among(&peers, &job("@every 1s"));
    let ids: Vec<&str> = peers.iter().map(String::as_str).chain([NODE]).collect();
    let my_rank = |tick: i64| rank(NODE, ids.iter().copied(), &rank_key("backup", 1), tick);
    let (mut claimed_at, mut read_at, mut wakes) = (Vec::new(), Vec::new(), 0);
    while let Some(at) = h.m.deadline().filter(|d| *d <= S(120)) {
        let at = at.max(h.now);
        wakes += 1;
        let acts = h.step(Input::Timer, at);
        for (_, tick) in claimed(&acts) {
            claimed_at.push((tick, at));
            h.step(lost(30, false, None), at);
        }
        if let Some(r) = check_of(&acts) {
            let key = String::from_utf8(r.key.clone()).expect("utf-8");
            let tick = parse_tick(key.rsplit('/').next().expect("tick")).expect("tick");
            read_at.push((tick, at));
            let taken = fire_kv("backup", tick, &other_node(0), 25);
            h.step(read(vec![taken]), at);
        }
    }
    let ticks = (T0 + 2)..=(T0 + 119);
    let firsts: Vec<i64> = ticks.clone().filter(|t| my_rank(*t) == 0).collect();
    let backups: Vec<i64> = ticks.filter(|t| (1..=2).contains(&my_rank(*t))).collect();
    assert!(
        firsts.len() >= 5 && backups.len() >= 10,
        "{firsts:?} {backups:?}"
    );
    let wall = |(t, at): &(i64, Duration)| (*t, at.as_millis() as i64 + T0 * 1000 - t * 1000);
    let claimed_late: Vec<(i64, i64)> = claimed_at.iter().map(wall).collect();
    let read_late: Vec<(i64, i64)> = read_at.iter().map(wall).collect();
    let want_claims: Vec<(i64, i64)> = firsts.iter().map(|t| (*t, 0)).collect();
    let want_reads: Vec<(i64, i64)> = backups
        .iter()
        .map(|t| (*t, my_rank(*t) as i64 * STAGGER_MS))
        .collect();
    assert_eq!(
        claimed_late, want_claims,
        "claims at the tick of each first rank"
    );
    assert_eq!(read_late, want_reads, "reads at each backup's turn");
    // Woken for its turns (and a keep-alive now and then), not every tick.
    assert!(wakes < firsts.len() + backups.len() + 20, "{wakes} wakes");
}
