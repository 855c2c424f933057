//! The robust lock in a segment, with its holder and waiter records.
//!
//! ```text
//! offset  size  field
//!     64    16  robust lock (see `sys`): word, entry record (thread, process)
//!     80     8  holding since   (ns since the epoch)     } valid while `rec tid`
//!     88     4  rec tid         (0 = no record)          } names the lock
//!     92     4  tag length                               } word's owner
//!    152    64  tag bytes
//!    256   512  32 waiter slots {pid u32, start time (low 32 bits) u32, since u64}
//! ```
//!
//! The lock word itself is the truth about who holds the lock (a dead
//! holder's thread id stays until the next locker takes it over), and the
//! entry record beside it names the holder's process; the rest is for
//! display. An acquisition that finds the lock free writes nothing beyond
//! the lock's own word and entry record: reading the clock would cost a
//! third of lock + unlock. The holding's start time is recorded when the
//! acquisition waited, or when the holder tags its holding or asks for it
//! ([`LockBackend::record_since`]); a release clears it (one load when
//! there is none).

use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::backend::{Holder, LockBackend, Waiter, TAG_MAX};
use crate::error::{CreateError, OpenError};
use crate::local::dir::Dir;
use crate::local::segment::{Fixed, Place, Segment};
use crate::object::ObjectKind;
use crate::sys::{self, Acquired, RobustLock};
use crate::wait::Wait;

const MUTEX_OFF: usize = 64;
const REC_SINCE: usize = 80;
const REC_TID: usize = 88;
const TAG_LEN: usize = 92;
const TAG_OFF: usize = 152;
const WAITERS_OFF: usize = 256;
const WAITER_SLOTS: usize = 32;
pub(crate) const SEG_LEN: usize = 1024;

const _: () = assert!(std::mem::size_of::<sys::RawRobustMutex>() <= REC_SINCE - MUTEX_OFF);

fn expected_len(_params: &[u64; 4]) -> Result<usize, String> {
    Ok(SEG_LEN)
}

/// A lock segment.
#[derive(Debug)]
pub(crate) struct LocalLock {
    seg: Fixed<SEG_LEN>,
}

impl LocalLock {
    pub(crate) fn create(place: Place<'_>) -> Result<LocalLock, CreateError> {
        let seg = Fixed::create(place, ObjectKind::Lock, SEG_LEN, [0; 4], |v| {
            v.robust_lock::<MUTEX_OFF>().init()
        })?;
        Ok(LocalLock { seg })
    }

    pub(crate) fn open(dir: &Dir, name: &str) -> Result<LocalLock, OpenError> {
        Fixed::open(dir, name, ObjectKind::Lock, expected_len).map(|seg| LocalLock { seg })
    }

    pub(crate) fn from_fd(fd: std::os::fd::OwnedFd) -> Result<LocalLock, OpenError> {
        Fixed::from_fd(fd, ObjectKind::Lock, expected_len).map(|seg| LocalLock { seg })
    }

    #[inline]
    fn mutex(&self) -> RobustLock<'_> {
        self.seg.view().robust_lock::<MUTEX_OFF>()
    }

    pub(crate) fn segment(&self) -> &Segment {
        &self.seg
    }

    /// Records now as the start of the calling holder's holding (shown by
    /// `holder`), unless `keep` and it is recorded already; the thread id
    /// last publishes it.
    fn record_holder(&self, keep: bool) {
        let tid = self.mutex().owner_tid();
        let rec = self.seg.view().at::<AtomicU32, REC_TID>();
        if keep && rec.load(Ordering::Relaxed) == tid {
            return;
        }
        // A dead holder's record (its thread id is not the word's any more)
        // goes with its tag.
        self.seg
            .view()
            .at::<AtomicU32, TAG_LEN>()
            .store(0, Ordering::Relaxed);
        self.seg
            .view()
            .at::<AtomicU64, REC_SINCE>()
            .store(sys::now_coarse_ns(), Ordering::Relaxed);
        rec.store(tid, Ordering::Release);
        crate::crash::crash_point!("lock.record.holder");
    }

    /// Forgets the holder record (before a release): nothing to do, one
    /// load, when no holding was recorded.
    #[inline]
    fn clear_holder(&self) {
        let rec = self.seg.view().at::<AtomicU32, REC_TID>();
        if rec.load(Ordering::Relaxed) != 0 {
            rec.store(0, Ordering::Relaxed);
            self.seg
                .view()
                .at::<AtomicU32, TAG_LEN>()
                .store(0, Ordering::Relaxed);
            crate::crash::crash_point!("lock.record.cleared");
        }
    }

    /// The rest of an acquisition that found the lock held: a short spin
    /// (no system call), then a sleep in the kernel as a registered waiter.
    /// A holding that began after a sleep records its start.
    #[cold]
    #[inline(never)]
    fn acquire_contended(&self, deadline: Option<Instant>) -> io::Result<Option<Acquired>> {
        if let Some(a) = self.mutex().spin_then_take() {
            return Ok(Some(a));
        }

        let slot = self.register_waiter();
        let r = self.mutex().lock_slow(deadline);
        if let Some(i) = slot {
            self.waiter_pid(i).store(0, Ordering::Release);
            crate::crash::crash_point!("lock.waiter.left");
        }
        let r = r?;
        if r.is_some() {
            self.record_holder(false);
        }
        Ok(r)
    }

    fn waiter_pid(&self, i: usize) -> &AtomicU32 {
        self.seg.at::<AtomicU32>(WAITERS_OFF + i * 16)
    }

    fn waiter_start(&self, i: usize) -> &AtomicU32 {
        self.seg.at::<AtomicU32>(WAITERS_OFF + i * 16 + 4)
    }

    /// Whether waiter slot `i`, naming `pid`, names a live process (the
    /// start time tells a reused pid apart).
    fn waiter_alive(&self, i: usize, pid: u32) -> bool {
        let start = self.waiter_start(i).load(Ordering::Acquire);
        sys::process_alive(pid, u64::from(start))
    }

    fn register_waiter(&self) -> Option<usize> {
        let me = sys::my_pid();
        for i in 0..WAITER_SLOTS {
            let slot = self.waiter_pid(i);
            let cur = slot.load(Ordering::Relaxed);
            // Take a free slot, or one left behind by a dead waiter.
            if (cur == 0 || !self.waiter_alive(i, cur))
                && slot
                    .compare_exchange(cur, me, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                crate::crash::crash_point!("lock.waiter.claimed");
                self.waiter_start(i)
                    .store(sys::my_start() as u32, Ordering::Release);
                self.seg
                    .at::<AtomicU64>(WAITERS_OFF + i * 16 + 8)
                    .store(sys::now_realtime_ns(), Ordering::Relaxed);
                crate::crash::crash_point!("lock.waiter.registered");
                return Some(i);
            }
        }
        None
    }
}

// SAFETY: a robust futex lock: the word names one owner thread at a time,
// taken by compare-and-swap or handed over by the kernel.
unsafe impl LockBackend for LocalLock {
    fn name(&self) -> Option<&str> {
        self.seg.name()
    }

    /// Acquires the lock: waiting no longer than `wait` allows.
    /// `Ok(None)` means it was not acquired.
    #[inline]
    fn acquire(&self, wait: Wait) -> io::Result<Option<Acquired>> {
        if wait.is_now() {
            return self.mutex().try_lock();
        }
        // Free: no system call, no clock.
        if let Some(a) = self.mutex().lock_free() {
            return Ok(Some(a));
        }
        self.acquire_contended(wait.deadline())
    }

    #[inline]
    unsafe fn release(&self) {
        self.clear_holder();
        // SAFETY: the caller holds the mutex (function contract).
        unsafe { self.mutex().unlock() };
    }

    /// Attaches a tag to the current holding (shown by `holder()`).
    fn set_tag(&self, tag: &str) {
        let mut end = tag.len().min(TAG_MAX);
        while !tag.is_char_boundary(end) {
            end -= 1;
        }
        self.record_holder(true);
        self.seg.write(TAG_OFF, &tag.as_bytes()[..end]);
        self.seg
            .view()
            .at::<AtomicU32, TAG_LEN>()
            .store(end as u32, Ordering::Release);
    }

    fn record_since(&self) {
        self.record_holder(true);
    }

    fn is_locked(&self) -> bool {
        self.mutex().is_held()
    }

    fn holder(&self) -> Option<Holder> {
        let tid = self.mutex().owner_tid();
        if tid == 0 || !self.mutex().is_held() {
            return None;
        }
        // 0: acquired an instant ago, its entry record not written yet.
        let pid = self.mutex().holder_pid().unwrap_or(0);
        let recorded = self
            .seg
            .view()
            .at::<AtomicU32, REC_TID>()
            .load(Ordering::Acquire)
            == tid;
        let since = recorded.then(|| {
            ns_to_time(
                self.seg
                    .view()
                    .at::<AtomicU64, REC_SINCE>()
                    .load(Ordering::Relaxed),
            )
        });
        let len = if recorded {
            (self
                .seg
                .view()
                .at::<AtomicU32, TAG_LEN>()
                .load(Ordering::Acquire) as usize)
                .min(TAG_MAX)
        } else {
            0
        };
        let tag = (len > 0).then(|| {
            let mut buf = vec![0u8; len];
            self.seg.read(TAG_OFF, &mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        });
        Some(Holder { pid, since, tag })
    }

    fn force_release(&self) -> io::Result<()> {
        self.clear_holder();
        self.mutex().force_free();
        Ok(())
    }

    fn waiters(&self) -> Vec<Waiter> {
        (0..WAITER_SLOTS)
            .filter_map(|i| {
                let pid = self.waiter_pid(i).load(Ordering::Acquire);
                (pid != 0 && self.waiter_alive(i, pid)).then(|| Waiter {
                    pid,
                    since: ns_to_time(
                        self.seg
                            .at::<AtomicU64>(WAITERS_OFF + i * 16 + 8)
                            .load(Ordering::Relaxed),
                    ),
                })
            })
            .collect()
    }
}

fn ns_to_time(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}
