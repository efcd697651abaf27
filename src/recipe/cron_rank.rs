//! Which daemons claim a tick, and when (docs/cron.md, "Fleet cost"). If
//! every daemon claimed every tick, D daemons would cost etcd D claim
//! transactions per tick, D−1 of them failing. Instead every daemon ranks
//! the live daemons that match the job's placement with the same
//! rendezvous hash of (node, job, tick): rank 0 claims at the tick, rank r
//! claims `r × STAGGER` later and only if one read shows the fire key still
//! absent. A dead, stopped or partitioned first-ranked daemon costs one
//! stagger, not the tick; the create-only claim still decides alone, so a
//! disagreement about the node set (a watch lagging) costs at most a
//! failed transaction, never a second run.
//!
//! The hash is part of the fleet's protocol: every conchd of a fleet must
//! compute the same one, or two daemons may both think they are first
//! (which costs writes, never safety). It is FNV-1a 64 over the bytes
//! `node ID, 0x00, job name, 0x00, tick` (the tick as decimal unix
//! seconds, the names as given, not key-encoded), then the splitmix64
//! finalizer; daemons rank in ascending order of (hash, node ID).

use super::*;

/// Between one rank and the next. The first-ranked daemon's claim is
/// answered within a few milliseconds when etcd is healthy (P9 asks p99
/// lateness ≤ 50 ms), so a backup that looks after 250 ms finds the fire
/// key in place unless the first one is dead, stopped or cut off; and two
/// backups still fit in the first half of the shortest grace (1 s), which
/// leaves the other half for a retry of their claim.
pub const STAGGER_MS: i64 = 250;
/// At most this many daemons (ranks 0..MAX_RANKS) try a tick: when the first
/// three ranked are all down at once the tick is missed until their leases
/// expire and the live ones move up.
pub const MAX_RANKS: usize = 3;

/// How many ticks ahead a daemon looks for its next turn; past them it
/// wakes at the last one anyway, to look further.
const LOOKAHEAD: usize = 256;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Jobs per claim group: the jobs of one group that are due at the same
/// tick rank the daemons alike, so one daemon claims them in one request
/// and records their results in one more. Eight keeps a tick's load spread
/// over the fleet when hundreds of jobs share a minute.
pub const GROUP_JOBS: usize = 8;

fn hash(parts: &[&[u8]]) -> u64 {
    let mut h = FNV_OFFSET;
    for b in parts.iter().copied().flatten() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    // splitmix64's finalizer: FNV alone varies little in its high bits for
    // inputs that differ in the last byte, as consecutive ticks do.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The rendezvous score of `node` for the tick `tick` of the group (or
/// job) `key`.
pub fn score(node: &str, key: &str, tick: i64) -> u64 {
    let tick = tick.to_string();
    hash(&[node.as_bytes(), &[0], key.as_bytes(), &[0], tick.as_bytes()])
}

/// What the daemons are ranked by for `job` when the fleet has `jobs`
/// jobs: its claim group, `g/G` in decimal, with G = ⌈jobs / GROUP_JOBS⌉
/// and g the hash of the job name mod G. A daemon that counts one job
/// more or less than another for a moment may rank differently: that
/// costs a failed claim, never a second run.
pub fn rank_key(job: &str, jobs: usize) -> String {
    let groups = jobs.div_ceil(GROUP_JOBS).max(1) as u64;
    format!("{}/{groups}", hash(&[job.as_bytes()]) % groups)
}

/// The rank of `me` among `me` and `others` for (job, tick): how many of
/// them sort before it by (score, node ID). `others` may name `me` again.
pub fn rank<'a>(me: &str, others: impl Iterator<Item = &'a str>, job: &str, tick: i64) -> usize {
    let mine = (score(me, job, tick), me);
    others
        .filter(|n| *n != me)
        .filter(|n| (score(n, job, tick), *n) < mine)
        .count()
}

/// The wall ms at which rank `rank` claims a tick whose grace is `grace_s`,
/// or `None` when that rank does not try at all: past [`MAX_RANKS`], or
/// so late that a retry of its claim would no longer fit in the grace.
pub fn claim_at_ms(tick: i64, rank: usize, grace_s: i64) -> Option<i64> {
    let delay = STAGGER_MS.checked_mul(i64::try_from(rank).ok()?)?;
    (rank < MAX_RANKS && delay <= grace_s * 500).then_some(tick * 1000 + delay)
}

impl Cron {
    /// This daemon's rank for the tick of `p`, among the live daemons that
    /// may run the job; `None` when its own labels do not match the job's
    /// placement.
    fn rank_of(&self, name: &str, js: &JobState, tick: i64) -> Option<usize> {
        let placement = &js.job.placement;
        let me = Node {
            labels: self.cfg.labels.clone(),
            ..Node::default()
        };
        if !me.matches(placement) {
            return None;
        }
        let others = self
            .nodes
            .iter()
            .filter(|(_, n)| n.matches(placement))
            .map(|(id, _)| id.as_str());
        let key = rank_key(name, self.jobs.len());
        Some(rank(&self.cfg.node, others, &key, tick))
    }

    /// The wall ms of this daemon's turn at `tick` of a job, if it has one.
    fn turn_at(&self, name: &str, js: &JobState, tick: i64) -> Option<i64> {
        let following = next_tick(&js.schedule, &js.zone, tick);
        let grace = following.map_or(MAX_GRACE_SECS, |f| (f - tick).min(MAX_GRACE_SECS));
        claim_at_ms(tick, self.rank_of(name, js, tick)?, grace)
    }

    /// This daemon's first turn at `from` or a later tick of a job; the
    /// ticks before it are passed over when the daemon wakes. Nothing is
    /// decided for them early: the ticks stay the job's `next` until their
    /// instant has passed, so a change of the node set recomputes them.
    fn first_turn(&self, name: &str, js: &JobState, from: i64) -> Option<i64> {
        let mut tick = from;
        for _ in 0..LOOKAHEAD {
            if let Some(at) = self.turn_at(name, js, tick) {
                return Some(at);
            }
            tick = next_tick(&js.schedule, &js.zone, tick)?;
        }
        Some(tick * 1000)
    }

    /// When to wake for a job: at this daemon's first turn from the job's
    /// next tick on (ticks without a turn are passed over at whatever
    /// wakes it), so a tick wakes a few daemons, not the fleet. Until the
    /// turn is known, at the next tick.
    pub(super) fn wake_for(&self, name: &str, js: &JobState, tick: i64) -> Option<i64> {
        match self.turns.get(name) {
            Some((key, at)) if *key == (tick, js.mod_rev) => *at,
            _ => Some(tick * 1000),
        }
    }

    /// Computes the turns of next ticks that changed, and of every job
    /// when the node set did: O(daemons) per job and tick.
    pub(super) fn refresh_turns(&mut self) {
        // The number of jobs sets the claim groups: a change regroups all.
        let regrouped = std::mem::replace(&mut self.turns_jobs, self.jobs.len()) != self.jobs.len();
        let all = std::mem::take(&mut self.nodes_changed) || regrouped;
        let mut turns = std::mem::take(&mut self.turns);
        turns.retain(|name, _| self.jobs.contains_key(name));
        for (name, js) in &self.jobs {
            let Some(tick) = js.next else { continue };
            let key = (tick, js.mod_rev);
            if all || turns.get(name).is_none_or(|(k, _)| *k != key) {
                turns.insert(name.clone(), (key, self.first_turn(name, js, tick)));
            }
        }
        self.turns = turns;
    }

    /// A due tick: claimed now by the first-ranked daemon, parked until its
    /// turn by the next ranks, left alone by the rest; missed by a daemon
    /// whose turn it was but that woke past the grace.
    pub(super) fn claim_in_turn(&mut self, p: Pending, now: Duration, out: &mut Vec<Action>) {
        let when = fmt_rfc3339_utc(p.tick);
        let grace_s = p.grace_end_ms.div_euclid(1000) - p.tick;
        let rank = self.rank_of(&p.name, &p.js, p.tick);
        let now_ms = self.wall_ms(now);
        if now_ms > p.grace_end_ms
            && rank.is_some_and(|r| claim_at_ms(p.tick, r, grace_s).is_some())
        {
            Self::log(
                out,
                Level::Info,
                format!(
                    "job {}: tick {when} missed (woke {}ms late)",
                    p.name,
                    now_ms - p.tick * 1000
                ),
            );
            return;
        }
        match rank {
            None => Self::log(
                out,
                Level::Debug,
                format!("job {}: tick {when} is placed elsewhere", p.name),
            ),
            Some(0) => self.send_claim(p, now, out),
            Some(r) => match claim_at_ms(p.tick, r, grace_s) {
                Some(at) => self.staggered.push((at, p)),
                None => Self::log(
                    out,
                    Level::Debug,
                    format!(
                        "job {}: tick {when} left to the daemons ranked before ({r})",
                        p.name
                    ),
                ),
            },
        }
    }

    /// The parked ticks whose turn came: one read of the fire key each.
    pub(super) fn staggered_due(&mut self, now: Duration, out: &mut Vec<Action>) {
        if self.shutting_down.is_some() {
            self.staggered.clear();
            return;
        }
        let now_ms = self.wall_ms(now);
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.staggered)
            .into_iter()
            .partition(|(at, _)| *at <= now_ms);
        self.staggered = later;
        for (_, p) in due {
            let fire = self
                .cfg
                .schema
                .cron_tick_key(TickKind::Fire, &p.name, p.tick);
            out.push(Action::Range(CHECK, Range::key(fire)));
            self.checks.push_back(p);
        }
    }

    /// The fire key as read at a backup's turn: absent means the daemons
    /// ranked before did not claim, so this one does. A failed read claims
    /// too: the create-only claim is what decides, the read only saves it.
    pub(super) fn on_check(
        &mut self,
        r: Result<crate::etcd::RangeResult, Error>,
        now: Duration,
        out: &mut Vec<Action>,
    ) {
        let Some(p) = self.checks.pop_front() else {
            return;
        };
        match r {
            Ok(r) if !r.kvs.is_empty() => Self::log(
                out,
                Level::Debug,
                format!(
                    "job {}: tick {} claimed by a daemon ranked before",
                    p.name,
                    fmt_rfc3339_utc(p.tick)
                ),
            ),
            Ok(_) => {
                Self::log(
                    out,
                    Level::Info,
                    format!(
                        "job {}: tick {} unclaimed at this daemon's turn; claiming",
                        p.name,
                        fmt_rfc3339_utc(p.tick)
                    ),
                );
                self.send_claim(p, now, out);
            }
            Err(e) => {
                Self::log(
                    out,
                    Level::Info,
                    format!("job {}: cannot read the fire key ({e}); claiming", p.name),
                );
                self.send_claim(p, now, out);
            }
        }
    }

    /// The wall ms of every parked tick's turn.
    pub(super) fn staggered_at(&self) -> impl Iterator<Item = i64> + '_ {
        self.staggered.iter().map(|(at, _)| *at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_the_documented_one() {
        // Pinned: a change here splits a mixed-version fleet.
        let fnv = |b: &[u8]| {
            b.iter().fold(FNV_OFFSET, |h, x| {
                (h ^ u64::from(*x)).wrapping_mul(FNV_PRIME)
            })
        };
        let mix = |mut h: u64| {
            h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            h ^ (h >> 31)
        };
        assert_eq!(score("n1", "backup", 60), mix(fnv(b"n1\x00backup\x0060")));
        assert_eq!(score("n1", "backup", 60), 11_629_934_003_740_322_493);
    }

    #[test]
    fn the_claim_groups_are_the_documented_ones() {
        // Pinned like the hash (the same values from tests/bench_fleet.py).
        let keys: Vec<String> = (0..6).map(|i| rank_key(&format!("j{i}"), 20)).collect();
        assert_eq!(keys, ["0/3", "2/3", "0/3", "2/3", "1/3", "0/3"]);
        assert_eq!(rank_key("backup", 9), "1/2");
        // Up to eight jobs: one group, whatever their names.
        assert!(["a", "b", "backup"].iter().all(|j| rank_key(j, 8) == "0/1"));
        assert_eq!(rank_key("a", 0), "0/1");
    }

    #[test]
    fn every_daemon_agrees_on_one_order_and_the_first_rank_moves() {
        let nodes = ["a", "b", "c", "d", "e"];
        let mut firsts = std::collections::BTreeMap::new();
        for tick in 0..1000 {
            let mut ranks: Vec<usize> = nodes
                .iter()
                .map(|me| rank(me, nodes.iter().copied(), "job", tick))
                .collect();
            ranks.sort_unstable();
            assert_eq!(ranks, vec![0, 1, 2, 3, 4], "tick {tick}");
            let first = nodes
                .iter()
                .find(|me| rank(me, nodes.iter().copied(), "job", tick) == 0);
            *firsts.entry(first.copied()).or_insert(0) += 1;
        }
        // Spread evenly: each of 5 daemons is first for about 200 ticks.
        assert!(
            firsts.values().all(|n| (140..=260).contains(n)),
            "{firsts:?}"
        );
    }

    #[test]
    fn backups_wait_their_turn_within_half_the_grace() {
        assert_eq!(claim_at_ms(10, 0, 1), Some(10_000));
        assert_eq!(claim_at_ms(10, 1, 1), Some(10_250));
        assert_eq!(claim_at_ms(10, 2, 1), Some(10_500));
        assert_eq!(claim_at_ms(10, 3, 30), None);
        assert_eq!(claim_at_ms(10, usize::MAX, 30), None);
    }
}
