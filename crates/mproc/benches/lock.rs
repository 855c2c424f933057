//! `Lock`: uncontended lock + unlock in one process, and lock + unlock while
//! another process (this bench binary re-executed with `MPROC_BENCH_CHILD`)
//! takes the same lock in a loop.

#![allow(missing_docs)] // criterion_group! defines an undocumented function

use std::time::Duration;

use criterion::{criterion_group, Criterion};
use mproc::{ByteQueue, Lock, Namespace, QueueOptions};

const CHILD_ENV: &str = "MPROC_BENCH_CHILD";

/// The contender: takes and releases the lock until the stop queue is closed.
fn contender(dir: &str) {
    let ns = Namespace::dir(dir).expect("namespace");
    let lock = Lock::open_in(&ns, "lock").expect("lock");
    let stop = ByteQueue::open_in(&ns, "stop").expect("stop");
    stop.put(b"ready").expect("ready");
    while !stop.is_closed() {
        for _ in 0..64 {
            let g = lock.lock().unwrap_or_else(|e| panic!("lock: {e}"));
            std::hint::black_box(&g);
            drop(g);
        }
    }
}

fn bench_lock(c: &mut Criterion) {
    let dir = tempfile::Builder::new()
        .prefix("mproc-bench-")
        .tempdir_in(if std::path::Path::new("/dev/shm").is_dir() {
            "/dev/shm"
        } else {
            "/tmp"
        })
        .expect("tempdir");
    let ns = Namespace::dir(dir.path()).expect("namespace");
    let lock = Lock::create_in(&ns, "lock").expect("lock");

    let mut group = c.benchmark_group("lock");
    group.measurement_time(Duration::from_secs(2));
    group.warm_up_time(Duration::from_millis(500));
    group.bench_function("uncontended", |b| {
        b.iter(|| {
            let g = lock.lock().unwrap_or_else(|e| panic!("lock: {e}"));
            std::hint::black_box(&g);
        })
    });

    let stop = ByteQueue::create_in(&ns, "stop", QueueOptions::new()).expect("stop");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, dir.path())
        .spawn()
        .expect("spawn contender");
    stop.get().expect("contender ready");
    group.bench_function("contended_2_processes", |b| {
        b.iter(|| {
            let g = lock.lock().unwrap_or_else(|e| panic!("lock: {e}"));
            std::hint::black_box(&g);
        })
    });
    group.finish();
    stop.close();
    let _ = child.wait();
}

criterion_group!(benches, bench_lock);

fn main() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        contender(&dir);
        return;
    }
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
