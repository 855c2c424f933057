//! Barrier across real processes: CPython's `_TestBarrier` scenarios
//! (lockstep passes, one index 0 per round, abort, timeout, reset,
//! Barrier(1)) and a waiting party killed with SIGKILL.

mod common;

use std::time::{Duration, Instant};

use common::{namespace, timed, JOIN};
use mproc::{Array, Barrier, BarrierError, Process, Value};

const N: usize = 5;

#[test]
fn test_barrier_lockstep_passes_and_indices() {
    let (_d, ns) = namespace();
    let b = Barrier::create_in(&ns, "b", N as u32).unwrap();
    let passes = 10;
    let arrived = Array::<i64>::with_lock(&[0; 10]).unwrap();
    let mut kids: Vec<_> = (0..N)
        .map(|_| {
            Process::spawn(
                (b.clone(), arrived.clone()),
                |(b, arrived): (Barrier, Array<i64>)| {
                    let mut idx = Vec::new();
                    let mut lockstep = true;
                    for pass in 0..10 {
                        {
                            let mut g = arrived.get_lock().unwrap();
                            g[pass] += 1;
                        }
                        idx.push(b.wait_timeout(Duration::from_secs(50)).unwrap());
                        // Everyone arrived before anyone got through.
                        lockstep &= arrived.get(pass) == Some(5);
                    }
                    (idx, lockstep)
                },
            )
            .unwrap()
        })
        .collect();
    let mut per_pass = vec![Vec::new(); passes];
    for p in &mut kids {
        let (idx, lockstep) = p.join_timeout(JOIN).unwrap();
        assert!(lockstep);
        for (pass, i) in idx.into_iter().enumerate() {
            per_pass[pass].push(i);
        }
    }
    for mut v in per_pass {
        v.sort_unstable();
        assert_eq!(v, vec![0, 1, 2, 3, 4], "distinct indices, exactly one 0");
    }
    assert!(!b.is_broken());
    assert_eq!(b.n_waiting(), 0);
}

fn spawn_waiters(b: &Barrier, k: usize, timeout: Duration) -> Vec<Process<bool>> {
    (0..k)
        .map(|_| {
            Process::spawn(
                (b.clone(), timeout.as_millis() as u64),
                |(b, ms): (Barrier, u64)| {
                    matches!(
                        b.wait_timeout(Duration::from_millis(ms)),
                        Err(BarrierError::Broken)
                    )
                },
            )
            .unwrap()
        })
        .collect()
}

fn until_n_waiting(b: &Barrier, n: u32) {
    let deadline = Instant::now() + JOIN;
    while b.n_waiting() != n {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn test_abort_breaks_every_waiter() {
    let b = Barrier::new(N as u32).unwrap();
    let mut kids = spawn_waiters(&b, N - 1, Duration::from_secs(50));
    until_n_waiting(&b, N as u32 - 1);
    let (_, d) = timed(|| {
        b.abort().unwrap();
        for p in &mut kids {
            assert!(p.join_timeout(JOIN).unwrap(), "BrokenBarrier");
        }
    });
    assert!(d < Duration::from_secs(5));
    assert!(b.is_broken());
    assert!(b.wait().unwrap_err().is_broken(), "stays broken");
    b.reset().unwrap();
    assert!(!b.is_broken());
}

#[test]
fn test_timeout_breaks_all_including_the_late_party() {
    let b = Barrier::new(N as u32).unwrap();
    let mut kids = spawn_waiters(&b, N - 1, Duration::from_millis(500));
    until_n_waiting(&b, N as u32 - 1);
    std::thread::sleep(Duration::from_millis(1000));
    assert!(b.is_broken(), "a waiter timed out");
    let (r, d) = timed(|| b.wait_timeout(Duration::from_millis(500)));
    assert!(r.unwrap_err().is_broken());
    assert!(d < Duration::from_millis(100));
    for p in &mut kids {
        assert!(p.join_timeout(JOIN).unwrap());
    }
}

#[test]
fn test_reset_breaks_current_waiters_then_reusable() {
    let b = Barrier::new(3).unwrap();
    let mut kids = spawn_waiters(&b, 2, Duration::from_secs(50));
    until_n_waiting(&b, 2);
    b.reset().unwrap();
    for p in &mut kids {
        assert!(p.join_timeout(JOIN).unwrap());
    }
    assert!(!b.is_broken());
    // A fresh round of 3 passes.
    let mut kids: Vec<_> = (0..2)
        .map(|_| {
            Process::spawn(b.clone(), |b: Barrier| {
                b.wait_timeout(Duration::from_secs(50)).is_ok()
            })
            .unwrap()
        })
        .collect();
    b.wait_timeout(Duration::from_secs(50)).unwrap();
    for p in &mut kids {
        assert!(p.join_timeout(JOIN).unwrap());
    }
}

#[test]
fn test_barrier_of_one_never_blocks() {
    let b = Barrier::new(1).unwrap();
    for _ in 0..10 {
        let (r, d) = timed(|| b.wait());
        assert_eq!(r.unwrap(), 0);
        assert!(d < Duration::from_millis(100));
    }
}

#[test]
fn test_killed_waiter_breaks_the_barrier() {
    let b = Barrier::new(4).unwrap();
    let mut kids = spawn_waiters(&b, 2, Duration::from_secs(50));
    let mut victim = Process::spawn(b.clone(), |b: Barrier| b.wait().is_ok()).unwrap();
    until_n_waiting(&b, 3);
    let (_, d) = timed(|| {
        victim.kill().unwrap();
        let _ = victim.join_timeout(JOIN);
        for p in &mut kids {
            assert!(p.join_timeout(JOIN).unwrap(), "BrokenBarrier");
        }
    });
    assert!(d < Duration::from_secs(5), "noticed at once, took {d:?}");
    assert!(b.is_broken());
}

#[test]
fn test_action_runs_exactly_once_per_round() {
    let b = Barrier::new(N as u32).unwrap();
    let runs = Value::<i64>::with_lock(0).unwrap();
    let mut kids: Vec<_> = (0..N)
        .map(|_| {
            Process::spawn(
                (b.clone(), runs.clone()),
                |(b, runs): (Barrier, Value<i64>)| {
                    let mut seen = Vec::new();
                    for _ in 0..3 {
                        b.wait_with(Some(Duration::from_secs(50)), || {
                            runs.update(|n| n + 1);
                        })
                        .unwrap();
                        // The round's action ran before anyone was released.
                        seen.push(runs.get());
                    }
                    seen
                },
            )
            .unwrap()
        })
        .collect();
    for p in &mut kids {
        let seen = p.join_timeout(JOIN).unwrap();
        assert!(seen[0] >= 1 && seen[1] >= 2 && seen[2] >= 3, "{seen:?}");
    }
    assert_eq!(runs.get(), 3);
}

#[test]
fn test_many_passes_arrive_grouped_by_pass() {
    // CPython's test_thousand, shortened: 5 processes × 200 passes put their
    // pass number in one queue; the barrier keeps the passes apart.
    let b = Barrier::new(N as u32).unwrap();
    let q: mproc::Queue<u32> = mproc::Queue::new(0).unwrap();
    let passes = 200u32;
    let mut kids: Vec<_> = (0..N)
        .map(|_| {
            Process::spawn(
                (b.clone(), q.clone(), passes),
                |(b, q, passes): (Barrier, mproc::Queue<u32>, u32)| {
                    for pass in 0..passes {
                        q.put(pass).unwrap();
                        b.wait_timeout(Duration::from_secs(50)).unwrap();
                    }
                },
            )
            .unwrap()
        })
        .collect();
    let mut got = Vec::new();
    for _ in 0..passes as usize * N {
        got.push(q.get_timeout(JOIN).unwrap());
    }
    for p in &mut kids {
        p.join_timeout(JOIN).unwrap();
    }
    for (i, chunk) in got.chunks(N).enumerate() {
        assert!(chunk.iter().all(|&p| p == i as u32), "pass {i}: {chunk:?}");
    }
}

#[test]
fn test_abort_then_reset_then_reuse() {
    let b = Barrier::new(3).unwrap();
    let mut kids = spawn_waiters(&b, 2, Duration::from_secs(50));
    until_n_waiting(&b, 2);
    b.abort().unwrap();
    for p in &mut kids {
        assert!(p.join_timeout(JOIN).unwrap());
    }
    assert!(b
        .wait_timeout(Duration::from_secs(1))
        .unwrap_err()
        .is_broken());
    b.reset().unwrap();
    let mut kids: Vec<_> = (0..2)
        .map(|_| {
            Process::spawn(b.clone(), |b: Barrier| {
                b.wait_timeout(Duration::from_secs(50)).is_ok()
            })
            .unwrap()
        })
        .collect();
    assert!(b.wait_timeout(Duration::from_secs(50)).is_ok());
    for p in &mut kids {
        assert!(p.join_timeout(JOIN).unwrap());
    }
}

#[test]
fn test_default_timeout_breaks_the_barrier() {
    let b = Barrier::with_default_timeout(N as u32, Duration::from_millis(500)).unwrap();
    assert_eq!(b.default_timeout(), Some(Duration::from_millis(500)));
    let mut kids: Vec<_> = (0..N - 1)
        .map(|_| {
            Process::spawn(b.clone(), |b: Barrier| {
                let (r, d) = timed(|| b.wait());
                (matches!(r, Err(BarrierError::Broken)), d)
            })
            .unwrap()
        })
        .collect();
    let mut longest = Duration::ZERO;
    for p in &mut kids {
        let (broken, d) = p.join_timeout(JOIN).unwrap();
        assert!(broken);
        longest = longest.max(d);
    }
    // The first to arrive waited its whole default timeout.
    assert!(longest >= Duration::from_millis(400), "{longest:?}");
    assert!(b.wait().unwrap_err().is_broken());
}
