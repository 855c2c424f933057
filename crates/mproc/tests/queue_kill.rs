//! A queue whose producers and consumers are SIGKILLed at random instants
//! (mid-put, mid-get, holding the put or get lock) is never torn or wedged.

mod common;

use std::time::{Duration, Instant};

use common::JOIN;
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
    let q: Queue<Item> =
        Queue::with_options(QueueOptions::new().maxsize(100).max_bytes(16 << 10)).unwrap();
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
    q.put_timeout((9, 0, vec![]), Duration::from_secs(2))
        .or_else(|_| q.get().map(|_| ()))
        .unwrap();
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
    use std::os::unix::fs::FileExt;
    // The state a plain get leaves when killed after publishing its cursor
    // but before moving `head` (offset 320 of a queue segment): every record
    // delivered, the space still held. The next get (which finds nothing)
    // frees it, and a producer waiting for room is woken.
    let (_d, ns) = common::namespace();
    let q = mproc::ByteQueue::create_in(&ns, "q", QueueOptions::new().maxsize(4)).unwrap();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(ns.path().join("q"))
        .unwrap();
    for round in 0..3u8 {
        let head = std::fs::read(ns.path().join("q")).unwrap()[320..328].to_vec();
        for i in 0..4 {
            q.try_put(&[round, i]).unwrap();
        }
        for i in 0..4 {
            assert_eq!(q.try_get().unwrap(), [round, i]);
        }
        file.write_all_at(&head, 320).unwrap();
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
    // The not-empty wait cell's word (offset 384 of a queue segment) counts
    // wake-ups in bits 1.. and says "someone may sleep here" in bit 0. A
    // consumer killed asleep leaves the bit set; the next put wakes (nobody)
    // and clears it, and later puts make no system call for it.
    let (_d, ns) = common::namespace();
    let q = mproc::ByteQueue::create_in(&ns, "q", QueueOptions::new()).unwrap();
    let word = || {
        let b = std::fs::read(ns.path().join("q")).unwrap();
        u32::from_le_bytes([b[384], b[385], b[386], b[387]])
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
