#!/usr/bin/env python3
"""Python's side of benches/pipe.rs, measured the same way.

* Pipe throughput: a child sends N messages of 8 B / 1 KiB / 64 KiB with
  Connection.send_bytes; the parent times their arrival with recv_bytes
  (clock from the request to the last message), messages per second.
* Round trip: 8-byte send_bytes/recv_bytes ping-pong with an echo child,
  median microseconds per round trip over batches.
* Raw unix socket: the same two measurements over socket.socketpair() with
  fixed-size sendall/recv_into (no framing), between the same processes.
* Process.start to first message: start a child that sends b"ready", time
  until the parent has it, for the fork, forkserver and spawn start methods.

Usage: python3 pipe_bench.py [rounds]   (prints one line per measurement)
"""
import multiprocessing as mp
import socket
import statistics
import sys
import time

SIZES = (8, 1024, 65536)
COUNT = {8: 200_000, 1024: 200_000, 65536: 20_000}
RT_ITERS = 20_000


def server(conn, sock):
    while True:
        try:
            cmd = conn.recv()
        except EOFError:
            return
        kind, count, size = cmd
        if kind == "quit":  # (a forked child holds the parent's end too: no EOF)
            return
        if kind == "stream":
            msg = b"\xa5" * size
            for _ in range(count):
                conn.send_bytes(msg)
        elif kind == "raw_stream":
            msg = b"\xa5" * size
            for _ in range(count):
                sock.sendall(msg)
        elif kind == "echo":
            for _ in range(count):
                conn.send_bytes(conn.recv_bytes())
        elif kind == "raw_echo":
            buf = bytearray(8)
            for _ in range(count):
                view = memoryview(buf)
                got = 0
                while got < 8:
                    got += sock.recv_into(view[got:])
                sock.sendall(buf)


def recv_exact(sock, buf):
    view = memoryview(buf)
    got, n = 0, len(buf)
    while got < n:
        r = sock.recv_into(view[got:])
        if r == 0:
            raise EOFError
        got += r


def ready(conn):
    conn.send_bytes(b"ready")


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    ctx = mp.get_context("fork")
    mine, theirs = ctx.Pipe()
    sa, sb = socket.socketpair()
    p = ctx.Process(target=server, args=(theirs, sb))
    p.start()
    theirs.close()
    sb.close()
    res = {}
    for _ in range(rounds):
        for size in SIZES:
            n = COUNT[size]
            t = time.perf_counter()
            mine.send(("stream", n, size))
            for _ in range(n):
                mine.recv_bytes()
            res.setdefault(f"py_pipe_send_bytes/{size} msg/s", []).append(n / (time.perf_counter() - t))
            buf = bytearray(size)
            t = time.perf_counter()
            mine.send(("raw_stream", n, size))
            for _ in range(n):
                recv_exact(sa, buf)
            res.setdefault(f"py_raw_socketpair/{size} msg/s", []).append(n / (time.perf_counter() - t))
        msg = b"\x07" * 8
        mine.send(("echo", RT_ITERS, 8))
        t = time.perf_counter()
        for _ in range(RT_ITERS):
            mine.send_bytes(msg)
            mine.recv_bytes()
        res.setdefault("py_pipe_round_trip_8B us", []).append((time.perf_counter() - t) / RT_ITERS * 1e6)
        buf = bytearray(8)
        mine.send(("raw_echo", RT_ITERS, 8))
        t = time.perf_counter()
        for _ in range(RT_ITERS):
            sa.sendall(msg)
            recv_exact(sa, buf)
        res.setdefault("py_raw_socketpair_round_trip_8B us", []).append((time.perf_counter() - t) / RT_ITERS * 1e6)
    mine.send(("quit", 0, 0))
    mine.close()
    p.join()
    for method in ("fork", "forkserver", "spawn"):
        c = mp.get_context(method)
        times = []
        for i in range(20 * rounds):
            r, w = c.Pipe(duplex=False)
            t = time.perf_counter()
            q = c.Process(target=ready, args=(w,))
            q.start()
            r.recv_bytes()
            dt = time.perf_counter() - t
            q.join()
            w.close()
            r.close()
            if method != "forkserver" or i > 0:  # the first start launches the server
                times.append(dt * 1e3)
        res[f"py_process_start_{method}_to_first_message ms"] = times
    for k, v in res.items():
        print(f"{k:55s} median {statistics.median(v):12.2f}   (min {min(v):.2f}, max {max(v):.2f}, n={len(v)})")


if __name__ == "__main__":
    main()
