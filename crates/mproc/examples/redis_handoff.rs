//! How fast a contended lock passes from one holder to the next, and how
//! soon a dead consumer's item is delivered again, on one namespace.
//!
//! ```text
//! cargo run --release --features redis --example redis_handoff -- URL [WAITERS] [SECTIONS]
//! ```
//!
//! WAITERS processes (default 10) each take the lock SECTIONS times in all
//! (default 200), holding it for 1 ms; the handoff is the time from one
//! holder's release to the next holder's acquisition, measured on one
//! clock (all processes on this machine; `CLOCK_MONOTONIC`). Then a
//! consumer process takes an item and is killed; the time until another
//! consumer gets the item is the redelivery time.

#[path = "common/args.rs"]
mod args;

use std::time::{Duration, Instant};

use mproc::{ByteQueue, Lock, Namespace, Process, QueueOptions};

use args::arg;

/// Nanoseconds of the system clock: comparable across the processes of one
/// machine (the handoffs measured last milliseconds; a clock step during a
/// run would show as one outlier).
fn mono_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let url: String = std::env::args()
        .nth(1)
        .expect("usage: redis_handoff URL [WAITERS] [SECTIONS]");
    let waiters: usize = arg(2, 10);
    let sections: usize = arg(3, 200);
    let sep = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{sep}prefix=handoff{}", std::process::id());
    let ns = Namespace::from_url(&url).unwrap();
    let lock = Lock::create_in(&ns, "contended").unwrap();
    let per = sections / waiters;
    let started = Instant::now();
    let procs: Vec<_> = (0..waiters)
        .map(|_| {
            Process::spawn((lock.clone(), per), |(l, n): (Lock, usize)| {
                // (acquired, released, pid) of each section.
                let mut out = Vec::with_capacity(n);
                for _ in 0..n {
                    let g = l.lock().unwrap();
                    let a = mono_ns();
                    std::thread::sleep(Duration::from_millis(1));
                    let r = mono_ns();
                    drop(g);
                    out.push((a, r, std::process::id()));
                }
                out
            })
            .unwrap()
        })
        .collect();
    let mut all: Vec<(u64, u64, u32)> = procs
        .into_iter()
        .flat_map(|mut p| p.join().unwrap())
        .collect();
    let elapsed = started.elapsed();
    all.sort();
    // From a release to the next acquisition by another process (the
    // release script runs after the recorded release instant: this
    // includes its round trip).
    let mut gaps: Vec<f64> = all
        .windows(2)
        .filter(|w| w[0].2 != w[1].2)
        .map(|w| (w[1].0.saturating_sub(w[0].1)) as f64 / 1e6)
        .collect();
    let n = gaps.len();
    let mean = gaps.iter().sum::<f64>() / n as f64;
    println!(
        "lock: {waiters} waiters, {} sections in {:.2} s, {n} handoffs between processes; \
         handoff ms: median {:.2}, p90 {:.2}, max {:.2}, mean {mean:.2}",
        all.len(),
        elapsed.as_secs_f64(),
        percentile(&mut gaps, 0.5),
        percentile(&mut gaps, 0.9),
        percentile(&mut gaps, 1.0),
    );

    // Redelivery of a killed consumer's item.
    let q = ByteQueue::create_in(&ns, "redeliver", QueueOptions::new()).unwrap();
    q.put(b"item").unwrap();
    let mut victim = Process::spawn(q.clone(), |q: ByteQueue| {
        let _item = q.get().unwrap();
        std::thread::sleep(Duration::from_secs(600));
    })
    .unwrap();
    while !q.is_empty() {
        std::thread::sleep(Duration::from_millis(1));
    }
    victim.kill().unwrap();
    let killed = Instant::now();
    let other = ByteQueue::open_in(&ns, "redeliver").unwrap();
    let got = other.get_timeout(Duration::from_secs(120)).unwrap();
    assert_eq!(got, b"item");
    println!(
        "queue: a killed consumer's item was delivered again after {:.2} s",
        killed.elapsed().as_secs_f64()
    );
    let _ = ns.remove("contended");
    drop(other);
    drop(q);
    let _ = ns.remove("redeliver");
}
