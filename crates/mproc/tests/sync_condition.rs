//! Condition across real processes: CPython's `_TestCondition` scenarios
//! (notify wakes one, notify_all after timed-out waiters, notify(n), wait
//! and wait_for timeouts) with waiters in child processes.

mod common;

use std::time::{Duration, Instant};

use common::{assert_about, namespace, timed, JOIN};
use mproc::{Condition, Lock, Process, Value};

const T: Duration = Duration::from_millis(200);

/// Waits (bounded) until `n` processes wait on `c`.
fn until_waiting(c: &Condition, n: u32) {
    let deadline = Instant::now() + JOIN;
    while c.waiting() != n {
        assert!(Instant::now() < deadline, "only {} waiting", c.waiting());
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits (bounded) until `v` reaches `n`.
fn until_value(v: &Value<i64>, n: i64) {
    let deadline = Instant::now() + JOIN;
    while v.get() != n {
        assert!(Instant::now() < deadline, "value {} != {n}", v.get());
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `k` children that wait (without timeout) and then count themselves woken.
fn waiters(c: &Condition, woken: &Value<i64>, k: usize) -> Vec<Process<bool>> {
    (0..k)
        .map(|_| {
            Process::spawn(
                (c.clone(), woken.clone()),
                |(c, woken): (Condition, Value<i64>)| {
                    let mut g = c.lock().unwrap();
                    let ok = g.wait_timeout(Duration::from_secs(50)).unwrap();
                    woken.update(|n| n + 1);
                    ok
                },
            )
            .unwrap()
        })
        .collect()
}

#[test]
fn test_notify_wakes_exactly_one_per_call() {
    let (_d, ns) = namespace();
    let c = Condition::create_in(&ns, "c").unwrap();
    let woken = Value::<i64>::with_lock(0).unwrap();
    let mut kids = waiters(&c, &woken, 3);
    until_waiting(&c, 3);
    for k in 1..=3 {
        assert_eq!(c.lock().unwrap().notify(1), 1);
        until_value(&woken, k);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(woken.get(), k, "one notify wakes exactly one waiter");
    }
    assert_eq!(c.lock().unwrap().notify(1), 0);
    for p in &mut kids {
        assert!(p.join_timeout(JOIN).unwrap());
    }
}

#[test]
fn test_notify_all_after_timed_out_waiters() {
    let c = Condition::new().unwrap();
    let woken = Value::<i64>::with_lock(0).unwrap();
    // 6 waiters with a timeout all time out: nothing is left to wake.
    let mut timed_out: Vec<_> = (0..6)
        .map(|_| {
            Process::spawn(c.clone(), |c: Condition| {
                let mut g = c.lock().unwrap();
                g.wait_timeout(Duration::from_millis(200)).unwrap()
            })
            .unwrap()
        })
        .collect();
    for p in &mut timed_out {
        assert!(!p.join_timeout(JOIN).unwrap());
    }
    assert_eq!(c.waiting(), 0);
    assert_eq!(c.lock().unwrap().notify_all(), 0);
    // 6 waiters without a timeout: one notify_all wakes all of them.
    let mut kids = waiters(&c, &woken, 6);
    until_waiting(&c, 6);
    assert_eq!(c.lock().unwrap().notify_all(), 6);
    until_value(&woken, 6);
    for p in &mut kids {
        assert!(p.join_timeout(JOIN).unwrap());
    }
}

#[test]
fn test_notify_n() {
    let c = Condition::new().unwrap();
    let woken = Value::<i64>::with_lock(0).unwrap();
    let mut kids = waiters(&c, &woken, 6);
    until_waiting(&c, 6);
    assert_eq!(c.lock().unwrap().notify(2), 2);
    until_value(&woken, 2);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(woken.get(), 2);
    assert_eq!(c.lock().unwrap().notify(4), 4);
    until_value(&woken, 6);
    assert_eq!(c.lock().unwrap().notify(3), 0, "nobody is left");
    for p in &mut kids {
        assert!(p.join_timeout(JOIN).unwrap());
    }
}

#[test]
fn test_wait_timeouts_and_wait_for() {
    let c = Condition::new().unwrap();
    let mut g = c.lock().unwrap();
    let (r, d) = timed(|| g.wait_timeout(T));
    assert!(!r.unwrap());
    assert_about(d, T);
    let (r, d) = timed(|| g.wait_timeout(Duration::ZERO));
    assert!(!r.unwrap());
    assert!(d < Duration::from_millis(100));
    let (r, d) = timed(|| g.wait_for_timeout(|| false, Duration::from_millis(100)));
    assert!(!r.unwrap());
    assert_about(d, Duration::from_millis(100));
    assert!(c.is_locked(), "wait takes the lock back");
    drop(g);

    // wait(60) is true once a child notifies; wait_for sees the child's state.
    let flag = Value::<i64>::with_lock(0).unwrap();
    let mut child = Process::spawn(
        (c.clone(), flag.clone()),
        |(c, flag): (Condition, Value<i64>)| {
            std::thread::sleep(Duration::from_millis(200));
            let mut g = c.lock().unwrap();
            flag.set(1);
            g.notify_all()
        },
    )
    .unwrap();
    let mut g = c.lock().unwrap();
    let (r, d) = timed(|| g.wait_for_timeout(|| flag.get() == 1, Duration::from_secs(60)));
    assert!(r.unwrap());
    assert!(d >= Duration::from_millis(100));
    drop(g);
    assert_eq!(child.join_timeout(JOIN).unwrap(), 1);
}

#[test]
fn test_killed_waiter_does_not_absorb_a_notify() {
    let c = Condition::new().unwrap();
    let woken = Value::<i64>::with_lock(0).unwrap();
    let mut victim = Process::<()>::spawn(c.clone(), |c: Condition| {
        let mut g = c.lock().unwrap();
        let _ = g.wait();
        loop {
            std::thread::park();
        }
    })
    .unwrap();
    until_waiting(&c, 1);
    let mut kids = waiters(&c, &woken, 1);
    until_waiting(&c, 2);
    // Not reaped yet (a zombie): the kernel's mark on its slot tells.
    victim.kill().unwrap();
    until_waiting(&c, 1);
    assert_eq!(c.lock().unwrap().notify(1), 1);
    until_value(&woken, 1);
    let _ = victim.join_timeout(JOIN);
    for p in &mut kids {
        assert!(p.join_timeout(JOIN).unwrap());
    }
}

#[test]
fn test_condition_over_an_ordinary_lock() {
    // Python's Condition(lock): waiters release and retake a plain Lock.
    let c = Condition::new().unwrap();
    let lock = Lock::new().unwrap();
    let woken = Value::<i64>::with_lock(0).unwrap();
    let mut kids: Vec<_> = (0..3)
        .map(|_| {
            Process::spawn(
                (c.clone(), lock.clone(), woken.clone()),
                |(c, lock, woken): (Condition, Lock, Value<i64>)| {
                    let g = lock.lock().unwrap();
                    let (g, notified) = c
                        .wait_with(&lock, g, Some(Duration::from_secs(50)))
                        .unwrap();
                    let g = g.unwrap();
                    woken.update(|n| n + 1);
                    drop(g);
                    notified
                },
            )
            .unwrap()
        })
        .collect();
    until_waiting(&c, 3);
    {
        let g = lock.lock().unwrap();
        assert_eq!(c.notify_with(&g, 2), 2);
    }
    until_value(&woken, 2);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(woken.get(), 2);
    {
        let g = lock.lock().unwrap();
        assert_eq!(c.notify_with(&g, usize::MAX), 1);
    }
    for p in &mut kids {
        assert!(p.join_timeout(JOIN).unwrap());
    }
    // Timeout, and the lock is held again afterwards.
    let g = lock.lock().unwrap();
    let ((g, notified), d) = {
        let (r, d) = timed(|| c.wait_with(&lock, g, Some(T)).unwrap());
        (r, d)
    };
    assert!(!notified);
    assert_about(d, T);
    assert!(lock.is_locked());
    drop(g);
    // A guard from another handle of the same lock is refused.
    let other = lock.clone();
    let g = other.lock().unwrap();
    assert!(c.wait_with(&lock, g, Some(T)).is_err());
    assert!(!lock.is_locked());
}
