//! A queue whose producers and consumers are SIGKILLed at random instants
//! (mid-put, mid-get, holding the put or get lock) is never torn or wedged.

mod common;

use std::time::{Duration, Instant};

use common::JOIN;
use mproc::testing::queue;
use mproc::{GetError, Process, Queue, QueueOptions};

fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

type Item = (u32, u64, Vec<u8>);

fn producer((q, id): (Queue<Item>, u32)) {
    // Restarted producers continue from a time-based sequence so that each
    // producer id's items stay increasing across restarts.
    let mut i = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    loop {
        let payload = vec![(i % 251) as u8; (i % 300) as usize];
        if q.put((id, i, payload)).is_err() {
            return;
        }
        i += 1;
    }
}

fn consumer(q: Queue<Item>) {
    while let Ok((_, i, payload)) = q.get() {
        assert!(
            payload.len() == (i % 300) as usize && payload.iter().all(|&b| b == (i % 251) as u8)
        );
    }
}

#[test]
fn killed_producers_and_consumers_never_tear_the_queue() {
    // A ring of a power of two (positions modulo 2^32).
    kill_at_random(QueueOptions::new().maxsize(100).max_bytes(16 << 10));
}

#[test]
fn killed_producers_and_consumers_never_tear_an_exact_size_queue() {
    // A ring of exactly its budget (2 MiB + 64 KiB: a power of two would
    // cost 2 MiB more), whose positions count modulo a multiple of its
    // size; the producers' positions go round it many times.
    kill_at_random(
        QueueOptions::new()
            .maxsize(100)
            .max_bytes((2 << 20) + (64 << 10)),
    );
}

fn kill_at_random(opts: QueueOptions) {
    let q: Queue<Item> = Queue::with_options(opts).unwrap();
    let mut producers: Vec<_> = (0..2)
        .map(|id| Process::spawn((q.clone(), id), producer).unwrap())
        .collect();
    let mut consumers: Vec<_> = (0..2)
        .map(|_| Process::spawn(q.clone(), consumer).unwrap())
        .collect();
    let mut seed = 0x2545_F491_4F6C_DD1Du64 ^ u64::from(std::process::id());
    let mut kills = 0u32;
    let end = Instant::now() + Duration::from_secs(4);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_micros(1_000 + rng(&mut seed) % 10_000));
        let pick = rng(&mut seed) as usize;
        if pick % 2 == 0 {
            let i = pick / 2 % producers.len();
            producers[i].kill().unwrap();
            let _ = producers[i].join_timeout(JOIN);
            producers[i] = Process::spawn((q.clone(), i as u32), producer).unwrap();
        } else {
            let i = pick / 2 % consumers.len();
            consumers[i].kill().unwrap();
            let r = consumers[i].join_timeout(JOIN);
            assert!(
                !matches!(r, Err(mproc::ProcessError::Panicked { .. })),
                "a consumer saw a torn item: {r:?}"
            );
            consumers[i] = Process::spawn(q.clone(), consumer).unwrap();
        }
        kills += 1;
    }
    for p in producers.iter_mut().chain(consumers.iter_mut()) {
        p.kill().unwrap();
        let _ = p.join_timeout(JOIN);
    }
    // Counters agree with the contents, and the queue still works promptly.
    let s = q.stats();
    assert_eq!(s.total_put - s.total_got, s.len, "{s:?}");
    let t = Instant::now();
    // A put, or (the queue is full) a get: either at once, not after a
    // put's timeout.
    match q.try_put((9, 0, vec![])) {
        Ok(()) => {}
        Err(e) if e.is_full() => {
            q.get_timeout(Duration::from_secs(2)).unwrap();
        }
        Err(e) => panic!("put after {kills} kills: {e}"),
    }
    q.close();
    let mut last = [0u64; 10];
    let mut n = 0;
    loop {
        match q.get_timeout(Duration::from_secs(2)) {
            Ok((id, i, payload)) => {
                assert!(
                    payload.len() == (i % 300) as usize
                        && payload.iter().all(|&b| b == (i % 251) as u8)
                );
                assert!(
                    id == 9 || i > last[id as usize],
                    "producer {id} out of order"
                );
                last[id as usize] = i;
                n += 1;
            }
            Err(GetError::Closed) => break,
            Err(e) => panic!("after {kills} kills: {e}"),
        }
    }
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "queue wedged after {kills} kills"
    );
    let s = q.stats();
    assert_eq!(
        (s.len, s.total_put, s.total_got),
        (0, s.total_got, s.total_put)
    );
    eprintln!(
        "{kills} kills, {} items moved, {n} drained at the end",
        s.total_got
    );
}

#[test]
fn a_consumer_killed_between_its_cursor_and_head_stores_frees_the_space_later() {
    // The state a plain get leaves when killed after publishing its cursor
    // but before moving `head` (`queue::HEAD`): every record
    // delivered, the space still held. The next get (which finds nothing)
    // frees it, and a producer waiting for room is woken.
    let (_d, ns) = common::namespace();
    let q = mproc::ByteQueue::create_in(&ns, "q", QueueOptions::new().maxsize(4)).unwrap();
    for round in 0..3u8 {
        let rewind_head = save_words(&ns, "q", HEAD_WORD);
        for i in 0..4 {
            q.try_put(&[round, i]).unwrap();
        }
        for i in 0..4 {
            assert_eq!(q.try_get().unwrap(), [round, i]);
        }
        rewind_head();
        assert_eq!(q.len(), 0);
        assert!(
            q.try_put(b"x").is_err(),
            "round {round}: the space is still held"
        );
        let waiter = {
            let q = q.clone();
            std::thread::spawn(move || q.put_timeout(b"w", Duration::from_secs(20)).is_ok())
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(q.try_get().is_err());
        assert!(
            waiter.join().unwrap(),
            "round {round}: the waiting producer was not woken"
        );
        assert_eq!(q.try_get().unwrap(), b"w");
    }
}

#[test]
fn a_consumer_killed_asleep_costs_producers_one_spare_wake_not_one_per_put() {
    // The not-empty wait cell's word (`queue::NOT_EMPTY`) counts
    // wake-ups in bits 1.. and says "someone may sleep here" in bit 0. A
    // consumer killed asleep leaves the bit set; the next put wakes (nobody)
    // and clears it, and later puts make no system call for it.
    let (_d, ns) = common::namespace();
    let q = mproc::ByteQueue::create_in(&ns, "q", QueueOptions::new()).unwrap();
    let word = || {
        let b = std::fs::read(ns.path().join("q")).unwrap();
        let w = queue::NOT_EMPTY;
        u32::from_le_bytes([b[w], b[w + 1], b[w + 2], b[w + 3]])
    };
    let mut child = Process::<()>::spawn(q.clone(), |q: mproc::ByteQueue| {
        let _ = q.get();
    })
    .unwrap();
    let t = Instant::now();
    while q.stats().waiting_get == 0 {
        assert!(t.elapsed() < JOIN, "the consumer never went to sleep");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(20));
    child.kill().unwrap();
    let _ = child.join_timeout(JOIN);
    assert_eq!(word() & 1, 1, "the sleeper's bit");
    q.put(b"first").unwrap();
    let after_first = word();
    assert_eq!(after_first & 1, 0, "the first put clears the bit");
    for _ in 0..100 {
        q.put(b"more").unwrap();
    }
    assert_eq!(word(), after_first, "later puts woke nobody");
    assert_eq!(q.len(), 101);
}

/// Offsets in a queue segment: `tail` and `put_total`, the producers'
/// words; `head`, the consumers' mark of free space.
const PRODUCER_WORDS: std::ops::Range<usize> = queue::TAIL..queue::PUT_TOTAL + 8;
const HEAD_WORD: std::ops::Range<usize> = queue::HEAD..queue::HEAD + 8;

/// Saves the bytes `words` of the named queue's segment now; the returned
/// function writes them back, leaving the state of a process killed before
/// it stored them.
fn save_words(ns: &mproc::Namespace, name: &str, words: std::ops::Range<usize>) -> impl Fn() {
    use std::os::unix::fs::FileExt;
    let path = ns.path().join(name);
    let before = std::fs::read(&path).unwrap()[words.clone()].to_vec();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    move || file.write_all_at(&before, words.start as u64).unwrap()
}

/// [`save_words`] of the producers' words: rewinding them after a put
/// leaves the state of a producer killed between publishing its record's
/// header and moving `tail`.
fn save_producer_words(ns: &mproc::Namespace, name: &str) -> impl Fn() {
    save_words(ns, name, PRODUCER_WORDS)
}

/// A named queue holding `early`, then `late` put by a producer "killed"
/// before moving `tail` (rewound by the returned function).
fn producer_killed_before_tail(
    ns: &mproc::Namespace,
    early: &[&[u8]],
    late: &[u8],
    opts: QueueOptions,
) -> (mproc::ByteQueue, impl Fn()) {
    let q = mproc::ByteQueue::create_in(ns, "q", opts).unwrap();
    for m in early {
        q.put(m).unwrap();
    }
    let rewind = save_producer_words(ns, "q");
    q.put(late).unwrap();
    (q, rewind)
}

#[test]
fn a_producer_killed_between_its_header_and_tail_stores_published_its_record() {
    let (_d, ns) = common::namespace();
    let (q, rewind) = producer_killed_before_tail(&ns, &[b"a"], b"b", QueueOptions::new());
    rewind();
    // `tail` says one record; the ring holds two, and consumers find both
    // (and `len` counts the records published past `tail`).
    assert_eq!(q.len(), 2);
    assert_eq!(q.try_get().unwrap(), b"a");
    assert_eq!(q.try_get().unwrap(), b"b");
    assert_eq!(q.len(), 0, "a cursor ahead of tail is not a huge length");
    assert!(q.try_get().unwrap_err().is_empty());
    let s = q.stats();
    assert_eq!((s.total_got, s.total_put), (2, 2));
    // The next producer moves `tail` over the dead producer's record.
    q.put(b"c").unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q.stats().total_put, 3);
    assert_eq!(q.try_get().unwrap(), b"c");
    assert!(q.try_get().unwrap_err().is_empty());

    // Before any consumer: the records are in the queue, in order.
    let (_d, ns) = common::namespace();
    let (q, rewind) = producer_killed_before_tail(&ns, &[b"1", b"2"], b"3", QueueOptions::new());
    rewind();
    q.put(b"4").unwrap();
    assert_eq!(q.len(), 4);
    for m in [b"1", b"2", b"3", b"4"] {
        assert_eq!(q.try_get().unwrap(), m);
    }
}

#[test]
fn a_task_taken_before_its_producer_moved_tail_can_be_marked_done() {
    let (_d, ns) = common::namespace();
    let jq = mproc::JoinableQueue::<u32>::create_in(&ns, "jq", QueueOptions::new()).unwrap();
    jq.put(1).unwrap();
    let rewind = save_producer_words(&ns, "jq");
    jq.put(2).unwrap();
    rewind();
    assert_eq!(jq.get().unwrap(), 1);
    jq.task_done().unwrap();
    assert_eq!(jq.get().unwrap(), 2);
    jq.task_done()
        .expect("a task that was delivered can be marked done");
    assert_eq!(jq.unfinished(), 0);
    jq.join().unwrap();
    assert!(jq.task_done().is_err(), "every task is done");
}

#[test]
fn a_producer_waiting_for_room_is_not_stuck_behind_a_dead_producers_tail() {
    // Budget for four 8-byte messages. The fourth producer "dies" before
    // moving `tail`; a producer already waiting for room must get it once
    // consumers have taken everything (the head then lies ahead of `tail`).
    let (_d, ns) = common::namespace();
    let (q, rewind) = producer_killed_before_tail(
        &ns,
        &[b"00000000", b"11111111", b"22222222"],
        b"33333333",
        QueueOptions::new().max_bytes(64),
    );
    assert!(q.try_put(b"44444444").unwrap_err().is_full());
    let waiter = {
        let q = q.clone();
        std::thread::spawn(move || q.put_timeout(b"44444444", Duration::from_secs(20)))
    };
    std::thread::sleep(Duration::from_millis(50));
    rewind();
    for i in 0..4u8 {
        assert_eq!(q.try_get().unwrap(), [b'0' + i; 8]);
    }
    waiter
        .join()
        .unwrap()
        .expect("the waiting producer got room");
    assert_eq!(q.try_get().unwrap(), b"44444444");
    assert_eq!(q.stats().total_put, 5);
}
