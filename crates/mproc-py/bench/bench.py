"""Throughput of mproc against multiprocessing and faster-fifo, and of its
Lock against multiprocessing.Lock and filelock, in one run.

    pip install ./crates/mproc-py faster-fifo filelock
    python crates/mproc-py/bench/bench.py [--n 200000] [--repeat 3] [--markdown]

Queues: 1 producer -> 1 consumer process and 4 -> 2 (fork), N messages in
all, for 8-byte ``bytes`` and the tuple ``(i, "abc", 1.5)``, one message
per call (``put``/``get``) and batched (``put_many``/``get_many``, 256 per
call). Contenders run interleaved, each configuration ``--repeat`` times;
the median is reported in thousands of messages per second, and ratios are
from the same run. Locks: acquire+release pairs per second, one process
uncontended and two processes contending. Then a breakdown of where the
time of one put+get goes.
"""

import argparse
import multiprocessing as mp
import os
import pickle
import statistics
import sys
import tempfile
import time

import mproc

try:
    import faster_fifo
except ImportError:  # the benchmark says so in its table
    faster_fifo = None
try:
    import filelock
except ImportError:
    filelock = None

BATCH = 256
ctx = mp.get_context("fork")


def payload(kind):
    if kind == "bytes":
        return lambda i: b"12345678"
    return lambda i: (i, "abc", 1.5)


# ------------------------------------------------------------------ queues

def make_queue(impl, kind):
    if impl == "multiprocessing":
        return ctx.Queue()
    if impl == "faster-fifo":
        return faster_fifo.Queue(max_size_bytes=64 * 1024 * 1024)
    if impl == "mproc" and kind == "bytes":
        # bytes go as they are: a ByteQueue, no pickling.
        return mproc.ByteQueue()
    return mproc.Queue()


def producer(q, n, kind, batched, impl, start):
    make = payload(kind)
    start.wait()
    if not batched:
        put = q.put
        for i in range(n):
            put(make(i))
        return
    for lo in range(0, n, BATCH):
        items = [make(i) for i in range(lo, min(n, lo + BATCH))]
        q.put_many(items)


def consumer(q, batched, impl, done, counts, idx):
    got = 0
    if not batched:
        get = q.get
        if impl == "faster-fifo":  # it refuses timeout=None (faster-fifo issue #42)
            def get(_get=q.get):
                return _get(timeout=1e6)
        while True:
            item = get()
            if item is None or item == b"":
                break
            got += 1
    else:
        while True:
            if impl == "faster-fifo":
                items = q.get_many(timeout=1e6, max_messages_to_get=BATCH)
            else:
                items = q.get_many(BATCH)
            stops = 0
            for item in items:
                if item is None or item == b"":
                    stops += 1
                else:
                    got += 1
            if stops:
                # A batch can hold another consumer's end marker: give it back.
                for _ in range(stops - 1):
                    q.put(items[-1])
                break
    counts[idx] = got
    done.put(got)


def run_queue(impl, kind, producers, consumers, n, batched):
    q = make_queue(impl, kind)
    start = ctx.Event()
    done = ctx.SimpleQueue()
    counts = ctx.Array("l", consumers, lock=False)
    per = n // producers
    ps = [ctx.Process(target=producer, args=(q, per, kind, batched, impl, start))
          for _ in range(producers)]
    cs = [ctx.Process(target=consumer, args=(q, batched, impl, done, counts, i))
          for i in range(consumers)]
    for p in ps + cs:
        p.start()
    time.sleep(0.2)  # every process is up and waiting
    t0 = time.perf_counter()
    start.set()
    for p in ps:
        p.join()
    stop = b"" if kind == "bytes" else None
    for _ in range(consumers):
        q.put(stop)
    total = sum(done.get() for _ in range(consumers))
    elapsed = time.perf_counter() - t0
    for c in cs:
        c.join()
    assert total == per * producers, (impl, total)
    return total / elapsed


# ------------------------------------------------------------------- locks

def make_lock(impl, tmp):
    if impl == "multiprocessing.Lock":
        return ctx.Lock()
    if impl == "mproc.Lock":
        return mproc.Lock()
    if impl == "mproc.Lock (named)":
        return mproc.Lock("bench-lock", namespace=tmp)
    if impl == "filelock":
        return filelock.FileLock(os.path.join(tmp, "bench.lock"))
    raise ValueError(impl)


def lock_loop(impl, tmp, n, start, out):
    lock = make_lock(impl, tmp)  # named and file locks: each process opens its own
    start.wait()
    t0 = time.perf_counter()
    for _ in range(n):
        with lock:
            pass
    out.put(time.perf_counter() - t0)


def run_lock(impl, tmp, n, procs, shared):
    start, out = ctx.Event(), ctx.SimpleQueue()
    if procs == 1:
        lock = shared if shared is not None else make_lock(impl, tmp)
        t0 = time.perf_counter()
        for _ in range(n):
            with lock:
                pass
        return n / (time.perf_counter() - t0)
    if impl in ("multiprocessing.Lock", "mproc.Lock"):
        ps = [ctx.Process(target=_lock_loop_shared, args=(shared, n, start, out))
              for _ in range(procs)]
    else:
        ps = [ctx.Process(target=lock_loop, args=(impl, tmp, n, start, out)) for _ in range(procs)]
    for p in ps:
        p.start()
    time.sleep(0.2)
    t0 = time.perf_counter()
    start.set()
    for _ in ps:
        out.get()
    elapsed = time.perf_counter() - t0
    for p in ps:
        p.join()
    return n * procs / elapsed


def _lock_loop_shared(lock, n, start, out):
    start.wait()
    t0 = time.perf_counter()
    for _ in range(n):
        with lock:
            pass
    out.put(time.perf_counter() - t0)


# --------------------------------------------------------------- breakdown

def per_call_ns(fn, n=200000):
    t0 = time.perf_counter_ns()
    for _ in range(n):
        fn()
    return (time.perf_counter_ns() - t0) / n


def breakdown():
    item = (1, "abc", 1.5)
    blob = pickle.dumps(item, 5)
    q = mproc.Queue()
    b = mproc.ByteQueue()
    rows = [
        ("empty Python call", per_call_ns(lambda: None)),
        ("pickle.dumps((i, 'abc', 1.5))", per_call_ns(lambda: pickle.dumps(item, 5))),
        ("pickle.loads of it", per_call_ns(lambda: pickle.loads(blob))),
        ("mproc.ByteQueue put+get, 8 bytes, one process", per_call_ns(
            lambda: (b.put(b"12345678"), b.get()))),
        ("mproc.Queue put+get of the tuple, one process", per_call_ns(
            lambda: (q.put(item), q.get()))),
    ]
    return rows


# ------------------------------------------------------------------ report

def fmt(x):
    return "{:,.0f}".format(x / 1000) if x else "–"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200000, help="messages per queue run")
    ap.add_argument("--lock-n", type=int, default=20000, help="lock pairs per process")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()

    impls = ["multiprocessing", "faster-fifo", "mproc"]
    if faster_fifo is None:
        print("faster-fifo is not installed: pip install faster-fifo", file=sys.stderr)
        impls.remove("faster-fifo")
    configs = []
    for topo in ((1, 1), (4, 2)):
        for kind in ("bytes", "tuple"):
            for batched in (False, True):
                configs.append((topo, kind, batched))
    results = {}
    for _ in range(a.repeat):
        for topo, kind, batched in configs:
            for impl in impls:  # interleaved: one run of each, then again
                if batched and impl == "multiprocessing":
                    continue
                r = run_queue(impl, kind, topo[0], topo[1], a.n, batched)
                results.setdefault((topo, kind, batched, impl), []).append(r)
    med = {k: statistics.median(v) for k, v in results.items()}

    print("Python {}, {} CPUs, N={} messages, median of {} (k msg/s)".format(
        sys.version.split()[0], os.cpu_count(), a.n, a.repeat))
    print()
    print("| producers→consumers | payload | calls | multiprocessing.Queue | faster-fifo | mproc |"
          " mproc ÷ mp.Queue | mproc ÷ faster-fifo |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for topo, kind, batched in configs:
        mpq = med.get((topo, kind, batched, "multiprocessing"))
        ff = med.get((topo, kind, batched, "faster-fifo"))
        mp_ = med[(topo, kind, batched, "mproc")]
        mpq_single = med.get((topo, kind, False, "multiprocessing"))
        ratio_mp = mp_ / (mpq or mpq_single)
        print("| {}→{} | {} | {} | {} | {} | {} | {:.1f}× | {} |".format(
            topo[0], topo[1], "8-byte bytes" if kind == "bytes" else "(i, 'abc', 1.5)",
            "put_many/get_many ({})".format(BATCH) if batched else "put/get",
            fmt(mpq) if mpq else "(no batch API)", fmt(ff), fmt(mp_),
            ratio_mp, "{:.1f}×".format(mp_ / ff) if ff else "–"))
    print()
    print("Batched rows compare mproc's batches with multiprocessing.Queue's single put/get "
          "(it has no batch API). mproc's bytes go through mproc.ByteQueue (not pickled); "
          "the others pickle them.")

    lock_impls = ["multiprocessing.Lock", "mproc.Lock", "mproc.Lock (named)"]
    if filelock is not None:
        lock_impls.append("filelock")
    else:
        print("filelock is not installed: pip install filelock", file=sys.stderr)
    lres = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o700)
        shared = {"multiprocessing.Lock": ctx.Lock(), "mproc.Lock": mproc.Lock()}
        for _ in range(a.repeat):
            for procs in (1, 2):
                for impl in lock_impls:
                    r = run_lock(impl, tmp, a.lock_n, procs, shared.get(impl))
                    lres.setdefault((impl, procs), []).append(r)
    lmed = {k: statistics.median(v) for k, v in lres.items()}
    print()
    print("| lock: `with lock: pass` | 1 process (k/s) | 2 processes contending (k/s) |"
          " ÷ filelock (1 / 2) |")
    print("|---|---:|---:|---:|")
    for impl in lock_impls:
        one, two = lmed[(impl, 1)], lmed[(impl, 2)]
        if filelock is not None:
            rel = "{:.0f}× / {:.0f}×".format(one / lmed[("filelock", 1)], two / lmed[("filelock", 2)])
        else:
            rel = "–"
        print("| {} | {} | {} | {} |".format(impl, fmt(one), fmt(two), rel))

    print()
    print("| where the time goes (one process) | ns per call |")
    print("|---|---:|")
    for what, ns in breakdown():
        print("| {} | {:.0f} |".format(what, ns))


if __name__ == "__main__":
    main()
