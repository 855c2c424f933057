//! `Pool::map` over worker processes.

use std::collections::HashSet;
use std::time::Duration;

use mproc::{Pool, PoolError};

#[test]
fn map_returns_results_in_input_order() {
    let mut pool = Pool::new(3).unwrap();
    assert_eq!(pool.size(), 3);
    let items: Vec<u64> = (0..1000).collect();
    let out = pool.map(|x: u64| x * x, items.clone()).unwrap();
    assert_eq!(out, items.iter().map(|x| x * x).collect::<Vec<_>>());
    // Uneven work still comes back in order.
    let out = pool
        .map(
            |x: u64| {
                std::thread::sleep(Duration::from_millis((7 - x % 7) * 2));
                format!("item {x}")
            },
            0..50u64,
        )
        .unwrap();
    assert_eq!(
        out,
        (0..50).map(|x| format!("item {x}")).collect::<Vec<_>>()
    );
}

#[test]
fn the_work_is_spread_over_the_workers_and_they_are_reused() {
    let mut pool = Pool::new(2).unwrap();
    let pids: HashSet<u32> = pool
        .map(
            |_: u32| {
                std::thread::sleep(Duration::from_millis(20));
                std::process::id()
            },
            0..20u32,
        )
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(pids.len(), 2, "both workers took part");
    assert!(!pids.contains(&std::process::id()));
    let again: HashSet<u32> = pool
        .map(|_: u32| std::process::id(), 0..20u32)
        .unwrap()
        .into_iter()
        .collect();
    assert!(
        again.is_subset(&pids),
        "the same processes serve the next map"
    );
}

#[test]
fn empty_input_returns_at_once() {
    let mut pool = Pool::new(1).unwrap();
    let out: Vec<u8> = pool.map(|x: u8| x, Vec::new()).unwrap();
    assert!(out.is_empty());
}

#[test]
fn a_panicking_item_is_reported_and_the_pool_stays_usable() {
    let mut pool = Pool::new(2).unwrap();
    let err = pool
        .map(
            |x: u32| {
                if x == 13 {
                    panic!("unlucky {x}");
                }
                x
            },
            0..40u32,
        )
        .unwrap_err();
    match err {
        PoolError::Task { index, message } => {
            assert_eq!(index, 13);
            assert!(message.contains("unlucky 13"), "{message}");
        }
        other => panic!("expected a task failure, got {other}"),
    }
    assert_eq!(pool.map(|x: u32| x + 1, 0..3u32).unwrap(), vec![1, 2, 3]);
}

#[test]
fn a_dying_worker_breaks_the_pool() {
    let mut pool = Pool::new(2).unwrap();
    let err = pool
        .map(
            |x: u32| {
                if x == 5 {
                    std::process::abort();
                }
                x
            },
            0..10u32,
        )
        .unwrap_err();
    assert!(matches!(err, PoolError::WorkerLost(_)), "{err}");
    assert!(matches!(
        pool.map(|x: u32| x, 0..3u32),
        Err(PoolError::WorkerLost(_))
    ));
}

#[test]
fn zero_workers_is_an_error() {
    assert!(matches!(Pool::new(0), Err(PoolError::NoWorkers)));
}

#[test]
fn dropping_the_pool_ends_its_workers() {
    let mut pool = Pool::new(2).unwrap();
    let pids: HashSet<u32> = pool
        .map(
            |_: u8| {
                std::thread::sleep(Duration::from_millis(20));
                std::process::id()
            },
            0..10u8,
        )
        .unwrap()
        .into_iter()
        .collect();
    drop(pool);
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "worker {pid} left behind"
        );
    }
}
