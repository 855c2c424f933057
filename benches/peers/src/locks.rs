//! The cross-process locks as contenders: the flock-based crates, raw_sync's
//! pthread mutex in shared memory and mproc's Lock, one process alone and
//! several incrementing one shared counter; std's Mutex between threads as
//! the in-process bound.

use std::fs::{File, OpenOptions};
use std::process::Child;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::proc::{finish_child_text, ms, spawn_child, uniq};
use crate::shm::{Shm, OFF_COUNTER, OFF_GO, OFF_MUTEX, OFF_READY};

#[derive(Clone, Copy, PartialEq)]
pub enum LockKind {
    StdFileLock,
    Fs4,
    FdLock,
    NamedLock,
    RawSync,
    Mproc,
}
impl LockKind {
    pub fn name(self) -> &'static str {
        match self {
            LockKind::StdFileLock => "std File::lock (flock, std >= 1.89)",
            LockKind::Fs4 => "fs4 1.1 FileExt::lock (flock)",
            LockKind::FdLock => "fd-lock 4 RwLock::write (flock)",
            LockKind::NamedLock => "named-lock 0.4 (flock + in-proc mutex)",
            LockKind::RawSync => "raw_sync 0.1 Mutex (pthread, shm)",
            LockKind::Mproc => "mproc Lock",
        }
    }
    fn tag(self) -> &'static str {
        match self {
            LockKind::StdFileLock => "std",
            LockKind::Fs4 => "fs4",
            LockKind::FdLock => "fdlock",
            LockKind::NamedLock => "namedlock",
            LockKind::RawSync => "rawsync",
            LockKind::Mproc => "mproc",
        }
    }
    fn from_tag(t: &str) -> LockKind {
        [LockKind::StdFileLock, LockKind::Fs4, LockKind::FdLock, LockKind::NamedLock, LockKind::RawSync, LockKind::Mproc]
            .into_iter()
            .find(|k| k.tag() == t)
            .unwrap()
    }
}

pub enum AnyLock {
    Std(File),
    Fs4(File),
    FdLock(fd_lock::RwLock<File>),
    Named(named_lock::NamedLock),
    Raw(Box<dyn raw_sync::locks::LockImpl>),
    Mproc(mproc::Lock),
}
impl AnyLock {
    fn open(kind: LockKind, lock_path: &str, shm: &Shm, create: bool) -> AnyLock {
        let file = || OpenOptions::new().read(true).write(true).create(true).truncate(false).open(lock_path).unwrap();
        match kind {
            LockKind::StdFileLock => AnyLock::Std(file()),
            LockKind::Fs4 => AnyLock::Fs4(file()),
            LockKind::FdLock => AnyLock::FdLock(fd_lock::RwLock::new(file())),
            LockKind::NamedLock => AnyLock::Named(named_lock::NamedLock::with_path(lock_path).unwrap()),
            LockKind::RawSync => {
                use raw_sync::locks::{LockInit, Mutex};
                // SAFETY: both offsets are inside the mapping.
                let (mem, data) = unsafe { (shm.0.add(OFF_MUTEX), shm.0.add(OFF_COUNTER)) };
                // SAFETY: OFF_MUTEX reserves room for raw_sync's mutex; the
                // creator initialises it before any child opens it.
                let (m, _) = unsafe {
                    if create {
                        Mutex::new(mem, data).unwrap()
                    } else {
                        Mutex::from_existing(mem, data).unwrap()
                    }
                };
                AnyLock::Raw(m)
            }
            LockKind::Mproc => {
                let ns = mproc::Namespace::dir(format!("{lock_path}.ns")).unwrap();
                AnyLock::Mproc(if create {
                    mproc::Lock::create_in(&ns, "l").unwrap()
                } else {
                    mproc::Lock::open_in(&ns, "l").unwrap()
                })
            }
        }
    }
    /// lock; f(); unlock
    #[inline]
    fn with(&mut self, f: impl FnOnce()) {
        match self {
            AnyLock::Std(fl) => {
                fl.lock().unwrap();
                f();
                fl.unlock().unwrap();
            }
            AnyLock::Fs4(fl) => {
                fs4::FileExt::lock(fl).unwrap();
                f();
                fs4::FileExt::unlock(fl).unwrap();
            }
            AnyLock::FdLock(l) => {
                let _g = l.write().unwrap();
                f();
            }
            AnyLock::Named(l) => {
                let _g = l.lock().unwrap();
                f();
            }
            AnyLock::Raw(m) => {
                let _g = m.lock().unwrap();
                f();
            }
            AnyLock::Mproc(l) => {
                let _g = l.lock().unwrap_or_else(|e| panic!("mproc lock: {e}"));
                f();
            }
        }
    }
}

/// Increment the shared counter under the lock until `dur` elapsed.
/// Returns (increments done, handoffs seen: acquisitions where the other process
/// had incremented since our own previous increment, longest batch of 16
/// acquisitions in ns: an upper bound of the longest wait for the lock, off
/// by the batch's own few hundred nanoseconds).
pub fn lock_loop(l: &mut AnyLock, shm: &Shm, dur: Duration) -> (u64, u64, u64) {
    let c = shm.counter();
    let end = Instant::now() + dur;
    let (mut n, mut handoffs, mut longest) = (0u64, 0u64, 0u64);
    let mut last = u64::MAX;
    let mut batch = Instant::now();
    loop {
        for _ in 0..16 {
            // SAFETY: the counter lives in the mapping and the lock is held.
            l.with(|| unsafe {
                let v = c.read_volatile();
                if v != last && last != u64::MAX {
                    handoffs += 1;
                }
                last = v + 1;
                c.write_volatile(last)
            });
        }
        n += 16;
        let now = Instant::now();
        longest = longest.max(now.duration_since(batch).as_nanos() as u64);
        batch = now;
        if now >= end {
            return (n, handoffs, longest);
        }
    }
}

/// Single process, no contention: lock+increment+unlock per second.
pub fn lock_uncontended(kind: LockKind, dur: Duration) -> f64 {
    let (sp, lp) = (uniq("shm"), uniq("lock"));
    let shm = Shm::map(&sp, true);
    let mut l = AnyLock::open(kind, &lp, &shm, true);
    let t = Instant::now();
    let (n, _, _) = lock_loop(&mut l, &shm, dur);
    let secs = t.elapsed().as_secs_f64();
    // SAFETY: the counter is in the mapping; no other process runs.
    assert_eq!(unsafe { *shm.counter() }, n);
    drop(l);
    let _ = std::fs::remove_file(&sp);
    let _ = std::fs::remove_file(&lp);
    let _ = std::fs::remove_dir_all(format!("{lp}.ns"));
    n as f64 / secs
}

/// Two processes incrementing one shared counter under the lock.
/// Returns (ops/s total, smaller process share, handoffs/s, longest wait
/// in ms, counter_exact).
pub fn lock_contended(kind: LockKind, procs: usize, dur: Duration) -> (f64, f64, f64, f64, bool) {
    let (sp, lp) = (uniq("shm"), uniq("lock"));
    let shm = Shm::map(&sp, true);
    let mut l = AnyLock::open(kind, &lp, &shm, true);
    let kids: Vec<Child> = (1..procs)
        .map(|_| spawn_child(&["lock".into(), kind.tag().into(), sp.clone(), lp.clone(), ms(dur)]))
        .collect();
    while shm.atomic(OFF_READY).load(Ordering::Acquire) < (procs - 1) as u32 {
        std::thread::yield_now();
    }
    shm.atomic(OFF_GO).store(1, Ordering::Release);
    let t = Instant::now();
    let (mine, h1, l1) = lock_loop(&mut l, &shm, dur);
    let (mut counts, mut hand, mut longest) = (vec![mine], h1, l1);
    for kid in kids {
        let txt = finish_child_text(kid);
        let mut it = txt.split_whitespace().map(|x| x.parse::<u64>().unwrap());
        counts.push(it.next().unwrap());
        hand += it.next().unwrap();
        longest = longest.max(it.next().unwrap());
    }
    let secs = t.elapsed().as_secs_f64();
    // SAFETY: the counter is in the mapping; every child has exited.
    let total = unsafe { *shm.counter() };
    let sum: u64 = counts.iter().sum();
    let exact = total == sum;
    assert!(exact, "{}: counter {} != {:?}", kind.name(), total, counts);
    drop(l);
    let _ = std::fs::remove_file(&sp);
    let _ = std::fs::remove_file(&lp);
    if kind == LockKind::Mproc {
        let _ = std::fs::remove_dir_all(format!("{lp}.ns"));
    }
    let smallest = *counts.iter().min().unwrap() as f64 / total as f64;
    (total as f64 / secs, smallest, hand as f64 / secs, longest as f64 / 1e6, exact)
}

pub fn child_lock(tag: &str, shm_path: &str, lock_path: &str, dur_ms: &str) {
    let kind = LockKind::from_tag(tag);
    let shm = Shm::map(shm_path, false);
    let mut l = AnyLock::open(kind, lock_path, &shm, false);
    shm.atomic(OFF_READY).fetch_add(1, Ordering::AcqRel);
    while shm.atomic(OFF_GO).load(Ordering::Acquire) == 0 {
        std::hint::spin_loop();
    }
    let (n, h, longest) = lock_loop(&mut l, &shm, Duration::from_millis(dur_ms.parse().unwrap()));
    println!("{n} {h} {longest}");
}

/// In-process reference: std::sync::Mutex<u64> shared by `threads` threads.
/// Returns (ops/s, smallest thread share, handoffs/s).
pub fn std_mutex(threads: usize, dur: Duration) -> (f64, f64, f64) {
    use std::sync::{Arc, Mutex};
    let m = Arc::new(Mutex::new(0u64));
    let t = Instant::now();
    let hs: Vec<_> = (0..threads)
        .map(|_| {
            let m = m.clone();
            std::thread::spawn(move || {
                let end = Instant::now() + dur;
                let (mut n, mut h, mut last) = (0u64, 0u64, u64::MAX);
                loop {
                    for _ in 0..16 {
                        let mut g = m.lock().unwrap();
                        if *g != last && last != u64::MAX {
                            h += 1;
                        }
                        *g += 1;
                        last = *g;
                    }
                    n += 16;
                    if Instant::now() >= end {
                        return (n, h);
                    }
                }
            })
        })
        .collect();
    let rs: Vec<(u64, u64)> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    let secs = t.elapsed().as_secs_f64();
    let total = *m.lock().unwrap();
    assert_eq!(total, rs.iter().map(|r| r.0).sum::<u64>());
    let hand: u64 = rs.iter().map(|r| r.1).sum();
    (total as f64 / secs, rs.iter().map(|r| r.0).min().unwrap() as f64 / total as f64, hand as f64 / secs)
}
