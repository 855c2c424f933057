#!/usr/bin/env python3
"""Throughput and latency of CPython's multiprocessing messaging primitives.

Throughput (messages of 8 B, 1 KiB, 64 KiB; payload is a ``bytes`` object):
  * multiprocessing.Queue        1 producer -> 1 consumer, and 4 -> 2
  * multiprocessing.SimpleQueue  1 producer -> 1 consumer
  * multiprocessing.Pipe         1 -> 1 via Connection.send_bytes/recv_bytes
Latency (8 B ping-pong round trip): Pipe (duplex) and a pair of Queues.

Timing uses time.perf_counter() (CLOCK_MONOTONIC on Linux: one clock shared
by all processes).  A run starts when every process is ready and a start
event fires; it ends when the last consumer has received its last message.
Each configuration is repeated RUNS times; results go to stdout as JSON
lines (one per configuration, all per-run values included).

Usage: python3 py_ipc.py [runs] [all|throughput|throughput-lite|latency]
"""
import json
import sys
import time
import multiprocessing as mp

# Explicit start method so results do not depend on the platform default
# (3.14 switched Linux to "forkserver"; message rates are unaffected by it).
ctx = mp.get_context("fork")

SIZES = (8, 1024, 65536)
# The mproc harness compares 8 B and 64 KiB only (set by the second argument "throughput-lite").
LITE_SIZES = (8, 65536)
# Messages per run, chosen so one run takes ~0.2-1.5 s on a 2-core VM.
COUNTS = {
    "queue": {8: 200_000, 1024: 200_000, 65536: 20_000},
    "queue_4p2c": {8: 200_000, 1024: 200_000, 65536: 20_000},
    "simplequeue": {8: 200_000, 1024: 200_000, 65536: 20_000},
    "pipe_bytes": {8: 500_000, 1024: 500_000, 65536: 20_000},
}
LAT_ITERS = {"pipe_bytes": 20_000, "queue_pair": 10_000}
LABEL = {"queue": "mp.Queue", "simplequeue": "mp.SimpleQueue", "pipe_bytes": "mp.Pipe send_bytes"}


# --------------------------------------------------------------- workers

def _producer(kind, q, n, size, ready, start, out):
    """Send n messages of `size` bytes on q; report the start time."""
    msg = b"x" * size
    ready.put(1)
    start.wait()
    t0 = time.perf_counter()
    if kind == "pipe_bytes":
        send = q.send_bytes
    else:
        send = q.put
    for _ in range(n):
        send(msg)
    if kind == "queue":
        q.close()
        q.join_thread()  # wait until the feeder thread flushed everything
    out.put(("start", t0))


def _consumer(kind, q, n, size, ready, start, out):
    """Receive exactly n messages from q; report the end time."""
    recv = q.recv_bytes if kind == "pipe_bytes" else q.get
    ready.put(1)
    start.wait()
    got = 0
    for _ in range(n):
        got += len(recv())
    t1 = time.perf_counter()
    if got != n * size:  # integrity: every byte arrived
        raise SystemExit(f"{kind}: received {got} bytes, expected {n * size}")
    out.put(("end", t1))


def throughput_run(kind, size, n, producers=1, consumers=1):
    """One run; returns messages/second."""
    if kind == "pipe_bytes":
        r, w = ctx.Pipe(duplex=False)
        pq, cq = w, r
    elif kind == "simplequeue":
        pq = cq = ctx.SimpleQueue()
    else:
        pq = cq = ctx.Queue()
    ready, out, start = ctx.SimpleQueue(), ctx.SimpleQueue(), ctx.Event()
    procs = [ctx.Process(target=_producer, args=(kind, pq, n // producers, size, ready, start, out))
             for _ in range(producers)]
    procs += [ctx.Process(target=_consumer, args=(kind, cq, n // consumers, size, ready, start, out))
              for _ in range(consumers)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get()
    start.set()
    marks = [out.get() for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"{kind}: worker failed")
    t0 = min(t for k, t in marks if k == "start")
    t1 = max(t for k, t in marks if k == "end")
    return n / (t1 - t0)


def _echo(kind, a, b, iters):
    """Echo server for the ping-pong tests."""
    if kind == "pipe_bytes":
        for _ in range(iters):
            a.send_bytes(a.recv_bytes())
    else:
        for _ in range(iters):
            b.put(a.get())


def latency_run(kind, iters):
    """One run of `iters` 8-byte round trips; returns (median_us, p99_us)."""
    warm = iters // 10
    if kind == "pipe_bytes":
        mine, theirs = ctx.Pipe(duplex=True)
        p = ctx.Process(target=_echo, args=(kind, theirs, None, iters + warm))

        def rt(m):
            mine.send_bytes(m)
            mine.recv_bytes()
    else:
        q_to, q_back = ctx.Queue(), ctx.Queue()
        p = ctx.Process(target=_echo, args=(kind, q_to, q_back, iters + warm))

        def rt(m):
            q_to.put(m)
            q_back.get()
    p.start()
    msg, lat = b"x" * 8, []
    clock = time.perf_counter_ns
    for i in range(iters + warm):
        t0 = clock()
        rt(msg)
        if i >= warm:
            lat.append(clock() - t0)
    p.join()
    lat.sort()
    return lat[len(lat) // 2] / 1e3, lat[int(len(lat) * 0.99)] / 1e3


# ------------------------------------------------------------------ main

def emit(**rec):
    print(json.dumps(rec), flush=True)


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    only = sys.argv[2] if len(sys.argv) > 2 else "all"
    if only in ("all", "throughput", "throughput-lite"):
        configs = [("queue", 1, 1), ("queue", 4, 2), ("simplequeue", 1, 1), ("pipe_bytes", 1, 1)]
        for kind, np_, nc in configs:
            name = "queue_4p2c" if np_ > 1 else kind
            sizes = SIZES
            if only == "throughput-lite":
                sizes = (8,) if np_ > 1 else LITE_SIZES
            for size in sizes:
                n = COUNTS[name][size]
                vals = [throughput_run(kind, size, n, np_, nc) for _ in range(runs)]
                emit(group="py_throughput", bench=LABEL[kind],
                     topology=f"{np_}P->{nc}C", size=size, count=n, unit="msg/s", values=vals)
    if only in ("all", "latency"):
        for kind, name in (("pipe_bytes", "mp.Pipe send_bytes"), ("queue_pair", "mp.Queue x2")):
            res = [latency_run(kind, LAT_ITERS[kind]) for _ in range(runs)]
            emit(group="py_latency", bench=name, size=8, count=LAT_ITERS[kind], unit="us",
                 median=[m for m, _ in res], p99=[p for _, p in res])


if __name__ == "__main__":
    main()
