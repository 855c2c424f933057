//! Queue throughput of several queues at once, to compare one Redis server
//! with a Redis Cluster (each queue's keys live in one slot, so queues
//! spread over the cluster's masters).
//!
//! ```text
//! cargo run --release --features redis --example redis_scale -- URL [QUEUES] [ITEMS] [BATCH] [PAIRS]
//! ```
//!
//! URL is `redis://…` or `redis+cluster://…`. QUEUES queues (default 6),
//! each with PAIRS producer threads and as many consumer threads (default
//! 1), move ITEMS items per queue (default 50000) in batches of BATCH
//! (`put_many` / `get_many`, default 64; 1 means `put` / `get`). Prints one
//! line: the total item rate, and how many distinct masters the queues'
//! slots are on when the URL names a cluster (asked with `redis-cli`).

#[path = "common/args.rs"]
mod args;
#[path = "common/load.rs"]
mod load;

use std::process::Command;
use std::time::Instant;

use mproc::{ByteQueue, Namespace, QueueOptions};

use args::arg;

/// The number of distinct masters holding the slots of `tags`, or `None`
/// when the URL is not a cluster's.
fn masters(url: &str, tags: &[String]) -> Option<usize> {
    if !url.contains("+cluster://") {
        return None;
    }
    let rest = url.split_once("://")?.1;
    let hosts = rest.split(['/', '?']).next()?;
    let hosts = hosts.rsplit_once('@').map_or(hosts, |(_, h)| h);
    let (host, port) = hosts.split(',').next()?.rsplit_once(':')?;
    let cli = |args: &[&str]| -> Option<String> {
        let out = Command::new("redis-cli")
            .args(["-h", host, "-p", port])
            .args(args)
            .output()
            .ok()?;
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let nodes = cli(&["cluster", "nodes"])?;
    let mut seen = Vec::new();
    for tag in tags {
        let slot: u32 = cli(&["cluster", "keyslot", tag])?.trim().parse().ok()?;
        let owner = nodes.lines().find(|l| {
            l.contains("master")
                && l.split_whitespace().skip(8).any(|r| {
                    let (a, b) = r.split_once('-').unwrap_or((r, r));
                    matches!((a.parse::<u32>(), b.parse::<u32>()), (Ok(a), Ok(b)) if a <= slot && slot <= b)
                })
        })?;
        let id = owner.split_whitespace().next()?.to_owned();
        if !seen.contains(&id) {
            seen.push(id);
        }
    }
    Some(seen.len())
}

fn main() {
    let url: String = std::env::args()
        .nth(1)
        .expect("usage: redis_scale URL [QUEUES] [ITEMS] [BATCH] [PAIRS]");
    let queues: usize = arg(2, 6);
    let items: usize = arg(3, 50_000);
    let batch: usize = arg(4, 64);
    let pairs: usize = arg(5, 1).max(1);
    let prefix = format!("scale{}", std::process::id());
    let sep = if url.contains('?') { '&' } else { '?' };
    let ns = Namespace::from_url(&format!("{url}{sep}prefix={prefix}")).unwrap();
    let names: Vec<String> = (0..queues).map(|i| format!("q{i}")).collect();
    for n in &names {
        ByteQueue::create_in(&ns, n, QueueOptions::new().maxsize(10_000)).unwrap();
    }
    let started = Instant::now();
    let threads: Vec<_> = names
        .iter()
        .map(|n| {
            let (ns, n) = (ns.clone(), n.clone());
            std::thread::spawn(move || {
                load::move_items(&ns, &n, pairs, pairs, items / pairs, batch)
            })
        })
        .collect();
    let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let rate = total as f64 / started.elapsed().as_secs_f64();
    let tags: Vec<String> = names.iter().map(|n| format!("{{{prefix}:{n}}}")).collect();
    let on = masters(&url, &tags).map_or("1 server".to_owned(), |m| format!("{m} masters"));
    println!(
        "queues={queues} pairs={pairs} batch={batch} items={total} on {on}: {rate:.0} items/s"
    );
    for n in &names {
        let _ = ns.remove(n);
    }
}
