#!/usr/bin/env python3
"""`make bench-fleet`: what a fleet of conchd costs etcd per (job, tick).
D daemons on this machine against one throwaway etcd, J jobs at `@every 1s`;
etcd's own `/metrics` (grpc_server_handled_total by method) are read before
and after a window of whole ticks. Then a tenth of the daemons (at least
one), chosen among the first-ranked of the coming ticks, are SIGSTOPped and
the same is measured: their ticks are claimed one stagger late by the next
ranked. Prints a table and writes target/bench_fleet.json. A benchmark, not
a test: it reports, it never fails because the machine is slow.

Usage: tests/bench_fleet.py [--daemons 10,50,200] [--jobs 1,4] [--seconds S]
                            [--stopped-seconds S]
"""
import argparse, base64, json, os, signal, statistics, subprocess, sys, time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import CONCH, CONCHD, ROOT, Etcd  # noqa: E402

PREFIX = "/bench"
WRITES = ("Txn", "Put", "DeleteRange", "LeaseGrant", "LeaseRevoke", "Compact")
STAGGER_MS = 250


GROUP_JOBS = 8


def fnv_mix(data):
    """FNV-1a 64 over `data`, then the splitmix64 finalizer."""
    m = (1 << 64) - 1
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & m
    h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & m
    h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & m
    return h ^ (h >> 31)


def group_key(job, n_jobs):
    """The claim group of docs/cron.md: `g/G`, G = ceil(jobs / 8)."""
    groups = max(1, -(-n_jobs // GROUP_JOBS))
    return f"{fnv_mix(job.encode()) % groups}/{groups}"


def first_ranked(nodes, job, tick, n_jobs):
    key = group_key(job, n_jobs)
    return min(nodes, key=lambda n: (fnv_mix(f"{n}\0{key}\0{tick}".encode()), n))


def handled(etcd):
    text = urllib.request.urlopen(f"http://{etcd.ep}/metrics").read().decode()
    by = {}
    for line in text.splitlines():
        if line.startswith("grpc_server_handled_total{"):
            method = line.split('grpc_method="')[1].split('"')[0]
            by[method] = by.get(method, 0) + float(line.split()[-1])
    return by


def prefix_range(etcd, prefix):
    """{key: value} under prefix, through etcd's JSON gateway."""
    b64 = lambda b: base64.b64encode(b).decode()
    end = prefix[:-1] + bytes([prefix[-1] + 1])
    req = urllib.request.Request(
        f"http://{etcd.ep}/v3/kv/range",
        data=json.dumps({"key": b64(prefix), "range_end": b64(end)}).encode())
    kvs = json.loads(urllib.request.urlopen(req).read()).get("kvs", [])
    return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", ""))
            for kv in kvs}


def ticks(etcd, kind, job):
    """{tick: value} of one key family of a job."""
    d = f"{PREFIX}/v1/cron/{kind}/{job}/"
    return {int(k[len(d):]): v for k, v in prefix_range(etcd, d.encode()).items()}


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else None


def sleep_to(frac):
    """Sleeps to the next instant `frac` of a second past a whole second."""
    now = time.time()
    target = int(now) + frac
    if target <= now:
        target += 1
    time.sleep(target - now)
    return int(target)


def window(etcd, jobs, seconds, only=None):
    """Metrics over `seconds` whole ticks: writes, runs, lateness. With
    `only(job, tick)`, lateness counts only the ticks it selects."""
    # 0.8 s past a tick: its claim, its backups' turns and its result are in.
    t0 = sleep_to(0.8)
    m0 = handled(etcd)
    time.sleep(seconds)
    t1 = sleep_to(0.8)
    m1 = handled(etcd)
    delta = {k: m1.get(k, 0) - m0.get(k, 0) for k in set(m0) | set(m1)}
    # etcd's counters cover the ticks t0+1..t1; runs and lateness leave the
    # last one out, whose backups' turns may still be running.
    n_all = (t1 - t0) * len(jobs)
    n = (t1 - t0 - 1) * len(jobs)
    runs, late, late_sel, bad = 0, [], [], []
    for j in jobs:
        fires, results = ticks(etcd, "fire", j), ticks(etcd, "result", j)
        for t in range(t0 + 1, t1):
            ran = 1 if t in fires else 0
            runs += ran
            r = json.loads(results[t]) if t in results else None
            if not ran or r is None or r.get("status") not in (None, "ok"):
                bad.append((j, t, ran, r))
                continue
            ms = r["start"] - t * 1000
            late.append(ms)
            if only and only(j, t):
                late_sel.append(ms)
    writes = sum(delta.get(m, 0) for m in WRITES)
    return {
        "ticks": n,
        "runs_per_tick": runs / n,
        "bad_ticks": len(bad),
        "writes_per_tick": writes / n_all,
        "txn_per_tick": delta.get("Txn", 0) / n_all,
        "reads_per_tick": delta.get("Range", 0) / n_all,
        "by_method": {k: v for k, v in sorted(delta.items()) if v},
        "late_p50_ms": pct(late, 0.5),
        "late_p99_ms": pct(late, 0.99),
        "late_max_ms": max(late) if late else None,
        "stopped_first": {"ticks": len(late_sel), "late_p50_ms": pct(late_sel, 0.5),
                          "late_max_ms": max(late_sel) if late_sel else None} if only else None,
    }


def rss_kib(pids):
    total = 0
    for p in pids:
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def one_fleet(d, n_jobs, seconds, stopped_seconds, logdir):
    etcd = Etcd()
    env = dict(os.environ, CONCH_ENDPOINTS=etcd.ep, CONCH_PREFIX=PREFIX)
    nodes = [f"d{i:03}" for i in range(d)]
    procs = []
    try:
        for n in nodes:
            # A TTL longer than the stopped window: a stopped daemon stays
            # ranked (the worst case) instead of leaving the node set.
            procs.append(subprocess.Popen(
                [CONCHD, "--node", n, "--ttl", str(stopped_seconds + 30) + "s"], env=env,
                stdout=subprocess.DEVNULL,
                stderr=open(os.path.join(logdir, f"{d}-{n}.log"), "w")))
        deadline = time.time() + 120
        while len(prefix_range(etcd, f"{PREFIX}/v1/cron/node/".encode())) < d:
            if time.time() > deadline:
                raise SystemExit(f"bench-fleet: {d} daemons did not register in 120 s")
            time.sleep(0.2)
        jobs = [f"j{i}" for i in range(n_jobs)]
        for j in jobs:
            subprocess.run([CONCH, "cron", "add", j, "--schedule", "@every 1s", "--", "true"],
                           env=env, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        time.sleep(2)
        rss = rss_kib([p.pid for p in procs])
        healthy = window(etcd, jobs, seconds)
        # Stop the first-ranked daemons of the coming ticks, a tenth of them.
        k = max(1, d // 10)
        soon = int(time.time()) + 2
        stopped = []
        t = soon
        while len(stopped) < k:
            for j in jobs:
                f = first_ranked(nodes, j, t, len(jobs))
                if f not in stopped and len(stopped) < k:
                    stopped.append(f)
            t += 1
        for n in stopped:
            procs[nodes.index(n)].send_signal(signal.SIGSTOP)
        stopped_set = set(stopped)
        degraded = window(etcd, jobs, stopped_seconds,
                          only=lambda j, t: first_ranked(nodes, j, t, len(jobs)) in stopped_set)
        for n in stopped:
            procs[nodes.index(n)].send_signal(signal.SIGCONT)
        return {"daemons": d, "jobs": n_jobs, "rss_total_kib": rss,
                "rss_per_daemon_kib": rss // d, "healthy": healthy,
                "stopped": len(stopped), "degraded": degraded}
    finally:
        for p in procs:
            p.send_signal(signal.SIGCONT)
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        etcd.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--daemons", default="10,50,200")
    ap.add_argument("--jobs", default="1,4")
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--stopped-seconds", type=int, default=20)
    a = ap.parse_args()
    logdir = os.path.join(ROOT, "target", "bench_fleet_logs")
    os.makedirs(logdir, exist_ok=True)
    rows = []
    for d in [int(x) for x in a.daemons.split(",")]:
        for j in [int(x) for x in a.jobs.split(",")]:
            print(f"bench-fleet: {d} daemons, {j} jobs ...", flush=True)
            rows.append(one_fleet(d, j, a.seconds, a.stopped_seconds, logdir))
    hdr = ("D", "J", "phase", "job-ticks", "runs/tick", "writes/tick", "txn/tick",
           "reads/tick", "late p50", "late p99", "late max", "stopped-first: n, p50, max")
    print(" | ".join(hdr))
    for r in rows:
        for phase in ("healthy", "degraded"):
            w = r[phase]
            sf = w["stopped_first"]
            extra = f'{sf["ticks"]}, {sf["late_p50_ms"]}, {sf["late_max_ms"]} ms' if sf else ""
            name = phase if phase == "healthy" else f'{r["stopped"]} stopped'
            print(f'{r["daemons"]} | {r["jobs"]} | {name} | {w["ticks"]} | {w["runs_per_tick"]:.3f} | '
                  f'{w["writes_per_tick"]:.2f} | {w["txn_per_tick"]:.2f} | '
                  f'{w["reads_per_tick"]:.2f} | {w["late_p50_ms"]} | {w["late_p99_ms"]} | '
                  f'{w["late_max_ms"]} | {extra}')
        print(f'{r["daemons"]} | {r["jobs"]} | rss {r["rss_per_daemon_kib"]} KiB per daemon, '
              f'{r["rss_total_kib"] // 1024} MiB in all')
    out = os.path.join(ROOT, "target", "bench_fleet.json")
    with open(out, "w") as f:
        json.dump(rows, f, indent=1)
    print(json.dumps(rows))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
