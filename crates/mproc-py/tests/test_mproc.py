"""Tests of the Python package with real processes.

Each test runs in its own namespace directory (MPROC_DIR, a fresh temporary
directory) and ends every process it started.
"""

import json
import os
import pickle
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest

import mproc

HERE = Path(__file__).resolve().parent
SEED = HERE / "seed"
METHODS = ["fork", "spawn", "forkserver"]


@pytest.fixture(autouse=True)
def namespace(tmp_path, monkeypatch):
    ns = tmp_path / "ns"
    ns.mkdir(mode=0o700)
    monkeypatch.setenv("MPROC_DIR", str(ns))
    monkeypatch.delenv("MPROC_URL", raising=False)
    yield ns
    for p in mproc.active_children():
        p.kill()
        p.join()


def run_python(code_or_path, *args, cwd=None, timeout=60, **kw):
    cmd = [sys.executable]
    cmd += [str(code_or_path)] if isinstance(code_or_path, Path) else ["-c", code_or_path]
    return subprocess.run(cmd + list(args), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, **kw)


def start_python(code, **kw):
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def stop(proc):
    """Kills and reaps a child started with start_python."""
    proc.kill()
    proc.communicate()


def wait_line(proc, expected, timeout=30):
    """Reads the child's stdout until a line equal to `expected`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.strip() == expected:
            return
    raise AssertionError("child never printed {!r}".format(expected))


def mproc_cli():
    """The `mproc` command built by `cargo test` (MPROC_CLI, else the target dir)."""
    env = os.environ.get("MPROC_CLI")
    if env:
        return env
    target = os.environ.get("CARGO_TARGET_DIR") or str(HERE.parents[2] / "target")
    for profile in ("debug", "release"):
        p = Path(target) / profile / "mproc"
        if p.exists():
            return str(p)
    found = shutil.which("mproc")
    if found:
        return found
    pytest.skip("the mproc command is not built (run scripts/test, or set MPROC_CLI)")


# ------------------------------------------------------------ seed programs

def test_seed_tickets_never_oversells(tmp_path):
    shutil.copy(SEED / "tickets.py", tmp_path)
    (tmp_path / "ticket").write_text(json.dumps({"count": 3}))
    r = run_python(tmp_path / "tickets.py", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("购票成功") == 3
    assert json.loads((tmp_path / "ticket").read_text()) == {"count": 0}
    assert r.stdout.count("当前余票") == 10


def test_seed_bounded_queue_sixth_put_blocks_and_ctrl_c_ends_it(tmp_path):
    p = subprocess.Popen([sys.executable, str(SEED / "bounded_queue.py")], cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_line(p, "111")
        with pytest.raises(subprocess.TimeoutExpired):
            p.wait(timeout=0.5)  # the sixth put blocks
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=5)
        assert time.monotonic() - t0 < 1.0
    finally:
        stop(p)
    assert "222" not in out
    assert "KeyboardInterrupt" in err


def test_seed_producer_consumer(tmp_path):
    r = run_python(SEED / "producer_consumer.py", cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    made = [l for l in r.stdout.splitlines() if l.startswith("生产了泔水")]
    eaten = [l for l in r.stdout.splitlines() if "吃泔水" in l]
    assert len(made) == 50
    assert len(eaten) == 50
    assert sorted(l.split("吃")[1] for l in eaten) == sorted(l[len("生产了"):] for l in made)


# -------------------------------------------------- every start method, Pool

def _child_work(q, lock, sem, event, barrier, value, arr, jq):
    with lock:
        value.value += 1
    with sem:
        q.put(("child", os.getpid(), arr[:]))
    jq.put("task")
    barrier.wait(timeout=10)
    event.wait(10)
    q.put("after event")


@pytest.mark.parametrize("method", METHODS)
def test_objects_pass_to_processes(method):
    ctx = mproc.get_context(method)
    q = ctx.Queue()
    jq = ctx.JoinableQueue()
    lock, sem, event = ctx.Lock(), ctx.BoundedSemaphore(2), ctx.Event()
    barrier = ctx.Barrier(3)
    value, arr = ctx.Value("i", 0), ctx.Array("d", [1.0, 2.0])
    procs = [ctx.Process(target=_child_work, args=(q, lock, sem, event, barrier, value, arr, jq))
             for _ in range(2)]
    for p in procs:
        p.start()
    assert barrier.wait(timeout=20) in (0, 1, 2)
    got = [q.get(timeout=10) for _ in range(2)]
    assert {g[0] for g in got} == {"child"} and all(g[2] == [1.0, 2.0] for g in got)
    event.set()
    assert [q.get(timeout=10) for _ in range(2)] == ["after event"] * 2
    for _ in range(2):
        assert jq.get(timeout=5) == "task"
        jq.task_done()
    jq.join()
    for p in procs:
        p.join(10)
        assert p.exitcode == 0
    assert value.value == 2
    assert q.qsize() == 0 and q.empty()


def _pool_task(args):
    q, lock, n = args
    with lock:
        q.put(n * n)
    return n


def _pool_star(q, n):
    q.put(-n)
    return n + 1


@pytest.mark.parametrize("method", METHODS)
def test_pool_arguments(method):
    ctx = mproc.get_context(method)
    q, lock = ctx.Queue(), ctx.Lock()
    with ctx.Pool(2) as pool:
        assert pool.map(_pool_task, [(q, lock, n) for n in range(6)]) == list(range(6))
        assert pool.starmap(_pool_star, [(q, 1), (q, 2)]) == [2, 3]
        assert pool.apply(_pool_star, (q, 3)) == 4
    assert sorted(q.get_many(100, timeout=5)) == sorted([n * n for n in range(6)] + [-1, -2, -3])


def test_stdlib_queue_refuses_pool_but_mproc_does_not():
    import multiprocessing as mp
    with mp.get_context("fork").Pool(1) as pool:
        with pytest.raises(RuntimeError):
            pool.apply(_pool_star, (mp.Queue(), 1))
        q = mproc.Queue()
        assert pool.apply(_pool_star, (q, 1)) == 2
        assert q.get(timeout=5) == -1


def _echo(q_in, q_out):
    while True:
        try:
            item = q_in.get()
        except mproc.ShutDown:
            return
        q_out.put(item)


def test_objects_travel_through_queues():
    carrier, inner, out = mproc.Queue(), mproc.Queue(), mproc.Queue()
    lock = mproc.Lock()
    p = mproc.get_context("spawn").Process(target=_pass_through, args=(carrier, out))
    p.start()
    carrier.put((inner, lock))
    inner.put("through a queue")
    assert out.get(timeout=20) == "through a queue"
    assert out.get(timeout=20) is True
    p.join(10)
    assert not lock.locked()


def _pass_through(carrier, out):
    inner, lock = carrier.get(timeout=20)
    out.put(inner.get(timeout=20))
    with lock:
        out.put(lock.locked())


# ------------------------------------------------------------ queue behaviour

def test_queue_semantics():
    q = mproc.Queue(3)
    q.put_many([1, 2])
    q.put_nowait(3)
    assert (q.qsize(), q.full(), q.empty()) == (3, True, False)
    t0 = time.monotonic()
    with pytest.raises(queue.Full):
        q.put(4, timeout=0.2)
    assert 0.15 < time.monotonic() - t0 < 2
    with pytest.raises(queue.Full):
        q.put(4, False)
    assert q.get() == 1
    assert q.get_many(10) == [2, 3]
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(timeout=-1)
    q.put(None)
    assert q.get(True, None) is None
    q.close()
    q.join_thread()
    with pytest.raises(ValueError):
        q.put(1)


def test_unbounded_queue_is_bounded_in_bytes():
    q = mproc.Queue(max_bytes=4096)
    n = 0
    with pytest.raises(queue.Full):
        while n < 10000:
            q.put(b"x" * 100, timeout=0.05)
            n += 1
    assert 10 < n < 4096 // 100 + 1 and q.qsize() == n


def test_shutdown_ends_every_consumer_after_the_backlog():
    q, out = mproc.Queue(), mproc.Queue()
    procs = [mproc.Process(target=_echo, args=(q, out)) for _ in range(3)]
    for p in procs:
        p.start()
    q.put_many(range(100))
    q.shutdown()
    for p in procs:
        p.join(20)
        assert p.exitcode == 0
    assert sorted(out.get_many(1000)) == list(range(100))
    with pytest.raises(mproc.ShutDown):
        q.put(1)
    with pytest.raises(mproc.ShutDown):
        q.get()


def test_raw_bytes_queue_and_unpicklable_items():
    b = mproc.ByteQueue()
    b.put(b"\x00raw")
    b.put(bytearray(b"ba"))
    assert b.get() == b"\x00raw" and b.get() == b"ba"
    with pytest.raises(TypeError):
        b.put("text")
    q = mproc.Queue()
    with pytest.raises(Exception):
        q.put(lambda: 0)
    assert q.empty()


def _leased_consumer(q):
    q.get_leased()
    os.kill(os.getpid(), signal.SIGKILL)


def test_leased_item_of_a_killed_consumer_is_delivered_again(namespace):
    q = mproc.Queue.open_or_create("jobs", max_deliveries=2)
    q.put("job")
    p = mproc.Process(target=_leased_consumer, args=(q,))
    p.start()
    p.join(10)
    assert p.exitcode == -signal.SIGKILL
    item, receipt = q.get_leased(timeout=10)
    assert item == "job" and receipt.deliveries == 2
    q.ack(receipt)
    assert q.empty()
    # Delivered too often: the next take moves it to the dead-letter queue.
    q.put("poison")
    for _ in range(2):
        p = mproc.Process(target=_leased_consumer, args=(q,))
        p.start()
        p.join(10)
    with pytest.raises(queue.Empty):
        q.get_leased(timeout=0.5)
    assert q.dead_letter_queue().get(timeout=1) == "poison"


def _producer_forever(q):
    i = 0
    while True:
        q.put(i)
        i += 1


def test_sigkilled_producer_leaves_a_working_queue():
    q = mproc.Queue(1000)
    for _ in range(5):
        p = mproc.Process(target=_producer_forever, args=(q,))
        p.start()
        q.get(timeout=10)
        time.sleep(0.05)  # let it run into puts (and a full queue)
        p.kill()
        p.join()
        items = q.get_many(2000, timeout=1)
        assert items == sorted(items)  # one producer's order is kept
        q.put("still works")
        assert q.get(timeout=1) == "still works"
        assert q.empty()


def _consumer_forever(q, out):
    while True:
        out.put(q.get())


def test_sigkilled_consumer_leaves_a_working_queue():
    q, out = mproc.Queue(), mproc.Queue()
    p = mproc.Process(target=_consumer_forever, args=(q, out))
    p.start()
    q.put(1)
    assert out.get(timeout=10) == 1
    time.sleep(0.05)  # blocked in get
    p.kill()
    p.join()
    q.put_many([2, 3])
    assert q.get_many(10, timeout=1) == [2, 3]


# ------------------------------------------------------------------- locks

def _hold_and_wait(lock, held, _never):
    lock.acquire()
    held.set()
    _never.wait()


def test_sigkilled_holder_lock_is_taken_over():
    lock, held, never = mproc.Lock(), mproc.Event(), mproc.Event()
    p = mproc.Process(target=_hold_and_wait, args=(lock, held, never))
    p.start()
    assert held.wait(10)
    assert not lock.acquire(timeout=0.1)
    p.kill()
    p.join()
    with pytest.warns(mproc.OwnerDiedWarning):
        assert lock.acquire(timeout=5) is True
    assert lock.owner_died
    lock.release()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lock.acquire(False)
    assert not lock.owner_died
    lock.release()


def test_named_lock_between_unrelated_processes_is_never_stale(namespace):
    code = ("import mproc, time, os; l = mproc.Lock('printer'); l.acquire(); "
            "print('held', flush=True); time.sleep(60)")
    p = start_python(code)
    try:
        wait_line(p, "held")
        with pytest.raises(TimeoutError):
            with mproc.Lock("printer", timeout=0.2):
                pass
        p.kill()
        p.wait()
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            with mproc.Lock("printer", timeout=5) as got:
                assert got is True
        assert any(issubclass(x.category, mproc.OwnerDiedWarning) for x in w)
    finally:
        stop(p)


def test_rlock_and_lock_semantics():
    r = mproc.RLock()
    assert r.acquire() and r.acquire()
    r.release()
    assert r.locked()
    r.release()
    with pytest.raises(AssertionError):
        r.release()
    lock = mproc.Lock()
    assert lock.acquire()
    assert lock.acquire(False) is False
    assert lock.acquire(timeout=0.05) is False
    lock.release()
    with pytest.raises(ValueError):
        lock.release()


# ------------------------------------------------------------------ threads

def test_a_thread_blocked_in_get_never_blocks_others():
    q, lock = mproc.Queue(), mproc.Lock()
    got = []
    t = threading.Thread(target=lambda: got.append(q.get()))
    t.start()
    time.sleep(0.1)
    # The GIL is free: this thread works while the other waits.
    for i in range(1000):
        with lock:
            pass
    assert t.is_alive() and not got
    q.put("wake")
    t.join(5)
    assert got == ["wake"]


def test_threads_share_queue_and_lock():
    q, lock = mproc.Queue(), mproc.Lock()
    counter = [0]

    def work():
        for i in range(200):
            with lock:
                counter[0] += 1
            q.put(i)

    ts = [threading.Thread(target=work) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert counter[0] == 800
    assert len(q.get_many(2000)) == 800


# ------------------------------------------------------------------ Ctrl-C

@pytest.mark.parametrize("what", ["q.get()", "q.get_many(5)", "lock.acquire()",
                                  "ev.wait()", "jq.join()"])
def test_ctrl_c_interrupts_a_blocked_call(what):
    code = (
        "import threading, mproc\n"
        "q, lock, ev = mproc.Queue(), mproc.Lock(), mproc.Event()\n"
        "jq = mproc.JoinableQueue(); jq.put(1)\n"
        "held = threading.Event()\n"
        "def hold():\n"
        "    lock.acquire(); held.set(); threading.Event().wait()\n"
        "threading.Thread(target=hold, daemon=True).start(); held.wait()\n"
        "print('ready', flush=True)\n" + what)
    p = start_python(code)
    try:
        wait_line(p, "ready")
        time.sleep(0.2)
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=5)
        elapsed = time.monotonic() - t0
    finally:
        stop(p)
    assert "KeyboardInterrupt" in err
    assert elapsed < 1.0


# ------------------------------------------------------------ CLI sharing

def test_named_queue_shared_with_the_cli(namespace):
    cli = mproc_cli()
    q = mproc.ByteQueue.open_or_create("jobs")
    q.put(b"resize img1.png")
    r = subprocess.run([cli, "queue", "get", "jobs"], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.rstrip(b"\n") == b"resize img1.png"
    r = subprocess.run([cli, "queue", "put", "jobs", "resize img2.png"], capture_output=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    assert q.get(timeout=5) == b"resize img2.png"


def test_named_lock_shared_with_the_cli(namespace):
    cli = mproc_cli()
    with mproc.Lock("db"):
        r = subprocess.run([cli, "lock", "-n", "db", "--", "true"], capture_output=True,
                           timeout=30)
        assert r.returncode != 0  # busy
    r = subprocess.run([cli, "lock", "-n", "db", "--", "true"], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr


def test_named_objects_reopen_and_pickle_by_name(namespace):
    q = mproc.Queue.create("named", 4)
    with pytest.raises(FileExistsError):
        mproc.Queue.create("named")
    with pytest.raises(FileNotFoundError):
        mproc.Queue.open("missing")
    q2 = pickle.loads(pickle.dumps(q))
    assert q2.name == "named" and q2.maxsize == 4
    q.put({"a": 1})
    assert mproc.Queue.open("named").get() == {"a": 1}
    s = mproc.Semaphore.open_or_create("slots", 2)
    assert mproc.Semaphore.open("slots").get_value() == 2
    assert sorted(os.listdir(namespace)) >= ["named", "slots"]


def _use_named(q, lock, rlock, sem, event, barrier):
    with lock, rlock, sem:
        q.put((lock.name, rlock.name, sem.name, event.name, barrier.name))
    event.set()
    barrier.wait(timeout=10)


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_named_objects_travel_by_name(namespace, method):
    q = mproc.Queue.open_or_create("q")
    objs = (mproc.Lock("l", timeout=5), mproc.RLock("r"), mproc.Semaphore.open_or_create("s", 1),
            mproc.Event("e"), mproc.Barrier.open_or_create("b", 2))
    p = mproc.get_context(method).Process(target=_use_named, args=(q,) + objs)
    p.start()
    assert q.get(timeout=20) == ("l", "r", "s", "e", "b")
    assert objs[3].wait(10)
    objs[4].wait(timeout=10)
    p.join(10)
    assert p.exitcode == 0
    assert pickle.loads(pickle.dumps(objs[0])).timeout == 5


def test_help_reads_well():
    doc = mproc.Queue.__doc__ + mproc.Queue.put.__doc__ + mproc.Lock.acquire.__doc__
    assert "queue.Full" in doc and "OwnerDiedWarning" in doc


def _redis_child(q, lock):
    with lock:
        q.put(("child", os.getpid()))


@pytest.mark.skipif(not os.environ.get("MPROC_TEST_REDIS_URL"),
                    reason="needs a Redis server: MPROC_TEST_REDIS_URL")
def test_named_objects_on_redis(monkeypatch):
    url = os.environ["MPROC_TEST_REDIS_URL"]
    monkeypatch.setenv("MPROC_URL", url)
    suffix = "{}-{}".format(os.getpid(), time.monotonic_ns())
    q = mproc.Queue.open_or_create("py-q-" + suffix)
    lock = mproc.Lock("py-l-" + suffix, timeout=10)
    assert q.namespace == url
    for method in ("fork", "spawn"):
        p = mproc.get_context(method).Process(target=_redis_child, args=(q, lock))
        p.start()
        assert q.get(timeout=20)[0] == "child"
        p.join(20)
        assert p.exitcode == 0
    b = mproc.ByteQueue.open_or_create("py-b-" + suffix)
    b.put(b"over redis")
    assert b.get(timeout=5) == b"over redis"


def test_the_rest_of_multiprocessing_is_there():
    import multiprocessing
    assert mproc.Process is multiprocessing.Process and mproc.Pool is multiprocessing.Pool
    assert mproc.pool.ThreadPool is multiprocessing.pool.ThreadPool
    assert mproc.connection.wait is multiprocessing.connection.wait
    assert mproc.get_context("spawn").Queue is mproc.Queue
    assert mproc.get_context("spawn").get_start_method() == "spawn"
