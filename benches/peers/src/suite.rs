//! One invocation's measurements: every group (`tput`, `mpmc`, `rtt`, `lock`,
//! `ticket`, `scale`) run after run, each measurement printed as one JSON
//! line.

use std::time::{Duration, Instant};

use crate::locks::{lock_contended, lock_uncontended, std_mutex, LockKind};
use crate::mp;
use crate::report::{emit, rtt_stats};
use crate::transports::{pingpong, tput, Kind};
use crate::wire::{MAX_PINGS, WARMUP_PINGS};

const SIZES: [usize; 2] = [8, 65536];

/// Runs the groups whose name contains one of the comma-separated `only`
/// (all when empty), `runs` times, each measurement lasting about `dur`.
pub fn run(runs: usize, dur: Duration, only: &str) {
    let want = |s: &str| only.is_empty() || only.split(',').any(|o| s.contains(o));
    let started = Instant::now();
    let kinds = [Kind::IpcChannel, Kind::Interprocess, Kind::Ipmpsc, Kind::UnixStream, Kind::Crossbeam];
    let lkinds =
        [LockKind::Mproc, LockKind::RawSync, LockKind::StdFileLock, LockKind::Fs4, LockKind::FdLock, LockKind::NamedLock];
    let progress = |r: usize, what: &str| eprint!("\rrun {}/{} {:<60}", r + 1, runs, what);

    // Runs are interleaved (outer loop = run number) so that a slow phase of the
    // shared machine hits every contender rather than one of them.
    for r in 0..runs {
        // ---- queues, 1 -> 1 ----
        if want("tput") {
            for &size in &SIZES {
                for batched in [false, true] {
                    progress(r, &format!("mproc 1->1 {size} B batched={batched}"));
                    let (m, mb) = mp::tput(size, 1, 1, batched, 0, dur);
                    let c = if batched { "mproc (put_many/get_many_with)" } else { "mproc (put/get_into)" };
                    emit(serde_json::json!({"group":"tput","contender":c,"size":size,"procs":"1->1","msgs":m,"mbs":mb}));
                }
                for &kind in kinds.iter().chain(&[Kind::Ipmpsc1M]) {
                    progress(r, &format!("{} 1->1 {size} B", kind.name()));
                    let (m, mb) = tput(kind, size, 1, dur);
                    emit(serde_json::json!({"group":"tput","contender":kind.name(),"size":size,"procs":"1->1","msgs":m,"mbs":mb}));
                }
            }
        }
        // ---- queues, 4 -> 2 (mproc is the only MPMC contender; Python's Queue comes from py_ipc.py) ----
        if want("mpmc") {
            for batched in [false, true] {
                progress(r, &format!("mproc 4->2 8 B batched={batched}"));
                let (m, _) = mp::tput(8, 4, 2, batched, 0, dur);
                let c = if batched { "mproc (put_many/get_many_with)" } else { "mproc (put/get_into)" };
                emit(serde_json::json!({"group":"tput","contender":c,"size":8,"procs":"4->2","msgs":m}));
            }
            progress(r, "ipmpsc 4->1 8 B");
            let (m, _) = tput(Kind::Ipmpsc, 8, 4, dur);
            emit(serde_json::json!({"group":"tput","contender":Kind::Ipmpsc.name(),"size":8,"procs":"4->1","msgs":m}));
        }
        // ---- round trips ----
        if want("rtt") {
            progress(r, "mproc rtt");
            let (s, cpu) = mp::pingpong(dur, MAX_PINGS, WARMUP_PINGS);
            let (med, p99) = rtt_stats(s);
            emit(serde_json::json!({"group":"rtt","contender":"mproc (2 queues, put/get_into)","size":8,"median_us":med,"p99_us":p99,"cpu_us_per_rt":cpu/1e3}));
            for &kind in &kinds {
                progress(r, &format!("{} rtt", kind.name()));
                let (med, p99) = pingpong(kind, 8, dur);
                emit(serde_json::json!({"group":"rtt","contender":kind.name(),"size":8,"median_us":med,"p99_us":p99}));
            }
        }
        // ---- locks ----
        if want("lock") {
            for &kind in &lkinds {
                progress(r, kind.name());
                let u = lock_uncontended(kind, dur);
                emit(serde_json::json!({"group":"lock","contender":kind.name(),"procs":1,"ops":u}));
                let procs: &[usize] = if matches!(kind, LockKind::Mproc | LockKind::RawSync | LockKind::StdFileLock) { &[2, 4] } else { &[2] };
                for &p in procs {
                    let (ops, sh, h, longest, _) = lock_contended(kind, p, dur);
                    emit(serde_json::json!({"group":"lock","contender":kind.name(),"procs":p,"ops":ops,"smallest_share":sh,"handoffs":h,"longest_wait_ms":longest}));
                }
            }
            progress(r, "std mutex");
            emit(serde_json::json!({"group":"lock","contender":"std::sync::Mutex (threads, in-process bound)","procs":1,"ops":std_mutex(1, dur).0}));
            let (ops, sh, h) = std_mutex(2, dur);
            emit(serde_json::json!({"group":"lock","contender":"std::sync::Mutex (threads, in-process bound)","procs":2,"ops":ops,"smallest_share":sh,"handoffs":h}));
        }
        // ---- ticket loop ----
        if want("ticket") {
            progress(r, "mproc tickets json");
            let b = mp::tickets(true, 4, 10_000, 20_000);
            emit(serde_json::json!({"group":"ticket","contender":"mproc Lock, JSON file on tmpfs","buys":b}));
            progress(r, "mproc tickets shm");
            let b = mp::tickets(false, 4, 10_000, 20_000);
            emit(serde_json::json!({"group":"ticket","contender":"mproc Lock, count in shared memory","buys":b}));
        }
        // ---- cost growth ----
        if want("scale") {
            for n in [1usize, 2, 4, 8] {
                for batched in [false, true] {
                    progress(r, &format!("mproc {n}->{n} batched={batched}"));
                    let (m, _) = mp::tput(8, n, n, batched, 0, dur);
                    emit(serde_json::json!({"group":"scale_procs","batched":batched,"n":n,"msgs":m}));
                }
            }
            for cap in [16usize, 256, 4096, 65536, 1 << 20] {
                for batched in [false, true] {
                    progress(r, &format!("mproc cap {cap} batched={batched}"));
                    let (m, _) = mp::tput(8, 1, 1, batched, cap, dur);
                    emit(serde_json::json!({"group":"scale_cap","batched":batched,"cap":cap,"msgs":m}));
                }
            }
        }
    }
    eprintln!("\rrust contenders: {:.1} s{:<60}", started.elapsed().as_secs_f64(), "");
}
