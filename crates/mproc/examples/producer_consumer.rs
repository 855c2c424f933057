//! The tutorial's producer-consumer model: 5 producers make 10 items each
//! (sleeping 1–2 s before each), 2 consumers `alex` and `wusir` eat them
//! (sleeping up to 1 s each).
//!
//! It runs twice: first the tutorial's way — the main process joins the
//! producers, then puts one `None` per consumer — and then with
//! [`mproc::Runtime`], where closing the queue ends the consumers (no
//! sentinels to count) and a summary is printed.
//!
//! ```text
//! cargo run --release --example producer_consumer            # the tutorial's timing (~30 s)
//! cargo run --release --example producer_consumer -- --fast  # delays / 100
//! cargo run --release --example producer_consumer -- --only close
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mproc::{Process, Producer, Queue, Runtime, WorkerError};

const NAMES: [&str; 2] = ["alex", "wusir"];

#[derive(Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Settings {
    items: u32,
    /// 1.0: the tutorial's delays; 0.01 with `--fast`.
    scale: f64,
}

/// A small per-process random source (xorshift), seeded by pid and clock.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Rng(t ^ (u64::from(std::process::id()) << 32) | 1)
    }

    /// Uniform in [0, 1).
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn sleep_s(s: f64) {
    std::thread::sleep(Duration::from_secs_f64(s));
}

// ------------------------------------------------------ the tutorial's way

fn consumer((q, name, s): (Queue<Option<String>>, String, Settings)) {
    let mut rng = Rng::new();
    // `None` is the sentinel: stop.
    while let Some(task) = q.get().expect("queue") {
        sleep_s(rng.next() * s.scale);
        println!("{name} ate {task}");
    }
}

fn producer((q, s): (Queue<Option<String>>, Settings)) {
    let mut rng = Rng::new();
    for i in 0..s.items {
        sleep_s((1.0 + rng.next()) * s.scale);
        println!("produced slop{i}");
        q.put(Some(format!("slop{i}"))).expect("queue");
    }
}

fn with_sentinels(s: Settings) -> Result<(), Box<dyn std::error::Error>> {
    println!("--- the tutorial's way: one None per consumer ---");
    let q: Queue<Option<String>> = Queue::new(0)?;
    let mut producers = Vec::new();
    for _ in 0..5 {
        producers.push(Process::spawn((q.clone(), s), producer)?);
    }
    let mut consumers = Vec::new();
    for name in NAMES {
        consumers.push(Process::spawn((q.clone(), name.to_string(), s), consumer)?);
    }
    for p in &mut producers {
        p.join()?;
    }
    q.put(None)?; // as many None as there are consumers
    q.put(None)?;
    for c in &mut consumers {
        c.join()?;
    }
    Ok(())
}

// ------------------------------------------------------- with the runtime

fn produce(p: &Producer<String>, s: &Settings) -> Result<(), WorkerError> {
    let mut rng = Rng::new();
    for i in 0..s.items {
        sleep_s((1.0 + rng.next()) * s.scale);
        println!("producer {} produced slop{i}", p.index());
        p.put(format!("slop{i}"))?;
    }
    Ok(())
}

fn consume(c: usize, task: String, s: &Settings) -> Result<(), WorkerError> {
    // One random source per consumer process would be nicer; the clock
    // seeds differ per call anyway.
    sleep_s(Rng::new().next() * s.scale);
    println!("{} ate {task}", NAMES.get(c).copied().unwrap_or("consumer"));
    Ok(())
}

fn with_close(s: Settings) -> Result<(), Box<dyn std::error::Error>> {
    println!("--- with mproc::Runtime: close() ends the consumers ---");
    let summary = Runtime::new(5, 2).capacity(10).run(s, produce, consume)?;
    println!("{summary}");
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut s = Settings {
        items: 10,
        scale: 1.0,
    };
    let mut only = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--fast" => s.scale = 0.01,
            "--items" => s.items = args.next().ok_or("--items needs a number")?.parse()?,
            "--only" => only = Some(args.next().ok_or("--only needs sentinel or close")?),
            _ => {
                eprintln!("usage: producer_consumer [--fast] [--items N] [--only sentinel|close]");
                std::process::exit(2);
            }
        }
    }
    if only.as_deref() != Some("close") {
        with_sentinels(s)?;
    }
    if only.as_deref() != Some("sentinel") {
        with_close(s)?;
    }
    Ok(())
}
