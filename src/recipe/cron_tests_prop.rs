//! A property over random input sequences (clock steps included): never
//! two claims of one (job, tick), never a Spawn of a tag still running, no
//! Exit while a child may be alive, and no action after Exit.

use super::batch::{answered, batch_answer, unbatch};
use super::*;
use quickcheck::quickcheck;
use std::collections::{BTreeMap, HashSet};

const SCHEDULES: [&str; 4] = ["@every 5s", "@every 10s", "@every 7s", "* * * * *"];

/// What the environment owes the machine, and what the property tracks.
#[derive(Default)]
struct World {
    now: Duration,
    rev: i64,
    lease: i64,
    grant: bool,
    register: usize,
    /// Outstanding claim requests, with the value each of their claims
    /// wrote to its fire key (several when batched).
    claims: VecDeque<Vec<Vec<u8>>>,
    /// Outstanding result requests, with how many results each carries.
    finishes: VecDeque<usize>,
    revoke: bool,
    watching: bool,
    /// The job store: name -> (definition, mod revision).
    store: BTreeMap<String, (String, i64)>,
    claimed: HashSet<(String, i64)>,
    /// Spawned, not yet confirmed / running / exited but not gone.
    unconfirmed: Vec<Tag>,
    alive: Vec<Tag>,
    draining: Vec<Tag>,
    spawns: usize,
    exited: bool,
}

fn pick(v: &mut Vec<Tag>, p: u8) -> Option<Tag> {
    (!v.is_empty()).then(|| v.remove(usize::from(p) % v.len()))
}

impl World {
    fn job_event(&mut self, p: u8, delete: bool) -> Option<Input> {
        let name = ["a", "b", "c"][usize::from(p % 3)].to_string();
        self.rev += 1;
        let input = if delete {
            self.store.remove(&name)?;
            delete_event(&name, self.rev)
        } else {
            let mut j = job(SCHEDULES[usize::from(p / 3 % 4)]);
            j.overlap_allow = p & 16 != 0;
            self.store.insert(name.clone(), (j.to_json(), self.rev));
            put_event(&name, &j, self.rev)
        };
        // Without a watch the change is seen by the next register read.
        self.watching.then_some(input)
    }

    /// The input for one letter, or None when it does not apply now.
    fn input(&mut self, letter: u8, p: u8) -> Option<Input> {
        self.rev += 1;
        let rev = self.rev;
        Some(match letter % 14 {
            0 | 1 => {
                self.now += MS(u64::from(p % 40) * 500);
                Input::Timer
            }
            2 => {
                let values = self.claims.pop_front()?;
                let answer = |i: usize, value: &[u8]| match (usize::from(p) + i) % 5 {
                    0 | 1 => won(rev),
                    2 => lost(rev, false, Some(fire_kv("x", 0, &other_node(0), rev))),
                    3 => lost(rev, true, Some(fire_kv("x", 0, value, rev))),
                    // A retried claim that finds its own first attempt.
                    _ => lost(rev, false, Some(fire_kv("x", 0, value, rev - 1))),
                };
                if let [value] = &values[..] {
                    answer(0, value)
                } else {
                    let parts = values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| answered(answer(i, v)))
                        .collect();
                    Input::Txn(CLAIM, Ok(batch_answer(rev, parts)))
                }
            }
            3 => {
                let tag = pick(&mut self.alive, p)?;
                // It started, whether or not that was reported yet.
                self.unconfirmed.retain(|t| *t != tag);
                self.draining.push(tag);
                let st = [
                    ChildStatus::Exited(i32::from(p % 3)),
                    ChildStatus::Signaled(9),
                ];
                Input::ChildExited(tag, st[usize::from(p / 3 % 2)])
            }
            4 => Input::ChildrenGone(pick(&mut self.draining, p)?),
            5 => self.job_event(p, false)?,
            6 if p.is_multiple_of(2) => self.job_event(p, true)?,
            7 if p.is_multiple_of(3) => Input::KeepAlive(Ok(KeepAliveAnswer {
                ttl: 0,
                sent_at: self.now,
            })),
            8 if p.is_multiple_of(5) => Input::Signal(15),
            9 if std::mem::take(&mut self.grant) => {
                self.lease += 1;
                Input::Granted(Ok(Lease {
                    id: self.lease,
                    ttl: 60,
                }))
            }
            9 if self.register > 0 => {
                self.register -= 1;
                let kvs = self
                    .store
                    .iter()
                    .map(|(n, (j, r))| job_kv(n, j, *r))
                    .collect();
                registered(rev, kvs)
            }
            10 if !self.finishes.is_empty() => {
                let parts = self.finishes.pop_front()?;
                let ticks: Vec<i64> = (0..i64::from(p % 6)).map(|i| T0 + i).collect();
                if parts == 1 {
                    finished(rev, "a", &ticks)
                } else {
                    let each = (0..parts)
                        .map(|_| answered(finished(rev, "a", &ticks)))
                        .collect();
                    Input::Txn(FINISH, Ok(batch_answer(rev, each)))
                }
            }
            11 if std::mem::take(&mut self.revoke) => Input::Revoked(Ok(())),
            12 => {
                let tag = pick(&mut self.unconfirmed, p)?;
                if p.is_multiple_of(5) {
                    self.alive.retain(|t| *t != tag);
                    Input::SpawnFailed(tag, 127, "not found".into())
                } else {
                    Input::Spawned(tag, 1000)
                }
            }
            // The wall clock stepped, up to 20 s either way.
            13 => Input::ClockStep(T0 * 1000 + (i64::from(p) - 128) * 160),
            _ => return None,
        })
    }

    /// Checks the actions and learns what is owed.
    fn saw(&mut self, acts: &[Action]) {
        for a in acts {
            assert!(!self.exited, "an action after Exit: {a:?}");
            match a {
                Action::Grant { .. } => self.grant = true,
                Action::Txn(REGISTER, _) => self.register += 1,
                Action::Txn(CLAIM, t) => {
                    let mut values = Vec::new();
                    for t in unbatch(t) {
                        let target = claim_target(t);
                        assert!(
                            self.claimed.insert(target.clone()),
                            "claimed twice: {target:?}"
                        );
                        values.push(fire_value(t));
                    }
                    self.claims.push_back(values);
                }
                Action::Txn(FINISH, t) => self.finishes.push_back(unbatch(t).len()),
                Action::Revoke(_) => self.revoke = true,
                Action::Watch(WATCH_JOBS, _) => self.watching = true,
                Action::Unwatch(WATCH_JOBS) => self.watching = false,
                Action::Spawn(tag, _) => {
                    let busy = self.alive.contains(tag) || self.draining.contains(tag);
                    assert!(!busy, "Spawn of tag {tag}, still running");
                    self.alive.push(*tag);
                    self.unconfirmed.push(*tag);
                    self.spawns += 1;
                }
                Action::Exit(_) => {
                    assert!(
                        self.alive.is_empty() && self.draining.is_empty(),
                        "Exit while a child may be alive"
                    );
                    self.exited = true;
                }
                _ => {}
            }
        }
    }
}

/// Runs the letters from a daemon serving job `a`: the number of Spawns
/// seen, and whether it exited.
fn run(letters: Vec<(u8, u8)>) -> (usize, bool) {
    let mut w = World {
        lease: L1,
        rev: 20,
        ..World::default()
    };
    let j = job("@every 5s");
    w.store.insert("a".into(), (j.to_json(), 5));
    let mut h = Harness::serving(cfg(), &[("a", &j)]);
    w.watching = true;
    for (letter, p) in letters {
        let Some(input) = w.input(letter, p) else {
            continue;
        };
        let acts = h.step(input, w.now);
        if w.exited {
            // A log line may follow (a claim answered late says so).
            assert!(acts.is_empty(), "after Exit: {acts:?}");
        }
        w.saw(&acts);
    }
    (w.spawns, w.exited)
}

#[test]
fn the_property_world_reaches_spawns_and_an_exit() {
    let letters = [
        (0, 10), // t=5s: claim T0+5
        (2, 0),  // won
        (12, 1), // spawned
        (0, 10), // t=10s: claim T0+10 (skip mode: it will lose)
        (2, 4),  // a retried claim of our own: runs
        (12, 1), // spawned
        (8, 0),  // SIGTERM
        (3, 0),  // one exits
        (4, 0),  // and is gone
        (3, 0),  // the other exits
        (4, 0),  // and is gone
        (10, 0), // FINISH answers
        (10, 0), //
        (11, 0), // revoked: exit
        (0, 10), // nothing after
    ];
    assert_eq!(run(letters.to_vec()), (2, true));
}

quickcheck! {
    fn no_double_claim_no_double_tag_nothing_after_exit(letters: Vec<(u8, u8)>) -> bool {
        run(letters);
        true
    }
}
