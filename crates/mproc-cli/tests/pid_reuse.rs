//! A dead holder whose pid the kernel gives to another process does not
//! wedge a lock or a queue: ownership is a (pid, start time) pair, never a
//! bare pid.
//!
//! The test forces the reuse: it SIGKILLs a holder, then asks the kernel
//! for the same pid again (`/proc/sys/kernel/ns_last_pid`, as root; else by
//! forking until the pid comes back) and keeps that unrelated process alive
//! while another process takes the lock.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Ns;

/// The tests of this file take turns: each steers the kernel's next pid.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Starts `sleep 60` as a process with pid `pid`, or `None` if the pid
/// could not be had.
///
/// Waits a few clock ticks first: a process is named by its pid and start
/// time, which the kernel counts in ticks (10 ms), and only a deliberate
/// steering of the pid counter can reuse a pid within the same tick.
fn take_pid(pid: u32) -> Option<Child> {
    std::thread::sleep(Duration::from_millis(50));
    let spawn = || {
        Command::new("sleep")
            .arg("60")
            .stdin(Stdio::null())
            .spawn()
            .unwrap()
    };
    for _ in 0..200 {
        if std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).is_err() {
            break;
        }
        let c = spawn();
        if c.id() == pid {
            return Some(c);
        }
        reap(c);
    }
    // Not root: fork until the pid counter comes round (pid_max is small).
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(120) {
        let mut c = Command::new("true").spawn().unwrap();
        let id = c.id();
        c.wait().unwrap();
        if id.wrapping_add(1) == pid {
            let c = spawn();
            if c.id() == pid {
                return Some(c);
            }
            reap(c);
        }
    }
    None
}

fn reap(mut c: Child) {
    let _ = c.kill();
    let _ = c.wait();
}

/// Kills `c` with SIGKILL and reaps it; returns its pid.
fn kill9(mut c: Child) -> u32 {
    let pid = c.id();
    c.kill().unwrap();
    c.wait().unwrap();
    pid
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(20), "{what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_lock_whose_dead_holders_pid_was_reused_is_taken_over() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = Ns::new();
    // `mproc lock` holds the lock on its main thread: its thread id is its
    // pid, which is what the reused process will have.
    let holder = ns
        .std_cmd(&["lock", "L", "--", "sleep", "60"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let ns_path = ns.dir().to_owned();
    wait_until("the holder never took the lock", || {
        let n = mproc::Namespace::dir(&ns_path).unwrap();
        mproc::RwLock::open_in(&n, "L").is_ok_and(|l| l.is_write_locked())
    });
    let pid = kill9(holder);
    let Some(impostor) = take_pid(pid) else {
        panic!("pid {pid} could not be reused");
    };
    let t = Instant::now();
    let out = ns
        .std_cmd(&["lock", "-w", "5", "L", "--", "true"])
        .output()
        .unwrap();
    let took = t.elapsed();
    reap(impostor);
    assert!(
        out.status.success(),
        "lock wedged by pid reuse: {out:?} after {took:?}"
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

#[test]
fn a_shared_holders_reused_pid_does_not_keep_its_share() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = Ns::new();
    let holder = ns
        .std_cmd(&["lock", "-s", "L", "--", "sleep", "60"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let ns_path = ns.dir().to_owned();
    let pid = holder.id();
    wait_until("the reader never took its share", || {
        let n = mproc::Namespace::dir(&ns_path).unwrap();
        mproc::RwLock::open_in(&n, "L").is_ok_and(|l| l.readers().iter().any(|r| r.pid == pid))
    });
    let pid = kill9(holder);
    let Some(impostor) = take_pid(pid) else {
        panic!("pid {pid} could not be reused");
    };
    let t = Instant::now();
    let out = ns
        .std_cmd(&["lock", "-w", "5", "L", "--", "true"])
        .output()
        .unwrap();
    let took = t.elapsed();
    reap(impostor);
    assert!(
        out.status.success(),
        "share kept by pid reuse: {out:?} after {took:?}"
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

#[cfg(feature = "crash-points")]
#[test]
fn a_queue_whose_dead_producers_pid_was_reused_takes_puts() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ns = Ns::new();
    ns.cmd().args(["queue", "create", "pq"]).assert().success();
    // A producer killed holding the put lock (after writing its payload).
    let st = ns
        .std_cmd(&["queue", "put", "pq", "lost"])
        .env("MPROC_CRASH_AT", "ring.put.payload:1")
        .status()
        .unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&st),
        Some(9),
        "{st:?}"
    );
    // Its pid: the put lock's word names its (only) thread.
    let path = ns.dir().join("pq");
    let bytes = std::fs::read(&path).unwrap();
    let pid = u32::from_le_bytes(bytes[128..132].try_into().unwrap()) & 0x3fff_ffff;
    assert_ne!(pid, 0, "the put lock is not held");
    let Some(impostor) = take_pid(pid) else {
        panic!("pid {pid} could not be reused");
    };
    let t = Instant::now();
    let out = ns
        .std_cmd(&["queue", "put", "-t", "3", "pq", "x"])
        .output()
        .unwrap();
    let took = t.elapsed();
    reap(impostor);
    assert!(out.status.success(), "put wedged by pid reuse: {out:?}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    ns.cmd()
        .args(["queue", "get", "pq"])
        .assert()
        .success()
        .stdout("x");
}
