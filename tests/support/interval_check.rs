//! The invariant checker: pure functions over an interval log (who held,
//! from when to when, with which fencing token and slot) and the faults the
//! harness induced. No I/O, so it is tested with hand-made logs too.

use std::collections::BTreeSet;
use std::fmt::Write as _;

pub const MS: i64 = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// SIGKILL of a wrapper.
    Kill,
    /// `etcdctl lease revoke` of a holder's lease.
    Revoke,
    /// SIGSTOP of a wrapper, SIGCONT at `Fault::end`.
    Pause,
    /// The wrapper's link to etcd black-holed, healed at `Fault::end`.
    Partition,
    /// The wrapper's first endpoint dies (connections reset, then refused)
    /// while its second endpoint is a member that accepts and never
    /// answers; its third endpoint stays healthy. Healed at `Fault::end`.
    Failover,
}

pub const KINDS: [Kind; 5] = [
    Kind::Kill,
    Kind::Revoke,
    Kind::Pause,
    Kind::Partition,
    Kind::Failover,
];

impl Kind {
    /// Whether the fault may cost overlap at all: a partition or a dead
    /// endpoint is met by self-fencing (or failover) before the lease can
    /// expire, so no second holder may ever run beside the target.
    pub fn excuses_overlap(self) -> bool {
        !matches!(self, Kind::Partition | Kind::Failover)
    }
}

/// One child's run: from the start the child recorded to its end as the
/// harness observed it (or as the child recorded it when it ended by itself).
#[derive(Clone, Debug)]
pub struct Interval {
    pub holder: String,
    pub pid: u32,
    pub slot: u32,
    pub rev: i64,
    pub start: i64,
    pub end: i64,
}

/// One induced fault, against the wrapper identified by `target` (the same
/// id as `Interval::holder`). Instants are wall-clock ns; `end` equals `at`
/// for instantaneous faults.
#[derive(Clone, Debug)]
pub struct Fault {
    pub kind: Kind,
    pub target: String,
    pub on_holder: bool,
    pub at: i64,
    pub end: i64,
}

/// What the assertions allow.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// N (1 for elect).
    pub limit: usize,
    /// The lease TTL: the overlap window after a revoke, partition, or
    /// SIGCONT.
    pub ttl: i64,
    /// The window after a SIGKILL of a wrapper (the keeper's 1 s contract).
    pub kill_window: i64,
    /// Measurement error tolerated in every comparison.
    pub slack: i64,
    /// Printed instants are relative to this one.
    pub origin: i64,
}

impl Fault {
    /// The documented overlap window this fault excuses.
    pub fn window(&self, b: &Bounds) -> (i64, i64) {
        match self.kind {
            Kind::Kill => (self.at, self.at + b.kill_window),
            Kind::Revoke | Kind::Partition | Kind::Failover => (self.at, self.at + b.ttl),
            Kind::Pause => (self.at, self.end + b.ttl),
        }
    }

    /// Where the window's bound is counted from: the SIGCONT for a pause,
    /// the fault itself otherwise.
    pub fn reference(&self) -> i64 {
        match self.kind {
            Kind::Pause => self.end,
            _ => self.at,
        }
    }
}

/// How much excess concurrency one fault's window excused.
#[derive(Clone, Copy, Debug, Default)]
pub struct FaultStat {
    /// Total time with more than N holders, the target among them, inside
    /// the window.
    pub excess: i64,
    /// End of the last such excess, counted from `Fault::reference`.
    pub closed_after: Option<i64>,
}

#[derive(Debug, Default)]
pub struct Report {
    pub violations: Vec<String>,
    pub stats: Vec<FaultStat>,
}

/// Milliseconds with one decimal, relative to `origin`.
pub fn ms(t: i64, origin: i64) -> String {
    format!("{:.1}", (t - origin) as f64 / MS as f64)
}

pub fn describe(iv: &Interval, origin: i64) -> String {
    format!(
        "{} pid={} slot={} rev={} [{} .. {}] ms",
        iv.holder,
        iv.pid,
        iv.slot,
        iv.rev,
        ms(iv.start, origin),
        ms(iv.end, origin)
    )
}

/// Maximal stretches during which the same set of intervals is active, for
/// those where more than `limit` are. Touching intervals do not overlap.
pub fn excess_segments(ivs: &[Interval], limit: usize) -> Vec<(i64, i64, BTreeSet<usize>)> {
    let mut pts: Vec<(i64, bool, usize)> = Vec::new();
    for (i, iv) in ivs.iter().enumerate() {
        if iv.end > iv.start {
            pts.push((iv.start, true, i));
            pts.push((iv.end, false, i));
        }
    }
    // Ends sort before starts at the same instant.
    pts.sort();
    let mut active = BTreeSet::new();
    let mut out = Vec::new();
    for (k, &(t, is_start, i)) in pts.iter().enumerate() {
        if is_start {
            active.insert(i);
        } else {
            active.remove(&i);
        }
        if let Some(&(next, _, _)) = pts.get(k + 1) {
            if next > t && active.len() > limit {
                out.push((t, next, active.clone()));
            }
        }
    }
    out
}

fn merge(mut w: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    w.sort();
    let mut out: Vec<(i64, i64)> = Vec::new();
    for (s, e) in w {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// `[s, e)` minus the union of `windows` (merged, sorted).
fn subtract(s: i64, e: i64, windows: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut cur = s;
    for &(ws, we) in windows {
        if we <= cur || ws >= e {
            continue;
        }
        if ws > cur {
            out.push((cur, ws));
        }
        cur = cur.max(we);
        if cur >= e {
            break;
        }
    }
    if cur < e {
        out.push((cur, e));
    }
    out
}

fn overlap_len(a: (i64, i64), b: (i64, i64)) -> i64 {
    (a.1.min(b.1) - a.0.max(b.0)).max(0)
}

/// Excess stretches that no fault on one of the active holders excuses.
/// `excusing` says which fault kinds may excuse; returns merged stretches
/// longer than the slack, with the intervals involved.
fn unexcused(
    ivs: &[Interval],
    faults: &[Fault],
    b: &Bounds,
    excusing: impl Fn(Kind) -> bool,
) -> Vec<(i64, i64, BTreeSet<usize>)> {
    let mut pieces: Vec<(i64, i64, BTreeSet<usize>)> = Vec::new();
    for (s, e, active) in excess_segments(ivs, b.limit) {
        let holders: BTreeSet<&str> = active.iter().map(|&i| ivs[i].holder.as_str()).collect();
        let windows = merge(
            faults
                .iter()
                .filter(|f| excusing(f.kind) && holders.contains(f.target.as_str()))
                .map(|f| f.window(b))
                .collect(),
        );
        for (ps, pe) in subtract(s, e, &windows) {
            match pieces.last_mut() {
                Some(last) if last.1 == ps => {
                    last.1 = pe;
                    last.2.extend(active.iter().copied());
                }
                _ => pieces.push((ps, pe, active.clone())),
            }
        }
    }
    pieces.retain(|p| p.1 - p.0 > b.slack);
    pieces
}

/// Every assertion of the invariant tests (docs/contributing.md) that the interval log alone
/// decides.
pub fn check(ivs: &[Interval], faults: &[Fault], b: &Bounds) -> Report {
    let mut r = Report::default();
    let o = b.origin;
    let list = |set: &BTreeSet<usize>| {
        let mut s = String::new();
        for &i in set {
            let _ = write!(s, "\n      {}", describe(&ivs[i], o));
        }
        s
    };

    // 1 (and 4 in aggregate). More than N at once only inside the window of
    // a fault on one of the holders involved. A partition excuses nothing:
    // self-fencing kills the child before its lease can expire.
    let partitions = merge(
        faults
            .iter()
            .filter(|f| !f.kind.excuses_overlap())
            .map(|f| f.window(b))
            .collect(),
    );
    for (s, e, set) in unexcused(ivs, faults, b, |k| k.excuses_overlap()) {
        let in_partition: i64 = partitions.iter().map(|&w| overlap_len((s, e), w)).sum();
        let what = if in_partition > 0 {
            "during a partition or failover window (self-fencing allows none)"
        } else {
            "outside every fault window (or after it closed)"
        };
        r.violations.push(format!(
            "more than {} holders for {} ms at [{} .. {}] ms, {what}:{}",
            b.limit,
            ms(e - s, 0),
            ms(s, o),
            ms(e, o),
            list(&set)
        ));
    }

    // Outside the overlap window no two holders ever share a slot.
    if b.limit > 1 {
        let slots: BTreeSet<u32> = ivs.iter().map(|iv| iv.slot).collect();
        for slot in slots {
            let of: Vec<Interval> = ivs.iter().filter(|iv| iv.slot == slot).cloned().collect();
            let one = Bounds { limit: 1, ..*b };
            for (s, e, set) in unexcused(&of, faults, &one, |k| k.excuses_overlap()) {
                let mut l = String::new();
                for &i in &set {
                    let _ = write!(l, "\n      {}", describe(&of[i], o));
                }
                r.violations.push(format!(
                    "slot {slot} shared for {} ms at [{} .. {}] ms outside every fault window:{l}",
                    ms(e - s, 0),
                    ms(s, o),
                    ms(e, o),
                ));
            }
        }
    }

    // 3. Fencing tokens strictly increase per slot (the office for elect).
    let slots: BTreeSet<u32> = ivs.iter().map(|iv| iv.slot).collect();
    for slot in slots {
        let mut seq: Vec<&Interval> = ivs.iter().filter(|iv| iv.slot == slot).collect();
        seq.sort_by_key(|iv| (iv.start, iv.rev));
        for w in seq.windows(2) {
            if w[1].rev <= w[0].rev {
                r.violations.push(format!(
                    "fencing token did not increase on slot {slot}:\n      {}\n      {}",
                    describe(w[0], o),
                    describe(w[1], o)
                ));
            }
        }
    }

    for f in faults {
        // The target's runs the fault hit, unless an earlier fault on the
        // same run already cost it the hold (that one is the cause).
        let hit: Vec<&Interval> = ivs
            .iter()
            .filter(|iv| iv.holder == f.target && iv.start < f.end.max(f.at + 1) && iv.end > f.at)
            .filter(|iv| {
                !faults
                    .iter()
                    .any(|g| g.target == f.target && g.at < f.at && g.at >= iv.start)
            })
            .collect();
        // 4. A partitioned holder's child is gone before the next holder of
        // its office or slot starts.
        if !f.kind.excuses_overlap() {
            for h in &hit {
                for g in ivs
                    .iter()
                    .filter(|g| g.slot == h.slot && g.holder != h.holder && g.start > h.start)
                {
                    if g.start < h.end - b.slack {
                        r.violations.push(format!(
                            "partition at {} ms (healed {} ms): the next holder of slot {} \
                             started {} ms before the partitioned child ended:\n      {}\n      {}",
                            ms(f.at, o),
                            ms(f.end, o),
                            h.slot,
                            ms(h.end - g.start, 0),
                            describe(h, o),
                            describe(g, o)
                        ));
                    }
                }
            }
        }
        // Self-fencing deadlines on the faulted holder's own child.
        let must_end_by = match f.kind {
            Kind::Kill => Some(f.at + b.kill_window),
            Kind::Revoke => Some(f.at + b.ttl),
            Kind::Partition if f.end - f.at >= b.ttl => Some(f.at + b.ttl),
            _ => None,
        };
        if let Some(by) = must_end_by {
            for h in hit
                .iter()
                .filter(|h| h.start <= f.at && h.end > by + b.slack)
            {
                r.violations.push(format!(
                    "{:?} at {} ms: the target's child ran until {} ms, past {} ms:\n      {}",
                    f.kind,
                    ms(f.at, o),
                    ms(h.end, o),
                    ms(by, o),
                    describe(h, o)
                ));
            }
        }
    }

    // Statistics: each contiguous stretch of excess is charged to its
    // cause: the latest fault, whose window holds the stretch's start, on a
    // stale holder of it (one that shares its slot with a holder of a
    // newer token). A partition only when nothing else can be: a
    // partitioned holder is never the stale one.
    let mut regions: Vec<(i64, i64, BTreeSet<usize>)> = Vec::new();
    for (s, e, active) in excess_segments(ivs, b.limit) {
        match regions.last_mut() {
            Some(last) if last.1 == s => {
                last.1 = e;
                last.2.extend(active);
            }
            _ => regions.push((s, e, active)),
        }
    }
    r.stats = vec![FaultStat::default(); faults.len()];
    for (s, e, active) in &regions {
        let stale: BTreeSet<&str> = active
            .iter()
            .filter(|&&i| {
                active
                    .iter()
                    .any(|&j| ivs[j].slot == ivs[i].slot && ivs[j].rev > ivs[i].rev)
            })
            .map(|&i| ivs[i].holder.as_str())
            .collect();
        let cause = (0..faults.len())
            .filter(|&k| {
                let (ws, we) = faults[k].window(b);
                ws <= *s && *s < we && stale.contains(faults[k].target.as_str())
            })
            .min_by_key(|&k| (faults[k].kind == Kind::Partition, -faults[k].at));
        if let Some(k) = cause {
            let st = &mut r.stats[k];
            st.excess += e - s;
            let end = e - faults[k].reference();
            st.closed_after = Some(st.closed_after.map_or(end, |c: i64| c.max(end)));
        }
    }
    r
}
