//! One producer process → one consumer process through a `ByteQueue`, 8 B and
//! 64 KiB messages, unbatched (`put` / `get_into`) and batched (`put_many` /
//! `get_many_with`).
//!
//! The consumer is this process; the producer is this bench binary re-executed
//! with `MPROC_BENCH_CHILD` set. For each criterion sample the consumer asks the
//! producer, over a control queue, for `iters` messages and times their arrival.

#![allow(missing_docs)] // criterion_group! defines an undocumented function

use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use mproc::{ByteQueue, Namespace, QueueOptions};

const CHILD_ENV: &str = "MPROC_BENCH_CHILD";
const BATCH: usize = 64;

/// The producer: serves requests `[size u32][count u64][batched u8]` until the
/// control queue is closed.
fn producer(dir: &str) {
    let ns = Namespace::dir(dir).expect("namespace");
    let ctl = ByteQueue::open_in(&ns, "ctl").expect("ctl");
    let data = ByteQueue::open_in(&ns, "data").expect("data");
    while let Ok(req) = ctl.get() {
        let size = u32::from_le_bytes(req[0..4].try_into().unwrap()) as usize;
        let mut left = u64::from_le_bytes(req[4..12].try_into().unwrap());
        let batched = req[12] == 1;
        let payload = vec![0xA5u8; size];
        let batch: Vec<&[u8]> = vec![&payload[..]; BATCH];
        while left > 0 {
            if batched && left >= BATCH as u64 {
                data.put_many(&batch).expect("put_many");
                left -= BATCH as u64;
            } else {
                data.put(&payload).expect("put");
                left -= 1;
            }
        }
    }
}

fn bench_queue(c: &mut Criterion) {
    let dir = tempfile::Builder::new()
        .prefix("mproc-bench-")
        .tempdir_in(if std::path::Path::new("/dev/shm").is_dir() {
            "/dev/shm"
        } else {
            "/tmp"
        })
        .expect("tempdir");
    let ns = Namespace::dir(dir.path()).expect("namespace");
    let ctl = ByteQueue::create_in(&ns, "ctl", QueueOptions::new()).expect("ctl");
    // The default byte budget (1 MiB): a ring that stays in the CPU's caches.
    let data = ByteQueue::create_in(&ns, "data", QueueOptions::new()).expect("data");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, dir.path())
        .spawn()
        .expect("spawn producer");

    let mut group = c.benchmark_group("queue_1to1_process");
    group.measurement_time(Duration::from_secs(2));
    group.warm_up_time(Duration::from_millis(500));
    for size in [8usize, 65536] {
        group.throughput(Throughput::Bytes(size as u64));
        for batched in [false, true] {
            let label = if batched {
                "put_many+get_many_with"
            } else {
                "put+get_into"
            };
            group.bench_function(BenchmarkId::new(label, size), |b| {
                b.iter_custom(|iters| {
                    let mut req = Vec::with_capacity(13);
                    req.extend_from_slice(&(size as u32).to_le_bytes());
                    req.extend_from_slice(&iters.to_le_bytes());
                    req.push(u8::from(batched));
                    let mut buf = Vec::with_capacity(size);
                    let mut got = 0u64;
                    let t = Instant::now();
                    ctl.put(&req).expect("request");
                    while got < iters {
                        if batched {
                            got += data
                                .get_many_with(256, |m| {
                                    assert_eq!(m.len(), size);
                                })
                                .expect("get_many_with") as u64;
                        } else {
                            data.get_into(&mut buf).expect("get_into");
                            assert_eq!(buf.len(), size);
                            got += 1;
                        }
                    }
                    t.elapsed()
                })
            });
        }
    }
    group.finish();
    ctl.close();
    let _ = child.wait();
}

criterion_group!(benches, bench_queue);

fn main() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        producer(&dir);
        return;
    }
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
