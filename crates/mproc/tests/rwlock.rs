//! The readers-writer lock on shared memory: what the conformance suite
//! does not cover (holdings kept across exec, re-entry refused, anonymous
//! locks handed to children, PID reuse).

mod common;

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{timed, JOIN};
use mproc::{LockError, Namespace, Process, RwLock};

const ROLE: &str = "MPROC_RWLOCK_TEST_ROLE";

/// The child roles: take the lock, keep it until exit, and become
/// `sleep 0.6` (as `mproc lock -F` does).
#[test]
fn child_role() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let ns = Namespace::from_env().unwrap();
    let rw = RwLock::open_in(&ns, "rw").unwrap();
    match role.as_str() {
        "write_then_exec" => rw.write().unwrap().keep_until_exit().unwrap(),
        "read_then_exec" => {
            // The read share of the main thread only survives exec: this
            // test thread's is refused.
            let e = rw.read().unwrap().keep_until_exit().unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
            std::process::exit(0);
        }
        r => panic!("unknown role {r}"),
    }
    let e = Command::new("sleep").arg("0.6").exec();
    panic!("exec: {e}");
}

fn spawn_role(dir: &std::path::Path, role: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_role", "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env("MPROC_DIR", dir)
        .spawn()
        .unwrap()
}

#[test]
fn a_write_kept_across_exec_lasts_until_the_program_ends() {
    let (dir, ns) = common::namespace();
    let rw = RwLock::create_in(&ns, "rw").unwrap();
    let mut child = spawn_role(dir.path(), "write_then_exec");
    let t = Instant::now();
    while rw.writer().is_none() {
        assert!(t.elapsed() < JOIN, "the child never wrote");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Give it time to exec: the holding must survive that.
    std::thread::sleep(Duration::from_millis(200));
    assert!(rw.try_read().unwrap_err().is_would_block());
    assert!(rw.try_write().unwrap_err().is_would_block());
    assert_eq!(rw.writer().unwrap().pid, child.id());
    // A waiting writer gets it when `sleep` ends, told of a clean release.
    let (r, d) = timed(|| rw.write_timeout(JOIN).map(drop));
    r.unwrap_or_else(|e| panic!("expected a clean grant: {e:?}"));
    assert!(d >= Duration::from_millis(200), "granted after {d:?}");
    assert!(child.wait().unwrap().success());
    drop(rw.try_read().unwrap());
}

#[test]
fn a_read_kept_across_exec_needs_the_main_thread() {
    let (dir, ns) = common::namespace();
    let rw = RwLock::create_in(&ns, "rw").unwrap();
    let mut child = spawn_role(dir.path(), "read_then_exec");
    assert!(child.wait().unwrap().success());
    drop(rw.try_write().unwrap());
}

#[test]
fn reentry_is_an_error_not_a_deadlock() {
    let rw = RwLock::new().unwrap();
    let r = rw.read().unwrap();
    assert!(matches!(rw.write(), Err(LockError::Io(_))));
    let (w, d) = timed(|| rw.write_timeout(Duration::from_millis(150)).map(drop));
    assert!(w.unwrap_err().is_would_block());
    assert!(d >= Duration::from_millis(140));
    drop(r);
    let w = rw.write().unwrap();
    assert!(matches!(rw.read(), Err(LockError::Io(_))));
    assert!(rw.try_read().unwrap_err().is_would_block());
    drop(w);
}

#[test]
fn an_anonymous_rwlock_is_handed_to_a_child() {
    let rw = RwLock::new().unwrap();
    assert_eq!(rw.name(), None);
    let g = rw.write().unwrap();
    let mut child = Process::spawn(rw.clone(), |rw: RwLock| {
        let t = Instant::now();
        drop(rw.read_timeout(Duration::from_secs(30)).unwrap());
        t.elapsed().as_millis() as u64
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(rw.waiting_readers(), 1);
    drop(g);
    assert!(child.join_timeout(JOIN).unwrap() >= 200);
}

#[test]
fn many_readers_and_more_than_the_slots_wait() {
    let rw = RwLock::new().unwrap();
    let guards: Vec<_> = (0..RwLock::MAX_READERS)
        .map(|_| {
            let rw = rw.clone();
            std::thread::spawn(move || {
                // Each thread holds its share until told.
                let g = rw.read().unwrap();
                std::thread::park();
                drop(g);
            })
        })
        .collect();
    let t = Instant::now();
    while rw.readers().len() < RwLock::MAX_READERS {
        assert!(t.elapsed() < JOIN);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(rw.try_read().unwrap_err().is_would_block());
    let waiting = {
        let rw = rw.clone();
        std::thread::spawn(move || rw.read_timeout(JOIN).map(drop).is_ok())
    };
    std::thread::sleep(Duration::from_millis(100));
    guards[0].thread().unpark();
    assert!(waiting.join().unwrap());
    for g in guards {
        g.thread().unpark();
        g.join().unwrap();
    }
    drop(rw.try_write().unwrap());
}

#[test]
fn kinds_do_not_mix() {
    let (_dir, ns) = common::namespace();
    let _rw = RwLock::create_in(&ns, "rw").unwrap();
    assert!(matches!(
        mproc::Lock::open_in(&ns, "rw"),
        Err(mproc::OpenError::WrongKind {
            found: mproc::ObjectKind::RwLock,
            ..
        })
    ));
    assert_eq!(ns.list().unwrap()[0].kind, Some(mproc::ObjectKind::RwLock));
    assert!(RwLock::create_in(&ns, "rw").is_err());
    assert!(RwLock::open_in(&ns, "../x").is_err());
}

/// A stream of writers (two processes writing back to back, so the write
/// lock passes from one to the other) does not starve a reader: a writer
/// that releases while readers wait lets them in before the next writer.
#[test]
fn a_stream_of_writers_does_not_starve_readers() {
    let (dir, ns) = common::namespace();
    let rw = RwLock::create_in(&ns, "rw").unwrap();
    let stop = dir.path().join("stop");
    let mut writers: Vec<_> = (0..2)
        .map(|_| {
            Process::spawn(
                (rw.clone(), stop.clone()),
                |(rw, stop): (RwLock, std::path::PathBuf)| {
                    let mut n = 0u32;
                    while !stop.exists() {
                        let g = rw.write_timeout(Duration::from_secs(30)).unwrap();
                        std::thread::sleep(Duration::from_millis(30));
                        drop(g);
                        n += 1;
                    }
                    n
                },
            )
            .unwrap()
        })
        .collect();
    let t = Instant::now();
    while rw.waiting_writers().is_empty() && t.elapsed() < JOIN {
        std::thread::sleep(Duration::from_millis(5));
    }
    let waits: Vec<_> = (0..5)
        .map(|_| timed(|| rw.read_timeout(Duration::from_secs(10)).map(drop).is_ok()))
        .collect();
    std::fs::write(&stop, "").unwrap();
    for w in &mut writers {
        if w.join_timeout(Duration::from_secs(20)).is_err() {
            let _ = w.kill();
        }
    }
    for (ok, d) in waits {
        assert!(ok, "the reader starved");
        // A writer's hold (30 ms) or two, not the whole stream.
        assert!(d < Duration::from_secs(2), "the reader waited {d:?}");
    }
}

/// Whether process `pid` still runs (not a zombie).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, a)| a.split_whitespace().next().map(str::to_owned))
        })
        .is_some_and(|st| st != "Z" && st != "X")
}

/// Whether `pid` still runs 200 ms from now: a holder killed an instant
/// ago may still be exiting (the kernel hands its lock to a sleeping
/// waiter during its exit, before it is a zombie).
fn really_running(pid: u32) -> bool {
    let t = Instant::now();
    while running(pid) {
        if t.elapsed() > Duration::from_millis(200) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

/// One worker of the random-kill test: reads and writes at random and
/// checks, inside, that no live writer (for a reader) or no live holder
/// (for a writer) is there too; a violation is written to `bad`.
fn worker((rw, dir, seed): (RwLock, std::path::PathBuf, u64)) {
    let me = std::process::id();
    let state = dir.join("state");
    let bad = |what: String| {
        let _ = std::fs::write(dir.join(format!("bad-{me}")), what);
    };
    let mut x = seed | 1;
    loop {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if x % 3 == 0 {
            let g = match rw.write_timeout(Duration::from_secs(20)) {
                Ok(g) => g,
                Err(LockError::OwnerDied(d)) => d.into_inner(),
                Err(e) => return bad(format!("write: {e}")),
            };
            let s = std::fs::read_to_string(&state).unwrap_or_default();
            if let Some(pid) = s.strip_prefix('W').and_then(|p| p.parse::<u32>().ok()) {
                if really_running(pid) {
                    bad(format!("writer {me} found live writer {pid}"));
                }
            }
            for e in std::fs::read_dir(&dir).unwrap().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("r-").and_then(|p| p.parse::<u32>().ok()) {
                    if really_running(pid) {
                        bad(format!("writer {me} found live reader {pid}"));
                    } else {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
            std::fs::write(&state, format!("W{me}")).unwrap();
            std::thread::sleep(Duration::from_micros(x % 2000));
            if std::fs::read_to_string(&state).unwrap_or_default() != format!("W{me}") {
                bad(format!("writer {me} was overwritten"));
            }
            std::fs::write(&state, "free").unwrap();
            drop(g);
        } else {
            let g = match rw.read_timeout(Duration::from_secs(20)) {
                Ok(g) => g,
                Err(LockError::OwnerDied(d)) => d.into_inner(),
                Err(e) => return bad(format!("read: {e}")),
            };
            let mark = dir.join(format!("r-{me}"));
            std::fs::write(&mark, "").unwrap();
            let s = std::fs::read_to_string(&state).unwrap_or_default();
            if let Some(pid) = s.strip_prefix('W').and_then(|p| p.parse::<u32>().ok()) {
                if really_running(pid) {
                    bad(format!("reader {me} found live writer {pid}"));
                }
            }
            std::thread::sleep(Duration::from_micros(x % 1000));
            let _ = std::fs::remove_file(&mark);
            drop(g);
        }
    }
}

/// Readers and writers SIGKILLed at random for a few seconds: no reader
/// ever overlaps a live writer, no two writers overlap, nobody waits past
/// its timeout, and afterwards the lock is whole (writable at once, no
/// reader or waiter counted).
#[test]
fn random_kills_never_break_exclusion_or_wedge() {
    let (dir, ns) = common::namespace();
    let rw = RwLock::create_in(&ns, "rw").unwrap();
    let work = tempfile::tempdir().unwrap();
    let spawn =
        |seed: u64| Process::spawn((rw.clone(), work.path().to_owned(), seed), worker).unwrap();
    let mut workers: Vec<Process<()>> = (0..4).map(|i| spawn(i * 7919 + 1)).collect();
    let end = Instant::now() + Duration::from_secs(6);
    let mut seed = 12345u64;
    let mut kills = 0;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(40 + seed % 80));
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let i = (seed >> 33) as usize % workers.len();
        let _ = workers[i].kill();
        let _ = workers[i].join_timeout(Duration::from_secs(5));
        workers[i] = spawn(seed);
        kills += 1;
    }
    for w in &mut workers {
        let _ = w.kill();
        let _ = w.join_timeout(Duration::from_secs(5));
    }
    let bad: Vec<String> = std::fs::read_dir(work.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("bad-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(bad.is_empty(), "after {kills} kills: {bad:?}");
    let (g, d) = timed(|| rw.write_timeout(Duration::from_secs(3)));
    match g {
        Ok(g) => drop(g),
        Err(LockError::OwnerDied(o)) => drop(o.into_inner()),
        Err(e) => panic!("wedged after {kills} kills: {e:?}"),
    }
    assert!(d < Duration::from_millis(2500), "took {d:?}");
    assert!(rw.readers().is_empty() && rw.waiting_writers().is_empty());
    assert_eq!(rw.waiting_readers(), 0);
    drop(dir);
}
