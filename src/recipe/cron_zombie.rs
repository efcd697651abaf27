//! Finding zombie runs so that their failure hook runs once. A zombie's
//! runner is dead: its lease expired, deleting its node key and its run
//! markers in one revision. Every daemon sees the node key go (the node
//! watch); the one first-ranked for the dead node reads the run markers as
//! they were just before that revision, and records each of the dead node's
//! ticks that has neither a result nor a run marker now as `zombie`, with a
//! create-only transaction, so one daemon wins per tick and runs the hook.

use super::*;
use crate::etcd::ErrorKind;

/// The rendezvous "tick" under which the survivors rank for a dead node: no
/// schedule tick is negative, so it never shares a rank with a claim.
const FINDER: i64 = -1;

impl Cron {
    /// The node key of `dead` was deleted at `revision`.
    pub(super) fn on_node_gone(&mut self, dead: &str, revision: i64, out: &mut Vec<Action>) {
        if dead == self.cfg.node || self.state != State::Serving || self.shutting_down.is_some() {
            return;
        }
        let me = self.cfg.node.as_str();
        if rank::rank(me, self.nodes.keys().map(String::as_str), dead, FINDER) != 0 {
            return;
        }
        let s = &self.cfg.schema;
        let read = Range::prefix(s.cron_kind_dir(TickKind::Run)).at(revision - 1);
        self.zombie_reads.push_back(dead.to_string());
        out.push(Action::Range(ZOMBIES, read));
    }

    /// The run markers as they were before `dead`'s lease went.
    pub(super) fn on_zombie_read(
        &mut self,
        r: Result<crate::etcd::RangeResult, Error>,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let Some(dead) = self.zombie_reads.pop_front() else {
            return;
        };
        let kvs = match r {
            Ok(r) => r.kvs,
            Err(e) => {
                let why = if e.kind == ErrorKind::Compacted {
                    "etcd compacted that history".to_string()
                } else {
                    e.to_string()
                };
                Self::log(
                    out,
                    Level::Error,
                    format!("cannot look for the runs of gone daemon {dead}: {why}"),
                );
                return;
            }
        };
        let end_ms = u64::try_from(self.wall_ms(now)).unwrap_or(0);
        for kv in kvs {
            let s = &self.cfg.schema;
            let Some((name, tick)) = s.parse_cron_tick_key(TickKind::Run, &kv.key) else {
                continue;
            };
            let claim = Claim::from_json(&kv.value);
            if claim.node != dead {
                continue;
            }
            let result = RunResult {
                outcome: Outcome::Zombie,
                start_ms: claim.at_ms,
                end_ms,
                node: dead.clone(),
            };
            let result_key = s.cron_tick_key(TickKind::Result, &name, tick);
            // A runner that was only cut off puts its marker back on a new
            // lease, and writes its true result later: then it is no zombie.
            let txn = Txn {
                compare: vec![
                    Compare::absent(result_key.clone()),
                    Compare::absent(s.cron_tick_key(TickKind::Run, &name, tick)),
                ],
                success: vec![Op::put(result_key, result.to_json(), 0)],
                failure: vec![],
            };
            self.zombie_txns.push_back((name, tick, dead.clone()));
            out.push(Action::Txn(ZOMBIE, txn));
        }
    }

    /// A zombie record was written (by this daemon, exactly once fleet-wide)
    /// or not needed.
    pub(super) fn on_zombie_recorded(
        &mut self,
        r: Result<crate::etcd::TxnResult, Error>,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let Some((name, tick, dead)) = self.zombie_txns.pop_front() else {
            return;
        };
        let when = fmt_rfc3339_utc(tick);
        match r {
            Ok(t) if t.succeeded => {
                Self::log(
                    out,
                    Level::Info,
                    format!("job {name}: tick {when} is a zombie: its daemon {dead} is gone"),
                );
                self.start_zombie_hook(&name, tick, &dead, now, out);
            }
            Ok(_) => {}
            Err(e) => Self::log(
                out,
                Level::Error,
                format!("job {name}: cannot record tick {when} as a zombie: {e}"),
            ),
        }
    }
}
