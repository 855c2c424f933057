//! Lock across real processes: CPython's `_TestLock` scenarios, owner death
//! (the holder SIGKILLed at random instants), timeouts and the records.

mod common;

use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{assert_about, namespace, timed, JOIN};
use mproc::{Lock, LockError, Namespace, Process, Queue};

const T: Duration = Duration::from_millis(200);

#[test]
fn test_lock_acquire_try_release() {
    let lock = Lock::new().unwrap();
    assert!(!lock.is_locked());
    let g = lock.lock().unwrap();
    assert!(lock.is_locked());
    assert!(lock.try_lock().unwrap_err().is_would_block());
    let (r, d) = timed(|| lock.lock_timeout(T));
    assert!(r.unwrap_err().is_would_block());
    assert_about(d, T);
    let h = lock.holder().unwrap();
    assert_eq!(h.pid, std::process::id());
    // A free lock's acquisition reads no clock; the holder records it.
    assert_eq!(h.since, None);
    g.record_since();
    let since = lock.holder().unwrap().since.expect("recorded");
    assert!(since.elapsed().unwrap() < Duration::from_secs(60));
    g.set_tag("printing report");
    assert_eq!(lock.holder().unwrap().since, Some(since), "kept by the tag");
    assert_eq!(
        lock.holder().unwrap().tag.as_deref(),
        Some("printing report")
    );
    drop(g);
    // A release forgets both.
    let g = lock.lock().unwrap();
    assert_eq!(lock.holder().unwrap().tag, None);
    assert_eq!(lock.holder().unwrap().since, None);
    drop(g);
    assert!(!lock.is_locked());
    assert!(lock.holder().is_none());
    let _again = lock.try_lock().unwrap();
}

#[test]
fn guard_releases_on_panic() {
    let lock = Lock::new().unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _g = lock.lock().unwrap();
        panic!("inside the critical section");
    }));
    assert!(r.is_err());
    assert!(!lock.is_locked());
}

#[test]
fn lock_held_across_processes() {
    let (_d, ns) = namespace();
    let lock = Lock::create_in(&ns, "shared").unwrap();
    let g = lock.lock().unwrap();
    let mut child = Process::spawn(ns.path().to_owned(), |dir: PathBuf| {
        let lock = Lock::open_in(&Namespace::dir(dir).unwrap(), "shared").unwrap();
        let busy = lock.try_lock().unwrap_err().is_would_block();
        let t = Instant::now();
        let timed_out = lock
            .lock_timeout(Duration::from_millis(200))
            .unwrap_err()
            .is_would_block();
        let waited = t.elapsed();
        let t = Instant::now();
        let _g = lock.lock().unwrap();
        (
            busy,
            timed_out,
            waited.as_millis() as u64,
            t.elapsed().as_millis() as u64,
        )
    })
    .unwrap();
    // While the child waits in lock(), it shows up as a waiter.
    let t = Instant::now();
    while lock.waiters().is_empty() && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(lock.waiters()[0].pid, child.pid());
    // The child is in lock_timeout (≤ 200 ms left), then blocks in lock().
    std::thread::sleep(Duration::from_millis(600));
    drop(g);
    let (busy, timed_out, waited, blocked) = child.join_timeout(JOIN).unwrap();
    assert!(busy && timed_out);
    assert!(waited >= 100, "lock_timeout returned after {waited} ms");
    assert!(
        blocked >= 250,
        "lock() returned after {blocked} ms while held"
    );
}

#[test]
fn holder_exiting_without_release_is_reported_as_owner_died() {
    // CPython's test_lock_locked_2processes: the child acquires and exits
    // without releasing. Python's lock stays locked forever; ours is freed by
    // the kernel and the next acquirer is told the owner died.
    let lock = Lock::new().unwrap();
    let mut child = Process::spawn(lock.clone(), |lock: Lock| {
        std::mem::forget(lock.lock().unwrap());
    })
    .unwrap();
    child.join_timeout(JOIN).unwrap();
    assert!(!lock.is_locked());
    match lock.lock() {
        Err(LockError::OwnerDied(o)) => {
            let g = o.into_inner();
            assert!(lock.is_locked());
            drop(g);
        }
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    // Repaired: the next acquisition is clean.
    drop(lock.lock().unwrap());
}

#[test]
fn sigkilled_holder_hands_the_lock_to_the_waiter_at_once() {
    let lock = Lock::new().unwrap();
    let ready: Queue<u32> = Queue::new(0).unwrap();
    let mut holder = Process::spawn(
        (lock.clone(), ready.clone()),
        |(lock, ready): (Lock, Queue<u32>)| {
            let _g = lock.lock().unwrap();
            ready.put(std::process::id()).unwrap();
            std::thread::sleep(Duration::from_secs(600));
        },
    )
    .unwrap();
    assert_eq!(ready.get_timeout(JOIN).unwrap(), holder.pid());
    assert_eq!(lock.holder().unwrap().pid, holder.pid());
    let waiter = {
        let lock = lock.clone();
        std::thread::spawn(move || {
            let r = lock.lock_timeout(JOIN);
            let at = Instant::now();
            let died = matches!(&r, Err(LockError::OwnerDied(_)));
            drop(r);
            (died, at)
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let killed_at = Instant::now();
    holder.kill().unwrap();
    let (died, acquired_at) = waiter.join().unwrap();
    assert!(died, "the waiter must be told the owner died");
    let latency = acquired_at.saturating_duration_since(killed_at);
    eprintln!("lock handed over {latency:?} after SIGKILL");
    assert!(matches!(
        holder.join_timeout(JOIN),
        Err(mproc::ProcessError::Died(mproc::ExitCode::Signaled(9)))
    ));
    assert!(!lock.is_locked());
}

/// Tiny deterministic PRNG (xorshift) so kill instants vary without a crate.
fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn mutual_exclusion_survives_holders_killed_at_random_instants() {
    // Workers loop: lock, check the "inside" marker is clear, set it, work a
    // little, clear it, unlock. A worker that acquires with OwnerDied clears
    // the marker its dead predecessor left. Any worker that finds the marker
    // set without OwnerDied records a violation. Meanwhile we SIGKILL random
    // workers at random instants (often inside the critical section).
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("inside");
    let violations = dir.path().join("violations");
    std::fs::write(&marker, [0u8; 4]).unwrap();
    std::fs::write(&violations, b"").unwrap();
    let lock = Lock::new().unwrap();
    type Args = (Lock, PathBuf, PathBuf);
    fn worker((lock, marker, violations): Args) -> u64 {
        let m = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&marker)
            .unwrap();
        loop {
            let (g, died) = match lock.lock() {
                Ok(g) => (g, false),
                Err(LockError::OwnerDied(o)) => (o.into_inner(), true),
                Err(e) => panic!("{e}"),
            };
            let mut cur = [0u8; 4];
            m.read_exact_at(&mut cur, 0).unwrap();
            if cur != [0; 4] && !died {
                use std::io::Write;
                let mut v = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&violations)
                    .unwrap();
                writeln!(v, "{} found marker {:?}", std::process::id(), cur).unwrap();
            }
            m.write_all_at(&std::process::id().to_le_bytes(), 0)
                .unwrap();
            for _ in 0..200 {
                std::hint::spin_loop();
            }
            m.write_all_at(&[0u8; 4], 0).unwrap();
            drop(g);
        }
    }
    let spawn =
        || Process::spawn((lock.clone(), marker.clone(), violations.clone()), worker).unwrap();
    let mut workers: Vec<_> = (0..3).map(|_| spawn()).collect();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(std::process::id());
    let mut kills = 0;
    let end = Instant::now() + Duration::from_secs(4);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_micros(2_000 + rng(&mut seed) % 20_000));
        let i = (rng(&mut seed) % workers.len() as u64) as usize;
        workers[i].kill().unwrap();
        let _ = workers[i].join_timeout(JOIN);
        workers[i] = spawn();
        kills += 1;
    }
    for w in &mut workers {
        w.kill().unwrap();
        let _ = w.join_timeout(JOIN);
    }
    let v = std::fs::read_to_string(&violations).unwrap();
    assert!(
        v.is_empty(),
        "mutual exclusion violated after {kills} kills:\n{v}"
    );
    // After the last kill the lock is free within a bounded time.
    let t = Instant::now();
    match lock.lock_timeout(Duration::from_secs(1)) {
        Ok(_) | Err(LockError::OwnerDied(_)) => {}
        Err(e) => panic!("lock wedged after {kills} kills: {e}"),
    }
    assert!(t.elapsed() < Duration::from_secs(1));
    eprintln!("{kills} holders killed; no violation");
}

#[test]
fn a_killed_holder_not_yet_reaped_counts_as_dead() {
    // A SIGKILLed process stays a zombie until its parent waits for it; its
    // thread id still exists. Both the blocking and the non-blocking paths
    // must see it as dead, or a parent that locks before it reaps would
    // wait forever.
    let (a, b) = (Lock::new().unwrap(), Lock::new().unwrap());
    let mut child = Process::<()>::spawn((a.clone(), b.clone()), |(a, b): (Lock, Lock)| {
        let _ga = a.lock().unwrap();
        let _gb = b.lock().unwrap();
        loop {
            std::thread::park();
        }
    })
    .unwrap();
    let t = Instant::now();
    while !(a.is_locked() && b.is_locked()) {
        assert!(t.elapsed() < JOIN, "the child never took both locks");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    match a.lock_timeout(Duration::from_secs(10)) {
        Err(LockError::OwnerDied(_)) => {}
        other => panic!("blocking lock on a zombie's lock: {other:?}"),
    }
    let t = Instant::now();
    loop {
        match b.try_lock() {
            Err(LockError::OwnerDied(_)) => break,
            Err(LockError::WouldBlock) if t.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => panic!("try_lock on a zombie's lock: {other:?}"),
        }
    }
    let _ = child.join_timeout(JOIN);
}

/// A live holder caught now and then between taking the lock's word and
/// recording itself inside (as a holder waiting for a CPU is, on a busy
/// machine) is never taken over: a waiter takes a word over from a live
/// thread only after watching it stay unentered for a second without a
/// break, not after two sightings a second apart.
#[test]
fn a_live_holder_seen_between_taking_and_entering_is_never_taken_over() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let (_d, ns) = namespace();
    let lock = Lock::create_in(&ns, "l").unwrap();
    let guard = lock.lock().unwrap();
    // The robust lock's entry record: the holder's thread id at 64 + 4.
    const HELD: u64 = 64 + 4;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(ns.path().join("l"))
        .unwrap();
    let mut me = [0u8; 4];
    file.read_exact_at(&mut me, HELD).unwrap();
    assert_ne!(me, [0; 4], "the holder recorded itself");

    let took = Arc::new(AtomicBool::new(false));
    let waiter = {
        let (dir, took) = (ns.path().to_owned(), took.clone());
        std::thread::spawn(move || {
            let l = Lock::open_in(&Namespace::dir(dir).unwrap(), "l").unwrap();
            let g = l.lock();
            took.store(true, Ordering::SeqCst);
            assert!(g.is_ok(), "{g:?}");
        })
    };
    // For 5 s (the waiter checks the owner every 500 ms): 200 ms of every
    // 450 with the record cleared, as if the holder had just taken the word
    // (a period apart from 500 ms, so that the waiter's checks land at every
    // phase of it).
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        file.write_all_at(&[0; 4], HELD).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        file.write_all_at(&me, HELD).unwrap();
        std::thread::sleep(Duration::from_millis(250));
        assert!(
            !took.load(Ordering::SeqCst),
            "the lock was taken from its live holder after {:?}",
            start.elapsed()
        );
    }
    drop(guard);
    waiter.join().unwrap();
    assert!(took.load(Ordering::SeqCst), "the waiter gets it on release");
}
