//! mproc beside the Rust IPC and cross-process locking crates a user would pick
//! instead, measured in the same invocation.
//!
//! Every cross-process measurement uses real OS processes: the parent re-executes
//! this same binary as `mproc-peers child ...` (no fork of a threaded process).
//! The in-process rows (crossbeam-channel, std Mutex) use threads and are only
//! there as an upper bound.
//!
//! Usage: `mproc-peers [--runs N] [--dur-ms MS] [--only SUBSTR]`
//! Prints progress to stderr and one JSON object per measurement on stdout
//! (`report.py` turns them, with the C and Python baselines, into tables).
//!
//! `main` parses the arguments and runs either the measurements (`suite`) or
//! one child's part. The contenders: `transports` (the Rust IPC crates and
//! std's Unix socket, over the traits and loops of `wire`), `locks` (the
//! cross-process lock crates and std's Mutex), `mp` (mproc's queues, lock and
//! ticket loop). Shared: `proc` (child processes, scratch paths), `shm` (the
//! mapping parent and children meet in), `report` (JSON lines, round-trip
//! statistics) and `sys` (the calls into libc).

mod locks;
mod mp;
mod proc;
mod report;
mod shm;
mod suite;
mod sys;
mod transports;
mod wire;

use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        match args[2].as_str() {
            "lock" => locks::child_lock(&args[3], &args[4], &args[5], &args[6]),
            "mq" | "ticket" => mp::child(&args[2..]),
            _ => transports::child_transport(&args[2], &args[3], &args[4], &args[5..]),
        }
        return;
    }

    let mut runs = 1usize;
    let mut dur = Duration::from_millis(200);
    let mut only = String::new();
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--runs" => {
                runs = args[i + 1].parse().unwrap();
                i += 1;
            }
            "--dur-ms" => {
                dur = Duration::from_millis(args[i + 1].parse().unwrap());
                i += 1;
            }
            "--only" => {
                only = args[i + 1].clone();
                i += 1;
            }
            a => panic!("unknown argument {a}"),
        }
        i += 1;
    }
    suite::run(runs, dur, &only);
}
