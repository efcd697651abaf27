//! The observer driven by hand-written answers on a virtual clock.

use super::*;
use crate::etcd::{ErrorKind, Event};

const S: fn(u64) -> Duration = Duration::from_secs;
const DIR: &str = "/conch/v1/elect/office/";

fn observer(json: bool) -> Observe {
    Observe::new(Config {
        name: "office".into(),
        dir: DIR.into(),
        json,
        dial_timeout: S(5),
        wall_offset_ms: 1_700_000_000_000,
    })
}

fn cand(lease: u32, rev: i64, host: &str) -> KeyValue {
    KeyValue {
        key: format!("{DIR}{lease:x}").into_bytes(),
        value: format!("{{\"host\":\"{host}\",\"pid\":{lease}}}").into_bytes(),
        create_revision: rev,
        mod_revision: rev,
        version: 1,
        lease: i64::from(lease),
    }
}

fn read(revision: i64, kvs: Vec<KeyValue>) -> Input {
    Input::Range(
        READ,
        Ok(RangeResult {
            revision,
            count: kvs.len() as i64,
            kvs,
        }),
    )
}

fn events(revision: i64, evs: Vec<(EventKind, KeyValue)>) -> Input {
    Input::Watch(
        WATCH,
        Ok(WatchEvent::Events {
            revision,
            events: evs
                .into_iter()
                .map(|(kind, kv)| Event {
                    kind,
                    kv,
                    prev: None,
                })
                .collect(),
        }),
    )
}

fn prints(acts: &[Action]) -> Vec<String> {
    acts.iter()
        .filter_map(|a| match a {
            Action::Print(l) => Some(l.clone()),
            _ => None,
        })
        .collect()
}

fn office_read() -> Action {
    Action::Range(READ, Range::prefix(DIR).by_create())
}

fn watch_from(rev: i64) -> Action {
    Action::Watch(WATCH, WatchSpec::prefix(DIR).from_revision(rev))
}

#[test]
fn reads_prints_the_leader_and_watches_from_the_next_revision() {
    let mut m = observer(false);
    assert_eq!(m.step(Input::Start, S(0)), [office_read()]);
    let acts = m.step(read(7, vec![cand(2, 6, "b"), cand(1, 5, "a")]), S(3));
    assert_eq!(
        acts,
        [
            Action::Print("2023-11-14T22:13:23Z  leader a pid=1 rev=5".into()),
            watch_from(8),
        ]
    );
    assert_eq!(m.deadline(), None);
}

#[test]
fn prints_only_when_the_leader_changes() {
    let mut m = observer(false);
    m.step(Input::Start, S(0));
    m.step(read(7, vec![cand(1, 5, "a")]), S(0));
    // A new candidate behind the leader: no line.
    let acts = m.step(events(8, vec![(EventKind::Put, cand(2, 8, "b"))]), S(1));
    assert!(prints(&acts).is_empty(), "{acts:?}");
    // The leader goes: its successor is printed.
    let acts = m.step(events(9, vec![(EventKind::Delete, cand(1, 5, "a"))]), S(2));
    assert_eq!(
        prints(&acts),
        ["2023-11-14T22:13:22Z  leader b pid=2 rev=8"]
    );
    // The last one goes: vacant, once.
    let acts = m.step(events(10, vec![(EventKind::Delete, cand(2, 8, "b"))]), S(3));
    assert_eq!(prints(&acts), ["2023-11-14T22:13:23Z  vacant"]);
    let acts = m.step(
        Input::Watch(WATCH, Ok(WatchEvent::Progress { revision: 11 })),
        S(4),
    );
    assert!(acts.is_empty(), "{acts:?}");
}

#[test]
fn json_lines_carry_the_holder_or_null() {
    let mut m = observer(true);
    m.step(Input::Start, S(0));
    let acts = m.step(read(7, vec![]), S(0));
    assert_eq!(
        prints(&acts),
        [r#"{"time":"2023-11-14T22:13:20Z","name":"office","leader":null}"#]
    );
    let acts = m.step(events(8, vec![(EventKind::Put, cand(1, 8, "a"))]), S(0));
    let line = &prints(&acts)[0];
    assert!(line.starts_with(r#"{"time":"2023-11-14T22:13:20Z","name":"office","leader":{"#));
    assert!(
        line.contains(r#""host":"a""#) && line.contains(r#""rev":8"#),
        "{line}"
    );
}

#[test]
fn a_compacted_or_canceled_watch_reads_again_without_repeating_the_line() {
    for end in [
        WatchEvent::Compacted {
            compact_revision: 9,
        },
        WatchEvent::Canceled {
            reason: "no leader".into(),
        },
    ] {
        let mut m = observer(false);
        m.step(Input::Start, S(0));
        m.step(read(7, vec![cand(1, 5, "a")]), S(0));
        assert_eq!(m.step(Input::Watch(WATCH, Ok(end)), S(1)), [office_read()]);
        let acts = m.step(read(12, vec![cand(1, 5, "a")]), S(1));
        assert_eq!(acts, [watch_from(13)], "same leader: no line");
    }
}

#[test]
fn a_broken_watch_fails_over_then_reads_again() {
    let mut m = observer(false);
    m.step(Input::Start, S(0));
    m.step(read(7, vec![cand(1, 5, "a")]), S(0));
    let gone = Error::new(ErrorKind::Unavailable, "watch", "stream closed");
    let acts = m.step(Input::Watch(WATCH, Err(gone)), S(1));
    assert!(
        acts.contains(&Action::Reconnect { budget: S(5) }),
        "{acts:?}"
    );
    assert_eq!(m.step(Input::Reconnected(Ok(())), S(2)), [office_read()]);
}

#[test]
fn no_member_left_or_an_unreadable_office_exits_69() {
    let mut m = observer(false);
    m.step(Input::Start, S(0));
    let e = Error::new(ErrorKind::Unavailable, "range", "down");
    let acts = m.step(Input::Range(READ, Err(e.clone())), S(0));
    assert_eq!(acts.last(), Some(&Action::Exit(69)));
    let mut m = observer(false);
    m.step(Input::Start, S(0));
    m.step(read(7, vec![]), S(0));
    let acts = m.step(Input::Reconnected(Err(e)), S(1));
    assert_eq!(acts.last(), Some(&Action::Exit(69)));
}

#[test]
fn a_fatal_signal_ends_it_like_the_shell_would_report_and_others_do_not() {
    let mut m = observer(false);
    m.step(Input::Start, S(0));
    assert!(m.step(Input::Signal(signal::SIGWINCH), S(1)).is_empty());
    assert_eq!(
        m.step(Input::Signal(signal::SIGINT), S(1)),
        [Action::Exit(130)]
    );
}

#[test]
fn a_line_nobody_reads_ends_it_with_141() {
    let mut m = observer(false);
    m.step(Input::Start, S(0));
    m.step(read(7, vec![]), S(0));
    assert_eq!(
        m.step(Input::Signal(signal::SIGPIPE), S(1)),
        [Action::Exit(141)]
    );
}

#[test]
fn a_stepped_wall_clock_moves_the_printed_time() {
    let mut m = observer(false);
    m.step(Input::Start, S(0));
    m.step(Input::ClockStep(1_700_000_060_000), S(0));
    let acts = m.step(read(7, vec![]), S(0));
    assert_eq!(prints(&acts), ["2023-11-14T22:14:20Z  vacant"]);
}
