//! The producer-consumer runtime across real processes: every item consumed
//! exactly once, backpressure, a failing worker fails the run and stops the
//! others, and nothing is left running afterwards.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use mproc::{Producer, Queue, Runtime, RuntimeError, WorkerError, WorkerRole};

/// `(producer, sequence, consumer)` records, and the pid of every worker.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Args {
    per_producer: u32,
    seen: Queue<(u32, u32, u32)>,
    pids: Queue<u32>,
    fail_on: Option<(u32, u32)>,
    consumer_delay_ms: u64,
}

fn args(per_producer: u32) -> Args {
    Args {
        per_producer,
        seen: Queue::new(0).unwrap(),
        pids: Queue::new(0).unwrap(),
        fail_on: None,
        consumer_delay_ms: 0,
    }
}

fn produce(p: &Producer<(u32, u32)>, a: &Args) -> Result<(), WorkerError> {
    a.pids.put(std::process::id())?;
    for i in 0..a.per_producer {
        p.put((p.index() as u32, i))?;
    }
    Ok(())
}

fn consume(c: usize, item: (u32, u32), a: &Args) -> Result<(), WorkerError> {
    if Some(item) == a.fail_on {
        return Err(WorkerError::msg(format!("cannot digest {item:?}")));
    }
    if a.consumer_delay_ms > 0 {
        std::thread::sleep(Duration::from_millis(a.consumer_delay_ms));
    }
    a.seen.put((item.0, item.1, c as u32))?;
    Ok(())
}

fn drain<T: serde::Serialize + serde::de::DeserializeOwned>(q: &Queue<T>) -> Vec<T> {
    let mut v = Vec::new();
    while let Ok(x) = q.try_get() {
        v.push(x);
    }
    v
}

fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // A zombie not reaped by us would still show up here as state Z.
        Ok(s) => s
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('X')),
    }
}

#[test]
fn every_item_is_consumed_exactly_once_in_producer_order() {
    let a = args(200);
    let summary = Runtime::new(5, 2)
        .capacity(4)
        .run(a.clone(), produce, consume)
        .unwrap();
    assert_eq!(summary.produced(), 1000);
    assert_eq!(summary.consumed(), 1000);
    assert_eq!(summary.producers.len(), 5);
    assert_eq!(summary.consumers.len(), 2);
    assert!(summary.producers.iter().all(|w| w.items == 200));
    assert!(summary
        .producers
        .iter()
        .all(|w| w.role == WorkerRole::Producer));
    assert!(summary.throughput() > 0.0);
    let text = summary.to_string();
    assert!(text.contains("produced 1000, consumed 1000"), "{text}");

    let seen = drain(&a.seen);
    assert_eq!(seen.len(), 1000);
    let mut per_consumer: HashMap<u32, Vec<(u32, u32)>> = HashMap::new();
    for &(p, i, c) in &seen {
        per_consumer.entry(c).or_default().push((p, i));
    }
    for (c, items) in &per_consumer {
        let n = summary.consumers[*c as usize].items;
        assert_eq!(n as usize, items.len(), "consumer {c}'s count");
        // Each consumer sees each producer's items in order.
        let mut last: HashMap<u32, u32> = HashMap::new();
        for &(p, i) in items {
            if let Some(&l) = last.get(&p) {
                assert!(i > l, "producer {p}: {i} after {l}");
            }
            last.insert(p, i);
        }
    }
    let mut all: Vec<(u32, u32)> = seen.iter().map(|&(p, i, _)| (p, i)).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 1000, "no item twice");
    for pid in drain(&a.pids) {
        assert!(gone(pid), "producer {pid} left behind");
    }
    for w in summary.producers.iter().chain(&summary.consumers) {
        assert!(gone(w.pid), "{w:?} left behind");
    }
}

#[test]
fn a_failing_consumer_fails_the_run_and_stops_everyone() {
    let mut a = args(1000);
    a.fail_on = Some((1, 3));
    a.consumer_delay_ms = 1;
    let err = Runtime::new(3, 2)
        .capacity(2)
        .run(a.clone(), produce, consume)
        .unwrap_err();
    match &err {
        RuntimeError::Worker { role, error, .. } => {
            assert_eq!(*role, WorkerRole::Consumer);
            assert!(error.contains("cannot digest (1, 3)"), "{error}");
        }
        other => panic!("expected a worker failure, got {other}"),
    }
    // The producers that started (a slow one may not have reached its first
    // line before the failure stopped the run) were stopped.
    let pids = drain(&a.pids);
    assert!((1..=3).contains(&pids.len()), "{pids:?}");
    for pid in pids {
        assert!(gone(pid), "producer {pid} left behind");
    }
    assert!(drain(&a.seen).len() < 3000);
}

fn panicking_producer(p: &Producer<(u32, u32)>, a: &Args) -> Result<(), WorkerError> {
    a.pids.put(std::process::id())?;
    if p.index() == 1 {
        panic!("producer one gives up");
    }
    for i in 0..a.per_producer {
        p.put((p.index() as u32, i))?;
    }
    Ok(())
}

#[test]
fn a_panicking_producer_fails_the_run_with_its_message() {
    let a = args(1_000_000);
    let err = Runtime::new(2, 1)
        .capacity(1)
        .run(a.clone(), panicking_producer, consume)
        .unwrap_err();
    match &err {
        RuntimeError::Worker {
            role, index, error, ..
        } => {
            assert_eq!((*role, *index), (WorkerRole::Producer, 1));
            assert!(error.contains("producer one gives up"), "{error}");
        }
        other => panic!("expected a worker failure, got {other}"),
    }
    for pid in drain(&a.pids) {
        assert!(gone(pid), "{pid} left behind");
    }
}

fn dying_consumer(_c: usize, _item: (u32, u32), _a: &Args) -> Result<(), WorkerError> {
    std::process::abort();
}

#[test]
fn a_killed_worker_fails_the_run() {
    let err = Runtime::new(1, 1)
        .run(args(10), produce, dying_consumer)
        .unwrap_err();
    match &err {
        RuntimeError::Worker { role, error, .. } => {
            assert_eq!(*role, WorkerRole::Consumer);
            assert!(error.contains("signal 6"), "{error}");
        }
        other => panic!("expected a worker failure, got {other}"),
    }
}

#[test]
fn backpressure_keeps_the_queue_bounded() {
    fn watch(p: &Producer<(u32, u32)>, a: &Args) -> Result<(), WorkerError> {
        for i in 0..a.per_producer {
            p.put((p.index() as u32, i))?;
        }
        Ok(())
    }
    let mut a = args(20);
    a.consumer_delay_ms = 5;
    let s = Runtime::new(4, 1)
        .capacity(3)
        .run(a.clone(), watch, consume)
        .unwrap();
    assert_eq!(s.consumed(), 80);
    // 80 items at >= 5 ms each through one consumer.
    assert!(s.elapsed >= Duration::from_millis(400), "{:?}", s.elapsed);
}

#[test]
fn invalid_configurations_are_refused() {
    for (p, c, cap) in [(0, 1, 1), (1, 0, 1), (1, 1, 0)] {
        let r = Runtime::new(p, c)
            .capacity(cap)
            .run(args(1), produce, consume);
        assert!(matches!(r, Err(RuntimeError::InvalidConfig(_))));
    }
}
