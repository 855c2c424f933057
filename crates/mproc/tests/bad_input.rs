//! Bad input: damaged, truncated, foreign and newer segments, corrupted
//! shared state, oversized messages, invalid names, a full tmpfs and too
//! many open files. Each gives a clear typed error — never a panic, a hang
//! or an access outside the segment — and the other objects keep working.
//!
//! Runs that could hang or crash on a bug run in a child process
//! ([`Process`]) under a deadline, so that a failure is reported as such
//! instead of wedging or killing the test binary.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use common::{in_child, namespace};
use mproc::{
    ByteQueue, CreateError, GetError, JoinableQueue, Lock, NameError, Namespace, ObjectKind,
    OpenError, OpenOrCreateError, Process, PutErrorKind, Queue, QueueOptions, RemoveError,
};

// Segment layout.
use mproc::testing::{lock::SEG_LEN as LOCK_SEG_LEN, HEADER_LEN, LAYOUT_VERSION as LAYOUT};
const QUEUE_TAIL: u64 = mproc::testing::queue::TAIL as u64;
const QUEUE_HEAD: u64 = mproc::testing::queue::HEAD as u64;
const QUEUE_RING: u64 = mproc::testing::queue::RING as u64;

/// Deadline for a child that runs a batch of bad inputs.
const BATCH: Duration = Duration::from_secs(120);

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

fn header(magic: &[u8; 8], version: u32, kind: u32, len: u64, params: [u64; 4]) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(magic);
    h.extend_from_slice(&version.to_le_bytes());
    h.extend_from_slice(&kind.to_le_bytes());
    h.extend_from_slice(&len.to_le_bytes());
    for p in params {
        h.extend_from_slice(&p.to_le_bytes());
    }
    h.resize(HEADER_LEN, 0);
    h
}

fn write_file(ns: &Namespace, name: &str, bytes: &[u8]) {
    let path = ns.path().join(name);
    let _ = std::fs::remove_file(&path);
    std::fs::write(&path, bytes).unwrap();
}

fn patch(ns: &Namespace, name: &str, at: u64, bytes: &[u8]) {
    let f = OpenOptions::new()
        .write(true)
        .open(ns.path().join(name))
        .unwrap();
    f.write_all_at(bytes, at).unwrap();
}

fn queue_with(ns: &Namespace, name: &str, msgs: &[&[u8]], max_bytes: usize) -> ByteQueue {
    let q = ByteQueue::create_in(
        ns,
        name,
        QueueOptions::new().maxsize(64).max_bytes(max_bytes),
    )
    .unwrap();
    for m in msgs {
        q.put(m).unwrap();
    }
    q
}

fn is_damaged(e: &OpenError) -> bool {
    matches!(e, OpenError::Damaged { .. })
}

// ---------------------------------------------------------------------------
// Header validation

#[test]
fn newer_or_older_layout_version_is_a_version_mismatch() {
    let (_d, ns) = namespace();
    drop(queue_with(&ns, "q", &[b"x"], 4096));
    drop(Lock::create_in(&ns, "l").unwrap());
    for found in [0u32, 1, LAYOUT + 1, 7, u32::MAX] {
        patch(&ns, "q", 8, &found.to_le_bytes());
        patch(&ns, "l", 8, &found.to_le_bytes());
        match ByteQueue::open_in(&ns, "q") {
            Err(OpenError::VersionMismatch {
                name,
                found: f,
                supported: LAYOUT,
            }) => {
                assert_eq!((name.as_str(), f), ("q", found));
            }
            other => panic!("version {found}: {other:?}"),
        }
        let e = Lock::open_in(&ns, "l").unwrap_err();
        assert!(
            matches!(e, OpenError::VersionMismatch { found: f, .. } if f == found),
            "{e:?}"
        );
        assert!(e.to_string().contains("layout version"), "{e}");
    }
}

#[test]
fn another_kind_is_wrong_kind_and_unknown_kinds_are_damaged() {
    let (_d, ns) = namespace();
    drop(queue_with(&ns, "q", &[], 4096));
    drop(Lock::create_in(&ns, "l").unwrap());
    match ByteQueue::open_in(&ns, "l") {
        Err(OpenError::WrongKind {
            expected: ObjectKind::Queue,
            found: ObjectKind::Lock,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    match Lock::open_in(&ns, "q") {
        Err(OpenError::WrongKind {
            expected: ObjectKind::Lock,
            found: ObjectKind::Queue,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert!(JoinableQueue::<u32>::open_in(&ns, "l").is_err());
    for code in [0u32, 99, 0x8000_0000, u32::MAX] {
        patch(&ns, "q", 12, &code.to_le_bytes());
        let e = ByteQueue::open_in(&ns, "q").unwrap_err();
        assert!(is_damaged(&e), "kind code {code}: {e:?}");
        assert!(e.to_string().contains("unknown object kind"), "{e}");
    }
}

#[test]
fn bad_magic_and_foreign_files_are_damaged() {
    let (_d, ns) = namespace();
    drop(queue_with(&ns, "q", &[b"hello"], 4096));
    patch(&ns, "q", 0, b"MPROCsex");
    let e = ByteQueue::open_in(&ns, "q").unwrap_err();
    assert!(is_damaged(&e) && e.to_string().contains("magic"), "{e}");
    // A file that was never an mproc object: text, zeros, an ELF binary.
    let elf = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    let foreign: [&[u8]; 4] = [
        b"#!/bin/sh\necho not a queue\n",
        &[0u8; 1088],
        &elf[..4096.min(elf.len())],
        &[0xffu8; 64],
    ];
    for bytes in foreign {
        write_file(&ns, "f", bytes);
        assert!(is_damaged(&ByteQueue::open_in(&ns, "f").unwrap_err()));
        assert!(is_damaged(&Lock::open_in(&ns, "f").unwrap_err()));
    }
}

#[test]
fn truncated_or_extended_segments_are_damaged() {
    let (_d, ns) = namespace();
    drop(queue_with(&ns, "q", &[b"abc", b"defg"], 4096));
    drop(Lock::create_in(&ns, "l").unwrap());
    let q = std::fs::read(ns.path().join("q")).unwrap();
    let l = std::fs::read(ns.path().join("l")).unwrap();
    assert_eq!(l.len(), LOCK_SEG_LEN);
    for (bytes, open_queue) in [(&q, true), (&l, false)] {
        let n = bytes.len();
        for cut in [0, 1, 8, 63, 64, 65, 200, 1023, n - 1] {
            if cut >= n {
                continue;
            }
            write_file(&ns, "t", &bytes[..cut]);
            let e = if open_queue {
                ByteQueue::open_in(&ns, "t").unwrap_err()
            } else {
                Lock::open_in(&ns, "t").unwrap_err()
            };
            assert!(is_damaged(&e), "cut to {cut}: {e:?}");
        }
        for extra in [1usize, 7, 4096] {
            let mut v = bytes.clone();
            v.resize(n + extra, 0);
            write_file(&ns, "t", &v);
            let e = if open_queue {
                ByteQueue::open_in(&ns, "t").unwrap_err()
            } else {
                Lock::open_in(&ns, "t").unwrap_err()
            };
            assert!(
                is_damaged(&e) && e.to_string().contains("size mismatch"),
                "extended by {extra}: {e}"
            );
        }
    }
}

#[test]
fn header_parameters_that_disagree_are_damaged() {
    let (_d, ns) = namespace();
    drop(queue_with(&ns, "q", &[], 4096));
    let good = std::fs::read(ns.path().join("q")).unwrap();
    let len = good.len() as u64;
    let cases: [(u64, [u64; 4]); 7] = [
        (len, [64, 4096, 4096, 0]),        // capacity does not follow max_bytes
        (len, [64, 8, 16, 0]),             // max_bytes below the minimum
        (len, [64, 1 << 40, 1 << 41, 0]),  // max_bytes beyond the maximum
        (len, [u64::MAX, 4096, 8192, 0]),  // maxsize out of range
        (len, [64, 4096, 8192, u64::MAX]), // reserved parameter
        (len + 8, [64, 4096, 8192, 0]),    // header length is not the file's
        (u64::MAX, [64, u64::MAX, u64::MAX, 0]), // overflowing sizes
    ];
    for (hlen, params) in cases {
        let mut v = header(b"MPROCseg", LAYOUT, 2, hlen, params);
        v.extend_from_slice(&good[HEADER_LEN..]);
        write_file(&ns, "p", &v);
        let e = ByteQueue::open_in(&ns, "p").unwrap_err();
        assert!(is_damaged(&e), "{params:?}: {e:?}");
    }
}

#[test]
fn a_half_made_segment_is_not_an_object() {
    // A creator killed before publishing leaves a hidden temporary file
    // (never under the name) and, if it got that far, a zero magic.
    let (_d, ns) = namespace();
    drop(queue_with(&ns, "q", &[], 4096));
    patch(&ns, "q", 0, &[0; 8]);
    let e = ByteQueue::open_in(&ns, "q").unwrap_err();
    assert!(
        is_damaged(&e) && e.to_string().contains("never finished"),
        "{e}"
    );
    let listed = ns.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].kind, None,
        "a damaged file is listed without a kind"
    );
}

// ---------------------------------------------------------------------------
// Random bytes, in a child process under a deadline

/// Outcome counts of a batch: (opened, typed open errors, operation errors).
type Counts = (u64, u64, u64);

/// Exercises an opened queue with calls whose waits are all bounded.
fn exercise_queue(q: &ByteQueue, counts: &mut Counts) {
    let w = Duration::from_millis(1);
    let _ = q.len();
    let _ = q.is_full();
    let _ = q.stats();
    for _ in 0..3 {
        match q.get_timeout(w) {
            Ok(m) => assert!(m.len() <= q.max_message()),
            Err(GetError::Empty | GetError::Closed) => {}
            Err(_) => counts.2 += 1,
        }
    }
    if q.put_timeout(b"after damage", w).is_err() {
        counts.2 += 1;
    }
    let _ = q.get_many_with_timeout(8, w, |m| {
        assert!(m.len() <= q.max_message());
    });
    let _ = q.stats();
}

fn random_files_batch((dir, first, count): (String, u64, u64)) -> Counts {
    let ns = Namespace::dir(&dir).unwrap();
    let (tqn, tln, victim) = (
        format!("template-q{first}"),
        format!("template-l{first}"),
        format!("victim{first}"),
    );
    drop(queue_with(&ns, &tqn, &[b"one", b"two"], 256));
    drop(Lock::create_in(&ns, &tln).unwrap());
    let tq = std::fs::read(ns.path().join(&tqn)).unwrap();
    let tl = std::fs::read(ns.path().join(&tln)).unwrap();
    let mut counts = (0, 0, 0);
    for seed in first..first + count {
        let mut rng = Rng::new(seed);
        let bytes: Vec<u8> = match seed % 4 {
            // Pure noise of any size.
            0 => (0..rng.below(3000)).map(|_| rng.next() as u8).collect(),
            // A valid header and noise after it.
            1 => {
                let mut v = tq[..HEADER_LEN].to_vec();
                v.extend((HEADER_LEN..tq.len()).map(|_| rng.next() as u8));
                v
            }
            // A valid queue with noise at many offsets, header and
            // locks included.
            2 => {
                let mut v = tq.clone();
                for _ in 0..1 + rng.below(32) {
                    let at = rng.below(v.len() as u64);
                    v[at as usize] = rng.next() as u8;
                }
                v
            }
            // A valid lock with noise at many offsets, its lock words included.
            _ => {
                let mut v = tl.clone();
                for _ in 0..1 + rng.below(32) {
                    let at = rng.below(v.len() as u64) as usize;
                    v[at] = rng.next() as u8;
                }
                v
            }
        };
        write_file(&ns, &victim, &bytes);
        if seed % 4 == 3 {
            match Lock::open_in(&ns, &victim) {
                Ok(l) => {
                    counts.0 += 1;
                    let _ = l.holder();
                    let _ = l.waiters();
                    match l.lock_timeout(Duration::from_millis(1)) {
                        Ok(g) => drop(g),
                        Err(e) => drop(e.into_guard()),
                    }
                }
                Err(_) => counts.1 += 1,
            }
        } else {
            match ByteQueue::open_in(&ns, &victim) {
                Ok(q) => {
                    counts.0 += 1;
                    exercise_queue(&q, &mut counts);
                }
                Err(e) => {
                    counts.1 += 1;
                    assert!(!e.to_string().is_empty());
                }
            }
        }
    }
    counts
}

fn run_batches(f: fn((String, u64, u64)) -> Counts, total: u64, what: &str) -> Counts {
    let (_d, ns) = namespace();
    let dir = ns.path().to_str().unwrap().to_owned();
    let per = total / 2;
    let mut kids: Vec<_> = (0..2)
        .map(|i| Process::spawn((dir.clone(), i * per, per), f).unwrap())
        .collect();
    let mut sum = (0, 0, 0);
    for i in 0..kids.len() {
        match kids[i].join_timeout(BATCH) {
            Ok(c) => {
                sum.0 += c.0;
                sum.1 += c.1;
                sum.2 += c.2;
            }
            Err(e) => {
                for other in kids.iter_mut() {
                    let _ = other.kill();
                }
                let k = &mut kids[i];
                panic!(
                    "{what}: batch of seeds {}..{} failed (hang, panic or crash): {e:?}, exit {:?}",
                    i as u64 * per,
                    (i as u64 + 1) * per,
                    k.exit_code()
                );
            }
        }
    }
    println!("{what}: {total} inputs: {sum:?} (opened, refused at open, operation errors)");
    sum
}

#[test]
fn random_bytes_as_segment_files_never_panic_hang_or_crash() {
    let (opened, refused, _) = run_batches(random_files_batch, 4000, "random segment files");
    assert!(opened > 0 && refused > 0, "both outcomes are reached");
}

fn live_corruption_batch((dir, first, count): (String, u64, u64)) -> Counts {
    let ns = Namespace::dir(&dir).unwrap();
    let mut counts = (0, 0, 0);
    for seed in first..first + count {
        let mut rng = Rng::new(seed ^ 0xC0FF_EE00);
        let name = format!("live{first}-{}", seed % 8);
        let _ = ns.remove(&name);
        let q = queue_with(&ns, &name, &[], 512);
        for i in 0..rng.below(12) {
            let _ = q.try_put(&vec![i as u8; rng.below(60) as usize]);
        }
        for _ in 0..rng.below(4) {
            let _ = q.try_get();
        }
        let len = std::fs::metadata(ns.path().join(&name)).unwrap().len();
        // Overwrite words and bytes of the live, mapped segment: locks,
        // head, tail, counters, wait cells and ring.
        for _ in 0..1 + rng.below(6) {
            let at = match rng.below(4) {
                0 => QUEUE_TAIL + rng.below(24),
                1 => QUEUE_HEAD + rng.below(64),
                2 => QUEUE_RING + rng.below(len - QUEUE_RING),
                _ => HEADER_LEN as u64 + rng.below(len - HEADER_LEN as u64),
            };
            let width = [1u64, 4, 8][rng.below(3) as usize].min(len - at);
            let val = rng.next().to_le_bytes();
            patch(&ns, &name, at, &val[..width as usize]);
        }
        counts.0 += 1;
        exercise_queue(&q, &mut counts);
        // A second handle opened after the damage sees the same.
        if let Ok(q2) = ByteQueue::open_in(&ns, &name) {
            exercise_queue(&q2, &mut counts);
        }
    }
    counts
}

#[test]
fn corrupting_a_live_queue_gives_errors_never_wild_reads() {
    let (_, _, op_errors) = run_batches(live_corruption_batch, 3000, "live queue corruption");
    assert!(op_errors > 0, "some corruptions are detected and reported");
}

// ---------------------------------------------------------------------------
// Corrupted head and tail words: precise expectations

fn after_patch(ns: &Namespace, name: &str, at: u64, word: u64) -> Result<Vec<u8>, GetError> {
    let q = ByteQueue::open_in(ns, name).unwrap();
    patch(ns, name, at, &word.to_le_bytes());
    let r = q.get_timeout(Duration::from_millis(10));
    // Nothing else panics either.
    let _ = q.len();
    let _ = q.stats();
    let _ = q.put_timeout(b"x", Duration::from_millis(10));
    r
}

#[test]
fn corrupted_head_and_tail_words_are_reported_as_damaged() {
    let (_d, ns) = namespace();
    let pack = |seq: u64, pos: u64| (seq << 32) | pos;
    // (word offset, value, must be reported): the tail and the delivery
    // cursor (offset 336) decide what is read, so damage there claims
    // records that are not there, or positions outside the ring, and must
    // be reported. The head only marks free space: damage there may go
    // unnoticed by a get, but never yields anything but a real message.
    let cases = [
        (QUEUE_TAIL, pack(5, 1 << 20), true), // tail far beyond the capacity
        (QUEUE_TAIL, pack(1_000_000, 48), true), // more records than bytes
        (QUEUE_TAIL, pack(3, 4), true),       // misaligned tail
        (QUEUE_TAIL, pack(u32::MAX as u64, u32::MAX as u64), true),
        (336, pack(0xFFFF_FFF0, 0), true), // cursor sequence far behind
        (336, pack(0, 8), true),           // cursor inside a record
        (QUEUE_HEAD, pack(0, 0xFFFF_FF00), false),
        (QUEUE_HEAD, pack(0xFFFF_FFF0, 0), false),
    ];
    for (i, (at, word, must)) in cases.into_iter().enumerate() {
        let name = format!("q{i}");
        drop(queue_with(&ns, &name, &[b"first", b"second"], 4096));
        // A handle may still be working through records it saw published
        // before the damage: those are real messages. The damage is
        // reported as soon as the shared words are read again.
        let q = ByteQueue::open_in(&ns, &name).unwrap();
        patch(&ns, &name, at, &word.to_le_bytes());
        let mut real = vec![&b"first"[..], &b"second"[..]].into_iter();
        let mut reported = false;
        for _ in 0..4 {
            match q.get_timeout(Duration::from_millis(10)) {
                Err(e @ GetError::Damaged(_)) => {
                    assert!(e.to_string().starts_with("the queue is damaged"), "{e}");
                    reported = true;
                    break;
                }
                Ok(m) => assert_eq!(Some(&m[..]), real.next(), "case {i}: not a real message"),
                Err(_) if !must => break,
                Err(e) => panic!("case {i} (offset {at}, word {word:#x}): {e:?}"),
            }
        }
        assert!(
            reported || !must,
            "case {i} (offset {at}, word {word:#x}) never reported"
        );
        let _ = q.len();
        let _ = q.stats();
        let _ = q.put_timeout(b"x", Duration::from_millis(10));
    }
}

#[test]
fn a_cursor_outside_head_and_tail_is_damaged() {
    let (_d, ns) = namespace();
    drop(queue_with(&ns, "c", &[b"first", b"second"], 4096));
    let r = after_patch(&ns, "c", 336, 0xFFFF_FF00);
    assert!(matches!(r, Err(GetError::Damaged(_))), "{r:?}");
}

#[test]
fn record_lengths_beyond_the_published_bytes_are_damaged() {
    let (_d, ns) = namespace();
    for (i, len) in [u32::MAX, 1 << 31, 4096, 4089, 41].into_iter().enumerate() {
        let name = format!("r{i}");
        let q = queue_with(&ns, &name, &[b"0123456789", b"x"], 4096);
        // The first record's length word is the first word of the ring.
        patch(&ns, &name, QUEUE_RING, &len.to_le_bytes());
        let e = q.try_get().unwrap_err();
        assert!(matches!(e, GetError::Damaged(_)), "len {len}: {e:?}");
        assert!(matches!(q.peek(), Err(GetError::Damaged(_))));
        // Restoring the word repairs the queue: the error did not move it.
        patch(&ns, &name, QUEUE_RING, &10u32.to_le_bytes());
        assert_eq!(q.try_get().unwrap(), b"0123456789");
        assert_eq!(q.try_get().unwrap(), b"x");
    }
}

#[test]
fn damaged_queue_does_not_disturb_other_queues() {
    let (_d, ns) = namespace();
    let bad = queue_with(&ns, "bad", &[b"a"], 4096);
    let good = queue_with(&ns, "good", &[b"b"], 4096);
    patch(&ns, "bad", QUEUE_TAIL, &u64::MAX.to_le_bytes());
    // Producers read the tail; a get delivers what the ring holds, then
    // finds the tail inconsistent with it.
    let e = bad.try_put(b"x").unwrap_err();
    assert!(matches!(e.kind(), PutErrorKind::Damaged(_)), "{e:?}");
    assert_eq!(bad.try_get().unwrap(), b"a");
    assert!(matches!(bad.try_get(), Err(GetError::Damaged(_))));
    assert_eq!(good.try_get().unwrap(), b"b");
    good.put(b"c").unwrap();
    assert_eq!(good.try_get().unwrap(), b"c");
    // The damaged one can be removed and made again under the same name.
    ns.remove("bad").unwrap();
    drop(bad);
    let again = queue_with(&ns, "bad", &[b"fresh"], 4096);
    assert_eq!(again.try_get().unwrap(), b"fresh");
}

// ---------------------------------------------------------------------------
// Known gaps, written as the tests they should pass (run with --ignored).

fn closed_with_stale_requeued((dir,): (String,)) -> String {
    let ns = Namespace::dir(&dir).unwrap();
    let q = queue_with(&ns, "spin", &[b"a"], 4096);
    q.try_get().unwrap();
    q.close();
    // The requeued-records counter (derived; offset 348) claims one record
    // that no record state backs.
    patch(&ns, "spin", 348, &1u32.to_le_bytes());
    format!("{:?}", q.get_timeout(Duration::from_millis(50)))
}

#[test]
fn damaged_requeued_counter_does_not_make_get_spin() {
    let (_d, ns) = namespace();
    let dir = ns.path().to_str().unwrap().to_owned();
    match in_child((dir,), closed_with_stale_requeued, Duration::from_secs(10)) {
        Ok(r) => assert!(r.contains("Closed") || r.contains("Damaged"), "{r}"),
        Err(e) => panic!("get_timeout(50 ms) on a closed queue did not return in 10 s: {e:?}"),
    }
}

fn closed_with_outstanding_lease((dir,): (String,)) -> String {
    let ns = Namespace::dir(&dir).unwrap();
    let q = queue_with(&ns, "leased", &[b"a"], 4096);
    let (_m, receipt) = q.try_get_leased().unwrap();
    q.close();
    // Another consumer's timed get: nothing to take, the queue is closed,
    // one lease is outstanding (held by a live process, this one).
    let r = format!("{:?}", q.get_timeout(Duration::from_millis(50)));
    let _ = q.ack(&receipt);
    r
}

#[test]
fn a_closed_queue_with_an_outstanding_lease_honours_deadlines() {
    let (_d, ns) = namespace();
    let dir = ns.path().to_str().unwrap().to_owned();
    match in_child(
        (dir,),
        closed_with_outstanding_lease,
        Duration::from_secs(10),
    ) {
        Ok(r) => assert!(r.contains("Empty") || r.contains("Closed"), "{r}"),
        Err(e) => panic!("get_timeout(50 ms) did not return in 10 s: {e:?}"),
    }
}

fn dead_owner_lock_word((dir, call): (String, u32)) -> bool {
    let ns = Namespace::dir(&dir).unwrap();
    let name = format!("dead{call}");
    let q = queue_with(&ns, &name, &[b"a"], 4096);
    // The get lock's futex word names a thread that does not exist, as a
    // writer could leave it (the kernel marks only real dead owners).
    patch(&ns, &name, 256, &0x3FFF_FFF0u32.to_le_bytes());
    match call {
        0 => {
            let _ = q.get_timeout(Duration::from_millis(50));
        }
        1 => {
            let _ = q.try_get();
        }
        2 => {
            let _ = q.peek();
        }
        _ => {
            let _ = q.purge();
        }
    }
    true
}

#[test]
fn a_lock_word_naming_no_thread_bounds_timed_gets() {
    let (_d, ns) = namespace();
    let dir = ns.path().to_str().unwrap().to_owned();
    let r = in_child((dir, 0), dead_owner_lock_word, Duration::from_secs(10));
    assert!(r.is_ok(), "get_timeout(50 ms) did not return: {r:?}");
}

#[test]
fn a_lock_word_naming_no_thread_does_not_wedge_untimed_calls() {
    let (_d, ns) = namespace();
    let dir = ns.path().to_str().unwrap().to_owned();
    for call in 1..=3 {
        let r = in_child(
            (dir.clone(), call),
            dead_owner_lock_word,
            Duration::from_secs(5),
        );
        assert!(r.is_ok(), "call {call} wedged: {r:?}");
    }
}

fn damaged_lock_state((dir,): (String,)) -> Vec<String> {
    let ns = Namespace::dir(&dir).unwrap();
    let mut out = Vec::new();
    // Lock words naming a thread that does not exist, with the sleepers bit,
    // naming this very thread, or a live thread that never took the lock;
    // entry records of every shape (a lock's state is 16 bytes).
    let me = unsafe_free_gettid();
    for (i, word) in [0x3FFF_FFF0u32, 0xFFFF_FFFF, 0x8000_0001, me, 1]
        .into_iter()
        .enumerate()
    {
        let name = format!("k{i}");
        let q = queue_with(&ns, &name, &[b"a"], 4096);
        patch(&ns, &name, 256, &word.to_le_bytes());
        patch(&ns, &name, 260, &word.to_le_bytes());
        out.push(format!(
            "get {word:#x}: {:?}",
            q.get_timeout(Duration::from_millis(1500))
        ));
        let lname = format!("l{i}");
        let l = Lock::create_in(&ns, &lname).unwrap();
        patch(&ns, &lname, 64, &word.to_le_bytes());
        patch(&ns, &lname, 68, &0x4141_4141u32.to_le_bytes());
        out.push(match l.lock_timeout(Duration::from_millis(1500)) {
            Ok(_) => format!("lock {word:#x}: acquired"),
            Err(e) => format!("lock {word:#x}: {e}"),
        });
    }
    out
}

/// This thread's id, read from procfs (no `unsafe` in the tests).
fn unsafe_free_gettid() -> u32 {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name()?.to_str()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn damaged_lock_words_are_taken_over_or_refused_never_followed() {
    let (_d, ns) = namespace();
    let dir = ns.path().to_str().unwrap().to_owned();
    let outcomes = in_child((dir,), damaged_lock_state, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("the process did not survive: {e:?}"));
    println!("{outcomes:#?}");
    for o in &outcomes {
        let fine = if o.contains(&format!("{:#x}:", 1)) && o.starts_with("lock") {
            // A live thread (init) named by a damaged word: waited out,
            // then taken over; or the deadline passed first.
            o.contains("acquired") || o.contains("died") || o.contains("held")
        } else if o.starts_with("get") {
            o.contains("Ok(") || o.contains("WouldBlock") || o.contains("Empty")
        } else {
            o.contains("acquired") || o.contains("died") || o.contains("held")
        };
        assert!(fine, "{outcomes:?}");
    }
}

// ---------------------------------------------------------------------------
// Oversized messages

#[test]
fn oversized_messages_are_refused_and_the_queue_keeps_working() {
    let (_d, ns) = namespace();
    let q = queue_with(&ns, "big", &[], 1024);
    let limit = q.max_message();
    assert_eq!(limit, 1024);
    let huge = vec![7u8; limit + 1];
    let e = q.try_put(&huge).unwrap_err();
    assert_eq!(
        *e.kind(),
        PutErrorKind::TooLarge {
            size: limit + 1,
            limit
        }
    );
    assert!(e.to_string().contains("exceeds the queue's limit"), "{e}");
    assert_eq!(
        e.into_inner().len(),
        limit + 1,
        "the message is handed back"
    );
    assert!(q.put(&vec![1u8; 64 << 20]).is_err(), "64 MiB, blocking put");
    let e = q.put_many(&[b"ok", &huge]).unwrap_err();
    assert!(matches!(e.kind(), PutErrorKind::TooLarge { .. }), "{e:?}");
    assert_eq!(e.put(), 0, "{e}");
    assert_eq!(q.len(), 0, "nothing of a refused batch is put");
    // The largest message fits exactly, and the queue still works.
    q.put(&vec![2u8; limit]).unwrap();
    assert_eq!(q.try_get().unwrap().len(), limit);
    q.put(b"small").unwrap();
    assert_eq!(q.try_get().unwrap(), b"small");

    let typed: Queue<Vec<u8>> =
        Queue::create_in(&ns, "typed", QueueOptions::new().max_bytes(128)).unwrap();
    let e = typed.try_put(vec![0u8; 500]).unwrap_err();
    assert!(matches!(e.kind(), PutErrorKind::TooLarge { .. }), "{e:?}");
    assert_eq!(e.into_inner().len(), 500);
    typed.put(vec![1, 2, 3]).unwrap();
    assert_eq!(typed.get().unwrap(), vec![1, 2, 3]);
}

#[test]
fn out_of_range_sizes_are_invalid_options() {
    let (_d, ns) = namespace();
    for opts in [
        QueueOptions::new().max_bytes(0),
        QueueOptions::new().max_bytes(63),
        QueueOptions::new().max_bytes(usize::MAX),
        QueueOptions::new().max_bytes((1 << 31) + 1),
        QueueOptions::new().maxsize(usize::MAX),
    ] {
        match ByteQueue::create_in(&ns, "o", opts) {
            Err(CreateError::InvalidOptions(m)) => assert!(!m.is_empty()),
            other => panic!("{opts:?}: {other:?}"),
        }
    }
    assert!(ns.list().unwrap().is_empty(), "nothing left behind");
}

// ---------------------------------------------------------------------------
// Invalid names

const BAD_NAMES: [&str; 16] = [
    "",
    "../x",
    "..",
    ".",
    ".hidden",
    "a/b",
    "/etc/passwd",
    "a b",
    "tab\t",
    "new\nline",
    "nul\0byte",
    "esc\x1b[31m",
    "é",
    "日本",
    "x\u{202e}gpj.exe",
    "a\\b",
];

#[test]
fn invalid_names_are_refused_everywhere() {
    // The namespace inside a private directory, so that "next to the
    // namespace" is a place no other program writes.
    let (_d, outer) = namespace();
    let ns = Namespace::dir(outer.path().join("ns")).unwrap();
    let mut names: Vec<String> = BAD_NAMES.iter().map(|s| s.to_string()).collect();
    names.push("x".repeat(129));
    names.push("é".repeat(100));
    for name in &names {
        let check = |e: &NameError| match e {
            NameError::Empty => assert!(name.is_empty()),
            NameError::TooLong(_) => assert!(name.len() > 128),
            NameError::LeadingDot(_) => assert!(name.starts_with('.')),
            NameError::BadChar { ch, .. } => assert!(!ch.is_ascii_alphanumeric()),
            _ => panic!("{e:?}"),
        };
        match ByteQueue::create_in(&ns, name, QueueOptions::new()) {
            Err(CreateError::InvalidName(e)) => check(&e),
            other => panic!("create {name:?}: {other:?}"),
        }
        match ByteQueue::open_in(&ns, name) {
            Err(OpenError::InvalidName(e)) => check(&e),
            other => panic!("open {name:?}: {other:?}"),
        }
        match Lock::open_or_create_in(&ns, name) {
            Err(OpenOrCreateError::Open(OpenError::InvalidName(_)))
            | Err(OpenOrCreateError::Create(CreateError::InvalidName(_))) => {}
            other => panic!("open_or_create {name:?}: {other:?}"),
        }
        match ns.remove(name) {
            Err(RemoveError::InvalidName(_)) => {}
            other => panic!("remove {name:?}: {other:?}"),
        }
        // The message names the problem on one line.
        let msg = ByteQueue::open_in(&ns, name).unwrap_err().to_string();
        assert!(msg.starts_with("invalid name"), "{msg}");
        assert!(!msg.contains('\n'), "one line: {msg:?}");
    }
    // Nothing was created, here or next to the namespace.
    assert!(ns.list().unwrap().is_empty());
    assert_eq!(std::fs::read_dir(ns.path()).unwrap().count(), 0);
    let parent = ns.path().parent().unwrap();
    assert!(!parent.join("x").exists() && !parent.join("b").exists());
    // The longest valid name works.
    let long = "y".repeat(128);
    drop(Lock::create_in(&ns, &long).unwrap());
    Lock::open_in(&ns, &long).unwrap();
}

// ---------------------------------------------------------------------------
// A full tmpfs

/// A tiny tmpfs mounted on a fresh directory; unmounted on drop.
struct TinyTmpfs {
    dir: tempfile::TempDir,
}

impl TinyTmpfs {
    fn mount(size: &str) -> Result<TinyTmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("tmpfs")
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(TinyTmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TinyTmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn a_full_tmpfs_is_no_space_and_other_queues_keep_working() {
    let fs = match TinyTmpfs::mount("256k") {
        Ok(fs) => fs,
        Err(why) => {
            println!("SKIPPED a_full_tmpfs_is_no_space_and_other_queues_keep_working: {why}");
            return;
        }
    };
    let ns = Namespace::dir(fs.path().join("ns")).unwrap();
    let small = ByteQueue::create_in(&ns, "small", QueueOptions::new().max_bytes(4096)).unwrap();
    small.put(b"before").unwrap();
    // A queue larger than the whole file system.
    match ByteQueue::create_in(&ns, "huge", QueueOptions::new().max_bytes(1 << 20)) {
        Err(CreateError::NoSpace { name, bytes }) => {
            assert_eq!(name, "huge");
            assert!(bytes > 256 << 10);
        }
        other => panic!("{other:?}"),
    }
    // Fill it with queues until there is no room left.
    let mut made = Vec::new();
    let err = loop {
        match ByteQueue::create_in(
            &ns,
            &format!("fill{}", made.len()),
            QueueOptions::new().max_bytes(16 << 10),
        ) {
            Ok(q) => made.push(q),
            Err(e) => break e,
        }
        assert!(
            made.len() < 64,
            "a 256 KiB tmpfs holds fewer than 64 such queues"
        );
    };
    assert!(matches!(err, CreateError::NoSpace { .. }), "{err:?}");
    assert!(err.to_string().contains("no space left"), "{err}");
    assert!(
        matches!(
            Lock::create_in(&ns, "lock-when-full"),
            Err(CreateError::NoSpace { .. })
        ) || Lock::open_in(&ns, "lock-when-full").is_ok()
    );
    // No temporary file or half-made object is left behind.
    for e in std::fs::read_dir(ns.path()).unwrap() {
        let n = e.unwrap().file_name().into_string().unwrap();
        assert!(!n.starts_with(".tmp"), "left behind: {n}");
    }
    // Every queue made so far works, reads and writes (its pages were
    // reserved at creation: no SIGBUS on first touch).
    small.put(b"after").unwrap();
    assert_eq!(small.try_get().unwrap(), b"before");
    assert_eq!(small.try_get().unwrap(), b"after");
    for q in &made {
        let m = vec![3u8; (16 << 10) - 8];
        q.put(&m).unwrap();
        assert_eq!(q.try_get().unwrap(), m);
    }
    // Freeing space makes creation work again.
    drop(made.pop());
    ns.remove(&format!("fill{}", made.len())).unwrap();
    ByteQueue::create_in(&ns, "again", QueueOptions::new().max_bytes(4096)).unwrap();
}

// ---------------------------------------------------------------------------
// Too many open files

fn open_until_emfile((dir, limit): (String, u64)) -> (usize, String, String, bool) {
    let lim = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: setrlimit reads a valid rlimit; lowering a limit is always allowed.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    let ns = Namespace::dir(&dir).unwrap();
    let first = ByteQueue::open_in(&ns, "shared").unwrap();
    let mut held = Vec::new();
    let open_err = loop {
        match ByteQueue::open_in(&ns, "shared") {
            Ok(q) => held.push(q),
            Err(e) => break e,
        }
        assert!(held.len() < 10_000, "the limit is never reached");
    };
    let opened = held.len();
    let create_err = match Lock::create_in(&ns, "no-fd-left") {
        Ok(_) => "created".to_owned(),
        Err(e) => e.to_string(),
    };
    // Everything already open keeps working, and closing frees descriptors.
    first.put(b"still working").unwrap();
    assert_eq!(held[0].try_get().unwrap(), b"still working");
    held.truncate(opened / 2);
    let again = ByteQueue::open_in(&ns, "shared").is_ok();
    (opened, open_err.to_string(), create_err, again)
}

#[test]
fn too_many_open_files_is_a_clear_error() {
    let (_d, ns) = namespace();
    drop(queue_with(&ns, "shared", &[], 4096));
    let mut p = Process::spawn(
        (ns.path().to_str().unwrap().to_owned(), 48u64),
        open_until_emfile,
    )
    .unwrap();
    let (opened, open_err, create_err, again) = p.join_timeout(Duration::from_secs(60)).unwrap();
    println!("opened {opened}; then: {open_err}; create: {create_err}");
    assert!(opened > 10 && opened < 48, "{opened}");
    assert!(
        open_err.contains("Too many open files") && open_err.contains("'shared'"),
        "{open_err}"
    );
    assert!(
        create_err.contains("Too many open files") && create_err.contains("no-fd-left"),
        "{create_err}"
    );
    assert!(again, "closing handles frees descriptors for new opens");
    // The parent's view is intact.
    let q = ByteQueue::open_in(&ns, "shared").unwrap();
    assert!(q.is_empty());
    assert!(!ns.path().join("no-fd-left").exists());
}
