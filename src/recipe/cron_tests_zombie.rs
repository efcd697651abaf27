//! Zombie runs: when a daemon's node key goes, the survivor ranked first
//! for it reads the run markers as they were just before, records each of
//! the gone daemon's ticks create-only as `zombie`, and runs the hook once.

use super::*;
use crate::recipe::cron::rank::rank;

fn node_event(kind: EventKind, id: &str, revision: i64) -> Input {
    let value = match kind {
        EventKind::Put => Node::default().to_json().into_bytes(),
        EventKind::Delete => Vec::new(),
    };
    let events = vec![Event {
        kind,
        kv: KeyValue {
            key: schema().cron_node_key(id).into_bytes(),
            value,
            mod_revision: revision,
            ..KeyValue::default()
        },
        prev: None,
    }];
    Input::Watch(WATCH_NODES, Ok(WatchEvent::Events { revision, events }))
}

/// A gone daemon that ranks `NODE` at `want` among `NODE` and "other".
fn gone_ranking_us(want: usize) -> String {
    (0..500)
        .map(|i| format!("gone{i}"))
        .find(|g| rank(NODE, [NODE, "other"].into_iter(), g, -1) == want)
        .expect("a gone daemon ranking us")
}

fn hooked_job() -> Job {
    let mut j = job("@every 10s");
    j.on_failure = vec!["page".into(), "ops".into()];
    j
}

fn marker(name: &str, tick: i64, node: &str) -> KeyValue {
    let claim = Claim {
        node: node.into(),
        at_ms: (tick * 1000) as u64,
        ..Claim::default()
    };
    KeyValue {
        key: schema()
            .cron_tick_key(TickKind::Run, name, tick)
            .into_bytes(),
        value: claim.to_json().into_bytes(),
        ..KeyValue::default()
    }
}

#[test]
fn the_first_ranked_survivor_records_the_gone_daemons_ticks_and_runs_the_hook_once() {
    let gone = gone_ranking_us(0);
    let mut h = Harness::serving(cfg(), &[("backup", &hooked_job())]);
    h.step(node_event(EventKind::Put, "other", 20), S(1));
    h.step(node_event(EventKind::Put, &gone, 21), S(1));
    let acts = h.step(node_event(EventKind::Delete, &gone, 40), S(2));
    let read = acts
        .iter()
        .find_map(|a| match a {
            Action::Range(ZOMBIES, r) => Some(r.clone()),
            _ => None,
        })
        .expect("a read of the run markers");
    assert_eq!(read.revision, 39, "as they were before the lease went");
    assert_eq!(read.key, schema().cron_kind_dir(TickKind::Run).into_bytes());
    // Its marker, and another daemon's that must be left alone.
    let kvs = vec![
        marker("backup", T0, &gone),
        marker("backup", T0 + 10, "other"),
    ];
    let acts = h.step(
        Input::Range(
            ZOMBIES,
            Ok(RangeResult {
                revision: 39,
                count: 2,
                kvs,
            }),
        ),
        S(2),
    );
    let txns: Vec<&Txn> = acts
        .iter()
        .filter_map(|a| match a {
            Action::Txn(ZOMBIE, t) => Some(t),
            _ => None,
        })
        .collect();
    let [t] = txns[..] else {
        panic!("one zombie record: {acts:?}");
    };
    let s = schema();
    let result_key = s.cron_tick_key(TickKind::Result, "backup", T0);
    assert_eq!(
        t.compare,
        [
            Compare::absent(result_key.clone()),
            Compare::absent(s.cron_tick_key(TickKind::Run, "backup", T0)),
        ],
        "create-only, and never over a runner that put its marker back"
    );
    let Op::Put { key, value, .. } = &t.success[0] else {
        panic!("{t:?}");
    };
    assert_eq!(key, &result_key.into_bytes());
    let r = RunResult::from_json(value).expect("a result");
    assert_eq!(
        (r.outcome, r.node.as_str()),
        (Outcome::Zombie, gone.as_str())
    );
    // Won: the hook runs here, once, naming the gone runner.
    let won = TxnResult {
        revision: 41,
        succeeded: true,
        results: vec![],
    };
    let acts = h.step(Input::Txn(ZOMBIE, Ok(won)), S(2));
    let (_, spec) = the_spawn(&acts);
    assert_eq!(spec.argv, ["page", "ops"].map(std::ffi::OsString::from));
    assert_eq!(env(&spec, "CONCH_STATUS"), "zombie");
    assert_eq!(env(&spec, "CONCH_NODE"), gone);
    assert!(spec
        .env
        .iter()
        .all(|(k, _)| k != "CONCH_EXIT" && k != "CONCH_SIGNAL"));
    // Lost (another daemon recorded it, or the runner came back): nothing.
    let mut h2 = Harness::serving(cfg(), &[("backup", &hooked_job())]);
    h2.step(node_event(EventKind::Put, "other", 20), S(1));
    h2.step(node_event(EventKind::Put, &gone, 21), S(1));
    h2.step(node_event(EventKind::Delete, &gone, 40), S(2));
    let kvs = vec![marker("backup", T0, &gone)];
    let read = Input::Range(
        ZOMBIES,
        Ok(RangeResult {
            revision: 39,
            count: 1,
            kvs,
        }),
    );
    h2.step(read, S(2));
    let lost = TxnResult {
        revision: 41,
        succeeded: false,
        results: vec![],
    };
    assert!(!has_spawn(&h2.step(Input::Txn(ZOMBIE, Ok(lost)), S(2))));
}

#[test]
fn only_the_first_ranked_survivor_looks_and_a_compacted_history_is_said() {
    let gone = gone_ranking_us(1);
    let mut h = Harness::serving(cfg(), &[("backup", &hooked_job())]);
    h.step(node_event(EventKind::Put, "other", 20), S(1));
    h.step(node_event(EventKind::Put, &gone, 21), S(1));
    let acts = h.step(node_event(EventKind::Delete, &gone, 40), S(2));
    assert!(
        acts.iter().all(|a| !matches!(a, Action::Range(ZOMBIES, _))),
        "the second-ranked survivor leaves it to the first: {acts:?}"
    );
    let first = gone_ranking_us(0);
    h.step(node_event(EventKind::Put, &first, 41), S(3));
    h.step(node_event(EventKind::Delete, &first, 50), S(3));
    let compacted = Error {
        kind: crate::etcd::ErrorKind::Compacted,
        op: "range",
        detail: "compacted".into(),
    };
    h.step(Input::Range(ZOMBIES, Err(compacted)), S(3));
    assert!(h.logged("etcd compacted that history"));
}
