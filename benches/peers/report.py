#!/usr/bin/env python3
"""Merge the per-run records of run.sh into one set of markdown tables.

Every figure is the median over rounds. A ratio is computed within each round
(mproc's figure divided by the peer's figure from the same round) and the
median of those per-round ratios is printed, so that a slow phase of the
machine cancels out of the ratio.

Usage: python3 report.py results/raw.jsonl
"""
import json
import statistics
import sys
from collections import defaultdict

# series[key][round] = value
series = defaultdict(dict)
meta = {}


def put(key, rnd, value):
    if value is not None:
        series[key][rnd] = value


def load(path):
    rnd = 0
    for line in open(path):
        line = line.strip()
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        g = r["group"]
        if g == "meta":
            meta.update(r)
        elif g == "round":
            rnd = r["n"]
        elif g == "tput":
            key = ("tput", r["contender"], r["procs"], r["size"])
            put(key + ("msgs",), rnd, r["msgs"])
            put(key + ("mbs",), rnd, r.get("mbs"))
        elif g == "rtt":
            put(("rtt", r["contender"], "median"), rnd, r["median_us"])
            put(("rtt", r["contender"], "p99"), rnd, r["p99_us"])
            put(("rtt", r["contender"], "cpu"), rnd, r.get("cpu_us_per_rt"))
        elif g == "lock":
            put(("lock", r["contender"], r["procs"], "ops"), rnd, r["ops"])
            put(("lock", r["contender"], r["procs"], "handoffs"), rnd, r.get("handoffs"))
            put(("lock", r["contender"], r["procs"], "share"), rnd, r.get("smallest_share"))
            put(("lock", r["contender"], r["procs"], "longest"), rnd, r.get("longest_wait_ms"))
        elif g == "ticket":
            put(("ticket", r["contender"]), rnd, r["buys"])
        elif g == "scale_procs":
            put(("scale_procs", r["n"], r["batched"]), rnd, r["msgs"])
        elif g == "scale_cap":
            put(("scale_cap", r["cap"], r["batched"]), rnd, r["msgs"])
        elif g == "raw_throughput":
            name = "C " + r["bench"]
            put(("tput", name, "1->1", r["size"], "msgs"), rnd, r["values"][0])
            put(("tput", name, "1->1", r["size"], "mbs"), rnd, r["values"][0] * r["size"] / 1e6)
        elif g == "raw_latency":
            put(("rtt", "C " + r["bench"], "median"), rnd, r["median"][0])
            put(("rtt", "C " + r["bench"], "p99"), rnd, r["p99"][0])
        elif g == "raw_lock":
            put(("lock", "C " + r["bench"], r["procs"], "ops"), rnd, r["values"][0])
            put(("lock", "C " + r["bench"], r["procs"], "share"), rnd, (r.get("min_share") or [None])[0])
            put(("lock", "C " + r["bench"], r["procs"], "longest"), rnd, (r.get("longest_wait_ms") or [None])[0])
        elif g == "py_throughput":
            procs = r["topology"].replace("P", "").replace("C", "")
            name = "Python " + r["bench"]
            put(("tput", name, procs, r["size"], "msgs"), rnd, r["values"][0])
            put(("tput", name, procs, r["size"], "mbs"), rnd, r["values"][0] * r["size"] / 1e6)
        elif g == "py_latency":
            put(("rtt", "Python " + r["bench"], "median"), rnd, r["median"][0])
            put(("rtt", "Python " + r["bench"], "p99"), rnd, r["p99"][0])
        elif g == "py_lock":
            put(("lock", "Python " + r["bench"], r["procs"], "ops"), rnd, r["values"][0])
            put(("lock", "Python " + r["bench"], r["procs"], "share"), rnd, (r.get("min_share") or [None])[0])
            put(("lock", "Python " + r["bench"], r["procs"], "longest"), rnd, (r.get("longest_wait_ms") or [None])[0])
        elif g == "py_ticket" and r.get("bench") == "loop" and r.get("lock"):
            put(("ticket", f"Python mp.Lock, JSON file on {r['fs']}"), rnd, r["runs"][0]["sold_per_s"])


def med(key):
    v = list(series.get(key, {}).values())
    return statistics.median(v) if v else None


def ratios(num, den):
    """num/den in every round that has both."""
    a, b = series.get(num, {}), series.get(den, {})
    return [a[k] / b[k] for k in a if k in b and b[k]]


class Ratio(float):
    """A median of per-round ratios that remembers their spread."""
    spread = None


def ratio(num, den):
    """Median over rounds of num/den, using rounds that have both."""
    rs = ratios(num, den)
    if not rs:
        return None
    r = Ratio(statistics.median(rs))
    r.spread = (min(rs), max(rs))
    return r


def rate(x):
    if x is None:
        return "–"
    if x >= 1e6:
        return f"{x / 1e6:.2f} M"
    if x >= 1e3:
        return f"{x / 1e3:.1f} k"
    return f"{x:.0f}"


def num(x, fmt="{:,.0f}"):
    return "–" if x is None else fmt.format(x)


def rx(x):
    if x is None:
        return "–"
    if x >= 100:
        return f"{x:,.0f}×"
    if x >= 10:
        return f"{x:.1f}×"
    return f"{x:.2f}×"


def nruns(key):
    return len(series.get(key, {}))


MP_U = "mproc (put/get_into)"
MP_B = "mproc (put_many/get_many_with)"
MP_RTT = "mproc (2 queues, put/get_into)"
MP_LOCK = "mproc Lock"


def tput_table(out):
    out.append("### Queue throughput, 1 producer → 1 consumer process\n")
    out.append("Ratios: mproc's figure ÷ the peer's, per round, median over rounds "
               "(> 1 means mproc is faster).\n")
    out.append("| contender | 8 B msg/s | 64 KiB MB/s | mproc put/get ÷ it, 8 B | "
               "mproc batched ÷ it, 8 B | mproc put/get ÷ it, 64 KiB | runs |")
    out.append("|---|---:|---:|---:|---:|---:|---:|")
    names = sorted({k[1] for k in series if k[0] == "tput" and k[2] == "1->1"},
                   key=lambda n: -(med(("tput", n, "1->1", 8, "msgs")) or 0))
    for n in names:
        k8 = ("tput", n, "1->1", 8, "msgs")
        k64 = ("tput", n, "1->1", 65536, "mbs")
        mine = n in (MP_U, MP_B)
        out.append("| {} | {} | {} | {} | {} | {} | {} |".format(
            f"**{n}**" if mine else n, rate(med(k8)), num(med(k64)),
            "" if mine else rx(ratio(("tput", MP_U, "1->1", 8, "msgs"), k8)),
            "" if mine else rx(ratio(("tput", MP_B, "1->1", 8, "msgs"), k8)),
            "" if mine else rx(ratio(("tput", MP_U, "1->1", 65536, "mbs"), k64)),
            nruns(k8)))
    out.append("")
    out.append("### Queue throughput, several processes, 8 B messages\n")
    out.append("| contender | topology | msg/s | mproc put/get ÷ it | mproc batched ÷ it |")
    out.append("|---|---|---:|---:|---:|")
    rows = sorted({(k[1], k[2]) for k in series if k[0] == "tput" and k[2] != "1->1"})
    for n, procs in rows:
        k = ("tput", n, procs, 8, "msgs")
        mine = n in (MP_U, MP_B)
        out.append("| {} | {} | {} | {} | {} |".format(
            f"**{n}**" if mine else n, procs.replace("->", "→"), rate(med(k)),
            "" if mine else rx(ratio(("tput", MP_U, "4->2", 8, "msgs"), k)),
            "" if mine else rx(ratio(("tput", MP_B, "4->2", 8, "msgs"), k))))
    out.append("")


def rtt_table(out):
    out.append("### Round trip, 8 B ping-pong (µs)\n")
    out.append("mproc ÷ it < 1 means mproc's round trip is shorter.\n")
    out.append("| contender | median µs | p99 µs | mproc ÷ it | runs |")
    out.append("|---|---:|---:|---:|---:|")
    names = sorted({k[1] for k in series if k[0] == "rtt"},
                   key=lambda n: med(("rtt", n, "median")) or 0)
    for n in names:
        k = ("rtt", n, "median")
        mine = n == MP_RTT
        out.append("| {} | {} | {} | {} | {} |".format(
            f"**{n}**" if mine else n, num(med(k), "{:.2f}"), num(med(("rtt", n, "p99")), "{:.1f}"),
            "" if mine else rx(ratio(("rtt", MP_RTT, "median"), k)), nruns(k)))
    cpu = med(("rtt", MP_RTT, "cpu"))
    if cpu is not None:
        out.append(f"\nCPU cost of mproc's round trip: {cpu:.2f} µs of CPU (both processes, "
                   f"user + system, start-up of the echo process included) per round trip of "
                   f"{med(('rtt', MP_RTT, 'median')):.2f} µs median.")
    out.append("")


def lock_table(out):
    out.append("### Locks: lock + increment a shared counter + unlock, all processes together (ops/s)\n")
    out.append("Fairness, 2 processes: the smaller process's share of the acquisitions "
               "(0.5 is even), and the longest wait (the longest batch of 16 acquisitions, "
               "64 for C and Python, of either process), median over rounds.\n")
    out.append("| lock | 1 process | 2 processes | 4 processes | handoffs/s (2 procs) | "
               "smaller share (2) | longest wait ms (2) | "
               "mproc ÷ it, 1 | mproc ÷ it, 2 | mproc ÷ it, 4 |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    names = sorted({k[1] for k in series if k[0] == "lock"},
                   key=lambda n: -(med(("lock", n, 1, "ops")) or med(("lock", n, 2, "ops")) or 0))
    for n in names:
        mine = n == MP_LOCK
        cells = []
        for p in (1, 2, 4):
            cells.append("" if mine else rx(ratio(("lock", MP_LOCK, p, "ops"), ("lock", n, p, "ops"))))
        out.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            f"**{n}**" if mine else n, rate(med(("lock", n, 1, "ops"))), rate(med(("lock", n, 2, "ops"))),
            rate(med(("lock", n, 4, "ops"))), rate(med(("lock", n, 2, "handoffs"))),
            num(med(("lock", n, 2, "share")), "{:.2f}"), num(med(("lock", n, 2, "longest")), "{:.2f}"),
            *cells))
    out.append("")


def ticket_table(out):
    out.append("### Ticket loop: 4 processes × 10,000 buy attempts, 20,000 tickets\n")
    out.append("| contender | buys/s | ÷ Python (JSON on tmpfs) | runs |")
    out.append("|---|---:|---:|---:|")
    py = ("ticket", "Python mp.Lock, JSON file on tmpfs")
    for n in sorted({k[1] for k in series if k[0] == "ticket"}, key=lambda n: -(med(("ticket", n)) or 0)):
        k = ("ticket", n)
        out.append(f"| {n} | {rate(med(k))} | {'' if k == py else rx(ratio(k, py))} | {nruns(k)} |")
    out.append("")


def scale_tables(out):
    out.append("### Cost growth: N producers → N consumers (8 B, default byte budget 1 MiB)\n")
    out.append("| N | processes | put/get_into msg/s | ns/msg | put_many/get_many_with msg/s | ns/msg |")
    out.append("|---:|---:|---:|---:|---:|---:|")
    for n in sorted({k[1] for k in series if k[0] == "scale_procs"}):
        u, b = med(("scale_procs", n, False)), med(("scale_procs", n, True))
        out.append(f"| {n} | {2 * n} | {rate(u)} | {num(1e9 / u if u else None, '{:.0f}')} | "
                   f"{rate(b)} | {num(1e9 / b if b else None, '{:.1f}')} |")
    out.append("")
    out.append("### Cost growth: queue capacity (maxsize; byte budget 16 B × maxsize), 1 → 1, 8 B\n")
    out.append("| maxsize | put/get_into msg/s | ns/msg | put_many/get_many_with msg/s | ns/msg |")
    out.append("|---:|---:|---:|---:|---:|")
    for c in sorted({k[1] for k in series if k[0] == "scale_cap"}):
        u, b = med(("scale_cap", c, False)), med(("scale_cap", c, True))
        out.append(f"| {c:,} | {rate(u)} | {num(1e9 / u if u else None, '{:.0f}')} | "
                   f"{rate(b)} | {num(1e9 / b if b else None, '{:.1f}')} |")
    out.append("")


def targets(out):
    out.append("### Targets (ratios from the same rounds)\n")
    out.append("Measured: the median of the per-round ratios; spread: the smallest and "
               "largest per-round ratio.\n")
    out.append("| target | measured | spread | verdict |")
    out.append("|---|---:|---:|---|")

    def row(label, value, goal, higher=True):
        lo_hi = getattr(value, "spread", None)
        sp = f"{rx(lo_hi[0])} – {rx(lo_hi[1])}" if lo_hi else ""
        if value is None:
            out.append(f"| {label} | – | | not measured |")
            return
        if goal is None:
            out.append(f"| {label} | {rx(value)} | {sp} | reported |")
            return
        ok = value >= goal if higher else value <= goal
        if ok:
            verdict = "met"
        elif higher:
            verdict = f"missed: {value / goal:.2f} of the goal"
        else:
            verdict = f"missed: {value / goal:.1f}× the goal"
        out.append(f"| {label} | {rx(value)} | {sp} | {verdict} |")

    u8 = ("tput", MP_U, "1->1", 8, "msgs")
    b8 = ("tput", MP_B, "1->1", 8, "msgs")
    pyq = ("tput", "Python mp.Queue", "1->1", 8, "msgs")
    ipm = ("tput", "ipmpsc 0.5 (shm ring, 4 MiB)", "1->1", 8, "msgs")
    ipm1 = ("tput", "ipmpsc 0.5 (shm ring, 1 MiB)", "1->1", 8, "msgs")
    ring = ("tput", "C shm_spsc_ring", "1->1", 8, "msgs")
    row("1→1 8 B, put/get ÷ Python Queue ≥ 100×", ratio(u8, pyq), 100)
    row("1→1 8 B, batched ÷ Python Queue ≥ 100×", ratio(b8, pyq), 100)
    row("1→1 8 B, put/get ÷ ipmpsc ≥ 1.0×", ratio(u8, ipm), 1.0)
    row("1→1 8 B, batched ÷ ipmpsc ≥ 1.0×", ratio(b8, ipm), 1.0)
    row("1→1 8 B, put/get ÷ ipmpsc (1 MiB ring) ≥ 1.0×", ratio(u8, ipm1), 1.0)
    row("1→1 8 B, batched ÷ raw SPSC ring ≥ 0.5×", ratio(b8, ring), 0.5)
    row("1→1 8 B, put/get ÷ raw SPSC ring ≥ 0.9×", ratio(u8, ring), 0.9)
    row("1→1 8 B, batched ÷ raw SPSC ring pinned to two CPUs", ratio(b8, ring[:1] + ("C shm_spsc_ring (pinned)",) + ring[2:]), None)
    row("4→2 8 B, put/get ÷ Python Queue 4→2 ≥ 100×",
        ratio(("tput", MP_U, "4->2", 8, "msgs"), ("tput", "Python mp.Queue", "4->2", 8, "msgs")), 100)
    row("4→2 8 B, batched ÷ Python Queue 4→2 ≥ 100×",
        ratio(("tput", MP_B, "4->2", 8, "msgs"), ("tput", "Python mp.Queue", "4->2", 8, "msgs")), 100)
    u64 = ("tput", MP_U, "1->1", 65536, "mbs")
    row("64 KiB MB/s ÷ ipmpsc (4 MiB ring) ≥ 1.0×", ratio(u64, ("tput", "ipmpsc 0.5 (shm ring, 4 MiB)", "1->1", 65536, "mbs")), 1.0)
    row("64 KiB MB/s ÷ ipmpsc (1 MiB ring) ≥ 1.0×", ratio(u64, ("tput", "ipmpsc 0.5 (shm ring, 1 MiB)", "1->1", 65536, "mbs")), 1.0)
    row("64 KiB MB/s ÷ Python Queue ≥ 4×", ratio(u64, ("tput", "Python mp.Queue", "1->1", 65536, "mbs")), 4)
    row("round trip ÷ C unix-socket round trip ≤ 0.1×",
        ratio(("rtt", MP_RTT, "median"), ("rtt", "C unix_stream", "median")), 0.1, higher=False)
    row("round trip ÷ std UnixStream round trip ≤ 0.1×",
        ratio(("rtt", MP_RTT, "median"), ("rtt", "std UnixStream + u32 framing", "median")), 0.1, higher=False)
    row("round trip ÷ raw SPSC ring round trip ≤ 2×",
        ratio(("rtt", MP_RTT, "median"), ("rtt", "C shm_spsc_ring", "median")), 2, higher=False)
    row("round trip p99 ÷ raw SPSC ring p99",
        ratio(("rtt", MP_RTT, "p99"), ("rtt", "C shm_spsc_ring", "p99")), None)
    pth = "C pthread_mutex_pshared_robust"
    row("lock uncontended ÷ raw robust pthread mutex ≥ 0.9×",
        ratio(("lock", MP_LOCK, 1, "ops"), ("lock", pth, 1, "ops")), 0.9)
    row("lock, 2 processes ÷ raw robust pthread mutex",
        ratio(("lock", MP_LOCK, 2, "ops"), ("lock", pth, 2, "ops")), None)
    row("lock longest wait, 2 processes ÷ raw robust pthread mutex's",
        ratio(("lock", MP_LOCK, 2, "longest"), ("lock", pth, 2, "longest")), None)
    row("lock longest wait, 2 processes ÷ Python mp.Lock's ≤ 1×",
        ratio(("lock", MP_LOCK, 2, "longest"),
              ("lock", "Python mp.Lock + Value(lock=False): counter += 1", 2, "longest")), 1, higher=False)
    row("lock smaller share, 2 processes ÷ raw robust pthread mutex's",
        ratio(("lock", MP_LOCK, 2, "share"), ("lock", pth, 2, "share")), None)
    py_t = ("ticket", "Python mp.Lock, JSON file on tmpfs")
    row("tickets, count in shared memory ÷ Python (JSON, tmpfs) ≥ 100×",
        ratio(("ticket", "mproc Lock, count in shared memory"), py_t), 100)
    row("tickets, JSON on tmpfs ÷ Python (JSON, tmpfs) ≥ 3×",
        ratio(("ticket", "mproc Lock, JSON file on tmpfs"), py_t), 3)
    out.append("")


def main():
    load(sys.argv[1])
    out = []
    if meta:
        out.append(f"Machine: {meta.get('machine', '?')}. Rounds: {meta.get('rounds', '?')}, "
                   f"{meta.get('dur_ms', '?')} ms per Rust measurement; load average before "
                   f"{meta.get('load_before', '?')}, after {meta.get('load_after', '?')}; "
                   f"wall {meta.get('wall_s', '?')} s.\n")
    tput_table(out)
    rtt_table(out)
    lock_table(out)
    ticket_table(out)
    scale_tables(out)
    targets(out)
    print("\n".join(out))


if __name__ == "__main__":
    main()
