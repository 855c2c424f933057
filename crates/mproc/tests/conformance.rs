//! One suite, every backend: each scenario below is a function of a fresh
//! namespace, instantiated once for a directory namespace (`local::`) and
//! once for a `redis://` namespace (`redis::`), so the backends cannot
//! drift apart.
//!
//! The Redis instantiation reads the server from `MPROC_TEST_REDIS_URL`
//! (e.g. `redis://127.0.0.1:6390/`), the Redis Cluster one (`cluster::`)
//! from `MPROC_TEST_REDIS_CLUSTER_URL` (`redis+cluster://127.0.0.1:P1,…/`,
//! set by `.ci/redis-cluster.sh`). The server tests are `#[ignore]`d, so a
//! run without a server lists them as ignored; `cargo test -- --ignored`
//! runs them (`.ci/run` does when it has started the servers). Without the
//! variable they then print that they were skipped, unless
//! `MPROC_REQUIRE_REDIS=1` (for the cluster: `MPROC_REQUIRE_REDIS_CLUSTER=1`),
//! which makes a missing server (or a build without the `redis` feature) a
//! failure.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{timed, JOIN};
use mproc::{
    ByteQueue, CreateError, GetError, JoinableQueue, Lock, LockError, Namespace, ObjectKind,
    OpenError, Process, PutErrorKind, Queue, QueueOptions, RwLock,
};
use serde::{Deserialize, Serialize};

const T: Duration = Duration::from_millis(200);

/// A fresh namespace of one backend, removed (directory) or abandoned
/// (unique key prefix) afterwards.
pub struct Env {
    ns: Namespace,
    /// A scratch directory for files shared by the test's processes.
    scratch: tempfile::TempDir,
    _dir: Option<tempfile::TempDir>,
    redis: bool,
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("mproc-conf-")
        .tempdir()
        .unwrap()
}

fn local_env() -> Option<Env> {
    let (dir, ns) = common::namespace();
    Some(Env {
        ns,
        scratch: scratch(),
        _dir: Some(dir),
        redis: false,
    })
}

/// A unique key prefix for one test.
fn unique_prefix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "t{}-{}-{}",
        std::process::id(),
        t % 1_000_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn redis_env() -> Option<Env> {
    server_env("MPROC_TEST_REDIS_URL", "MPROC_REQUIRE_REDIS")
}

fn cluster_env() -> Option<Env> {
    server_env(
        "MPROC_TEST_REDIS_CLUSTER_URL",
        "MPROC_REQUIRE_REDIS_CLUSTER",
    )
}

/// A fresh prefix on the server (or cluster) named by variable `var`;
/// a missing one is a failure when variable `require` is 1.
fn server_env(var: &str, require: &str) -> Option<Env> {
    let required = std::env::var(require).is_ok_and(|v| v == "1");
    let Some(base) = std::env::var(var).ok().filter(|u| !u.is_empty()) else {
        assert!(!required, "{require}=1 but {var} is not set");
        eprintln!("skipped: {var} is not set (no Redis server for this test)");
        return None;
    };
    let sep = if base.contains('?') { '&' } else { '?' };
    // Short leases so that death and expiry are seen within a test.
    let url = format!(
        "{base}{sep}prefix={}&lease=1&consumer_lease=1&timeout=5",
        unique_prefix()
    );
    match Namespace::from_url(&url) {
        Ok(ns) => Some(Env {
            ns,
            scratch: scratch(),
            _dir: None,
            redis: true,
        }),
        Err(e) => {
            assert!(!required, "{require}=1 but {url}: {e}");
            eprintln!("skipped: {e}");
            None
        }
    }
}

/// Instantiates every scenario for both backends.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod local {
            $(#[test] fn $name() { if let Some(env) = super::local_env() { super::$name(&env) } })*
        }
        mod redis {
            $(#[test] #[ignore = "needs MPROC_TEST_REDIS_URL"] fn $name() { if let Some(env) = super::redis_env() { super::$name(&env) } })*
        }
        mod cluster {
            $(#[test] #[ignore = "needs MPROC_TEST_REDIS_CLUSTER_URL"] fn $name() { if let Some(env) = super::cluster_env() { super::$name(&env) } })*
        }
    };
}

conformance!(
    fifo_len_and_empty,
    full_and_empty_time_out,
    blocked_put_resumes_when_a_consumer_takes,
    maxsize_holds_under_concurrent_producers,
    close_ends_every_consumer_after_the_backlog,
    close_wakes_a_blocked_producer,
    task_done_and_join_across_processes,
    peek_purge_and_stats,
    batches_keep_order,
    names_kinds_and_listing,
    lock_exclusion_sells_no_ticket_twice,
    lock_try_timeout_and_holder,
    lock_holder_killed_is_reported,
    leased_item_of_a_killed_consumer_is_redelivered,
    slow_live_consumer_keeps_its_item,
    rwlock_readers_in_parallel,
    rwlock_writer_excludes_everyone,
    rwlock_writer_is_not_starved_by_readers,
    rwlock_dead_reader_share_is_returned,
    rwlock_dead_writer_is_taken_over,
);

/// A consumer that works on an item for three consumer leases, but lives
/// (its heartbeat runs), keeps it: no other consumer is handed it.
fn slow_live_consumer_keeps_its_item(env: &Env) {
    let q: JoinableQueue<u32> = JoinableQueue::create_in(&env.ns, "slow", opts(0)).unwrap();
    q.put(7).unwrap();
    let worker = JoinableQueue::<u32>::open_in(&env.ns, "slow").unwrap();
    assert_eq!(worker.get().unwrap(), 7);
    // Another consumer, looking all along (its heartbeat would take back
    // the item of a consumer whose lease ran out).
    let other = JoinableQueue::<u32>::open_in(&env.ns, "slow").unwrap();
    let (r, _) = timed(|| other.get_timeout(Duration::from_millis(3500)));
    assert!(
        r.is_err(),
        "the slow consumer's item was handed out again: {r:?}"
    );
    worker.task_done().unwrap();
    q.join_timeout(JOIN).unwrap();
}

fn opts(maxsize: usize) -> QueueOptions {
    QueueOptions::new().maxsize(maxsize)
}

fn fifo_len_and_empty(env: &Env) {
    let q: Queue<u32> = Queue::create_in(&env.ns, "fifo", opts(0)).unwrap();
    assert!(q.is_empty());
    for i in 0..10 {
        q.put(i).unwrap();
    }
    assert_eq!(q.len(), 10);
    assert_eq!(q.name(), Some("fifo"));
    let got: Vec<u32> = (0..10).map(|_| q.get().unwrap()).collect();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
    assert_eq!(q.try_get().unwrap_err(), GetError::Empty);
    assert_eq!(q.len(), 0);
    // Another handle, opened by name, sees the same queue.
    let other: Queue<u32> = Queue::open_in(&env.ns, "fifo").unwrap();
    q.put(7).unwrap();
    assert_eq!(other.len(), 1);
    assert_eq!(other.get().unwrap(), 7);
}

fn full_and_empty_time_out(env: &Env) {
    let q: Queue<u32> = Queue::create_in(&env.ns, "bounded", opts(3)).unwrap();
    for i in 0..3 {
        q.try_put(i).unwrap();
    }
    assert!(q.is_full());
    assert_eq!(q.maxsize(), Some(3));
    let e = q.try_put(9).unwrap_err();
    assert!(e.is_full());
    assert_eq!(e.into_inner(), 9);
    let (r, d) = timed(|| q.put_timeout(9, T));
    assert!(r.unwrap_err().is_full());
    assert!(d >= T - Duration::from_millis(10), "gave up after {d:?}");
    let (r, _) = timed(|| q.put_deadline(9, Instant::now()));
    assert!(r.unwrap_err().is_full());
    for _ in 0..3 {
        q.get().unwrap();
    }
    let (r, d) = timed(|| q.get_timeout(T));
    assert_eq!(r.unwrap_err(), GetError::Empty);
    assert!(d >= T - Duration::from_millis(10), "gave up after {d:?}");
}

fn blocked_put_resumes_when_a_consumer_takes(env: &Env) {
    let q: Queue<u32> = Queue::create_in(&env.ns, "handoff", opts(1)).unwrap();
    q.put(1).unwrap();
    let mut child = Process::spawn(q.clone(), |q: Queue<u32>| {
        std::thread::sleep(Duration::from_millis(300));
        let a = q.get().unwrap();
        let b = q.get_timeout(Duration::from_secs(20)).unwrap();
        (a, b)
    })
    .unwrap();
    let (r, d) = timed(|| q.put_timeout(2, Duration::from_secs(20)));
    r.unwrap();
    assert!(d >= Duration::from_millis(200), "put returned after {d:?}");
    assert_eq!(child.join_timeout(JOIN).unwrap(), (1, 2));
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Item {
    producer: u32,
    seq: u32,
}

fn maxsize_holds_under_concurrent_producers(env: &Env) {
    const P: u32 = 4;
    const N: u32 = 100;
    let q: Queue<Item> = Queue::create_in(&env.ns, "many", opts(5)).unwrap();
    let mut producers: Vec<_> = (0..P)
        .map(|p| {
            Process::spawn((q.clone(), p), |(q, p): (Queue<Item>, u32)| {
                for seq in 0..N {
                    q.put(Item { producer: p, seq }).unwrap();
                }
            })
            .unwrap()
        })
        .collect();
    let mut next = HashMap::new();
    for _ in 0..P * N {
        assert!(q.len() <= 5, "len {} above maxsize", q.len());
        let it = q.get_timeout(JOIN).unwrap();
        let want = next.entry(it.producer).or_insert(0u32);
        assert_eq!(it.seq, *want, "producer {} out of order", it.producer);
        *want += 1;
    }
    for p in &mut producers {
        p.join_timeout(JOIN).unwrap();
    }
    assert_eq!(q.try_get().unwrap_err(), GetError::Empty);
    let s = q.stats();
    assert_eq!(
        (s.total_put, s.total_got),
        (u64::from(P * N), u64::from(P * N))
    );
}

fn close_ends_every_consumer_after_the_backlog(env: &Env) {
    let q: Queue<u32> = Queue::create_in(&env.ns, "closing", opts(0)).unwrap();
    let mut consumers: Vec<_> = (0..3)
        .map(|_| {
            Process::spawn(q.clone(), |q: Queue<u32>| {
                let mut n = 0u32;
                loop {
                    match q.get() {
                        Ok(_) => n += 1,
                        Err(GetError::Closed) => return n,
                        Err(e) => panic!("{e}"),
                    }
                }
            })
            .unwrap()
        })
        .collect();
    for i in 0..30 {
        q.put(i).unwrap();
    }
    q.close();
    assert!(q.is_closed());
    let e = q.put(99).unwrap_err();
    assert!(e.is_closed());
    let total: u32 = consumers
        .iter_mut()
        .map(|c| c.join_timeout(JOIN).unwrap())
        .sum();
    assert_eq!(total, 30);
    assert_eq!(q.len(), 0);
    assert_eq!(q.try_get().unwrap_err(), GetError::Closed);
    assert_eq!(q.get().unwrap_err(), GetError::Closed);
    q.close(); // idempotent
}

fn close_wakes_a_blocked_producer(env: &Env) {
    let q: Queue<u32> = Queue::create_in(&env.ns, "wake-put", opts(1)).unwrap();
    q.put(1).unwrap();
    let mut child = Process::spawn(q.clone(), |q: Queue<u32>| {
        match q.put_timeout(2, Duration::from_secs(30)) {
            Ok(()) => "put".to_string(),
            Err(e) if e.is_closed() => "closed".to_string(),
            Err(e) => e.to_string(),
        }
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    q.close();
    let (r, d) = timed(|| child.join_timeout(JOIN).unwrap());
    assert_eq!(r, "closed");
    assert!(
        d < Duration::from_secs(20),
        "the producer stayed blocked {d:?}"
    );
    // The backlog is still delivered, then the end of the stream.
    assert_eq!(q.get().unwrap(), 1);
    assert_eq!(q.get().unwrap_err(), GetError::Closed);
}

fn task_done_and_join_across_processes(env: &Env) {
    let q: JoinableQueue<u32> = JoinableQueue::create_in(&env.ns, "tasks", opts(0)).unwrap();
    q.join_timeout(Duration::from_secs(5)).unwrap(); // nothing put: at once
    for i in 0..20 {
        q.put(i).unwrap();
    }
    assert_eq!(q.unfinished(), 20);
    let (r, d) = timed(|| q.join_timeout(T));
    assert!(r.is_err());
    assert!(d >= T - Duration::from_millis(10));
    let mut workers: Vec<_> = (0..3)
        .map(|_| {
            Process::spawn(q.clone(), |q: JoinableQueue<u32>| {
                let mut n = 0;
                while let Ok(_task) = q.get() {
                    std::thread::sleep(Duration::from_millis(5));
                    q.task_done().unwrap();
                    n += 1;
                }
                n
            })
            .unwrap()
        })
        .collect();
    q.join_timeout(JOIN).unwrap();
    assert_eq!(q.unfinished(), 0);
    q.close();
    let done: u32 = workers
        .iter_mut()
        .map(|w| w.join_timeout(JOIN).unwrap())
        .sum();
    assert_eq!(done, 20);
    assert!(q.task_done().is_err(), "one task_done too many");
}

fn peek_purge_and_stats(env: &Env) {
    let q = ByteQueue::create_in(&env.ns, "peek", opts(0)).unwrap();
    assert_eq!(q.peek().unwrap(), None);
    q.put(b"a").unwrap();
    q.put(b"").unwrap();
    q.put(b"ccc").unwrap();
    assert_eq!(q.peek().unwrap().as_deref(), Some(&b"a"[..]));
    assert_eq!(q.len(), 3);
    assert_eq!(q.get().unwrap(), b"a");
    assert_eq!(q.get().unwrap(), b"", "empty messages are messages");
    assert_eq!(q.purge().unwrap(), 1);
    assert!(q.is_empty());
    let s = q.stats();
    // Purged messages count as taken.
    assert_eq!(
        (s.len, s.total_put, s.total_got, s.closed),
        (0, 3, 3, false)
    );
    assert_eq!(s.unfinished, 2, "purged messages are not waited for");
    // Only what the backend enforces: a server enforces no byte budget.
    assert_eq!(s.max_bytes == 0, env.redis, "{s:?}");
    assert!(s.max_message > 0);
    let too_big = vec![0u8; q.max_message() + 1];
    assert!(matches!(
        q.put(&too_big).unwrap_err().kind(),
        PutErrorKind::TooLarge { .. }
    ));
}

fn batches_keep_order(env: &Env) {
    let q: Queue<u32> = Queue::create_in(&env.ns, "batch", opts(0)).unwrap();
    q.put_many((0..1000).collect()).unwrap();
    assert_eq!(q.len(), 1000);
    let mut got = Vec::new();
    while got.len() < 1000 {
        got.extend(q.get_many(128).unwrap());
    }
    assert_eq!(got, (0..1000).collect::<Vec<_>>());
    // A bounded batch waits for room as consumers take.
    let b: Queue<u32> = Queue::create_in(&env.ns, "batch-bounded", opts(10)).unwrap();
    let mut child = Process::spawn(b.clone(), |b: Queue<u32>| {
        (0..100)
            .map(|_| b.get_timeout(Duration::from_secs(30)).unwrap())
            .collect::<Vec<u32>>()
    })
    .unwrap();
    b.put_many((0..100).collect()).unwrap();
    assert_eq!(
        child.join_timeout(JOIN).unwrap(),
        (0..100).collect::<Vec<_>>()
    );
}

fn names_kinds_and_listing(env: &Env) {
    let _l = Lock::create_in(&env.ns, "a-lock").unwrap();
    let _q = ByteQueue::create_in(&env.ns, "a-queue", opts(0)).unwrap();
    assert!(matches!(
        Lock::create_in(&env.ns, "a-lock"),
        Err(CreateError::AlreadyExists { .. })
    ));
    assert!(matches!(
        ByteQueue::open_in(&env.ns, "a-lock"),
        Err(OpenError::WrongKind {
            found: ObjectKind::Lock,
            ..
        })
    ));
    assert!(matches!(
        Lock::open_in(&env.ns, "a-queue"),
        Err(OpenError::WrongKind {
            found: ObjectKind::Queue,
            ..
        })
    ));
    assert!(matches!(
        Lock::open_in(&env.ns, "missing"),
        Err(OpenError::NotFound { .. })
    ));
    assert!(Lock::create_in(&env.ns, "bad/name").is_err());
    let names: Vec<(String, Option<ObjectKind>)> = env
        .ns
        .list()
        .unwrap()
        .into_iter()
        .map(|o| (o.name, o.kind))
        .collect();
    assert_eq!(
        names,
        vec![
            ("a-lock".to_string(), Some(ObjectKind::Lock)),
            ("a-queue".to_string(), Some(ObjectKind::Queue)),
        ]
    );
    env.ns.remove("a-queue").unwrap();
    assert!(env.ns.remove("a-queue").is_err());
    assert!(matches!(
        ByteQueue::open_in(&env.ns, "a-queue"),
        Err(OpenError::NotFound { .. })
    ));
    let again = ByteQueue::create_in(&env.ns, "a-queue", opts(0)).unwrap();
    assert!(again.is_empty());
}

/// Reads, sleeps, writes: loses updates unless serialised.
fn sell_one(file: &PathBuf) -> bool {
    let left: i64 = std::fs::read_to_string(file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2));
    if left <= 0 {
        return false;
    }
    std::fs::write(file, (left - 1).to_string()).unwrap();
    true
}

fn lock_exclusion_sells_no_ticket_twice(env: &Env) {
    const TICKETS: u32 = 40;
    let lock = Lock::create_in(&env.ns, "tickets").unwrap();
    let file = env.scratch.path().join("left");
    std::fs::write(&file, TICKETS.to_string()).unwrap();
    let mut buyers: Vec<_> = (0..6)
        .map(|_| {
            Process::spawn(
                (lock.clone(), file.clone()),
                |(lock, file): (Lock, PathBuf)| {
                    let mut sold = 0u32;
                    loop {
                        let g = lock.lock().unwrap_or_else(|e| e.into_guard().unwrap());
                        let ok = sell_one(&file);
                        drop(g);
                        if !ok {
                            return sold;
                        }
                        sold += 1;
                    }
                },
            )
            .unwrap()
        })
        .collect();
    let sold: u32 = buyers
        .iter_mut()
        .map(|b| b.join_timeout(JOIN).unwrap())
        .sum();
    assert_eq!(sold, TICKETS, "oversold or undersold");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "0");
    assert!(!lock.is_locked());
}

fn lock_try_timeout_and_holder(env: &Env) {
    let lock = Lock::create_in(&env.ns, "held").unwrap();
    let gate: Queue<u8> = Queue::create_in(&env.ns, "gate", opts(0)).unwrap();
    let mut child = Process::spawn((lock.clone(), gate.clone()), |(l, g): (Lock, Queue<u8>)| {
        let guard = l.lock().unwrap();
        guard.set_tag("child");
        g.put(1).unwrap();
        g.put_timeout(2, Duration::from_secs(30)).unwrap();
        std::thread::sleep(Duration::from_millis(600));
        drop(guard);
    })
    .unwrap();
    assert_eq!(gate.get_timeout(JOIN).unwrap(), 1);
    assert!(lock.is_locked());
    let h = lock.holder().expect("a holder");
    assert_eq!(h.pid, child.pid());
    assert_eq!(h.tag.as_deref(), Some("child"));
    assert!(lock.try_lock().unwrap_err().is_would_block());
    let (r, d) = timed(|| lock.lock_timeout(T).map(drop));
    assert!(matches!(r, Err(LockError::WouldBlock)));
    assert!(d >= T - Duration::from_millis(10));
    let waiter = {
        let lock = lock.clone();
        std::thread::spawn(move || timed(|| lock.lock_timeout(JOIN).map(drop).is_ok()))
    };
    // The waiting thread is listed as a waiter of this process.
    let deadline = Instant::now() + JOIN;
    while !lock.waiters().iter().any(|w| w.pid == std::process::id()) {
        assert!(Instant::now() < deadline, "never listed as a waiter");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (acquired, d) = waiter.join().unwrap();
    assert!(acquired);
    assert!(d >= Duration::from_millis(200), "acquired after {d:?}");
    child.join_timeout(JOIN).unwrap();
    assert!(!lock.is_locked());
    assert!(lock.holder().is_none());
}

fn lock_holder_killed_is_reported(env: &Env) {
    let lock = Lock::create_in(&env.ns, "dies").unwrap();
    let gate: Queue<u8> = Queue::create_in(&env.ns, "gate", opts(0)).unwrap();
    let mut child = Process::spawn((lock.clone(), gate.clone()), |(l, g): (Lock, Queue<u8>)| {
        let guard = l.lock().unwrap();
        g.put(1).unwrap();
        std::thread::sleep(Duration::from_secs(600));
        drop(guard);
    })
    .unwrap();
    assert_eq!(gate.get_timeout(JOIN).unwrap(), 1);
    child.kill().unwrap();
    let _ = child.join_timeout(JOIN);
    // Local: the kernel releases it at once; Redis: when the lease runs out.
    match lock.lock_timeout(JOIN) {
        Err(LockError::OwnerDied(o)) => drop(o.into_inner()),
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    drop(lock.lock().unwrap());
}

fn leased_item_of_a_killed_consumer_is_redelivered(env: &Env) {
    let q = ByteQueue::create_in(&env.ns, "leases", opts(0)).unwrap();
    let gate: Queue<u8> = Queue::create_in(&env.ns, "gate", opts(0)).unwrap();
    q.put(b"job-1").unwrap();
    q.put(b"job-2").unwrap();
    let mut child = Process::spawn(
        (q.clone(), gate.clone()),
        |(q, g): (ByteQueue, Queue<u8>)| {
            let (_job, _receipt) = q.get_leased().unwrap();
            g.put(1).unwrap();
            std::thread::sleep(Duration::from_secs(600));
        },
    )
    .unwrap();
    assert_eq!(gate.get_timeout(JOIN).unwrap(), 1);
    child.kill().unwrap();
    let _ = child.join_timeout(JOIN);
    let deadline = Instant::now() + JOIN;
    let (job, receipt) = loop {
        let _ = q.reclaim();
        match q.get_leased_timeout(Duration::from_millis(500)) {
            Ok((job, r)) if job == b"job-1" => break (job, r),
            Ok((other, r)) => {
                // job-2 may come first while job-1 is not yet taken back.
                assert_eq!(other, b"job-2");
                q.nack(&r).unwrap();
            }
            Err(GetError::Empty) => {}
            Err(e) => panic!("{e}"),
        }
        assert!(Instant::now() < deadline, "job-1 was never redelivered");
    };
    assert_eq!(job, b"job-1");
    assert!(
        receipt.deliveries() >= 2,
        "deliveries {}",
        receipt.deliveries()
    );
    q.ack(&receipt).unwrap();
    assert!(q.ack(&receipt).is_err(), "a receipt settles once");
    let _ = env.redis;
}

/// Waits until `f` holds, at most `JOIN`.
fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + JOIN;
    while !f() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Four reader processes hold the lock at the same time; a writer waits
/// for all of them.
fn rwlock_readers_in_parallel(env: &Env) {
    const N: usize = 4;
    let rw = RwLock::create_in(&env.ns, "rw").unwrap();
    let gate: Queue<u32> = Queue::create_in(&env.ns, "gate", opts(0)).unwrap();
    let go: Queue<u8> = Queue::create_in(&env.ns, "go", opts(0)).unwrap();
    let mut readers: Vec<_> = (0..N)
        .map(|_| {
            Process::spawn(
                (rw.clone(), gate.clone(), go.clone()),
                |(rw, gate, go): (RwLock, Queue<u32>, Queue<u8>)| {
                    let g = rw.read().unwrap();
                    gate.put(std::process::id()).unwrap();
                    go.get_timeout(Duration::from_secs(60)).unwrap();
                    drop(g);
                },
            )
            .unwrap()
        })
        .collect();
    let mut pids: Vec<u32> = (0..N).map(|_| gate.get_timeout(JOIN).unwrap()).collect();
    // All N read at once.
    let mut seen: Vec<u32> = rw.readers().iter().map(|r| r.pid).collect();
    pids.sort_unstable();
    seen.sort_unstable();
    assert_eq!(seen, pids);
    assert!(!rw.is_write_locked());
    assert!(rw.try_write().unwrap_err().is_would_block());
    // Another reader joins them at once.
    drop(rw.try_read().unwrap());
    for _ in 0..N {
        go.put(1).unwrap();
    }
    for r in &mut readers {
        r.join_timeout(JOIN).unwrap();
    }
    assert!(rw.readers().is_empty());
    drop(rw.try_write().unwrap());
}

/// A writer in a child excludes readers and writers; it is listed.
fn rwlock_writer_excludes_everyone(env: &Env) {
    let rw = RwLock::create_in(&env.ns, "rw").unwrap();
    let gate: Queue<u8> = Queue::create_in(&env.ns, "gate", opts(0)).unwrap();
    let mut child = Process::spawn(
        (rw.clone(), gate.clone()),
        |(rw, g): (RwLock, Queue<u8>)| {
            let guard = rw.write().unwrap();
            g.put(1).unwrap();
            g.put_timeout(2, Duration::from_secs(30)).unwrap();
            std::thread::sleep(Duration::from_millis(600));
            drop(guard);
        },
    )
    .unwrap();
    assert_eq!(gate.get_timeout(JOIN).unwrap(), 1);
    assert!(rw.is_write_locked());
    assert_eq!(rw.writer().expect("a writer").pid, child.pid());
    assert!(rw.try_read().unwrap_err().is_would_block());
    assert!(rw.try_write().unwrap_err().is_would_block());
    let (r, d) = timed(|| rw.read_timeout(T).map(drop));
    assert!(matches!(r, Err(LockError::WouldBlock)), "{r:?}");
    assert!(d >= T - Duration::from_millis(10));
    let (r, _) = timed(|| rw.write_deadline(Instant::now() + T).map(drop));
    assert!(matches!(r, Err(LockError::WouldBlock)), "{r:?}");
    // A waiting writer (this process, in a thread) is listed.
    let waiter = {
        let rw = rw.clone();
        std::thread::spawn(move || timed(|| rw.write_timeout(JOIN).map(drop).is_ok()))
    };
    eventually("a waiting writer listed", || {
        rw.waiting_writers()
            .iter()
            .any(|w| w.pid == std::process::id())
    });
    let (acquired, _) = waiter.join().unwrap();
    assert!(acquired);
    child.join_timeout(JOIN).unwrap();
    assert!(!rw.is_write_locked());
    drop(rw.read().unwrap());
}

/// Writer preference: three readers keep the lock read without a gap
/// (each re-reads at once, overlapping the others); a writer still gets it
/// quickly, because readers that come after it wait.
fn rwlock_writer_is_not_starved_by_readers(env: &Env) {
    let rw = RwLock::create_in(&env.ns, "rw").unwrap();
    let stop = env.scratch.path().join("stop");
    let mut readers: Vec<_> = (0..3u64)
        .map(|i| {
            Process::spawn(
                (rw.clone(), stop.clone(), i),
                |(rw, stop, i): (RwLock, PathBuf, u64)| {
                    let mut reads = 0u32;
                    std::thread::sleep(Duration::from_millis(40 * i));
                    while !stop.exists() {
                        let g = rw.read_timeout(Duration::from_secs(30)).unwrap();
                        std::thread::sleep(Duration::from_millis(120));
                        drop(g);
                        reads += 1;
                    }
                    reads
                },
            )
            .unwrap()
        })
        .collect();
    // The readers overlap: the lock is read at every instant from now on.
    eventually("three readers at once", || rw.readers().len() == 3);
    for _ in 0..3 {
        let (w, d) = timed(|| rw.write_timeout(Duration::from_secs(10)).map(drop));
        w.unwrap_or_else(|e| panic!("the writer starved: {e:?}"));
        // Readers already in finish (120 ms); new ones wait behind it.
        assert!(d < Duration::from_secs(3), "the writer waited {d:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::fs::write(&stop, "").unwrap();
    for r in &mut readers {
        assert!(r.join_timeout(JOIN).unwrap() > 0);
    }
}

/// A reader killed while reading has its share returned: a writer gets
/// the lock (cleanly: readers change nothing).
fn rwlock_dead_reader_share_is_returned(env: &Env) {
    let rw = RwLock::create_in(&env.ns, "rw").unwrap();
    let gate: Queue<u8> = Queue::create_in(&env.ns, "gate", opts(0)).unwrap();
    let mut child = Process::spawn(
        (rw.clone(), gate.clone()),
        |(rw, g): (RwLock, Queue<u8>)| {
            let guard = rw.read().unwrap();
            g.put(1).unwrap();
            std::thread::sleep(Duration::from_secs(600));
            drop(guard);
        },
    )
    .unwrap();
    assert_eq!(gate.get_timeout(JOIN).unwrap(), 1);
    assert_eq!(rw.readers().len(), 1);
    child.kill().unwrap();
    let _ = child.join_timeout(JOIN);
    let (w, d) = timed(|| rw.write_timeout(JOIN).map(drop));
    w.unwrap();
    // Shared memory: at once; a server: when the reader's lease runs out.
    assert!(d < Duration::from_secs(10), "took {d:?}");
    assert!(rw.readers().is_empty());
    drop(rw.read().unwrap());
}

/// A writer killed while writing is taken over, with OwnerDied, by the
/// next reader (told once); the next writer is then told nothing.
fn rwlock_dead_writer_is_taken_over(env: &Env) {
    let rw = RwLock::create_in(&env.ns, "rw").unwrap();
    let gate: Queue<u8> = Queue::create_in(&env.ns, "gate", opts(0)).unwrap();
    for next_is_writer in [false, true] {
        let mut child = Process::spawn(
            (rw.clone(), gate.clone()),
            |(rw, g): (RwLock, Queue<u8>)| {
                let guard = rw.write().unwrap();
                g.put(1).unwrap();
                std::thread::sleep(Duration::from_secs(600));
                drop(guard);
            },
        )
        .unwrap();
        assert_eq!(gate.get_timeout(JOIN).unwrap(), 1);
        child.kill().unwrap();
        let _ = child.join_timeout(JOIN);
        if next_is_writer {
            match rw.write_timeout(JOIN) {
                Err(LockError::OwnerDied(o)) => drop(o.into_inner()),
                other => panic!("expected OwnerDied, got {other:?}"),
            }
        } else {
            match rw.read_timeout(JOIN) {
                Err(LockError::OwnerDied(o)) => drop(o.into_inner()),
                other => panic!("expected OwnerDied, got {other:?}"),
            }
        }
        drop(rw.write().unwrap());
        drop(rw.read().unwrap());
    }
}
