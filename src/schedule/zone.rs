//! IANA time zones from TZif data compiled into the binary, so that every
//! daemon computes the same ticks, on any host, zoneinfo or not.
//!
//! `zones.bin` is written by `gen_zones.py` (its header describes the
//! layout): every tzdata name, each mapped to a TZif v2 file holding the
//! transitions from 1970 on and the POSIX TZ footer for later instants.

use super::civil::DAY;
use super::posix::Rule;
use super::ParseError;

static DATA: &[u8] = include_bytes!("zones.bin");

/// RFC 8536 keeps offsets within -25:59:59..+25:59:59.
const MAX_OFFSET: i32 = 93_599;

/// A time zone: the UTC offset in effect at every instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    name: String,
    /// Changes of offset, as (instant, new offset), ascending.
    changes: Vec<(i64, i32)>,
    /// Offset before the first change (before 1970 for bundled zones, which
    /// keep no older history).
    initial: i32,
    /// The footer rule governs instants from here on.
    footer_from: i64,
    footer: Option<Rule>,
}

/// The UTC instants that show a given local wall time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalResult {
    /// The wall time was skipped; the clocks jumped forward at this instant.
    Gap(i64),
    /// The wall time occurs once.
    Single(i64),
    /// The wall time occurs twice (clocks went back): earlier, later.
    Fold(i64, i64),
}

impl Zone {
    /// Coordinated Universal Time, without a table lookup.
    pub fn utc() -> Zone {
        Zone {
            name: "UTC".to_string(),
            changes: Vec::new(),
            initial: 0,
            footer_from: i64::MAX,
            footer: None,
        }
    }

    /// Looks up an IANA zone name (exact spelling first, then ignoring
    /// ASCII case) in the bundled data.
    pub fn parse(name: &str) -> Result<Zone, ParseError> {
        let unknown = || {
            ParseError::new(format!(
                "unknown zone {name:?} (expected an IANA name such as Europe/Berlin or UTC)"
            ))
        };
        let corrupt = || ParseError::new(format!("bundled zone data for {name:?} is corrupt"));
        let table = Table::read().ok_or_else(corrupt)?;
        let found = table
            .entries()
            .find(|e| e.0 == name.as_bytes())
            .or_else(|| {
                table
                    .entries()
                    .find(|e| e.0.eq_ignore_ascii_case(name.as_bytes()))
            })
            .ok_or_else(unknown)?;
        let canonical = std::str::from_utf8(found.0).map_err(|_| corrupt())?;
        let tzif = table.blob(found.1).ok_or_else(corrupt)?;
        from_tzif(canonical, tzif).ok_or_else(corrupt)
    }

    /// The zone's IANA name as spelled in the data.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Offset east of UTC, in seconds, in effect at the instant `t`.
    pub fn offset_at(&self, t: i64) -> i32 {
        if t >= self.footer_from {
            if let Some(rule) = &self.footer {
                return rule.offset_at(t);
            }
        }
        match self.changes.partition_point(|c| c.0 <= t) {
            0 => self.initial,
            i => self.changes[i - 1].1,
        }
    }

    /// The instants whose wall time in this zone is `wall` (local seconds
    /// since 1970-01-01T00:00 on the zone's clock).
    pub fn local_to_utc(&self, wall: i64) -> LocalResult {
        // Walk the offset segments around `wall`; any instant showing it
        // lies within a day or so, since offsets stay below 26 hours.
        let hi = wall.saturating_add(2 * DAY);
        let mut start = wall.saturating_sub(2 * DAY);
        let mut off = self.offset_at(start);
        let mut found = [0i64; 2];
        let mut n = 0;
        let mut gap = None;
        loop {
            let next = self.next_change(start).filter(|c| c.0 <= hi);
            let u = wall.saturating_sub(i64::from(off));
            if u >= start && next.is_none_or(|c| u < c.0) {
                // A third pass cannot happen with real zones; keep the last.
                found[n.min(1)] = u;
                n += 1;
            }
            let Some((at, before, after)) = next else {
                break;
            };
            if at.saturating_add(i64::from(before)) <= wall
                && wall < at.saturating_add(i64::from(after))
            {
                gap = Some(at);
            }
            start = at;
            off = after;
        }
        match (n, gap) {
            (0, Some(at)) => LocalResult::Gap(at),
            // Unreachable with offsets below 2 days; `wall` minus the
            // current offset is the least surprising answer.
            (0, None) => LocalResult::Single(wall.saturating_sub(i64::from(off))),
            (1, _) => LocalResult::Single(found[0]),
            _ => LocalResult::Fold(found[0], found[1]),
        }
    }

    /// The first change of offset strictly after `t`: (instant, old, new).
    pub(crate) fn next_change(&self, t: i64) -> Option<(i64, i32, i32)> {
        if t >= self.footer_from {
            return self.footer.as_ref()?.next_change(t);
        }
        let i = self.changes.partition_point(|c| c.0 <= t);
        if let Some(&(at, to)) = self.changes.get(i) {
            let before = if i == 0 {
                self.initial
            } else {
                self.changes[i - 1].1
            };
            return Some((at, before, to));
        }
        let rule = self.footer.as_ref()?;
        let before = self.offset_at(t);
        let at = self.footer_from;
        match rule.offset_at(at) {
            after if after != before => Some((at, before, after)),
            _ => rule.next_change(at),
        }
    }

    /// The least and greatest offsets in effect during `[from, to]`.
    pub(crate) fn offset_range(&self, from: i64, to: i64) -> (i32, i32) {
        let first = self.offset_at(from);
        let (mut lo, mut hi) = (first, first);
        let mut t = from;
        while let Some((at, _, after)) = self.next_change(t).filter(|c| c.0 <= to) {
            lo = lo.min(after);
            hi = hi.max(after);
            t = at;
        }
        (lo, hi)
    }
}

/// The tzdata release the bundled zones come from, e.g. `2025b`.
pub fn tzdata_version() -> &'static str {
    Table::read().map_or("unknown", |t| t.version)
}

/// Parses the v2+ part of a TZif file; `None` if it is malformed.
fn from_tzif(name: &str, tzif: &[u8]) -> Option<Zone> {
    let mut r = Reader { b: tzif };
    let v1 = r.header()?;
    // Skip the 32-bit block: v2+ readers must use the 64-bit one.
    r.take(v1.timecnt * 5 + v1.typecnt * 6 + v1.charcnt + v1.leapcnt * 8 + v1.ttisstd + v1.ttisut)?;
    let h = r.header()?;
    let times = r.take(h.timecnt * 8)?;
    let idxs = r.take(h.timecnt)?;
    let types = r.take(h.typecnt * 6)?;
    r.take(h.charcnt + h.leapcnt * 12 + h.ttisstd + h.ttisut)?;
    let footer = std::str::from_utf8(r.b).ok()?.trim_matches('\n');
    let footer = if footer.is_empty() {
        None
    } else {
        Some(Rule::parse(footer)?)
    };
    let offset_of = |i: usize| -> Option<i32> {
        let b = types.get(i * 6..i * 6 + 4)?;
        let off = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        (off.unsigned_abs() <= MAX_OFFSET as u32).then_some(off)
    };
    // RFC 8536: the type before the first transition is type 0.
    let initial = offset_of(0)?;
    let mut changes: Vec<(i64, i32)> = Vec::new();
    let mut prev_at = i64::MIN;
    let mut cur = initial;
    for (k, &idx) in idxs.iter().enumerate() {
        let b = times.get(k * 8..k * 8 + 8)?;
        let at = i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        if at <= prev_at && k > 0 {
            return None;
        }
        prev_at = at;
        let off = offset_of(usize::from(idx))?;
        // Changes of abbreviation or DST flag alone move no wall clock.
        if off != cur {
            changes.push((at, off));
            cur = off;
        }
    }
    let footer_from = if h.timecnt == 0 { i64::MIN } else { prev_at };
    Some(Zone {
        name: name.to_string(),
        changes,
        initial,
        footer_from,
        footer,
    })
}

struct Header {
    ttisut: usize,
    ttisstd: usize,
    leapcnt: usize,
    timecnt: usize,
    typecnt: usize,
    charcnt: usize,
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.b.len() {
            return None;
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<usize> {
        let b = self.take(4)?;
        usize::try_from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])).ok()
    }

    fn header(&mut self) -> Option<Header> {
        let h = self.take(20)?;
        if &h[..4] != b"TZif" || h[4] < b'2' {
            return None;
        }
        Some(Header {
            ttisut: self.u32()?,
            ttisstd: self.u32()?,
            leapcnt: self.u32()?,
            timecnt: self.u32()?,
            typecnt: self.u32()?,
            charcnt: self.u32()?,
        })
    }
}

/// The bundled name table and TZif files (layout in gen_zones.py).
struct Table {
    version: &'static str,
    names: &'static [u8],
    name_count: usize,
    blobs: &'static [u8],
    blob_count: usize,
}

impl Table {
    fn read() -> Option<Table> {
        let mut r = Reader { b: DATA };
        if r.take(8)? != b"CONCHTZ1" {
            return None;
        }
        let len = usize::from(*r.take(1)?.first()?);
        let version = std::str::from_utf8(r.take(len)?).ok()?;
        let counts = r.take(4)?;
        let name_count = usize::from(u16::from_be_bytes([counts[0], counts[1]]));
        let blob_count = usize::from(u16::from_be_bytes([counts[2], counts[3]]));
        let start = r.b;
        for _ in 0..name_count {
            let len = usize::from(*r.take(1)?.first()?);
            r.take(len + 2)?;
        }
        let names = &start[..start.len() - r.b.len()];
        Some(Table {
            version,
            names,
            name_count,
            blobs: r.b,
            blob_count,
        })
    }

    /// (name, blob index) pairs; stops early if the table is truncated.
    fn entries(&self) -> impl Iterator<Item = (&'static [u8], usize)> {
        let mut r = Reader { b: self.names };
        (0..self.name_count).map_while(move |_| {
            let len = usize::from(*r.take(1)?.first()?);
            let name = r.take(len)?;
            let idx = r.take(2)?;
            Some((name, usize::from(u16::from_be_bytes([idx[0], idx[1]]))))
        })
    }

    fn blob(&self, index: usize) -> Option<&'static [u8]> {
        if index >= self.blob_count {
            return None;
        }
        let mut r = Reader { b: self.blobs };
        for _ in 0..index {
            let len = r.u32()?;
            r.take(len)?;
        }
        let len = r.u32()?;
        r.take(len)
    }
}

/// Every bundled zone name, for tests that sweep all zones.
#[cfg(test)]
pub(crate) fn all_names() -> Vec<String> {
    let table = Table::read().expect("bundled table");
    table
        .entries()
        .map(|e| String::from_utf8_lossy(e.0).into_owned())
        .collect()
}
