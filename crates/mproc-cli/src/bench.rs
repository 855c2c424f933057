//! `mproc bench`: mproc's own throughput, latency and lock figures on this
//! machine, plus Python's `multiprocessing.Queue` when `python3` is there.
//!
//! Every measurement runs [`RUNS`] times and the median is reported. Worker
//! processes re-execute this binary (hidden `__bench-worker` subcommand) in a
//! temporary namespace; they announce themselves on a `ready` queue and start
//! together when the parent closes the `go` queue, so process start-up stays
//! outside the timing. Timestamps crossing processes are wall-clock
//! nanoseconds (one clock for every process).

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use mproc::{ByteQueue, GetError, Lock, Namespace, QueueOptions};
use serde_json::{json, Value};

use crate::args::{parse_secs, Secs};
use crate::child::{self_command, temp_dir, Children};
use crate::ctx::{self, Ctx};
use crate::sys;

/// Runs per measurement; the median is reported.
const RUNS: usize = 3;
/// Messages per `put_many` call in the batched runs.
const PUT_BATCH: usize = 64;
/// Largest number of messages per `get_many_with` call in the batched runs.
const GET_BATCH: usize = 256;
/// Byte budget of the throughput queues: the library's default.
const QUEUE_BYTES: usize = mproc::DEFAULT_MAX_BYTES;

/// `mproc bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Time per measurement, split over its runs (500ms, 2s; plain numbers are seconds).
    #[arg(long, value_name = "S", default_value = "1", value_parser = parse_secs)]
    seconds: Secs,
}

/// What a worker process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Role {
    /// Put messages for a while, then one empty end marker.
    Produce,
    /// Take messages until the end markers of every producer arrived.
    Consume,
    /// Take each message from `a` and put it back on `b`.
    Echo,
    /// Take and release the lock for a while.
    Lock,
    /// Buy tickets from a JSON file under the lock.
    Ticket,
}

/// One worker of `mproc bench` (hidden `__bench-worker` subcommand).
#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    /// The worker's job.
    #[arg(long, value_enum)]
    role: Role,
    /// Message size in bytes.
    #[arg(long, default_value_t = 8)]
    size: usize,
    /// Put and take in batches.
    #[arg(long)]
    batched: bool,
    /// Milliseconds to run (producers, lock workers).
    #[arg(long, default_value_t = 100)]
    millis: u64,
    /// Producers whose end markers a consumer waits for; buy attempts for a ticket buyer.
    #[arg(long, default_value_t = 1)]
    count: u64,
    /// The ticket file.
    #[arg(long)]
    file: Option<PathBuf>,
}

/// `put` with the message's borrow kept out of the error.
fn put(q: &ByteQueue, msg: &[u8]) -> anyhow::Result<()> {
    q.put(msg)
        .map_err(|e| anyhow::anyhow!("bench put: {}", e.kind()))
}

/// Wall-clock nanoseconds: comparable between processes.
fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A temporary namespace with the start queues and the worker processes.
struct Stage {
    dir: tempfile::TempDir,
    ns: Namespace,
    ready: ByteQueue,
    go: ByteQueue,
    kids: Children,
}

impl Stage {
    fn new() -> anyhow::Result<Stage> {
        let dir = temp_dir("mproc-bench-")?;
        let ns = Namespace::dir(dir.path()).context("bench namespace")?;
        let ready = ByteQueue::create_in(&ns, "ready", QueueOptions::new())?;
        let go = ByteQueue::create_in(&ns, "go", QueueOptions::new())?;
        Ok(Stage {
            dir,
            ns,
            ready,
            go,
            kids: Children::default(),
        })
    }

    fn spawn(&mut self, role: Role, extra: &[String]) -> anyhow::Result<()> {
        let mut cmd = self_command(self.dir.path())?;
        cmd.arg("-qq")
            .arg("__bench-worker")
            .arg("--role")
            .arg(role.to_possible_value().expect("named role").get_name())
            .args(extra)
            .stdout(Stdio::piped());
        let label = format!("bench worker {}", self.kids.list.len());
        self.kids.spawn(label, &mut cmd)?;
        Ok(())
    }

    /// Waits until every worker is ready, then starts them all.
    fn start(&self) -> anyhow::Result<()> {
        for _ in 0..self.kids.list.len() {
            self.ready
                .get_timeout(Duration::from_secs(30))
                .context("a bench worker did not start")?;
        }
        self.go.close();
        Ok(())
    }

    /// Waits for every worker; returns each one's stdout as numbers.
    fn finish(&mut self) -> anyhow::Result<Vec<Vec<u64>>> {
        let mut outs = Vec::new();
        for (label, child) in std::mem::take(&mut self.kids.list) {
            let out = child.wait_with_output()?;
            if !out.status.success() {
                bail!("{label} failed: {}", out.status);
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let nums = text
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<Vec<u64>, _>>()
                .with_context(|| format!("{label} printed {text:?}"))?;
            outs.push(nums);
        }
        Ok(outs)
    }
}

/// One run of `producers` → `consumers` processes; returns (msgs/s, MB/s).
fn queue_run(
    size: usize,
    producers: usize,
    consumers: usize,
    batched: bool,
    run: Duration,
) -> anyhow::Result<(f64, f64)> {
    let mut st = Stage::new()?;
    let opts = QueueOptions::new().max_bytes(QUEUE_BYTES.max(4 * (size + 16)));
    let q = ByteQueue::create_in(&st.ns, "q", opts)?;
    let mut common = vec!["--size".to_string(), size.to_string()];
    if batched {
        common.push("--batched".into());
    }
    for _ in 0..producers {
        let mut a = common.clone();
        a.extend(["--millis".into(), run.as_millis().to_string()]);
        st.spawn(Role::Produce, &a)?;
    }
    for _ in 0..consumers {
        let mut a = common.clone();
        a.extend(["--count".into(), producers.to_string()]);
        st.spawn(Role::Consume, &a)?;
    }
    st.start()?;
    let outs = st.finish()?;
    let (prod, cons) = outs.split_at(producers);
    let sent: u64 = prod.iter().map(|v| v[0]).sum();
    let got: u64 = cons.iter().map(|v| v[0]).sum();
    if sent != got || !q.is_empty() {
        bail!("queue bench: {got} messages received, {sent} sent");
    }
    let start = prod.iter().map(|v| v[1]).min().unwrap_or(0);
    let end = cons.iter().map(|v| v[1]).max().unwrap_or(0);
    let secs = (end.saturating_sub(start)).max(1) as f64 / 1e9;
    Ok((got as f64 / secs, (got * size as u64) as f64 / secs / 1e6))
}

/// One ping-pong run; returns (median µs, mean µs, CPU µs of both processes
/// per round trip, 99th percentile µs).
fn roundtrip_run(run: Duration) -> anyhow::Result<(f64, f64, f64, f64)> {
    let mut st = Stage::new()?;
    let a = ByteQueue::create_in(&st.ns, "a", QueueOptions::new())?;
    let b = ByteQueue::create_in(&st.ns, "b", QueueOptions::new())?;
    st.spawn(Role::Echo, &[])?;
    st.start()?;
    let msg = [0xA5u8; 8];
    let mut buf = Vec::with_capacity(8);
    for _ in 0..200 {
        put(&a, &msg)?;
        b.get_into(&mut buf)?;
    }
    let cpu0 = self_cpu();
    let mut samples = Vec::with_capacity(100_000);
    let t0 = Instant::now();
    while t0.elapsed() < run && samples.len() < 1_000_000 {
        let t = Instant::now();
        put(&a, &msg)?;
        b.get_into(&mut buf)?;
        samples.push(t.elapsed().as_nanos() as f64 / 1e3);
    }
    let wall = t0.elapsed();
    let my_cpu = self_cpu().saturating_sub(cpu0);
    put(&a, &[])?;
    let outs = st.finish()?;
    // The echo process reports the CPU it used while echoing.
    let kid_cpu = outs.first().and_then(|v| v.first()).copied().unwrap_or(0);
    let n = samples.len().max(1) as f64;
    let mean_us = wall.as_secs_f64() * 1e6 / n;
    samples.sort_by(f64::total_cmp);
    let p99 = samples
        .get((samples.len() * 99 / 100).min(samples.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0);
    Ok((
        median(samples),
        mean_us,
        (my_cpu + kid_cpu) as f64 / 1e3 / n,
        p99,
    ))
}

/// CPU time (user + system) of this process, in ns.
fn self_cpu() -> u64 {
    sys::process_cpu_time().map_or(0, |d| d.as_nanos() as u64)
}

/// Lock + unlock in this process alone; returns ops/s.
fn lock_uncontended_run(run: Duration) -> anyhow::Result<f64> {
    let st = Stage::new()?;
    let lock = Lock::create_in(&st.ns, "lock")?;
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed() < run {
        for _ in 0..256 {
            let g = lock.lock().map_err(|e| anyhow::anyhow!("lock: {e}"))?;
            drop(std::hint::black_box(g));
        }
        n += 256;
    }
    Ok(n as f64 / t0.elapsed().as_secs_f64())
}

/// Two processes taking and releasing one lock; returns (ops/s of both
/// together, the smaller process's share of the acquisitions, the longest
/// wait in ms: the longest batch of 64 acquisitions of either process).
fn lock_2procs_run(run: Duration) -> anyhow::Result<(f64, f64, f64)> {
    let mut st = Stage::new()?;
    let _lock = Lock::create_in(&st.ns, "lock")?;
    for _ in 0..2 {
        st.spawn(
            Role::Lock,
            &["--millis".into(), run.as_millis().to_string()],
        )?;
    }
    st.start()?;
    let outs = st.finish()?;
    let ops: u64 = outs.iter().map(|v| v[0]).sum();
    let start = outs.iter().map(|v| v[1]).min().unwrap_or(0);
    let end = outs.iter().map(|v| v[2]).max().unwrap_or(0);
    let least = outs.iter().map(|v| v[0]).min().unwrap_or(0);
    let longest = outs.iter().map(|v| v[3]).max().unwrap_or(0);
    Ok((
        ops as f64 / ((end.saturating_sub(start)).max(1) as f64 / 1e9),
        least as f64 / ops.max(1) as f64,
        longest as f64 / 1e6,
    ))
}

/// The ticket loop: 4 processes × 10,000 attempts on 20,000 tickets in a
/// JSON file on tmpfs, each attempt under the lock; returns buys/s.
fn tickets_run() -> anyhow::Result<f64> {
    const PROCS: usize = 4;
    const ATTEMPTS: u64 = 10_000;
    const TICKETS: u64 = 20_000;
    let mut st = Stage::new()?;
    let _lock = Lock::create_in(&st.ns, "tickets")?;
    let file = st.dir.path().join("tickets.json");
    std::fs::write(&file, json!({ "count": TICKETS }).to_string())
        .with_context(|| format!("writing {}", file.display()))?;
    for _ in 0..PROCS {
        let mut a = vec!["--count".to_string(), ATTEMPTS.to_string(), "--file".into()];
        a.push(file.to_string_lossy().into_owned());
        st.spawn(Role::Ticket, &a)?;
    }
    st.start()?;
    let outs = st.finish()?;
    let sold: u64 = outs.iter().map(|v| v[0]).sum();
    let left = read_count(&file)?;
    if sold != TICKETS || left != 0 {
        bail!("ticket bench: {sold} sold, {left} left of {TICKETS}");
    }
    let start = outs.iter().map(|v| v[1]).min().unwrap_or(0);
    let end = outs.iter().map(|v| v[2]).max().unwrap_or(0);
    Ok(sold as f64 / ((end.saturating_sub(start)).max(1) as f64 / 1e9))
}

fn read_count(file: &Path) -> anyhow::Result<u64> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let v: Value = serde_json::from_slice(&bytes)?;
    v["count"].as_u64().context("ticket file without a count")
}

/// Python's `multiprocessing.Queue`, 1 → 1 process, 8-byte `bytes`;
/// `None` when there is no working `python3`.
fn python_queue_run(messages: u64) -> Option<f64> {
    const SCRIPT: &str = r#"
import multiprocessing as mp, sys, time
ctx = mp.get_context("fork")
def produce(q, n, go):
    m = b"x" * 8
    go.wait()
    for _ in range(n):
        q.put(m)
if __name__ == "__main__":
    n = int(sys.argv[1])
    q, go = ctx.Queue(), ctx.Event()
    p = ctx.Process(target=produce, args=(q, n, go))
    p.start()
    time.sleep(0.05)
    t0 = time.perf_counter()
    go.set()
    for _ in range(n):
        q.get()
    dt = time.perf_counter() - t0
    p.join()
    print(n / dt)
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(messages.to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Runs `f` [`RUNS`] times and returns the median.
fn med_of(mut f: impl FnMut() -> anyhow::Result<f64>) -> anyhow::Result<f64> {
    let mut v = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        v.push(f()?);
    }
    Ok(median(v))
}

/// Runs `mproc bench`.
pub(crate) fn run(ctx: &Ctx, args: &BenchArgs) -> anyhow::Result<u8> {
    let total = args.seconds.0.unwrap_or(Duration::from_secs(1));
    let run = (total / RUNS as u32).max(Duration::from_millis(20));
    let say = |what: &str| {
        if !ctx.json && ctx.verbosity >= 0 {
            ctx::err_line(&format!("mproc bench: {what}"));
        }
    };
    let mut res = serde_json::Map::new();
    let mut put = |k: &str, v: Value| {
        res.insert(k.to_string(), v);
    };

    say("queue 1 -> 1, 8 B");
    put(
        "queue_1to1_8b_msgs_per_s",
        json!(med_of(|| Ok(queue_run(8, 1, 1, false, run)?.0))?),
    );
    put(
        "queue_1to1_8b_batched_msgs_per_s",
        json!(med_of(|| Ok(queue_run(8, 1, 1, true, run)?.0))?),
    );
    say("queue 4 -> 2, 8 B");
    put(
        "queue_4to2_8b_msgs_per_s",
        json!(med_of(|| Ok(queue_run(8, 4, 2, false, run)?.0))?),
    );
    put(
        "queue_4to2_8b_batched_msgs_per_s",
        json!(med_of(|| Ok(queue_run(8, 4, 2, true, run)?.0))?),
    );
    say("queue 1 -> 1, 64 KiB");
    put(
        "queue_1to1_64k_mb_per_s",
        json!(med_of(|| Ok(queue_run(65536, 1, 1, false, run)?.1))?),
    );
    say("round trip");
    let (mut mean, mut cpu, mut p99) = (Vec::new(), Vec::new(), Vec::new());
    let rt = med_of(|| {
        let (m, a, c, p) = roundtrip_run(run)?;
        mean.push(a);
        cpu.push(c);
        p99.push(p);
        Ok(m)
    })?;
    put("roundtrip_8b_us", json!(rt));
    put("roundtrip_8b_p99_us", json!(median(p99)));
    put("roundtrip_8b_mean_us", json!(median(mean)));
    // CPU time of both processes per round trip: at most twice the mean
    // round trip when both spin the whole time.
    put("roundtrip_8b_cpu_us", json!(median(cpu)));
    say("lock");
    put(
        "lock_uncontended_ops_per_s",
        json!(med_of(|| lock_uncontended_run(run))?),
    );
    let (mut share, mut longest) = (Vec::new(), Vec::new());
    let lock2 = med_of(|| {
        let (ops, s, l) = lock_2procs_run(run)?;
        share.push(s);
        longest.push(l);
        Ok(ops)
    })?;
    put("lock_2procs_ops_per_s", json!(lock2));
    // Fairness of those runs: the smaller process's share (0.5 is even)
    // and the longest wait.
    put("lock_2procs_min_share", json!(median(share)));
    put("lock_longest_wait_ms", json!(median(longest)));
    say("tickets 4 x 10,000");
    put("tickets_4x10k_buys_per_s", json!(med_of(tickets_run)?));
    say("python3 multiprocessing.Queue");
    // About as long as one mproc run: Python moves ~0.1-0.3 M messages/s.
    let py_msgs = ((run.as_secs_f64() * 200_000.0) as u64).clamp(2_000, 1_000_000);
    let py: Vec<f64> = (0..RUNS)
        .filter_map(|_| python_queue_run(py_msgs))
        .collect();
    put(
        "python_queue_1to1_8b_msgs_per_s",
        if py.is_empty() {
            Value::Null
        } else {
            json!(median(py))
        },
    );
    put("runs", json!(RUNS));
    put("seconds_per_run", json!(run.as_secs_f64()));

    if ctx.json {
        ctx::out_json(&Value::Object(res))?;
        return Ok(0);
    }
    let fmt = |k: &str| match res.get(k).and_then(Value::as_f64) {
        None => "-".to_string(),
        Some(x) if x >= 1e6 => format!("{:.2} M", x / 1e6),
        Some(x) if x >= 1e3 => format!("{:.1} k", x / 1e3),
        Some(x) => format!("{x:.2}"),
    };
    let rows: Vec<Vec<String>> = [
        (
            "queue 1->1, 8 B, put/get (msg/s)",
            "queue_1to1_8b_msgs_per_s",
        ),
        (
            "queue 1->1, 8 B, batched (msg/s)",
            "queue_1to1_8b_batched_msgs_per_s",
        ),
        (
            "queue 4->2, 8 B, put/get (msg/s)",
            "queue_4to2_8b_msgs_per_s",
        ),
        (
            "queue 4->2, 8 B, batched (msg/s)",
            "queue_4to2_8b_batched_msgs_per_s",
        ),
        ("queue 1->1, 64 KiB (MB/s)", "queue_1to1_64k_mb_per_s"),
        ("round trip, 8 B (us)", "roundtrip_8b_us"),
        ("round trip, 8 B, p99 (us)", "roundtrip_8b_p99_us"),
        ("round trip, 8 B, mean (us)", "roundtrip_8b_mean_us"),
        ("round trip CPU, both processes (us)", "roundtrip_8b_cpu_us"),
        ("lock, 1 process (ops/s)", "lock_uncontended_ops_per_s"),
        ("lock, 2 processes (ops/s)", "lock_2procs_ops_per_s"),
        ("lock, 2 processes, smaller share", "lock_2procs_min_share"),
        (
            "lock, 2 processes, longest wait (ms)",
            "lock_longest_wait_ms",
        ),
        (
            "tickets 4x10k, JSON on tmpfs (buys/s)",
            "tickets_4x10k_buys_per_s",
        ),
        (
            "python3 mp.Queue 1->1, 8 B (msg/s)",
            "python_queue_1to1_8b_msgs_per_s",
        ),
    ]
    .iter()
    .map(|(label, k)| vec![label.to_string(), fmt(k)])
    .collect();
    ctx::out_table(ctx, &["MEASUREMENT", "MEDIAN"], &rows)?;
    Ok(0)
}

/// Worker side: `__bench-worker`.
pub(crate) fn worker(ctx: &Ctx, args: &WorkerArgs) -> anyhow::Result<u8> {
    let ns = ctx.ns()?;
    let ready = ByteQueue::open_in(&ns, "ready")?;
    let go = ByteQueue::open_in(&ns, "go")?;
    let wait_go = || -> anyhow::Result<()> {
        ready.put(b"1")?;
        match go.get() {
            Err(GetError::Closed) => Ok(()),
            Ok(_) => bail!("unexpected message on the go queue"),
            Err(e) => Err(e.into()),
        }
    };
    let line = match args.role {
        Role::Produce => {
            let q = ByteQueue::open_in(&ns, "q")?;
            let payload = vec![0xA5u8; args.size];
            let batch: Vec<&[u8]> = vec![&payload[..]; PUT_BATCH];
            wait_go()?;
            let start = now_ns();
            let end = Instant::now() + Duration::from_millis(args.millis);
            let mut n = 0u64;
            loop {
                if args.batched {
                    q.put_many(&batch)
                        .map_err(|e| anyhow::anyhow!("put_many: {e}"))?;
                    n += PUT_BATCH as u64;
                } else {
                    for _ in 0..8 {
                        put(&q, &payload)?;
                    }
                    n += 8;
                }
                if Instant::now() >= end {
                    break;
                }
            }
            put(&q, &[])?;
            format!("{n} {start}")
        }
        Role::Consume => {
            let q = ByteQueue::open_in(&ns, "q")?;
            let markers = ByteQueue::open_or_create_in(&ns, "markers", QueueOptions::new())?;
            wait_go()?;
            let mut n = 0u64;
            let bad = Cell::new(false);
            let last_marker = Cell::new(false);
            // Returns how many payload messages `m` counts for.
            let on_msg = |m: &[u8]| -> u64 {
                if m.is_empty() {
                    // End markers are counted across consumers in a queue of
                    // their own; whoever sees the last one closes `q`.
                    let _ = markers.put(b"m");
                    if markers.len() as u64 >= args.count {
                        last_marker.set(true);
                    }
                    0
                } else if m.len() != args.size {
                    bad.set(true);
                    0
                } else {
                    1
                }
            };
            let mut buf = Vec::with_capacity(args.size);
            loop {
                let r = if args.batched {
                    let mut k = 0;
                    q.get_many_with(GET_BATCH, |m| k += on_msg(m))
                        .map(|_| n += k)
                } else {
                    q.get_into(&mut buf).map(|()| n += on_msg(&buf))
                };
                match r {
                    Ok(()) => {}
                    Err(GetError::Closed) => break,
                    Err(e) => return Err(e.into()),
                }
                if last_marker.get() {
                    q.close();
                    break;
                }
            }
            if bad.get() {
                bail!("a message of the wrong size arrived");
            }
            format!("{n} {}", now_ns())
        }
        Role::Echo => {
            let a = ByteQueue::open_in(&ns, "a")?;
            let b = ByteQueue::open_in(&ns, "b")?;
            let mut buf = Vec::with_capacity(8);
            wait_go()?;
            let cpu0 = self_cpu();
            loop {
                a.get_into(&mut buf)?;
                if buf.is_empty() {
                    break;
                }
                put(&b, &buf)?;
            }
            format!("{}", self_cpu().saturating_sub(cpu0))
        }
        Role::Lock => {
            let lock = Lock::open_in(&ns, "lock")?;
            wait_go()?;
            let start = now_ns();
            let end = Instant::now() + Duration::from_millis(args.millis);
            let (mut n, mut longest) = (0u64, Duration::ZERO);
            let mut batch = Instant::now();
            loop {
                for _ in 0..64 {
                    let g = lock.lock().map_err(|e| anyhow::anyhow!("lock: {e}"))?;
                    drop(std::hint::black_box(g));
                }
                n += 64;
                // The longest batch bounds the longest wait from above.
                let now = Instant::now();
                longest = longest.max(now - batch);
                batch = now;
                if now >= end {
                    break;
                }
            }
            format!("{n} {start} {} {}", now_ns(), longest.as_nanos())
        }
        Role::Ticket => {
            let lock = Lock::open_in(&ns, "tickets").context("opening the ticket lock")?;
            let file = args.file.clone().context("--file is required")?;
            wait_go()?;
            let start = now_ns();
            let mut sold = 0u64;
            for _ in 0..args.count {
                let _g = lock.lock().map_err(|e| anyhow::anyhow!("lock: {e}"))?;
                let left = read_count(&file)?;
                if left > 0 {
                    std::fs::write(&file, json!({ "count": left - 1 }).to_string())?;
                    sold += 1;
                }
            }
            format!("{sold} {start} {}", now_ns())
        }
    };
    ctx::out_line(&line)?;
    Ok(0)
}
