//! A property over random event sequences: no second Spawn, no Spawn after
//! a loss or a stop, no Exit while a child may be alive.

use super::*;
use crate::recipe::harness::confirm_spawn;
use quickcheck::quickcheck;

/// What the environment owes the machine, and what the property tracks.
#[derive(Default)]
struct World {
    now: Duration,
    grant: bool,
    join: bool,
    claim: bool,
    reread: bool,
    reconnect: bool,
    revoke: bool,
    keep_alive: Option<Duration>,
    watches: Vec<Tag>,
    /// Leases of the queue keys ahead of ours, and our create revision.
    ahead: Vec<i64>,
    own_rev: i64,
    rev: i64,
    /// Spawn emitted, neither Spawned nor SpawnFailed yet.
    unconfirmed: bool,
    running: bool,
    /// Spawned and neither ChildExited nor SpawnFailed yet.
    spawn_open: bool,
    draining: bool,
    /// Something of a child may be alive.
    tree: bool,
    spawns: usize,
    /// The slot the child was given.
    held: Option<u32>,
    /// A stop signal went to a running child, or the lease was revoked.
    stopped: bool,
    /// The machine was told of a loss.
    lost: bool,
    /// Our queue key (or the whole lease), or our slot, is gone: every
    /// later read says so too.
    gone: bool,
    slot_gone: bool,
}

impl World {
    /// The input for one letter, or None when it does not apply now.
    fn input(&mut self, letter: u8, p: u8, h: &Harness) -> Option<Input> {
        let max = h.m.part.max;
        let bits = |b: u8| -> Vec<(u32, i64, i64)> {
            (0..max)
                .filter(|i| b >> i & 1 == 1)
                .map(|i| (i, 0x200 + i64::from(i), 1))
                .collect()
        };
        self.rev += 1;
        Some(match letter % 14 {
            0 => {
                self.now += MS(u64::from(p % 25) * 100);
                Input::Timer
            }
            1 => {
                let sent = self.keep_alive.take()?;
                let ttl = i64::from(p % 12) - 1;
                self.gone |= ttl <= 0;
                self.lost |= ttl <= 0;
                ka(sent, ttl)
            }
            2 if self.watches.contains(&QUEUE) && !self.ahead.is_empty() => {
                let i = usize::from(p) % self.ahead.len();
                let mut keys = vec![h.qkey(self.ahead.remove(i)), h.qkey(Z)];
                if p.is_multiple_of(3) && !self.ahead.is_empty() {
                    keys.push(h.qkey(self.ahead.remove(0)));
                }
                deletes(QUEUE, &keys, self.rev)
            }
            // Losses and fatal signals are rarer, so that runs reach a child.
            3 if p.is_multiple_of(4) && !self.reconnect && self.watches.contains(&OWN) => {
                (self.lost, self.gone) = (true, true);
                deletes(OWN, &[h.qkey(ME)], self.rev)
            }
            4 if p.is_multiple_of(4) => Input::Signal([15, 2, 10, 10][usize::from(p / 4 % 4)]),
            5 if self.spawn_open && !self.unconfirmed => {
                (self.spawn_open, self.running, self.draining) = (false, false, true);
                let st = [
                    ChildStatus::Exited(i32::from(p % 4)),
                    ChildStatus::Signaled(9),
                ];
                Input::ChildExited(0, st[usize::from(p % 2)])
            }
            6 if self.draining => {
                (self.draining, self.tree) = (false, false);
                Input::ChildrenGone(0)
            }
            // Whichever request is outstanding gets its answer.
            7..=9 if std::mem::take(&mut self.revoke) => Input::Revoked(Ok(())),
            7..=9 if std::mem::take(&mut self.grant) => {
                Input::Granted(Ok(Lease { id: ME, ttl: 10 }))
            }
            7..=9 if self.gone && std::mem::take(&mut self.join) => Input::Txn(
                JOIN,
                Err(Error::new(ErrorKind::LeaseNotFound, "txn", "gone")),
            ),
            7..=9 if std::mem::take(&mut self.join) => {
                let n = i64::from(p % 4);
                self.ahead = (1..=n).map(|i| 0x100 + i).collect();
                let mut cands: Vec<_> = self.ahead.iter().map(|&l| (l, l - 0x100)).collect();
                self.own_rev = n + 1;
                cands.extend([(ME, n + 1), (Z, n + 2)]);
                self.rev = n + 3;
                h.joined(self.rev, &cands, &bits(p >> 2))
            }
            7..=9 if self.gone && std::mem::take(&mut self.claim) => {
                self.lost = true;
                h.claim_failed(self.rev, &[], None)
            }
            7..=9 if std::mem::take(&mut self.claim) => match p % 5 {
                0 | 1 => claimed(self.rev),
                2 => h.claim_failed(self.rev, &bits(p >> 3), Some(self.own_rev)),
                3 => {
                    let mine = (u32::from(p >> 3) % max, ME, self.rev - 1);
                    h.claim_failed(self.rev, &[mine], Some(self.own_rev))
                }
                _ if p & 8 == 0 => {
                    (self.lost, self.gone) = (true, true);
                    h.claim_failed(self.rev, &[], None)
                }
                _ => Input::Txn(CLAIM, Err(unavailable())),
            },
            7..=9 if std::mem::take(&mut self.reread) => {
                if p % 9 == 8 {
                    return Some(Input::Txn(REREAD, Err(unavailable())));
                }
                // Our queue key gone, or our slot taken over, is a loss.
                self.gone |= p.is_multiple_of(6);
                self.slot_gone |= p % 6 == 1 && self.held.is_some();
                let (gone, taken_over) = (self.gone, self.slot_gone);
                self.lost |= gone || taken_over;
                let mut cands: Vec<_> = self.ahead.iter().map(|&l| (l, l - 0x100)).collect();
                if !gone {
                    cands.push((ME, self.own_rev));
                }
                let mut slots = bits(p >> 3);
                slots.retain(|s| Some(s.0) != self.held);
                if let Some(i) = self.held.filter(|_| !taken_over) {
                    slots.push((i, ME, self.own_rev + 1));
                }
                let results = vec![
                    OpResult::Range(h.queue(self.rev, &cands)),
                    OpResult::Range(h.slots(self.rev, &slots)),
                ];
                let revision = self.rev;
                Input::Txn(
                    REREAD,
                    Ok(TxnResult {
                        revision,
                        succeeded: true,
                        results,
                    }),
                )
            }
            10 if std::mem::take(&mut self.unconfirmed) => {
                confirm_spawn(p, &mut self.running, &mut self.spawn_open, &mut self.tree)
            }
            11 if self.watches.contains(&SLOTS) => {
                // Our own slot's key while holding; any slot while waiting.
                self.slot_gone |= self.held.is_some();
                self.lost |= self.held.is_some();
                deletes(SLOTS, &[h.skey(u32::from(p) % max)], self.rev)
            }
            12 if p.is_multiple_of(2) && !self.watches.is_empty() => {
                let tag = self.watches[usize::from(p / 2) % self.watches.len()];
                Input::Watch(tag, Err(unavailable()))
            }
            12 => Input::KeepAlive(Err(unavailable())),
            13 if std::mem::take(&mut self.reconnect) => {
                // A failed failover is retried by the machine on a timer.
                Input::Reconnected(if p.is_multiple_of(4) {
                    Err(unavailable())
                } else {
                    Ok(())
                })
            }
            _ => return None,
        })
    }

    /// Checks the actions; true once the machine exited.
    fn saw(&mut self, acts: &[Action]) -> bool {
        for a in acts {
            match a {
                Action::Grant { .. } => self.grant = true,
                Action::Txn(JOIN, _) => self.join = true,
                Action::Txn(CLAIM, _) => self.claim = true,
                Action::Txn(REREAD, _) => self.reread = true,
                Action::Reconnect { .. } => (self.reconnect, self.keep_alive) = (true, None),
                Action::Revoke(_) => (self.revoke, self.stopped) = (true, true),
                Action::KeepAliveSend => self.keep_alive = Some(self.now),
                Action::KeepAliveClose => self.keep_alive = None,
                Action::Watch(t, _) if !self.watches.contains(t) => self.watches.push(*t),
                Action::Unwatch(t) => self.watches.retain(|w| w != t),
                Action::SignalChild(0, sig) if *sig != 10 && (self.running || self.unconfirmed) => {
                    self.stopped = true
                }
                Action::Spawn(0, _) => {
                    assert!(!self.lost, "Spawn after a loss");
                    assert!(!self.stopped, "Spawn after a stop");
                    assert!(!self.spawn_open, "two Spawns without an exit between");
                    (self.unconfirmed, self.spawn_open, self.tree) = (true, true, true);
                    self.spawns += 1;
                    self.held = Some(
                        var(std::slice::from_ref(a), "CONCH_SLOT")
                            .parse()
                            .expect("slot"),
                    );
                }
                Action::Exit(_) => {
                    assert!(!self.tree, "Exit while a child may be alive");
                    return true;
                }
                _ => {}
            }
        }
        false
    }
}

/// Runs the letters: the number of Spawns seen, and whether it exited.
fn run(max: u8, letters: Vec<(u8, u8)>) -> (usize, bool) {
    let mut h = Harness::new(cfg(u32::from(max % 3) + 1));
    let mut w = World::default();
    if w.saw(&h.step(Input::Start, w.now)) {
        return (w.spawns, true);
    }
    for (letter, p) in letters {
        let Some(input) = w.input(letter, p, &h) else {
            continue;
        };
        let acts = h.step(input, w.now);
        if w.saw(&acts) {
            return (w.spawns, true);
        }
    }
    (w.spawns, false)
}

#[test]
fn the_property_world_reaches_a_spawn_and_an_exit() {
    let letters = [(8, 0), (8, 0), (9, 0), (10, 1), (5, 0), (6, 0), (7, 0)];
    assert_eq!(run(1, letters.to_vec()), (1, true));
}

quickcheck! {
    fn no_double_spawn_no_spawn_after_a_loss_no_exit_with_a_child(
        max: u8,
        letters: Vec<(u8, u8)>
    ) -> bool {
        run(max, letters).0 <= 1
    }
}
