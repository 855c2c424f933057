//! Rough costs of the synchronisation objects, in one process and between
//! two processes.
//!
//! ```sh
//! cargo run --release -p mproc --example sync_bench
//! ```

use std::time::{Duration, Instant};

use mproc::{Barrier, Event, Process, Semaphore, Value};

const N: u32 = 1_000_000;
const ROUNDS: u32 = 20_000;

fn per_op(what: &str, n: u32, d: Duration) {
    println!(
        "{what:<48} {:>9.1} ns/op",
        d.as_nanos() as f64 / f64::from(n)
    );
}

fn main() {
    let s = Semaphore::new(1).unwrap();
    let t = Instant::now();
    for _ in 0..N {
        s.acquire().unwrap();
        s.release().unwrap();
    }
    per_op("semaphore acquire+release, uncontended", N, t.elapsed());

    let t = Instant::now();
    for _ in 0..N {
        drop(s.hold().unwrap());
    }
    per_op("semaphore hold+drop (guard), uncontended", N, t.elapsed());

    let v = Value::<u64>::with_lock(0).unwrap();
    let t = Instant::now();
    for _ in 0..N {
        *v.get_lock().unwrap() += 1;
    }
    per_op("value get_lock + increment, uncontended", N, t.elapsed());

    // Two processes hand a token back and forth through two events.
    let (ping, pong) = (Event::new().unwrap(), Event::new().unwrap());
    let mut child = Process::spawn(
        (ping.clone(), pong.clone()),
        |(ping, pong): (Event, Event)| {
            for _ in 0..ROUNDS {
                ping.wait();
                ping.clear();
                pong.set();
            }
        },
    )
    .unwrap();
    let t = Instant::now();
    for _ in 0..ROUNDS {
        ping.set();
        pong.wait();
        pong.clear();
    }
    per_op(
        "event ping-pong between 2 processes, round trip",
        ROUNDS,
        t.elapsed(),
    );
    child.join().unwrap();

    // Two processes meet at a barrier, round after round.
    let b = Barrier::new(2).unwrap();
    let mut child = Process::spawn(b.clone(), |b: Barrier| {
        for _ in 0..ROUNDS {
            b.wait().unwrap();
        }
    })
    .unwrap();
    let t = Instant::now();
    for _ in 0..ROUNDS {
        b.wait().unwrap();
    }
    per_op("barrier(2) round between 2 processes", ROUNDS, t.elapsed());
    child.join().unwrap();

    // A semaphore(1) handed between two processes through guards.
    let s = Semaphore::new(1).unwrap();
    let mut child = Process::spawn(s.clone(), |s: Semaphore| {
        for _ in 0..ROUNDS {
            drop(s.hold().unwrap());
        }
    })
    .unwrap();
    let t = Instant::now();
    for _ in 0..ROUNDS {
        drop(s.hold().unwrap());
    }
    let d = t.elapsed();
    child.join().unwrap();
    per_op("semaphore(1) hold+drop, 2 processes contending", ROUNDS, d);
}
