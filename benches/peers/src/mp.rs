//! mproc as one more contender: queues (1→1, N→M, ping-pong, capacity sweep),
//! the ticket loop (JSON file on tmpfs, or a counter in shared memory).
//!
//! Every mproc worker is a child process (this binary re-executed as
//! `mproc-peers child mq ...`); objects are named in a namespace directory on
//! /dev/shm handed over on the command line. Workers wait for a go flag in a
//! small shared mapping, so process start-up is outside the timing, and report
//! CLOCK_MONOTONIC timestamps (one clock for every process).

use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mproc::{ByteQueue, GetError, Lock, Namespace, QueueOptions};

use crate::proc::{finish_child_text, spawn_child, uniq};
use crate::shm::{Shm, OFF_COUNTER, OFF_GO, OFF_READY};
use crate::sys::{cpu_ns_children, cpu_ns_self, mono_ns};

/// Messages per `put_many` call in the batched mode.
pub const PUT_BATCH: usize = 64;
/// Largest number of messages per `get_many_with` call in the batched mode.
pub const GET_BATCH: usize = 256;
/// Byte budget of the throughput queues: mproc's default (1 MiB).
pub const RING_BYTES: usize = mproc::DEFAULT_MAX_BYTES;

/// A fresh namespace directory on tmpfs.
fn new_ns() -> (PathBuf, Namespace) {
    let dir = PathBuf::from(uniq("ns"));
    let ns = Namespace::dir(&dir).expect("namespace");
    (dir, ns)
}

/// Child side: announce readiness, then wait for the go flag.
fn ready_then_wait(shm: &Shm) {
    shm.atomic(OFF_READY).fetch_add(1, Ordering::AcqRel);
    while shm.atomic(OFF_GO).load(Ordering::Acquire) == 0 {
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// Parent side: wait until `n` children are ready, then let them go.
fn release(shm: &Shm, n: u32) {
    while shm.atomic(OFF_READY).load(Ordering::Acquire) < n {
        std::thread::sleep(Duration::from_micros(200));
    }
    shm.atomic(OFF_GO).store(1, Ordering::Release);
}

fn queue_opts(maxsize: usize, size: usize) -> QueueOptions {
    let max_bytes = if maxsize == 0 {
        RING_BYTES.max(4 * (size + 16))
    } else {
        (maxsize * (size.div_ceil(8) * 8 + 8)).max(64)
    };
    QueueOptions::new().maxsize(maxsize).max_bytes(max_bytes)
}

/// One throughput run of `producers` → `consumers` processes.
/// `batched` selects put_many/get_many_with; `maxsize` 0 = byte budget only.
/// Returns (msgs/s, MB/s).
pub fn tput(
    size: usize,
    producers: usize,
    consumers: usize,
    batched: bool,
    maxsize: usize,
    dur: Duration,
) -> (f64, f64) {
    let (dir, ns) = new_ns();
    let q = ByteQueue::create_in(&ns, "q", queue_opts(maxsize, size)).expect("create queue");
    let shm_path = uniq("shm");
    let shm = Shm::map(&shm_path, true);
    let d = dir.to_string_lossy().into_owned();
    let b = if batched { "1" } else { "0" };
    let mut kids: Vec<(bool, Child)> = Vec::new();
    for _ in 0..consumers {
        let args = ["mq", "consume", &d, &shm_path, &size.to_string(), b, &producers.to_string()];
        kids.push((false, spawn_child(&args.map(String::from))));
    }
    for _ in 0..producers {
        let args = ["mq", "produce", &d, &shm_path, &size.to_string(), b, &dur.as_millis().to_string()];
        kids.push((true, spawn_child(&args.map(String::from))));
    }
    release(&shm, (producers + consumers) as u32);
    let (mut sent, mut got, mut start, mut end) = (0u64, 0u64, u64::MAX, 0u64);
    for (is_producer, kid) in kids {
        let out = finish_child_text(kid);
        let v: Vec<u64> = out.split_whitespace().map(|x| x.parse().unwrap()).collect();
        if is_producer {
            sent += v[0];
            start = start.min(v[1]);
        } else {
            got += v[0];
            end = end.max(v[1]);
        }
    }
    assert_eq!(sent, got, "mproc queue: received {got} != sent {sent}");
    assert!(q.is_empty());
    drop(q);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&shm_path);
    let secs = (end - start) as f64 / 1e9;
    (got as f64 / secs, (got * size as u64) as f64 / secs / 1e6)
}

fn child_produce(q: &ByteQueue, shm: &Shm, size: usize, batched: bool, dur: Duration) {
    let payload = vec![0xA5u8; size];
    let batch: Vec<&[u8]> = vec![&payload[..]; PUT_BATCH];
    ready_then_wait(shm);
    let start = mono_ns();
    let end = Instant::now() + dur;
    let mut n = 0u64;
    loop {
        if batched {
            q.put_many(&batch).expect("put_many");
            n += PUT_BATCH as u64;
        } else {
            for _ in 0..8 {
                q.put(&payload).expect("put");
            }
            n += 8;
        }
        if Instant::now() >= end {
            break;
        }
    }
    q.put(&[]).expect("end marker");
    println!("{n} {start}");
}

fn child_consume(q: &ByteQueue, shm: &Shm, size: usize, batched: bool, producers: u64) {
    use std::cell::Cell;
    ready_then_wait(shm);
    let n = Cell::new(0u64);
    let saw_last_marker = Cell::new(false);
    let check = |m: &[u8]| {
        if m.is_empty() {
            // Markers are counted across consumers; whoever takes the last
            // one closes the queue so that the other consumers stop too.
            let total = shm.atomic(OFF_COUNTER).fetch_add(1, Ordering::AcqRel) as u64 + 1;
            if total == producers {
                saw_last_marker.set(true);
            }
        } else {
            assert_eq!(m.len(), size, "wrong message length");
            assert_eq!(m[0], 0xA5, "corrupt payload");
            n.set(n.get() + 1);
        }
    };
    let mut buf = Vec::with_capacity(size);
    loop {
        let r = if batched {
            q.get_many_with(GET_BATCH, check).map(|_| ())
        } else {
            q.get_into(&mut buf).map(|()| check(&buf))
        };
        match r {
            Ok(()) => {}
            Err(GetError::Closed) => break,
            Err(e) => panic!("get: {e}"),
        }
        if saw_last_marker.get() {
            q.close();
            break;
        }
    }
    println!("{} {}", n.get(), mono_ns());
}

/// Ping-pong through two queues; returns (samples ns, CPU ns per round trip of both processes).
pub fn pingpong(dur: Duration, max_pings: usize, warmup: usize) -> (Vec<u64>, f64) {
    let (dir, ns) = new_ns();
    let a = ByteQueue::create_in(&ns, "a", queue_opts(0, 8)).unwrap();
    let b = ByteQueue::create_in(&ns, "b", queue_opts(0, 8)).unwrap();
    let d = dir.to_string_lossy().into_owned();
    let kids_cpu0 = cpu_ns_children();
    let kid = spawn_child(&["mq".into(), "echo".into(), d]);
    let payload = [0xA5u8; 8];
    let mut buf = Vec::with_capacity(8);
    for _ in 0..warmup {
        a.put(&payload).unwrap();
        b.get_into(&mut buf).unwrap();
    }
    let mut s = Vec::with_capacity(max_pings);
    let self_cpu0 = cpu_ns_self();
    let end = Instant::now() + dur;
    while s.len() < max_pings {
        let t = Instant::now();
        a.put(&payload).unwrap();
        b.get_into(&mut buf).unwrap();
        s.push(t.elapsed().as_nanos() as u64);
        assert_eq!(buf.len(), 8);
        if t >= end {
            break;
        }
    }
    let self_cpu = cpu_ns_self() - self_cpu0;
    a.put(&[]).unwrap();
    finish_child_text(kid);
    let kid_cpu = cpu_ns_children() - kids_cpu0;
    let _ = std::fs::remove_dir_all(&dir);
    // The child's CPU covers its warm-up and start-up too: an upper bound.
    let cpu_per_rt = (self_cpu + kid_cpu) as f64 / s.len() as f64;
    (s, cpu_per_rt)
}

fn child_echo(ns: &Namespace) {
    let a = ByteQueue::open_in(ns, "a").unwrap();
    let b = ByteQueue::open_in(ns, "b").unwrap();
    let mut buf = Vec::with_capacity(8);
    loop {
        a.get_into(&mut buf).unwrap();
        if buf.is_empty() {
            return;
        }
        b.put(&buf).unwrap();
    }
}

/// Ticket loop: `procs` processes × `attempts` buy attempts on `tickets` tickets,
/// each attempt under one mproc Lock. `json`: the count lives in a JSON file on
/// tmpfs (read, parse, write back, as in the tutorial); otherwise in shared memory.
/// Returns buys/s.
pub fn tickets(json: bool, procs: usize, attempts: u64, tickets: u64) -> f64 {
    let (dir, ns) = new_ns();
    let _lock = Lock::create_in(&ns, "tickets").unwrap();
    let shm_path = uniq("shm");
    let shm = Shm::map(&shm_path, true);
    let file = dir.join("tickets.json");
    if json {
        std::fs::write(&file, format!("{{\"count\": {tickets}}}")).unwrap();
    } else {
        // SAFETY: the counter slot is inside the mapping, and no child runs yet.
        unsafe { shm.counter().write_volatile(tickets) };
    }
    let d = dir.to_string_lossy().into_owned();
    let mode = if json { "json" } else { "shm" };
    let kids: Vec<Child> = (0..procs)
        .map(|_| {
            let args = ["ticket", mode, &d, &shm_path, &attempts.to_string()];
            spawn_child(&args.map(String::from))
        })
        .collect();
    release(&shm, procs as u32);
    let (mut sold, mut start, mut end) = (0u64, u64::MAX, 0u64);
    for kid in kids {
        let v: Vec<u64> =
            finish_child_text(kid).split_whitespace().map(|x| x.parse().unwrap()).collect();
        sold += v[0];
        start = start.min(v[1]);
        end = end.max(v[2]);
    }
    let left = if json {
        read_count(&file)
    } else {
        // SAFETY: every child has exited.
        unsafe { shm.counter().read_volatile() }
    };
    assert_eq!(sold + left, tickets, "tickets: sold {sold} + left {left} != {tickets}");
    assert_eq!(sold, tickets.min(procs as u64 * attempts));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&shm_path);
    sold as f64 / ((end - start) as f64 / 1e9)
}

#[derive(serde::Serialize, serde::Deserialize)]
struct TicketFile {
    count: u64,
}

fn read_count(file: &std::path::Path) -> u64 {
    let bytes = std::fs::read(file).unwrap();
    serde_json::from_slice::<TicketFile>(&bytes).unwrap().count
}

fn child_ticket(mode: &str, ns: &Namespace, dir: &std::path::Path, shm: &Shm, attempts: u64) {
    let lock = Lock::open_in(ns, "tickets").unwrap();
    let file = dir.join("tickets.json");
    ready_then_wait(shm);
    let start = mono_ns();
    let mut sold = 0u64;
    for _ in 0..attempts {
        let _g = lock.lock().unwrap_or_else(|e| panic!("lock: {e}"));
        if mode == "json" {
            let n = read_count(&file);
            if n > 0 {
                let body = serde_json::to_vec(&TicketFile { count: n - 1 }).unwrap();
                std::fs::write(&file, body).unwrap();
                sold += 1;
            }
        } else {
            let c = shm.counter();
            // SAFETY: the counter is inside the mapping, and the lock is held.
            unsafe {
                let n = c.read_volatile();
                if n > 0 {
                    c.write_volatile(n - 1);
                    sold += 1;
                }
            }
        }
    }
    println!("{sold} {start} {}", mono_ns());
}

/// Child entry: `child mq ...` and `child ticket ...`.
pub fn child(args: &[String]) {
    match (args[0].as_str(), args[1].as_str()) {
        ("mq", "echo") => child_echo(&Namespace::dir(&args[2]).unwrap()),
        ("mq", role) => {
            let ns = Namespace::dir(&args[2]).unwrap();
            let shm = Shm::map(&args[3], false);
            let size: usize = args[4].parse().unwrap();
            let batched = args[5] == "1";
            let q = ByteQueue::open_in(&ns, "q").unwrap();
            if role == "produce" {
                let ms: u64 = args[6].parse().unwrap();
                child_produce(&q, &shm, size, batched, Duration::from_millis(ms));
            } else {
                child_consume(&q, &shm, size, batched, args[6].parse().unwrap());
            }
        }
        ("ticket", mode) => {
            let dir = PathBuf::from(&args[2]);
            let ns = Namespace::dir(&dir).unwrap();
            let shm = Shm::map(&args[3], false);
            child_ticket(mode, &ns, &dir, &shm, args[4].parse().unwrap());
        }
        _ => panic!("unknown mproc child {args:?}"),
    }
}
