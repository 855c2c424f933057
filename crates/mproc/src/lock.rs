//! The cross-process [`Lock`].

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::{Acquired, LockBackend};
pub use crate::backend::{Holder, Waiter};
use crate::error::{CreateError, LockError, OpenError, OwnerDied};
use crate::flavor::LockImpl;
use crate::namespace::Namespace;
use crate::wait::Wait;

/// A mutual-exclusion lock shared by processes: Python's
/// `multiprocessing.Lock`, robust against holders that die.
///
/// If the holder is killed (even with `SIGKILL`, at any instruction), the
/// kernel hands the lock to a process already waiting for it as the holder
/// exits, or the next process to lock it sees that the holder is gone and
/// takes it over; either receives [`LockError::OwnerDied`], which carries
/// the guard so it can repair the protected data. The uncontended path makes
/// no system call, and the lock's shared state holds no pointers.
///
/// Handles are cheap to clone; every clone refers to the same lock.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let ns = mproc::Namespace::dir(dir.path()).unwrap();
/// let lock = mproc::Lock::open_or_create_in(&ns, "tickets").unwrap();
/// {
///     let _guard = lock.lock().unwrap(); // `with lock:` in Python
///     assert!(lock.is_locked());
///     assert!(lock.try_lock().unwrap_err().is_would_block());
/// } // released here, on every path
/// assert!(!lock.is_locked());
/// ```
#[derive(Clone)]
pub struct Lock {
    inner: Arc<LockImpl>,
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("name", &self.name())
            .field("locked", &self.is_locked())
            .finish()
    }
}

/// The result of the lock family of methods.
pub type LockResult<'a> = Result<LockGuard<'a>, LockError<LockGuard<'a>>>;

impl Lock {
    crate::util::named_constructors!("lock");

    /// Creates an anonymous lock, to hand to child processes.
    pub fn new() -> Result<Lock, CreateError> {
        LockImpl::anonymous().map(Lock::from_impl)
    }

    /// Creates the named lock in `ns`; fails if it exists.
    pub fn create_in(ns: &Namespace, name: &str) -> Result<Lock, CreateError> {
        LockImpl::create(ns, name).map(Lock::from_impl)
    }

    /// Opens the existing named lock in `ns`.
    pub fn open_in(ns: &Namespace, name: &str) -> Result<Lock, OpenError> {
        LockImpl::open(ns, name).map(Lock::from_impl)
    }

    pub(crate) fn from_impl(l: LockImpl) -> Lock {
        Lock { inner: Arc::new(l) }
    }

    pub(crate) fn imp(&self) -> &LockImpl {
        &self.inner
    }

    #[inline]
    fn backend(&self) -> &dyn LockBackend {
        self.inner.backend()
    }

    /// The lock's name; `None` for an anonymous lock.
    pub fn name(&self) -> Option<&str> {
        self.backend().name()
    }

    /// The one core of the `lock` family; inlined into each member, so that
    /// `lock`'s fast path is specialised for waiting forever.
    #[inline(always)]
    fn acquire(&self, wait: Wait) -> LockResult<'_> {
        match self.inner.acquire(wait) {
            Ok(Some(how)) => {
                let guard = LockGuard {
                    lock: self,
                    _not_send: PhantomData,
                };
                match how {
                    Acquired::Clean => Ok(guard),
                    Acquired::OwnerDied if self.backend().took_expired_lease() => {
                        Err(LockError::OwnerDied(OwnerDied::lease_expired(guard)))
                    }
                    Acquired::OwnerDied => Err(LockError::OwnerDied(OwnerDied::new(guard))),
                }
            }
            Ok(None) => Err(LockError::WouldBlock),
            Err(e) => Err(LockError::Io(e.into())),
        }
    }

    /// Blocks until the lock is acquired.
    ///
    /// Fails with [`LockError::OwnerDied`] (holding the guard) when the
    /// previous holder died holding the lock.
    pub fn lock(&self) -> LockResult<'_> {
        self.acquire(Wait::Forever)
    }

    /// Acquires the lock if it is free, without waiting.
    pub fn try_lock(&self) -> LockResult<'_> {
        self.acquire(Wait::Now)
    }

    /// Waits at most `timeout` for the lock.
    pub fn lock_timeout(&self, timeout: Duration) -> LockResult<'_> {
        self.acquire(Wait::timeout(timeout))
    }

    /// Waits until `deadline` for the lock.
    pub fn lock_deadline(&self, deadline: Instant) -> LockResult<'_> {
        self.acquire(Wait::Until(deadline))
    }

    /// Whether some process holds the lock right now.
    pub fn is_locked(&self) -> bool {
        self.backend().is_locked()
    }

    /// Who holds the lock, and since when.
    pub fn holder(&self) -> Option<Holder> {
        self.backend().holder()
    }

    /// The processes currently waiting for the lock.
    pub fn waiters(&self) -> Vec<Waiter> {
        self.backend().waiters()
    }

    /// Releases the lock that the calling thread acquired and whose guard
    /// it gave up with [`std::mem::forget`]: for bindings to languages that
    /// pair `acquire()` and `release()` calls instead of scopes (Python's
    /// `Lock`). Prefer the guard everywhere else.
    ///
    /// ```
    /// let l = mproc::Lock::new().unwrap();
    /// std::mem::forget(l.lock().unwrap());
    /// assert!(l.is_locked());
    /// // SAFETY: this thread acquired the lock just above and forgot its guard.
    /// unsafe { l.release_forgotten() };
    /// assert!(!l.is_locked());
    /// ```
    ///
    /// # Safety
    /// The calling thread must hold the lock through a guard it forgot, and
    /// must call this once per such acquisition.
    pub unsafe fn release_forgotten(&self) {
        // SAFETY: the caller holds the lock and its guard will never run
        // (function contract), so this is the one release of it.
        unsafe { self.backend().release() };
    }

    /// Frees the lock whatever its state and forgets its holder: the way
    /// out of a lock whose shared word was damaged (`mproc lock break
    /// NAME`). A dead holder's lock needs no breaking (the next locker takes
    /// it over); a *live* holder, if any, loses its exclusion, so only call
    /// this when no process can be inside.
    ///
    /// ```
    /// let l = mproc::Lock::new().unwrap();
    /// l.force_release().unwrap();
    /// assert!(l.try_lock().is_ok());
    /// ```
    pub fn force_release(&self) -> std::io::Result<()> {
        self.backend().force_release()
    }
}

/// Proof that the lock is held; releases it when dropped.
///
/// A guard must be dropped by the thread that acquired the lock, so it is
/// not `Send`.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard<'a> {
    lock: &'a Lock,
    _not_send: PhantomData<*const ()>,
}

impl LockGuard<'_> {
    /// Attaches a short text (up to 64 bytes) to this holding, shown by
    /// [`Lock::holder`] and `mproc lock status`.
    pub fn set_tag(&self, tag: &str) {
        self.lock.backend().set_tag(tag);
    }

    /// Records now as the time this holding began, shown by
    /// [`Lock::holder`] and `mproc lock status` (unless it is recorded
    /// already: an acquisition that waited, or a tag, records it).
    ///
    /// An acquisition that finds the lock free reads no clock, to keep
    /// lock + unlock at two atomic instructions and two stores: call this
    /// after acquiring when others should see how long the lock is held.
    pub fn record_since(&self) {
        self.lock.backend().record_since();
    }

    /// The lock this guard holds.
    pub fn lock(&self) -> &Lock {
        self.lock
    }
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("lock", &self.lock.name())
            .finish()
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: a guard exists only after this thread acquired the lock, and
        // it is neither Send nor Clone, so this is the acquiring thread and the
        // lock is released exactly once.
        unsafe { self.lock.inner.release() };
    }
}
