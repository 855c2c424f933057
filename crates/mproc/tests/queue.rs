//! Queue and JoinableQueue across real processes: CPython's `_TestQueue`
//! scenarios, the tutorial's `Queue(5)`, and many producers × consumers.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{assert_about, namespace, timed, JOIN};
use mproc::{
    ByteQueue, GetError, JoinableQueue, Lock, Namespace, OpenError, Process, PutErrorKind, Queue,
    QueueOptions,
};

const T: Duration = Duration::from_millis(200);

#[test]
fn test_put_full_queue_blocks_and_times_out() {
    let q: Queue<u32> = Queue::new(6).unwrap();
    let go = Lock::new().unwrap();
    let gate = go.lock().unwrap();
    assert!(q.is_empty() && !q.is_full());
    let mut child = Process::spawn((q.clone(), go.clone()), |(q, go): (Queue<u32>, Lock)| {
        let _g = go.lock().map_err(|e| e.into_guard().is_some()).unwrap();
        (0..6).map(|_| q.get().unwrap()).collect::<Vec<u32>>()
    })
    .unwrap();
    for i in 1..=5 {
        q.put(i).unwrap();
    }
    q.try_put(6).unwrap();
    assert!(!q.is_empty() && q.is_full());
    let (r, d) = timed(|| q.try_put(7));
    assert!(r.unwrap_err().is_full());
    assert!(d < Duration::from_millis(100));
    let (r, d) = timed(|| q.put_timeout(7, T));
    let e = r.unwrap_err();
    assert!(e.is_full());
    assert_eq!(e.into_inner(), 7, "a failed put hands the item back");
    assert_about(d, T);
    drop(gate);
    assert_eq!(child.join_timeout(JOIN).unwrap(), vec![1, 2, 3, 4, 5, 6]);
    assert!(q.is_empty() && !q.is_full());
}

#[test]
fn test_get_from_child_then_empty_with_timeouts() {
    let q: Queue<u32> = Queue::new(0).unwrap();
    assert!(q.is_empty());
    let mut child = Process::spawn(q.clone(), |q: Queue<u32>| {
        for i in 2..=5 {
            q.put(i).unwrap();
        }
    })
    .unwrap();
    child.join_timeout(JOIN).unwrap();
    assert!(!q.is_empty());
    assert_eq!(q.get().unwrap(), 2);
    assert_eq!(q.get_timeout(Duration::from_secs(1)).unwrap(), 3);
    assert_eq!(
        q.get_deadline(std::time::Instant::now() + Duration::from_secs(1))
            .unwrap(),
        4
    );
    assert_eq!(q.try_get().unwrap(), 5);
    assert!(q.is_empty());
    let (r, d) = timed(|| q.try_get());
    assert_eq!(r.unwrap_err(), GetError::Empty);
    assert!(d < Duration::from_millis(100));
    let (r, d) = timed(|| q.get_timeout(T));
    assert_eq!(r.unwrap_err(), GetError::Empty);
    assert_about(d, T);
}

#[test]
fn test_fork_per_producer_order() {
    let q: Queue<u32> = Queue::new(0).unwrap();
    for i in 0..10 {
        q.put(i).unwrap();
    }
    let mut child = Process::spawn(q.clone(), |q: Queue<u32>| {
        for i in 10..20 {
            q.put(i).unwrap();
        }
    })
    .unwrap();
    child.join_timeout(JOIN).unwrap();
    let got: Vec<u32> = (0..20).map(|_| q.get().unwrap()).collect();
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    assert_eq!(q.try_get().unwrap_err(), GetError::Empty);
}

#[test]
fn test_qsize_is_exact() {
    let q: Queue<u8> = Queue::new(0).unwrap();
    assert_eq!(q.len(), 0);
    q.put(1).unwrap();
    assert_eq!(q.len(), 1);
    q.put(2).unwrap();
    assert_eq!(q.len(), 2);
    q.get().unwrap();
    assert_eq!(q.len(), 1);
    q.get().unwrap();
    assert_eq!(q.len(), 0);
    let s = q.stats();
    assert_eq!((s.total_put, s.total_got, s.len), (2, 2, 0));
}

#[test]
fn test_task_done_with_four_workers() {
    let q: JoinableQueue<Option<u32>> = JoinableQueue::new(0).unwrap();
    let mut workers: Vec<_> = (0..4)
        .map(|_| {
            Process::spawn(q.clone(), |q: JoinableQueue<Option<u32>>| {
                let mut n = 0;
                while let Some(_item) = q.get().unwrap() {
                    std::thread::sleep(Duration::from_millis(20));
                    n += 1;
                    q.task_done().unwrap();
                }
                q.task_done().unwrap();
                n
            })
            .unwrap()
        })
        .collect();
    for i in 0..10 {
        q.put(Some(i)).unwrap();
    }
    q.join_timeout(JOIN).unwrap();
    assert_eq!(q.unfinished(), 0);
    for _ in &workers {
        q.put(None).unwrap();
    }
    let total: u32 = workers
        .iter_mut()
        .map(|w| w.join_timeout(JOIN).unwrap())
        .sum();
    assert_eq!(total, 10);
    q.join_timeout(JOIN).unwrap();
    assert!(q.task_done().is_err(), "task_done() called too many times");
}

#[test]
fn join_blocks_until_the_last_task_is_done() {
    let q: JoinableQueue<u32> = JoinableQueue::new(0).unwrap();
    q.put(7).unwrap();
    let (r, d) = timed(|| q.join_timeout(T));
    assert!(r.is_err());
    assert_about(d, T);
    let mut child = Process::spawn(q.clone(), |q: JoinableQueue<u32>| {
        let v = q.get().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        q.task_done().unwrap();
        v
    })
    .unwrap();
    let (r, d) = timed(|| q.join_timeout(JOIN));
    r.unwrap();
    assert!(
        d >= Duration::from_millis(250),
        "join returned before task_done: {d:?}"
    );
    assert_eq!(child.join_timeout(JOIN).unwrap(), 7);
}

#[test]
fn test_timeout_on_empty_queue() {
    let q: Queue<u8> = Queue::new(0).unwrap();
    let (r, d) = timed(|| q.get_timeout(T));
    assert!(r.unwrap_err().is_empty());
    assert!(d >= Duration::from_millis(100));
}

#[test]
fn closed_queue_drains_then_ends_every_consumer() {
    let (_d, ns) = namespace();
    let q: Queue<u32> = Queue::create_in(&ns, "jobs", QueueOptions::new().maxsize(10)).unwrap();
    // Two consumers blocked on the empty queue.
    let mut consumers: Vec<_> = (0..2)
        .map(|_| {
            Process::spawn(q.clone(), |q: Queue<u32>| {
                let mut got = Vec::new();
                loop {
                    match q.get() {
                        Ok(v) => got.push(v),
                        Err(GetError::Closed) => return got,
                        Err(e) => panic!("unexpected {e}"),
                    }
                }
            })
            .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    for i in 0..5 {
        q.put(i).unwrap();
    }
    q.close();
    assert!(q.is_closed());
    let e = q.put(99).unwrap_err();
    assert_eq!(*e.kind(), PutErrorKind::Closed);
    assert_eq!(e.into_inner(), 99);
    let mut all: Vec<u32> = consumers
        .iter_mut()
        .flat_map(|c| c.join_timeout(JOIN).unwrap())
        .collect();
    all.sort();
    assert_eq!(all, vec![0, 1, 2, 3, 4]);
    assert_eq!(q.get().unwrap_err(), GetError::Closed);
    assert_eq!(q.try_get().unwrap_err(), GetError::Closed);
}

#[test]
fn close_wakes_blocked_putters() {
    let q: Queue<u32> = Queue::new(1).unwrap();
    q.put(1).unwrap();
    let mut p = Process::spawn(q.clone(), |q: Queue<u32>| match q.put(2) {
        Err(e) if e.is_closed() => "closed".to_string(),
        other => format!("{other:?}"),
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    q.close();
    assert_eq!(p.join_timeout(JOIN).unwrap(), "closed");
    assert_eq!(q.get().unwrap(), 1);
    assert_eq!(q.get().unwrap_err(), GetError::Closed);
}

#[test]
fn tutorial_queue5_sixth_put_blocks_until_a_get() {
    let (_d, ns) = namespace();
    let q: Queue<u32> = Queue::create_in(&ns, "q5", QueueOptions::new().maxsize(5)).unwrap();
    let (_, d) = timed(|| {
        for i in 1..=5 {
            q.put(i).unwrap();
        }
    });
    assert!(
        d < Duration::from_millis(100),
        "five puts must return at once"
    );
    // print('111') happens here; the sixth put blocks...
    let mut sixth = Process::spawn(ns.path().to_owned(), |dir: std::path::PathBuf| {
        let ns = Namespace::dir(dir).unwrap();
        let q: Queue<u32> = Queue::open_in(&ns, "q5").unwrap();
        let t = std::time::Instant::now();
        q.put(6).unwrap();
        t.elapsed().as_millis() as u64
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        sixth.is_alive(),
        "the sixth put must block while the queue is full"
    );
    assert_eq!(q.len(), 5);
    // ...until a consumer frees a slot.
    assert_eq!(q.get().unwrap(), 1);
    let blocked_ms = sixth.join_timeout(JOIN).unwrap();
    assert!(
        blocked_ms >= 250,
        "sixth put returned after {blocked_ms} ms"
    );
    let rest: Vec<u32> = (0..5).map(|_| q.get().unwrap()).collect();
    assert_eq!(rest, vec![2, 3, 4, 5, 6]);
}

#[test]
fn many_producers_many_consumers_exactly_once_in_producer_order() {
    const P: u32 = 4;
    const C: usize = 3;
    const N: u32 = 5_000;
    let q: Queue<(u32, u32)> = Queue::new(64).unwrap();
    let mut consumers: Vec<_> = (0..C)
        .map(|_| {
            Process::spawn(q.clone(), |q: Queue<(u32, u32)>| {
                let mut got = Vec::new();
                while let Ok(item) = q.get() {
                    got.push(item);
                }
                got
            })
            .unwrap()
        })
        .collect();
    let mut producers: Vec<_> = (0..P)
        .map(|p| {
            Process::spawn((q.clone(), p), |(q, p): (Queue<(u32, u32)>, u32)| {
                for i in 0..N {
                    q.put((p, i)).unwrap();
                }
            })
            .unwrap()
        })
        .collect();
    for p in &mut producers {
        p.join_timeout(JOIN).unwrap();
    }
    q.close();
    let mut seen: HashMap<(u32, u32), u32> = HashMap::new();
    for c in &mut consumers {
        let got = c.join_timeout(JOIN).unwrap();
        // Within one consumer, each producer's items appear in increasing order.
        let mut last: HashMap<u32, u32> = HashMap::new();
        for &(p, i) in &got {
            if let Some(&prev) = last.get(&p) {
                assert!(i > prev, "producer {p}: {i} after {prev}");
            }
            last.insert(p, i);
            *seen.entry((p, i)).or_default() += 1;
        }
    }
    assert_eq!(seen.len() as u32, P * N, "lost items");
    assert!(seen.values().all(|&n| n == 1), "duplicated items");
    let s = q.stats();
    assert_eq!(
        (s.total_put, s.total_got, s.len),
        (u64::from(P * N), u64::from(P * N), 0)
    );
}

#[test]
fn batches_keep_order_and_count() {
    let q: Queue<u32> = Queue::new(100).unwrap();
    let mut prod = Process::spawn(q.clone(), |q: Queue<u32>| {
        for chunk in (0..10_000u32).collect::<Vec<_>>().chunks(37) {
            q.put_many(chunk.to_vec()).unwrap();
        }
        q.close();
    })
    .unwrap();
    let mut all = Vec::new();
    loop {
        match q.get_many(50) {
            Ok(v) => {
                assert!(!v.is_empty() && v.len() <= 50);
                all.extend(v);
            }
            Err(GetError::Closed) => break,
            Err(e) => panic!("{e}"),
        }
    }
    prod.join_timeout(JOIN).unwrap();
    assert_eq!(all, (0..10_000).collect::<Vec<_>>());
}

#[test]
fn sixteen_mib_messages_and_the_size_limit() {
    let q = ByteQueue::with_options(QueueOptions::new().max_bytes(40 << 20)).unwrap();
    let big: Vec<u8> = (0..16 << 20).map(|i: u32| (i % 251) as u8).collect();
    let mut child = Process::spawn(q.clone(), |q: ByteQueue| {
        let m = q.get().unwrap();
        let ok = m.len() == 16 << 20 && m.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8);
        q.put(&m).unwrap();
        ok
    })
    .unwrap();
    q.put(&big).unwrap();
    assert!(child.join_timeout(JOIN).unwrap());
    assert_eq!(q.get().unwrap(), big);
    let small = ByteQueue::with_options(QueueOptions::new().max_bytes(4096)).unwrap();
    let too_big = vec![0u8; 5000];
    let e = small.put(&too_big).unwrap_err();
    match e.kind() {
        PutErrorKind::TooLarge { size, limit } => {
            // A message of max_bytes bytes fits.
            assert_eq!((*size, *limit), (5000, 4096));
            assert!(e.to_string().contains("4096"), "{e}");
        }
        k => panic!("{k:?}"),
    }
    small.put(&vec![1u8; 4096]).unwrap();
    assert!(small.is_full());
}

#[test]
fn empty_messages_and_byte_budget() {
    let q = ByteQueue::with_options(QueueOptions::new().max_bytes(64)).unwrap();
    for _ in 0..9 {
        q.try_put(b"").unwrap();
    }
    assert!(
        q.try_put(b"").unwrap_err().is_full(),
        "9 records of 8 bytes fill a budget of 64 bytes plus one header"
    );
    assert_eq!(q.len(), 9);
    assert_eq!(q.get().unwrap(), b"");
    q.try_put(b"").unwrap();
}

#[test]
fn wraparound_keeps_messages_intact() {
    let q = ByteQueue::with_options(QueueOptions::new().max_bytes(256)).unwrap();
    for round in 0..2_000u32 {
        let len = (round * 7 % 100) as usize;
        let msg: Vec<u8> = (0..len).map(|i| (i as u32 + round) as u8).collect();
        q.put(&msg).unwrap();
        if round % 3 == 0 {
            q.put(&msg).unwrap();
            assert_eq!(q.get().unwrap(), msg);
        }
        assert_eq!(q.get().unwrap(), msg);
    }
}

#[test]
fn named_queue_open_errors_are_clear() {
    let (_d, ns) = namespace();
    let e = Queue::<u8>::open_in(&ns, "nope").unwrap_err();
    assert!(matches!(e, OpenError::NotFound { .. }), "{e}");
    assert!(e.to_string().contains("queue 'nope' does not exist"), "{e}");
    Lock::create_in(&ns, "alock").unwrap();
    let e = Queue::<u8>::open_in(&ns, "alock").unwrap_err();
    assert!(matches!(e, OpenError::WrongKind { .. }), "{e}");
    for bad in ["../x", "", ".hidden", "a/b", "tab\tname"] {
        let e = Queue::<u8>::open_in(&ns, bad).unwrap_err();
        assert!(matches!(e, OpenError::InvalidName(_)), "{bad:?}: {e}");
    }
    let e = Queue::<u8>::create_in(&ns, &"x".repeat(129), QueueOptions::new()).unwrap_err();
    assert!(e.to_string().contains("longer than 128"), "{e}");
    Queue::<u8>::create_in(&ns, "dup", QueueOptions::new()).unwrap();
    let e = Queue::<u8>::create_in(&ns, "dup", QueueOptions::new()).unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    let e = Queue::<u8>::create_in(&ns, "tiny", QueueOptions::new().max_bytes(8)).unwrap_err();
    assert!(e.to_string().contains("max_bytes"), "{e}");
}

#[test]
fn damaged_foreign_and_future_segments_are_refused() {
    let (_d, ns) = namespace();
    let path = ns.path().join("junk");
    std::fs::write(&path, vec![0x41u8; 4096]).unwrap();
    let e = Queue::<u8>::open_in(&ns, "junk").unwrap_err();
    assert!(matches!(e, OpenError::Damaged { .. }), "{e}");
    std::fs::write(&path, b"short").unwrap();
    assert!(matches!(
        Queue::<u8>::open_in(&ns, "junk").unwrap_err(),
        OpenError::Damaged { .. }
    ));
    // A real queue, then its layout version bumped.
    Queue::<u8>::create_in(&ns, "future", QueueOptions::new().max_bytes(4096)).unwrap();
    let fpath = ns.path().join("future");
    let mut bytes = std::fs::read(&fpath).unwrap();
    let version = bytes[8];
    bytes[8] = 99;
    std::fs::write(&fpath, &bytes).unwrap();
    let e = Queue::<u8>::open_in(&ns, "future").unwrap_err();
    assert!(
        matches!(e, OpenError::VersionMismatch { found: 99, .. }),
        "{e}"
    );
    // Truncated.
    bytes[8] = version;
    std::fs::write(&fpath, &bytes[..2048]).unwrap();
    assert!(matches!(
        Queue::<u8>::open_in(&ns, "future").unwrap_err(),
        OpenError::Damaged { .. }
    ));
    // A symbolic link is not followed.
    std::os::unix::fs::symlink("/etc/passwd", ns.path().join("link")).unwrap();
    assert!(matches!(
        Queue::<u8>::open_in(&ns, "link").unwrap_err(),
        OpenError::Damaged { .. }
    ));
}

#[test]
fn undecodable_item_is_an_error_not_a_panic() {
    let q = ByteQueue::new(0).unwrap();
    q.put(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).unwrap();
    let typed: Queue<u64> = Queue::from_bytes(q.clone());
    let bad = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    assert!(matches!(typed.get().unwrap_err(), GetError::Decode { bytes, .. } if bytes == bad));
}

#[test]
fn an_undecodable_item_is_handed_back_never_dropped() {
    let q = ByteQueue::new(0).unwrap();
    let typed: Queue<String> = Queue::from_bytes(q.clone());
    // peek leaves it in place.
    q.put(&[0xff, 0xfe]).unwrap();
    assert!(
        matches!(typed.peek().unwrap_err(), GetError::Decode { bytes, .. } if bytes == [0xff, 0xfe])
    );
    assert_eq!(q.len(), 1);
    // get takes it and hands its bytes back.
    assert!(
        matches!(typed.get().unwrap_err(), GetError::Decode { bytes, .. } if bytes == [0xff, 0xfe])
    );
    // A batch: the good items before a bad one are returned, the bad one
    // and everything after it come out of the next calls, in order.
    q.put(b"a").unwrap();
    q.put(&[0xff]).unwrap();
    q.put(b"b").unwrap();
    assert_eq!(typed.get_many(10).unwrap(), ["a"]);
    assert!(
        matches!(typed.get_many(10).unwrap_err(), GetError::Decode { bytes, .. } if bytes == [0xff])
    );
    assert_eq!(typed.try_get().unwrap(), "b");
    assert!(typed.try_get().unwrap_err().is_empty());
    // A leased get moves it to the dead-letter queue as well.
    let dir = tempfile::tempdir().unwrap();
    let ns = mproc::Namespace::dir(dir.path()).unwrap();
    let named: Queue<String> = Queue::create_in(&ns, "n", mproc::QueueOptions::new()).unwrap();
    named.as_bytes().put(&[0xc3]).unwrap();
    assert!(
        matches!(named.get_leased().unwrap_err(), GetError::Decode { bytes, .. } if bytes == [0xc3])
    );
    let dlq = ByteQueue::open_in(&ns, "n.dlq").unwrap();
    assert_eq!(dlq.get().unwrap(), [0xc3]);
}
