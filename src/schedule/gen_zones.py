#!/usr/bin/env python3
"""Generate zones.bin, the zone rules compiled into conch.

Usage: python3 src/schedule/gen_zones.py ZONEINFO_DIR > zones.bin

Run it through zones.sh, which feeds it the tzdata release pinned in
tzdata.lock (PyPI's `tzdata` wheel, checksum verified), so what ships never
depends on the machine that ran the generator.

Every name on a Zone (Z) or Link (L) line of ZONEINFO_DIR/tzdata.zi maps to a TZif v2 file (RFC 8536) trimmed to what conch
needs: an empty v1 block, 64-bit transitions from the one in effect at
1970-01-01T00:00Z on, and only until the POSIX TZ footer reproduces the rest
(as `zic -b slim` does). Identical trimmed files are stored once.

Layout (all integers big-endian):
    b"CONCHTZ1"
    u8 len, tzdata version (e.g. b"2025b")
    u16 name_count, u16 data_count
    name_count x (u8 name_len, name bytes, u16 data_index), sorted by name
    data_count x (u32 len, TZif bytes)

Each trimmed file is checked against the release's full data with Python's
zoneinfo before it is written, so a bad trim fails the generator, not conch.
"""

import datetime
import io
import os
import struct
import sys
import zoneinfo

MAGIC = b"CONCHTZ1"


def read_tzif(raw):
    """Return (transitions, types, chars, footer) from the v2+ part of a TZif file."""
    if raw[:4] != b"TZif" or raw[4] < ord("2"):
        raise ValueError("not TZif v2+")

    def counts(off):
        return struct.unpack(">6l", raw[off + 20 : off + 44])

    isut, isstd, leap, timecnt, typecnt, charcnt = counts(0)
    v1_len = timecnt * 5 + typecnt * 6 + charcnt + leap * 8 + isstd + isut
    off = 44 + v1_len
    isut, isstd, leap, timecnt, typecnt, charcnt = counts(off)
    off += 44
    times = struct.unpack(f">{timecnt}q", raw[off : off + 8 * timecnt])
    off += 8 * timecnt
    idxs = list(raw[off : off + timecnt])
    off += timecnt
    types = []
    for _ in range(typecnt):
        utoff, isdst, abbr = struct.unpack(">lBB", raw[off : off + 6])
        types.append((utoff, isdst, abbr))
        off += 6
    chars = raw[off : off + charcnt]
    off += charcnt + leap * 12 + isstd + isut
    if leap:
        raise ValueError("leap-second files are not supported")
    footer = raw[off:].strip(b"\n")
    return list(zip(times, idxs)), types, chars, footer


def abbr_at(chars, i):
    return chars[i : chars.index(b"\0", i)]


def write_tzif(trans, before, types, chars, footer):
    """Build a TZif v2 file whose type 0 (RFC 8536: the type before the first transition) is `before`."""
    order = [before]
    for _, i in trans:
        if i not in order:
            order.append(i)
    new_chars = b""
    new_types = []
    for i in order:
        utoff, isdst, abbr = types[i]
        name = abbr_at(chars, abbr) + b"\0"
        pos = new_chars.find(name)
        if pos < 0:
            pos = len(new_chars)
            new_chars += name
        new_types.append(struct.pack(">lBB", utoff, isdst, pos))
    remap = {old: new for new, old in enumerate(order)}

    def header(timecnt, typecnt, charcnt):
        return b"TZif2" + bytes(15) + struct.pack(">6l", 0, 0, 0, timecnt, typecnt, charcnt)

    # v1 block: RFC 8536 asks v2 readers to skip it, and needs typecnt and
    # charcnt >= 1, so one placeholder type with an empty abbreviation.
    out = header(0, 1, 1) + struct.pack(">lBB", 0, 0, 0) + b"\0"
    out += header(len(trans), len(new_types), len(new_chars))
    out += b"".join(struct.pack(">q", t) for t, _ in trans)
    out += bytes(remap[i] for _, i in trans)
    out += b"".join(new_types) + new_chars
    out += b"\n" + footer + b"\n"
    return out


def utc(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc)


def offset(zi, t):
    return utc(t).astimezone(zi).utcoffset()


def agrees(candidate, ref, instants, memo):
    zi = zoneinfo.ZoneInfo.from_file(io.BytesIO(candidate))
    for t in instants:
        if t not in memo:
            memo[t] = offset(ref, t)
        if offset(zi, t) != memo[t]:
            return False
    return True


def check_points(trans, step):
    # Both files share the footer, so they can only differ up to the last
    # transition of the full table: compare around every transition and on
    # a grid up to it (a year without DST has no transitions to look at).
    pts = {0}
    for t, _ in trans:
        pts.update((t - 1, t, t + 1))
    if trans:
        pts.update(range(0, trans[-1][0] + 1, step))
    return sorted(t for t in pts if t >= 0)


def trim(name, raw, ref):
    trans, types, chars, footer = read_tzif(raw)
    # Transitions up to the epoch are folded into type 0, the type before
    # the first transition, so zones that differ only before 1970 share one
    # file. Python's reader takes the first standard-time type instead, so
    # a zone in DST at the epoch keeps an explicit transition at 0.
    at_epoch = 0
    for t, i in trans:
        if t <= 0:
            at_epoch = i
    kept = [(t, i) for t, i in trans if t > 0]
    before = at_epoch
    if types[at_epoch][1]:
        kept.insert(0, (0, at_epoch))
    memo = {}
    pts = check_points(kept, 7 * 86400)

    def build(n):
        return write_tzif(kept[:n], before, types, chars, footer)

    full = build(len(kept))
    if not agrees(full, ref, pts, memo):
        raise ValueError(f"{name}: trimmed file disagrees with the full data")
    # Fewest trailing transitions the footer can replace (at least one, so
    # the type of the last one tells which footer state starts the tail).
    lo, hi = min(1, len(kept)), len(kept)
    while lo < hi:
        mid = (lo + hi) // 2
        if agrees(build(mid), ref, pts, memo):
            hi = mid
        else:
            lo = mid + 1
    best = build(lo)
    if not agrees(best, ref, check_points(kept, 3 * 3600), memo):
        raise ValueError(f"{name}: slim file disagrees with the full data")
    return best


def version(zdir):
    with open(os.path.join(zdir, "tzdata.zi"), encoding="utf-8") as f:
        first = f.readline().split()
    if first[:2] != ["#", "version"]:
        raise ValueError("tzdata.zi does not start with its version")
    return first[2].encode()


def names(zdir):
    out = []
    with open(os.path.join(zdir, "tzdata.zi"), encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if parts[:1] == ["Z"]:
                out.append(parts[1])
            elif parts[:1] == ["L"]:
                out.append(parts[2])
    return sorted(set(out))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: gen_zones.py ZONEINFO_DIR > zones.bin (see zones.sh)")
    zdir = sys.argv[1]
    blobs, index, table = [], {}, []
    for name in names(zdir):
        with open(os.path.join(zdir, name), "rb") as f:
            raw = f.read()
        ref = zoneinfo.ZoneInfo.from_file(io.BytesIO(raw))
        blob = trim(name, raw, ref)
        if blob not in index:
            index[blob] = len(blobs)
            blobs.append(blob)
        table.append((name.encode(), index[blob]))
    ver = version(zdir)
    out = MAGIC + struct.pack(">B", len(ver)) + ver
    out += struct.pack(">HH", len(table), len(blobs))
    for name, i in table:
        out += struct.pack(">B", len(name)) + name + struct.pack(">H", i)
    for blob in blobs:
        out += struct.pack(">L", len(blob)) + blob
    sys.stdout.buffer.write(out)
    print(f"tzdata {ver.decode()}: {len(table)} names, {len(blobs)} distinct, {len(out)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
