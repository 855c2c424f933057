#!/usr/bin/env python3
"""The 'ticket' simulation: buyers race on a JSON file {"count": T}.

A buy attempt = read the JSON file; if count > 0, decrement and write it
back (open(path, "w") + json.dump).  No sleeps anywhere.

  * one-shot: N buyer processes (N = 10, 100), T = 10, each makes one
    attempt, WITH and WITHOUT a multiprocessing.Lock around the attempt.
    All buyers are forked first and released together by an Event (so the
    race is as tight as in a real rush).  Reported per run: total wall time
    (fork + run + join), tickets sold (buyers told "you got one"), the
    count left in the file (None = file left corrupt) and torn reads.
  * loop: 4 processes each make 10,000 attempts, T = 20,000, with the lock
    (exactly 20,000 must be sold; attempts/s and buys/s reported), and
    without the lock for contrast.  Run once with the file on the default
    temp dir (a disk filesystem here) and once on tmpfs (/dev/shm).

Without the lock a reader can also see the file while another process has
truncated it but not yet rewritten it ("torn read": empty file).  A naive
buyer would crash; ours retries the read (counted as `torn`) so every buyer
makes exactly one complete attempt and the oversell is visible.

Output: JSON lines on stdout.
Usage: python3 py_ticket.py [runs] [all|oneshot|loop|loop-tmpfs]
"""
import json
import os
import sys
import tempfile
import time
import multiprocessing as mp

ctx = mp.get_context("fork")

BOUGHT, SOLD_OUT, TORN, CORRUPT = 0, 1, 2, 3  # indices into a per-process tally
MAX_RETRIES = 1000


def read_count(path):
    """The count in the file, or None if it is not valid JSON right now."""
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError:
        return None


def try_buy(path, tally):
    """One buy attempt; updates tally.  Returns False if the file stays
    corrupt (two unlocked writers can interleave and leave e.g.
    '{"count": 9}}' behind), in which case the buyer gives up."""
    for _ in range(MAX_RETRIES):
        data = read_count(path)
        if data is not None:
            break
        tally[TORN] += 1  # truncated/garbled by a concurrent writer: retry
    else:
        tally[CORRUPT] += 1
        return False
    if data["count"] > 0:
        data["count"] -= 1
        with open(path, "w") as f:
            json.dump(data, f)
        tally[BOUGHT] += 1
    else:
        tally[SOLD_OUT] += 1
    return True


def _buyer(path, lock, attempts, start, out):
    tally = [0, 0, 0, 0]
    start.wait()
    for _ in range(attempts):
        if lock is None:
            ok = try_buy(path, tally)
        else:
            with lock:
                ok = try_buy(path, tally)
        if not ok:
            break
    out.put(tally)


def one_shot_run(n_buyers, tickets, use_lock, workdir):
    path = os.path.join(workdir, "tickets.json")
    with open(path, "w") as f:
        json.dump({"count": tickets}, f)
    lock = ctx.Lock() if use_lock else None
    start, out = ctx.Event(), ctx.SimpleQueue()
    t0 = time.perf_counter()
    ps = [ctx.Process(target=_buyer, args=(path, lock, 1, start, out)) for _ in range(n_buyers)]
    for p in ps:
        p.start()
    start.set()
    tallies = [out.get() for _ in ps]
    for p in ps:
        p.join()
    wall = time.perf_counter() - t0
    final = read_count(path)
    return dict(wall_s=wall, sold=sum(t[BOUGHT] for t in tallies),
                torn=sum(t[TORN] for t in tallies), corrupt=sum(t[CORRUPT] for t in tallies),
                left=None if final is None else final["count"])


def loop_run(procs, attempts, tickets, use_lock, workdir):
    path = os.path.join(workdir, "tickets_loop.json")
    with open(path, "w") as f:
        json.dump({"count": tickets}, f)
    lock = ctx.Lock() if use_lock else None
    start, out = ctx.Event(), ctx.SimpleQueue()
    ps = [ctx.Process(target=_buyer, args=(path, lock, attempts, start, out))
          for _ in range(procs)]
    for p in ps:
        p.start()
    time.sleep(0.2)  # let every process reach start.wait() (outside the timing)
    t0 = time.perf_counter()
    start.set()
    results = [out.get() for _ in ps]
    wall = time.perf_counter() - t0
    for p in ps:
        p.join()
    sold = sum(r[BOUGHT] for r in results)
    final = read_count(path)
    return dict(wall_s=wall, sold=sold, torn=sum(r[TORN] for r in results),
                corrupt=sum(r[CORRUPT] for r in results),
                left=None if final is None else final["count"],
                attempts_per_s=procs * attempts / wall, sold_per_s=sold / wall)


def emit(**rec):
    print(json.dumps(rec), flush=True)


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    only = sys.argv[2] if len(sys.argv) > 2 else "all"
    dirs = [("disk", None)]  # default temp dir (TMPDIR)
    if os.path.isdir("/dev/shm"):
        dirs.append(("tmpfs", "/dev/shm"))
    if only in ("all", "oneshot"):
        with tempfile.TemporaryDirectory() as workdir:
            for n in (10, 100):
                for use_lock in (True, False):
                    res = [one_shot_run(n, 10, use_lock, workdir) for _ in range(runs)]
                    emit(group="py_ticket", bench="one-shot", fs="disk", buyers=n, tickets=10,
                         lock=use_lock, runs=res)
    if only == "loop-tmpfs":  # the mproc harness: tmpfs, with the lock only
        dirs = [d for d in dirs if d[0] == "tmpfs"]
    if only in ("all", "loop", "loop-tmpfs"):
        for fs, base in dirs:
            with tempfile.TemporaryDirectory(dir=base) as workdir:
                for use_lock in ((True,) if only == "loop-tmpfs" else (True, False)):
                    res = [loop_run(4, 10_000, 20_000, use_lock, workdir)]
                    emit(group="py_ticket", bench="loop", fs=fs, procs=4, attempts_per_proc=10_000,
                         tickets=20_000, lock=use_lock, runs=res)


if __name__ == "__main__":
    main()
