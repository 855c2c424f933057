//! Throughput of the Redis backend beside `redis-benchmark` on the same
//! server, in the same run.
//!
//! ```text
//! cargo run --release --features redis --example redis_bench -- redis://127.0.0.1:6379/ [CLIENTS] [ITEMS] [BATCH]
//! ```
//!
//! With CLIENTS connections in all (half producers, half consumers for the
//! queue; all buyers for the tickets), it measures:
//! * `redis-benchmark -t lpush,rpop -c CLIENTS` unpipelined and with `-P BATCH`,
//!   and the item rate one LPUSH plus one RPOP per item gives:
//!   `1 / (1/lpush + 1/rpop)`;
//! * the mproc queue moving ITEMS items one by one (`put` / `get`) and in
//!   batches of BATCH (`put_many` / `get_many`);
//! * ticket sales: CLIENTS buyers each taking the lock and selling with a
//!   fenced write until none is left.
//!
//! redis-benchmark runs before and after the mproc measurements; both
//! results are printed, and the ratio uses their mean.

#[path = "common/args.rs"]
mod args;
#[path = "common/load.rs"]
mod load;

use std::process::Command;
use std::time::{Duration, Instant};

use mproc::{ByteQueue, Lock, Namespace, QueueOptions};

use args::arg;

/// `host`, `port` and password of a `redis://` URL.
fn server(url: &str) -> (String, String, Option<String>) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (auth, hostport) = match rest.rsplit_once('@') {
        Some((a, h)) => (Some(a), h),
        None => (None, rest),
    };
    let password = auth.map(|a| a.split_once(':').map_or(a, |(_, p)| p).to_string());
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "6379"));
    (host.to_string(), port.to_string(), password)
}

/// Requests per second of LPUSH and RPOP from redis-benchmark.
fn redis_benchmark(url: &str, clients: usize, n: usize, pipeline: usize) -> Option<(f64, f64)> {
    let (host, port, password) = server(url);
    let mut cmd = Command::new("redis-benchmark");
    cmd.args(["-h", &host, "-p", &port, "-c", &clients.to_string()])
        .args(["-n", &n.to_string(), "-P", &pipeline.to_string()])
        .args(["-t", "lpush,rpop", "-q", "--csv"]);
    if let Some(p) = password {
        cmd.args(["-a", &p]);
    }
    let out = cmd.output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lpush = None;
    let mut rpop = None;
    for line in text.lines() {
        let cells: Vec<&str> = line.split(',').map(|c| c.trim_matches('"')).collect();
        let rps = cells.get(1).and_then(|v| v.parse::<f64>().ok());
        match cells.first().copied() {
            Some(t) if t.starts_with("LPUSH") => lpush = rps,
            Some(t) if t.starts_with("RPOP") => rpop = rps,
            _ => {}
        }
    }
    Some((lpush?, rpop?))
}

/// Items per second a LPUSH+RPOP pair per item allows.
fn pair_rate((lpush, rpop): (f64, f64)) -> f64 {
    1.0 / (1.0 / lpush + 1.0 / rpop)
}

/// Moves `items` messages from `clients / 2` producer threads to as many
/// consumer threads; returns items per second.
fn queue_rate(ns: &Namespace, name: &str, clients: usize, items: usize, batch: usize) -> f64 {
    ByteQueue::create_in(ns, name, QueueOptions::new().maxsize(10_000)).unwrap();
    let producers = (clients / 2).max(1);
    let consumers = (clients - producers).max(1);
    let started = Instant::now();
    let got = load::move_items(ns, name, producers, consumers, items / producers, batch);
    let elapsed = started.elapsed();
    let _ = ns.remove(name);
    got as f64 / elapsed.as_secs_f64()
}

/// Sells `tickets` with `clients` buyer threads under one lock; sales/s.
fn ticket_rate(ns: &Namespace, clients: usize, tickets: i64) -> f64 {
    let lock = Lock::create_in(ns, "bench-tickets").unwrap();
    lock.lock().unwrap().fenced_set("tickets", tickets).unwrap();
    let started = Instant::now();
    let buyers: Vec<_> = (0..clients)
        .map(|_| {
            let lock = Lock::open_in(ns, "bench-tickets").unwrap();
            std::thread::spawn(move || {
                let mut sold = 0i64;
                loop {
                    let g = lock.lock().unwrap_or_else(|e| e.into_guard().unwrap());
                    match g.fenced_add("tickets", -1, 0).unwrap() {
                        Some(_) => sold += 1,
                        None => return sold,
                    }
                }
            })
        })
        .collect();
    let sold: i64 = buyers.into_iter().map(|b| b.join().unwrap()).sum();
    let elapsed = started.elapsed();
    assert_eq!(sold, tickets, "none oversold");
    assert_eq!(lock.fenced_get("tickets").unwrap(), 0);
    let _ = ns.remove("bench-tickets");
    sold as f64 / elapsed.as_secs_f64()
}

fn main() {
    let Some(url) = std::env::args().nth(1) else {
        eprintln!("usage: redis_bench redis://HOST:PORT/ [CLIENTS] [ITEMS] [BATCH]");
        std::process::exit(64);
    };
    let clients: usize = arg(2, 4);
    let items: usize = arg(3, 100_000);
    let batch: usize = arg(4, 64);
    let n_bench = 200_000;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .subsec_nanos();
    let sep = if url.contains('?') { '&' } else { '?' };
    let ns = Namespace::from_url(&format!("{url}{sep}prefix=bench-{nanos}")).unwrap();

    let rb1 = redis_benchmark(&url, clients, n_bench, 1).expect("redis-benchmark runs");
    let rbp1 = redis_benchmark(&url, clients, n_bench * 4, batch).expect("redis-benchmark runs");
    let single = queue_rate(&ns, "bench-single", clients, items / 4, 1);
    let batched = queue_rate(&ns, "bench-batched", clients, items * 4, batch);
    let sales = ticket_rate(&ns, clients, (items / 10) as i64);
    let rb2 = redis_benchmark(&url, clients, n_bench, 1).expect("redis-benchmark runs");
    let rbp2 = redis_benchmark(&url, clients, n_bench * 4, batch).expect("redis-benchmark runs");

    let pair = (pair_rate(rb1) + pair_rate(rb2)) / 2.0;
    let pair_p = (pair_rate(rbp1) + pair_rate(rbp2)) / 2.0;
    println!("clients {clients}, batch {batch}, server {}", ns.location());
    println!(
        "redis-benchmark -c {clients}        LPUSH {:>10.0} {:>10.0}  RPOP {:>10.0} {:>10.0}  -> {pair:>10.0} items/s (1 LPUSH + 1 RPOP each)",
        rb1.0, rb2.0, rb1.1, rb2.1
    );
    println!(
        "redis-benchmark -c {clients} -P {batch}  LPUSH {:>10.0} {:>10.0}  RPOP {:>10.0} {:>10.0}  -> {pair_p:>10.0} items/s",
        rbp1.0, rbp2.0, rbp1.1, rbp2.1
    );
    println!(
        "mproc queue put/get            {single:>10.0} items/s  = {:.2}x the unpipelined pair rate",
        single / pair
    );
    println!(
        "mproc queue put_many/get_many  {batched:>10.0} items/s  = {:.2}x the unpipelined pair rate, {:.2}x the -P {batch} pair rate",
        batched / pair,
        batched / pair_p
    );
    println!("mproc ticket sales (lock + fenced write + release) {sales:>10.0} sales/s");
}
