//! One harness for driving any machine in unit tests: a virtual clock that
//! never goes back, log lines split from what is done, and a drive that
//! fires the machine's own timers until it is quiet.

use std::time::Duration;

use super::hold::Common;
use crate::etcd::{Error, ErrorKind, Event, EventKind, KeyValue, Lease, Op, Txn, WatchEvent};
use crate::kit::machine::{Action, Input, Machine, Tag};
use crate::kit::wait::Wait;

/// Seconds and milliseconds on the virtual clock.
pub const S: fn(u64) -> Duration = Duration::from_secs;
pub const MS: fn(u64) -> Duration = Duration::from_millis;

pub struct Harness<M> {
    pub m: M,
    pub now: Duration,
}

impl<M: Machine> Harness<M> {
    pub fn of(m: M) -> Harness<M> {
        Harness {
            m,
            now: Duration::ZERO,
        }
    }

    /// One input at `now`: the actions, and the log lines apart.
    pub fn step_logged(&mut self, input: Input, now: Duration) -> (Vec<Action>, Vec<String>) {
        assert!(now >= self.now, "the clock never goes back");
        self.now = now;
        let all = self.m.step(input, now);
        let logs = all
            .iter()
            .filter_map(|a| match a {
                Action::Log(_, m) => Some(m.clone()),
                _ => None,
            })
            .collect();
        let acts = all
            .into_iter()
            .filter(|a| !matches!(a, Action::Log(..)))
            .collect();
        (acts, logs)
    }

    /// One input at `now`; the actions without the log lines.
    pub fn step(&mut self, input: Input, now: Duration) -> Vec<Action> {
        self.step_logged(input, now).0
    }

    pub fn timer(&mut self, now: Duration) -> Vec<Action> {
        self.step(Input::Timer, now)
    }

    pub fn deadline(&self) -> Option<Duration> {
        self.m.deadline()
    }

    /// Starts under `lease`, leaves the create request (`tag`) unanswered
    /// once, and checks that the retry 250 ms later is the same create.
    pub fn create_retried(&mut self, tag: Tag, lease: i64) {
        self.step(Input::Start, self.now);
        let acts = self.step(Input::Granted(Ok(Lease { id: lease, ttl: 10 })), self.now);
        let Action::Txn(t, first) = &acts[1] else {
            panic!("{acts:?}");
        };
        assert_eq!(*t, tag);
        let err = Error::new(ErrorKind::Unavailable, "txn", "no leader");
        let at = self.now + Duration::from_millis(100);
        assert!(self.step(Input::Txn(tag, Err(err)), at).is_empty());
        let retry_at = at + Duration::from_millis(250);
        assert_eq!(self.deadline(), Some(retry_at));
        assert!(self.timer(retry_at - Duration::from_millis(1)).is_empty());
        let acts = self.timer(retry_at);
        let [Action::Txn(t, again)] = &acts[..] else {
            panic!("{acts:?}");
        };
        assert_eq!(*t, tag);
        assert_eq!(
            (&again.compare, &again.failure),
            (&first.compare, &first.failure)
        );
        assert_eq!(again.success[1..], first.success[1..]);
        assert_eq!(
            put_of(first),
            put_of(again),
            "the same key under the same lease"
        );
    }

    /// Fires every timer the machine asks for up to `until`, nothing else
    /// happening: all it did, in order.
    pub fn drive_until_quiet(&mut self, until: Duration) -> Vec<Action> {
        let mut acts = Vec::new();
        while let Some(at) = self.deadline().filter(|&d| d <= until) {
            let at = at.max(self.now);
            acts.extend(self.timer(at));
        }
        acts
    }
}

/// A hold's settings for tests: a 10 s lease, 3 s kill-after, no limit
/// on the wait, no `--restart`.
pub fn common(name: &str, argv: &[&str]) -> Common {
    Common {
        name: name.into(),
        ttl: Duration::from_secs(10),
        kill_after: Duration::from_secs(3),
        wait: Wait::Forever,
        restart: false,
        argv: argv.iter().map(|a| a.into()).collect(),
        host: "h1".into(),
        pid: 42,
        wall_offset_ms: 1_700_000_000_000,
        seed: 7,
    }
}

/// The key and lease of a create's put.
fn put_of(t: &Txn) -> (&[u8], i64) {
    match t.success.first() {
        Some(Op::Put { key, lease, .. }) => (key.as_slice(), *lease),
        other => panic!("no put first: {other:?}"),
    }
}

/// For property worlds: the answer to an unconfirmed spawn, a failure one
/// time in four, and what it means for the world's child.
pub fn confirm_spawn(p: u8, running: &mut bool, open: &mut bool, tree: &mut bool) -> Input {
    if p.is_multiple_of(4) {
        (*open, *tree) = (false, false);
        Input::SpawnFailed(0, 127, "not found".into())
    } else {
        *running = true;
        Input::Spawned(0, 100)
    }
}

/// Deletes of `keys` seen on the watch `tag`, in one batch at `revision`.
pub fn deletes(tag: Tag, keys: &[String], revision: i64) -> Input {
    let events = keys
        .iter()
        .map(|k| Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: k.clone().into_bytes(),
                mod_revision: revision,
                ..KeyValue::default()
            },
            prev: None,
        })
        .collect();
    Input::Watch(tag, Ok(WatchEvent::Events { revision, events }))
}

/// The child's environment is exactly `want`, in order.
pub fn assert_env(env: &[(String, String)], want: &[(&str, &str)]) {
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(env, want);
}
