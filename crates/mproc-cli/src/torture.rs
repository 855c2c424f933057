//! `mproc torture`: producers, consumers and lock users run while random ones
//! are SIGKILLed at random instants (holding the lock, mid-put, mid-get,
//! mid-ack) and restarted; then everything that happened is checked.
//!
//! Every worker appends one line per event to its own ledger file (one
//! `write` per line; a kill can cut only the last line of a dead worker's
//! ledger, which the check leaves out):
//!
//! ```text
//! producer   P <item>            after put returned: an acknowledged put
//! consumer   G <item> <n>        after a leased get (n-th delivery)
//!            A <item>            after the ack returned
//! lock user  B <v>               inside the lock, before writing v = counter + 1
//!            D <v>               after the unlock: a completed critical section
//! ```
//!
//! Checks: every acknowledged put was delivered (`lost`); no item was
//! acknowledged twice or delivered after its acknowledgement
//! (`duplicated_beyond_redelivery`); no two completed critical sections
//! wrote the same counter value, and the counter is not behind them
//! (`lost_updates`); every worker alive after the last kill made progress
//! within a second (`wedged`); the queue's counters match its contents.
//!
//! `--hog N` runs N busy processes beside the workers, so that kills land
//! while workers are preempted mid-operation (a quiet machine almost never
//! shows those instants); kills come at a wide spread of instants, from
//! tens of microseconds to tens of milliseconds apart. A run with any
//! anomaly keeps its directory (ledgers, namespace) and reports which
//! workers were wedged with the queue's and the lock's state.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use clap::Args;
use mproc::{ByteQueue, GetError, Lock, LockError, Namespace, QueueOptions};
use serde_json::json;

use crate::args::parse_secs_f64;
use crate::child::{self_command, temp_dir};
use crate::ctx::Ctx;
use crate::exit::{self, Failure};
use crate::rng::Rng;

const QUEUE: &str = "torture";
const LOCK: &str = "torture.lock";

/// `mproc torture`.
#[derive(Debug, Args)]
pub(crate) struct TortureArgs {
    /// How long to kill and restart workers (2s, 1m, ...; plain numbers are seconds).
    #[arg(long, default_value = "10", value_parser = parse_secs_f64)]
    pub(crate) seconds: f64,
    /// Producer processes.
    #[arg(long, default_value_t = 2)]
    pub(crate) producers: u32,
    /// Consumer processes.
    #[arg(long, default_value_t = 2)]
    pub(crate) consumers: u32,
    /// Lock-user processes.
    #[arg(long, default_value_t = 2)]
    pub(crate) lockers: u32,
    /// Pause of producers and lock users between operations, in
    /// microseconds (keeps the ledgers of long runs small).
    #[arg(long, default_value_t = 0)]
    pub(crate) pace_us: u64,
    /// Busy processes to run beside the workers (load, so that kills land
    /// in preempted operations).
    #[arg(long, default_value_t = 0)]
    pub(crate) hog: u32,
}

/// `mproc __torture-worker`: one worker (started by `mproc torture`).
#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    /// producer, consumer or locker.
    pub(crate) role: String,
    /// Unique id of this incarnation.
    pub(crate) id: u64,
    /// The run's directory (ledgers, counter, stop flag).
    pub(crate) run_dir: PathBuf,
    /// Pause between operations, in microseconds.
    #[arg(long, default_value_t = 0)]
    pub(crate) pace_us: u64,
}

fn fail(what: impl std::fmt::Display) -> Failure {
    Failure::new(exit::SOFTWARE, "internal", what.to_string())
}

/// Appends one ledger line with a single write.
fn note(ledger: &mut File, line: &str) -> Result<(), Failure> {
    ledger.write_all(line.as_bytes()).map_err(fail)
}

fn ledger(dir: &Path, role: &str, id: u64) -> Result<File, Failure> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("ledger.{role}.{id}")))
        .map_err(fail)
}

fn pace(us: u64) {
    if us > 0 {
        std::thread::sleep(Duration::from_micros(us));
    }
}

/// Runs one worker until told to stop (or killed).
pub(crate) fn worker(ctx: &Ctx, args: &WorkerArgs) -> anyhow::Result<u8> {
    let ns = ctx.ns()?;
    let mut log = ledger(&args.run_dir, &args.role, args.id)?;
    let stop = args.run_dir.join("stop");
    let mut rng = Rng::new();
    match args.role.as_str() {
        "producer" => {
            let q = ByteQueue::open_in(&ns, QUEUE).map_err(|e| exit::from_open(&e))?;
            for i in 0u64.. {
                let item = format!("{}:{i}", args.id);
                pace(args.pace_us);
                match q.put(item.as_bytes()) {
                    Ok(()) => note(&mut log, &format!("P {item}\n"))?,
                    Err(e) if e.is_closed() => break,
                    Err(e) => return Err(fail(e).into()),
                }
            }
        }
        "consumer" => {
            let q = ByteQueue::open_in(&ns, QUEUE).map_err(|e| exit::from_open(&e))?;
            loop {
                match q.get_leased() {
                    Ok((item, receipt)) => {
                        let item = String::from_utf8_lossy(&item).into_owned();
                        note(&mut log, &format!("G {item} {}\n", receipt.deliveries()))?;
                        if rng.unit() < 0.3 {
                            std::thread::yield_now();
                        }
                        q.ack(&receipt).map_err(fail)?;
                        note(&mut log, &format!("A {item}\n"))?;
                    }
                    Err(GetError::Closed) => break,
                    Err(e) => return Err(fail(e).into()),
                }
            }
        }
        "locker" => {
            let lock = Lock::open_in(&ns, LOCK).map_err(|e| exit::from_open(&e))?;
            let counter = OpenOptions::new()
                .read(true)
                .write(true)
                .open(args.run_dir.join("counter"))
                .map_err(fail)?;
            while !stop.exists() {
                pace(args.pace_us);
                let guard = match lock.lock() {
                    Ok(g) => g,
                    Err(LockError::OwnerDied(o)) => o.into_inner(),
                    Err(e) => return Err(fail(e).into()),
                };
                let mut buf = [0u8; 8];
                counter.read_exact_at(&mut buf, 0).map_err(fail)?;
                let v = u64::from_le_bytes(buf) + 1;
                note(&mut log, &format!("B {v}\n"))?;
                counter.write_all_at(&v.to_le_bytes(), 0).map_err(fail)?;
                drop(guard);
                note(&mut log, &format!("D {v}\n"))?;
            }
        }
        "hog" => {
            // Busy, looking at the stop flag now and then.
            let mut n = 0u64;
            while !stop.exists() {
                for _ in 0..1_000_000 {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
        }
        other => return Err(fail(format!("unknown torture role {other}")).into()),
    }
    Ok(exit::OK)
}

/// One running worker.
struct Running {
    role: &'static str,
    id: u64,
    child: Child,
}

struct Harness {
    ns_dir: PathBuf,
    dir: PathBuf,
    next_id: u64,
    pace_us: u64,
    workers: Vec<Running>,
}

impl Harness {
    fn spawn(&mut self, role: &'static str) -> Result<Running, Failure> {
        self.next_id += 1;
        let id = self.next_id;
        let mut cmd = self_command(&self.ns_dir)?;
        cmd.arg("__torture-worker")
            .arg(role)
            .arg(id.to_string())
            .arg(&self.dir)
            .arg("--pace-us")
            .arg(self.pace_us.to_string())
            .stdin(std::process::Stdio::null());
        let child = cmd.spawn().map_err(|e| {
            Failure::new(
                exit::UNAVAILABLE,
                "unavailable",
                format!("cannot start a worker: {e}"),
            )
        })?;
        Ok(Running { role, id, child })
    }

    fn ledger_len(&self, w: &Running) -> u64 {
        std::fs::metadata(self.dir.join(format!("ledger.{}.{}", w.role, w.id)))
            .map(|m| m.len())
            .unwrap_or(0)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        for w in &mut self.workers {
            let _ = w.child.kill();
            let _ = w.child.wait();
        }
    }
}

/// The verdict of a run.
#[derive(Debug, Default)]
struct Verdict {
    items_put: u64,
    items_acked: u64,
    redelivered: u64,
    lost: u64,
    duplicated: u64,
    lock_sections: u64,
    lost_updates: u64,
}

/// The lines of a ledger that were written whole. A worker killed while
/// writing a line that crosses a page boundary of its ledger can leave the
/// line's beginning (the kernel copies page by page and stops at a fatal
/// signal between pages); only a ledger's last line can be cut so, since
/// its writer is dead. The event it recorded is left out: its effects are
/// checked through the other workers' records (a put is checked by its
/// deliveries, a completed critical section by the counter).
fn complete_lines(text: &str) -> impl Iterator<Item = &str> {
    let whole = text.rfind('\n').map_or("", |end| &text[..end]);
    whole.split('\n').filter(|l| !l.is_empty())
}

fn check(dir: &Path, counter: u64) -> Result<Verdict, Failure> {
    let mut put: HashMap<String, u32> = HashMap::new();
    let mut got: HashMap<String, u32> = HashMap::new();
    let mut acked: HashMap<String, u32> = HashMap::new();
    let mut done: HashMap<u64, u32> = HashMap::new();
    for entry in std::fs::read_dir(dir).map_err(fail)? {
        let path = entry.map_err(fail)?.path();
        if !path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("ledger."))
        {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(fail)?;
        for line in complete_lines(&text) {
            let mut f = line.split(' ');
            match (f.next(), f.next()) {
                (Some("P"), Some(item)) => *put.entry(item.to_owned()).or_default() += 1,
                (Some("G"), Some(item)) => *got.entry(item.to_owned()).or_default() += 1,
                (Some("A"), Some(item)) => *acked.entry(item.to_owned()).or_default() += 1,
                (Some("D"), Some(v)) => *done.entry(v.parse().map_err(fail)?).or_default() += 1,
                _ => {}
            }
        }
    }
    let max_done = done.keys().copied().max().unwrap_or(0);
    Ok(Verdict {
        items_put: put.len() as u64,
        items_acked: acked.len() as u64,
        redelivered: got.values().filter(|&&n| n > 1).count() as u64,
        lost: put.keys().filter(|k| !got.contains_key(*k)).count() as u64,
        duplicated: acked.values().filter(|&&n| n > 1).count() as u64,
        lock_sections: done.values().map(|&n| u64::from(n)).sum(),
        lost_updates: done.values().map(|&n| u64::from(n) - 1).sum::<u64>()
            + max_done.saturating_sub(counter),
    })
}

/// Runs the torture test and prints its verdict.
pub(crate) fn run(ctx: &Ctx, args: &TortureArgs) -> anyhow::Result<u8> {
    if !(args.seconds.is_finite() && args.seconds >= 0.0) {
        return Err(Failure::new(
            exit::USAGE,
            "usage",
            "--seconds must be a non-negative number",
        )
        .into());
    }
    let tmp = temp_dir("mproc-torture-")?;
    let dir = tmp.path().to_owned();
    let ns_dir = dir.join("ns");
    let ns = Namespace::dir(&ns_dir).map_err(|e| fail(format!("namespace: {e}")))?;
    let q = ByteQueue::create_in(
        &ns,
        QUEUE,
        QueueOptions::new().maxsize(256).max_bytes(64 << 10),
    )
    .map_err(|e| exit::from_create(&e))?;
    Lock::create_in(&ns, LOCK).map_err(|e| exit::from_create(&e))?;
    std::fs::write(dir.join("counter"), 0u64.to_le_bytes()).map_err(fail)?;
    let mut h = Harness {
        ns_dir,
        dir: dir.clone(),
        next_id: 0,
        pace_us: args.pace_us,
        workers: Vec::new(),
    };
    let roles: Vec<&'static str> = std::iter::repeat_n("producer", args.producers as usize)
        .chain(std::iter::repeat_n("consumer", args.consumers as usize))
        .chain(std::iter::repeat_n("locker", args.lockers as usize))
        .collect();
    for role in &roles {
        let w = h.spawn(role)?;
        h.workers.push(w);
    }
    let mut hogs = Vec::new();
    for _ in 0..args.hog {
        hogs.push(h.spawn("hog")?);
    }
    let started = Instant::now();
    let end = started + Duration::from_secs_f64(args.seconds);
    let mut rng = Rng::new();
    let mut kills = 0u64;
    while Instant::now() < end && !h.workers.is_empty() {
        // A wide spread of instants: a third of the kills come within a
        // few hundred microseconds of the last restart (mid-start-up,
        // mid-first-operation), the rest up to 32 ms apart.
        let gap = if rng.unit() < 0.33 {
            20 + (rng.unit() * 500.0) as u64
        } else {
            1_000 + (rng.unit() * 31_000.0) as u64
        };
        std::thread::sleep(Duration::from_micros(gap));
        let i = (rng.unit() * h.workers.len() as f64) as usize % h.workers.len();
        let role = h.workers[i].role;
        let _ = h.workers[i].child.kill();
        let _ = h.workers[i].child.wait();
        kills += 1;
        h.workers[i] = h.spawn(role)?;
    }
    // After the last kill, every survivor must make progress within 1 s
    // (a busy machine gets up to 5 s in all before a worker counts as
    // wedged).
    std::thread::sleep(Duration::from_millis(100));
    let before: Vec<u64> = h.workers.iter().map(|w| h.ledger_len(w)).collect();
    let look = Instant::now();
    let stalled = |h: &Harness| -> Vec<usize> {
        (0..h.workers.len())
            .filter(|&i| h.ledger_len(&h.workers[i]) == before[i])
            .collect()
    };
    std::thread::sleep(Duration::from_secs(1));
    while !stalled(&h).is_empty() && look.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let stuck = stalled(&h);
    let mut wedged = stuck.len() as u64;
    let wedged_detail: Vec<_> = stuck
        .iter()
        .map(|&i| {
            let w = &h.workers[i];
            json!({ "role": w.role, "id": w.id, "pid": w.child.id() })
        })
        .collect();
    let lock_state = Lock::open_in(&ns, LOCK).ok().map(|l| {
        json!({
            "locked": l.is_locked(),
            "holder": l.holder().map(|h| h.pid),
            "waiters": l.waiters().iter().map(|w| w.pid).collect::<Vec<_>>(),
        })
    });
    let queue_state = format!("{:?}", q.stats());
    // Shut down: lock users see the stop flag, the queue's close ends
    // producers, and consumers once it is drained.
    tracing::info!(kills, wedged, "kill phase over; shutting down");
    std::fs::write(dir.join("stop"), b"").map_err(fail)?;
    for mut hog in hogs {
        let _ = hog.child.kill();
        let _ = hog.child.wait();
    }
    q.close();
    let grace = Instant::now() + Duration::from_secs(10);
    for w in &mut h.workers {
        loop {
            match w.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < grace => std::thread::sleep(Duration::from_millis(5)),
                _ => {
                    wedged += 1;
                    let _ = w.child.kill();
                    let _ = w.child.wait();
                    break;
                }
            }
        }
    }
    h.workers.clear();
    tracing::info!(wedged, "workers ended; draining");
    // Whatever is left (including leases of the last killed consumers) is
    // drained and recorded here.
    let mut final_log = ledger(&dir, "final", 0)?;
    loop {
        match q.get_leased_timeout(Duration::from_secs(5)) {
            Ok((item, receipt)) => {
                let item = String::from_utf8_lossy(&item).into_owned();
                note(
                    &mut final_log,
                    &format!("G {item} {}\nA {item}\n", receipt.deliveries()),
                )?;
                q.ack(&receipt).map_err(fail)?;
            }
            Err(GetError::Closed) => break,
            Err(e) => return Err(fail(format!("draining after the run: {e}")).into()),
        }
    }
    tracing::info!("drained; checking the ledgers");
    let stats = q.stats();
    let counters_ok = stats.len == 0 && stats.leased == 0 && stats.total_put == stats.total_got;
    let mut buf = [0u8; 8];
    File::open(dir.join("counter"))
        .and_then(|f| f.read_exact_at(&mut buf, 0))
        .map_err(fail)?;
    let v = check(&dir, u64::from_le_bytes(buf))?;
    let elapsed = started.elapsed().as_secs_f64();
    let clean =
        v.lost == 0 && v.duplicated == 0 && v.lost_updates == 0 && wedged == 0 && counters_ok;
    let report = json!({
        "seconds": elapsed,
        "kills": kills,
        "items_put": v.items_put,
        "items_acked": v.items_acked,
        "redelivered": v.redelivered,
        "lost": v.lost,
        "duplicated_beyond_redelivery": v.duplicated,
        "lock_sections": v.lock_sections,
        "lost_updates": v.lost_updates,
        "wedged": wedged,
        "counters_ok": counters_ok,
        "total_put": stats.total_put,
        "total_got": stats.total_got,
        "hogs": args.hog,
        "wedged_workers": wedged_detail,
        "queue_at_wedge_check": if wedged > 0 { json!(queue_state) } else { json!(null) },
        "lock_at_wedge_check": if wedged > 0 { json!(lock_state) } else { json!(null) },
        "kept_dir": if clean { json!(null) } else { json!(dir.display().to_string()) },
    });
    if !clean {
        // Keep the ledgers and the namespace for the post-mortem.
        let _ = tmp.keep();
    }
    if ctx.json {
        println!("{report}");
    } else {
        println!(
            "torture: {elapsed:.1} s, {kills} kills; {} items put and acknowledged, {} consumed and acknowledged, {} redelivered; \
             {} critical sections\nlost={} duplicated_beyond_redelivery={} lost_updates={} wedged={} counters_ok={}\n{}",
            v.items_put,
            v.items_acked,
            v.redelivered,
            v.lock_sections,
            v.lost,
            v.duplicated,
            v.lost_updates,
            wedged,
            counters_ok,
            if clean { "OK: no anomaly" } else { "FAILED: anomalies found" }
        );
    }
    Ok(if clean { exit::OK } else { exit::BUSY })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_last_line_is_left_out() {
        assert_eq!(
            complete_lines("P 1\nD 7\n").collect::<Vec<_>>(),
            ["P 1", "D 7"]
        );
        assert_eq!(complete_lines("P 1\nD ").collect::<Vec<_>>(), ["P 1"]);
        assert_eq!(complete_lines("D").count(), 0);
        assert_eq!(complete_lines("").count(), 0);
    }

    #[test]
    fn the_check_reads_ledgers_with_a_cut_line() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("ledger.producer.1"), "P a\nP b\nP").unwrap();
        std::fs::write(
            d.path().join("ledger.consumer.2"),
            "G a 1\nA a\nG b 1\nA b\n",
        )
        .unwrap();
        std::fs::write(d.path().join("ledger.locker.3"), "B 1\nD 1\nB 2\nD 2\nD ").unwrap();
        let v = check(d.path(), 2).unwrap();
        assert_eq!((v.items_put, v.items_acked, v.lost), (2, 2, 0));
        assert_eq!((v.lock_sections, v.lost_updates), (2, 0));
    }
}
