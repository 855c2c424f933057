//! The cross-process re-entrant lock, [`RLock`].
//!
//! ```text
//! offset  size  field
//!     64    16  robust lock (see `sys`)
//!    112     4  owner pid     } written by the owner after acquiring,
//!    116     4  owner tid     } cleared before the last release
//!    120     4  recursion count (only the owner writes it)
//! ```
//!
//! The lock word is the truth about the owner: it holds the owning
//! thread's id (a dead owner's id stays until the next locker takes the
//! lock over). Re-entry is recognised by comparing that id with the
//! caller's.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{CreateError, LockError, OpenError, OwnerDied};
use crate::local::segment::{Fixed, Place, Segment};
use crate::namespace::Namespace;
use crate::object::ObjectKind;
use crate::sync::NotOwner;
use crate::sys::{self, Acquired, RobustLock};
use crate::wait::Wait;

const MUTEX: usize = 64;
const OWNER_PID: usize = 112;
const OWNER_TID: usize = 116;
const COUNT: usize = 120;
const SEG_LEN: usize = 128;

fn expected_len(_: &[u64; 4]) -> Result<usize, String> {
    Ok(SEG_LEN)
}

/// A re-entrant lock shared by processes: Python's `multiprocessing.RLock`,
/// robust against owners that die.
///
/// The thread that holds it may acquire it again without blocking and must
/// release it once per acquisition; releasing it from any other thread is
/// an error ([`NotOwner`]). If the owning thread dies (its process is
/// killed, for instance), the kernel releases it and the next acquirer gets
/// [`LockError::OwnerDied`] with a recursion count of 1.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let ns = mproc::Namespace::dir(dir.path()).unwrap();
/// let r = mproc::RLock::create_in(&ns, "tree").unwrap();
/// let outer = r.lock().unwrap();
/// let inner = r.lock().unwrap(); // same thread: no deadlock
/// assert_eq!(r.count(), 2);
/// drop(inner);
/// assert!(r.is_locked());
/// drop(outer);
/// assert!(!r.is_locked());
/// assert!(r.release().is_err()); // not held
/// ```
#[derive(Clone)]
pub struct RLock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    seg: Fixed<SEG_LEN>,
}

impl Inner {
    /// The robust lock guarding the object's state.
    #[inline]
    fn mutex(&self) -> RobustLock<'_> {
        self.seg.view().robust_lock::<MUTEX>()
    }
}

impl fmt::Debug for RLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLock")
            .field("name", &self.name())
            .field("owner", &self.owner())
            .field("count", &self.count())
            .finish()
    }
}

/// The result of the `lock` family of [`RLock`].
pub type RLockResult<'a> = Result<RLockGuard<'a>, LockError<RLockGuard<'a>>>;

impl RLock {
    crate::util::named_constructors!("re-entrant lock");

    /// Creates an anonymous re-entrant lock, to hand to child processes.
    pub fn new() -> Result<RLock, CreateError> {
        RLock::make(Place::Anonymous)
    }

    /// Creates the named lock in `ns`; fails if it exists.
    pub fn create_in(ns: &Namespace, name: &str) -> Result<RLock, CreateError> {
        RLock::make(ns.create_place(ObjectKind::RLock, name)?)
    }

    /// Opens the existing named lock in `ns`.
    pub fn open_in(ns: &Namespace, name: &str) -> Result<RLock, OpenError> {
        Fixed::open(
            ns.open_dir(ObjectKind::RLock, name)?,
            name,
            ObjectKind::RLock,
            expected_len,
        )
        .map(RLock::from_segment)
    }

    fn make(place: Place<'_>) -> Result<RLock, CreateError> {
        let seg = Fixed::create(place, ObjectKind::RLock, SEG_LEN, [0; 4], |seg| {
            seg.robust_lock::<MUTEX>().init()
        })?;
        Ok(RLock::from_segment(seg))
    }

    pub(crate) fn from_fd(fd: std::os::fd::OwnedFd) -> Result<RLock, OpenError> {
        Fixed::from_fd(fd, ObjectKind::RLock, expected_len).map(RLock::from_segment)
    }

    fn from_segment(seg: Fixed<SEG_LEN>) -> RLock {
        RLock {
            inner: Arc::new(Inner { seg }),
        }
    }

    pub(crate) fn segment(&self) -> &Segment {
        &self.inner.seg
    }

    /// The lock's name; `None` when anonymous.
    pub fn name(&self) -> Option<&str> {
        self.inner.seg.name()
    }

    fn word<const OFF: usize>(&self) -> &AtomicU32 {
        self.inner.seg.view().at::<AtomicU32, OFF>()
    }

    fn mine(&self) -> bool {
        self.inner.mutex().held_by_me()
    }

    fn acquire_inner(&self, wait: Wait) -> Result<(), LockError<()>> {
        if self.mine() {
            let c = self.word::<COUNT>();
            let n = c.load(Ordering::Relaxed);
            if n == u32::MAX {
                return Err(LockError::Io(
                    std::io::Error::other("RLock recursion count overflow").into(),
                ));
            }
            c.store(n + 1, Ordering::Relaxed);
            return Ok(());
        }
        let m = self.inner.mutex();
        let r = m.acquire(wait);
        match r {
            Ok(Some(how)) => {
                self.word::<COUNT>().store(1, Ordering::Relaxed);
                self.word::<OWNER_TID>()
                    .store(sys::my_tid(), Ordering::Relaxed);
                self.word::<OWNER_PID>()
                    .store(std::process::id(), Ordering::Release);
                match how {
                    Acquired::Clean => Ok(()),
                    Acquired::OwnerDied => Err(LockError::OwnerDied(OwnerDied::new(()))),
                }
            }
            Ok(None) => Err(LockError::WouldBlock),
            Err(e) => Err(LockError::Io(e.into())),
        }
    }

    /// Acquires (or re-enters) the lock, waiting as long as it takes.
    ///
    /// [`LockError::OwnerDied`] means it *was* acquired, after its previous
    /// owner died holding it. Pair every successful call with a
    /// [`release`](RLock::release), or use [`lock`](RLock::lock).
    pub fn acquire(&self) -> Result<(), LockError<()>> {
        self.acquire_inner(Wait::Forever)
    }

    /// Acquires (or re-enters) the lock only if that needs no waiting.
    pub fn try_acquire(&self) -> Result<(), LockError<()>> {
        self.acquire_inner(Wait::Now)
    }

    /// Waits at most `timeout` for the lock.
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<(), LockError<()>> {
        self.acquire_inner(Wait::timeout(timeout))
    }

    /// Waits until `deadline` for the lock.
    pub fn acquire_deadline(&self, deadline: Instant) -> Result<(), LockError<()>> {
        self.acquire_inner(Wait::Until(deadline))
    }

    /// Releases one level of ownership; the lock is free after the last.
    ///
    /// Fails with [`NotOwner`] when the calling thread does not hold it
    /// (Python raises `AssertionError`).
    pub fn release(&self) -> Result<(), NotOwner> {
        if !self.mine() {
            return Err(NotOwner);
        }
        let c = self.word::<COUNT>();
        let n = c.load(Ordering::Relaxed);
        if n > 1 {
            c.store(n - 1, Ordering::Relaxed);
            return Ok(());
        }
        c.store(0, Ordering::Relaxed);
        self.word::<OWNER_PID>().store(0, Ordering::Relaxed);
        self.word::<OWNER_TID>().store(0, Ordering::Release);
        // SAFETY: `mine()` established that this thread holds the mutex.
        unsafe { self.inner.mutex().unlock() };
        Ok(())
    }

    fn guard(&self, r: Result<(), LockError<()>>) -> RLockResult<'_> {
        let g = || RLockGuard {
            lock: self,
            _not_send: PhantomData,
        };
        match r {
            Ok(()) => Ok(g()),
            Err(LockError::OwnerDied(_)) => Err(LockError::OwnerDied(OwnerDied::new(g()))),
            Err(LockError::WouldBlock) => Err(LockError::WouldBlock),
            Err(LockError::Io(e)) => Err(LockError::Io(e)),
        }
    }

    /// Acquires (or re-enters) the lock; the guard releases one level when
    /// dropped.
    pub fn lock(&self) -> RLockResult<'_> {
        self.guard(self.acquire())
    }

    /// Like [`lock`](RLock::lock), without waiting.
    pub fn try_lock(&self) -> RLockResult<'_> {
        self.guard(self.try_acquire())
    }

    /// Like [`lock`](RLock::lock), waiting at most `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> RLockResult<'_> {
        self.guard(self.acquire_timeout(timeout))
    }

    /// Like [`lock`](RLock::lock), waiting until `deadline`.
    pub fn lock_deadline(&self, deadline: Instant) -> RLockResult<'_> {
        self.guard(self.acquire_deadline(deadline))
    }

    /// Whether some thread holds the lock.
    pub fn is_locked(&self) -> bool {
        self.inner.mutex().is_held()
    }

    /// Whether the calling thread holds the lock.
    pub fn is_owned(&self) -> bool {
        self.mine()
    }

    /// The owner's process and thread ids, when held and recorded.
    pub fn owner(&self) -> Option<(u32, u32)> {
        let tid = self.inner.mutex().owner_tid();
        if tid == 0 {
            return None;
        }
        let pid = self.word::<OWNER_PID>().load(Ordering::Acquire);
        let rec = self.word::<OWNER_TID>().load(Ordering::Relaxed);
        Some(if rec == tid { (pid, tid) } else { (0, tid) })
    }

    /// The recursion level of the current holding (0 when free).
    pub fn count(&self) -> u32 {
        if self.is_locked() {
            self.word::<COUNT>().load(Ordering::Relaxed)
        } else {
            0
        }
    }
}

/// One level of ownership of an [`RLock`]; released when dropped. Not
/// `Send`: it must be dropped by the thread that acquired it.
#[must_use = "the level is released as soon as the guard is dropped"]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
    _not_send: PhantomData<*const ()>,
}

impl RLockGuard<'_> {
    /// The lock this guard holds.
    pub fn lock(&self) -> &RLock {
        self.lock
    }
}

impl fmt::Debug for RLockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLockGuard")
            .field("lock", &self.lock.name())
            .finish()
    }
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        // This thread holds at least the level this guard stands for.
        let _ = self.lock.release();
    }
}
