//! The tutorial's bounded queue: `Queue(5)` takes five items, `print('111')`
//! runs, and the sixth `put` blocks until a slot frees up. Here a consumer
//! process frees one after a second, so the sixth put goes through and
//! `222` is printed too.
//!
//! ```text
//! cargo run --release --example bounded_queue
//! ```

use std::time::{Duration, Instant};

use mproc::{Process, Queue};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let q: Queue<u32> = Queue::new(5)?; // at most 5 items
    for i in 1..=5 {
        q.put(i)?;
    }
    println!("111"); // printed: five puts fit
    println!(
        "the queue holds {} items and is full: {}",
        q.len(),
        q.is_full()
    );

    // A sixth put blocks. Show it with a timeout first.
    let t = Instant::now();
    match q.put_timeout(6, Duration::from_millis(500)) {
        Err(e) if e.is_full() => println!(
            "put(6) blocked for {:.2} s and gave up: the queue is full",
            t.elapsed().as_secs_f64()
        ),
        other => println!("unexpected: {other:?}"),
    }

    // A consumer process takes one item after a second.
    let mut consumer = Process::spawn(q.clone(), |q: Queue<u32>| {
        std::thread::sleep(Duration::from_secs(1));
        let item = q.get().expect("the queue has items");
        println!("consumer (pid {}) took {item}", std::process::id());
        item
    })?;

    let t = Instant::now();
    q.put(6)?; // blocks until the consumer frees a slot
    println!(
        "put(6) went through after {:.2} s, once a slot was free",
        t.elapsed().as_secs_f64()
    );
    println!("222");
    consumer.join()?;
    let rest: Vec<u32> = std::iter::from_fn(|| q.try_get().ok()).collect();
    println!("left in the queue, in order: {rest:?}");
    Ok(())
}
