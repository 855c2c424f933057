//! The cross-process [`RwLock`].

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::backend::Reader;
use crate::backend::{Acquired, Holder, Waiter};
use crate::error::{CreateError, LockError, OpenError, OwnerDied};
use crate::flavor::RwLockImpl;
use crate::namespace::Namespace;
use crate::wait::Wait;

/// A readers-writer lock shared by processes: any number of readers, or
/// one writer, robust against holders that die.
///
/// * A reader killed while reading (even with `SIGKILL`, at any
///   instruction) has its share returned: the next writer finds its slot
///   abandoned and frees it.
/// * A writer killed while writing is taken over by the next process that
///   reads or writes, which receives [`LockError::OwnerDied`] (with the
///   guard, so it can check or repair the data).
/// * **Writers are preferred, readers admitted in batches**: once a writer
///   waits, processes that start to read wait behind it, so a stream of
///   overlapping readers cannot starve a writer (readers already reading
///   finish first). Writers queue among themselves in the kernel; a writer
///   that releases the lock while readers wait lets those readers in
///   before the next writer starts (it waits up to 10 ms for them to come
///   in, then for them to finish), so a stream of writers cannot starve
///   readers either. On a server, a released lock goes to whichever waiter
///   asks first (waiters look at least every 100 ms), writers still going
///   before readers that come after them.
/// * At most [`RwLock::MAX_READERS`] threads read at once; more wait for a
///   reader to leave.
///
/// Processes are identified by pid *and* start time, so a dead holder's
/// reused pid never looks like a live holder. The locks are not
/// re-entrant: a thread that holds a read share and asks to write (or
/// holds the write lock and asks to read) gets an error instead of a
/// deadlock when it waits without a deadline.
///
/// Handles are cheap to clone; every clone refers to the same lock.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let ns = mproc::Namespace::dir(dir.path()).unwrap();
/// let rw = mproc::RwLock::open_or_create_in(&ns, "config").unwrap();
/// {
///     let _r1 = rw.read().unwrap();
///     let _r2 = rw.read().unwrap(); // readers share the lock
///     assert_eq!(rw.readers().len(), 2);
///     assert!(rw.try_write().unwrap_err().is_would_block());
/// }
/// {
///     let _w = rw.write().unwrap(); // one writer, no readers
///     assert!(rw.is_write_locked());
///     assert!(rw.try_read().unwrap_err().is_would_block());
/// }
/// assert!(rw.try_write().is_ok());
/// ```
#[derive(Clone)]
pub struct RwLock {
    inner: Arc<RwLockImpl>,
}

impl fmt::Debug for RwLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RwLock")
            .field("name", &self.name())
            .field("write_locked", &self.is_write_locked())
            .finish()
    }
}

/// The result of the read family of methods.
pub type RwLockReadResult<'a> = Result<RwLockReadGuard<'a>, LockError<RwLockReadGuard<'a>>>;
/// The result of the write family of methods.
pub type RwLockWriteResult<'a> = Result<RwLockWriteGuard<'a>, LockError<RwLockWriteGuard<'a>>>;

impl RwLock {
    crate::util::named_constructors!("readers-writer lock");

    /// Most threads reading at once (shared memory; a server has no limit).
    pub const MAX_READERS: usize = crate::backend::MAX_READERS;

    /// Creates an anonymous readers-writer lock, to hand to child processes.
    pub fn new() -> Result<RwLock, CreateError> {
        RwLockImpl::anonymous().map(RwLock::from_impl)
    }

    /// Creates the named lock in `ns`; fails if it exists.
    pub fn create_in(ns: &Namespace, name: &str) -> Result<RwLock, CreateError> {
        RwLockImpl::create(ns, name).map(RwLock::from_impl)
    }

    /// Opens the existing named lock in `ns`.
    pub fn open_in(ns: &Namespace, name: &str) -> Result<RwLock, OpenError> {
        RwLockImpl::open(ns, name).map(RwLock::from_impl)
    }

    pub(crate) fn from_impl(l: RwLockImpl) -> RwLock {
        RwLock { inner: Arc::new(l) }
    }

    pub(crate) fn imp(&self) -> &RwLockImpl {
        &self.inner
    }

    /// The lock's name; `None` for an anonymous lock.
    pub fn name(&self) -> Option<&str> {
        self.imp().backend().name()
    }

    fn do_read(&self, wait: Wait) -> RwLockReadResult<'_> {
        let r = self.imp().backend().read(wait);
        match r {
            Ok(Some((how, slot))) => {
                let guard = RwLockReadGuard {
                    lock: self,
                    slot,
                    _not_send: PhantomData,
                };
                match how {
                    Acquired::Clean => Ok(guard),
                    Acquired::OwnerDied => Err(LockError::OwnerDied(OwnerDied::new(guard))),
                }
            }
            Ok(None) => Err(LockError::WouldBlock),
            Err(e) => Err(LockError::Io(e.into())),
        }
    }

    fn do_write(&self, wait: Wait) -> RwLockWriteResult<'_> {
        let r = self.imp().backend().write(wait);
        match r {
            Ok(Some(how)) => {
                let guard = RwLockWriteGuard {
                    lock: self,
                    _not_send: PhantomData,
                };
                match how {
                    Acquired::Clean => Ok(guard),
                    Acquired::OwnerDied => Err(LockError::OwnerDied(OwnerDied::new(guard))),
                }
            }
            Ok(None) => Err(LockError::WouldBlock),
            Err(e) => Err(LockError::Io(e.into())),
        }
    }

    /// Blocks until a read share is taken.
    ///
    /// Fails with [`LockError::OwnerDied`] (holding the guard) when a writer
    /// died holding the lock and this reader took it over.
    pub fn read(&self) -> RwLockReadResult<'_> {
        self.do_read(Wait::Forever)
    }

    /// Takes a read share if no writer holds or waits for the lock, without
    /// waiting.
    pub fn try_read(&self) -> RwLockReadResult<'_> {
        self.do_read(Wait::Now)
    }

    /// Waits at most `timeout` for a read share.
    pub fn read_timeout(&self, timeout: Duration) -> RwLockReadResult<'_> {
        self.do_read(Wait::timeout(timeout))
    }

    /// Waits until `deadline` for a read share.
    pub fn read_deadline(&self, deadline: Instant) -> RwLockReadResult<'_> {
        self.do_read(Wait::Until(deadline))
    }

    /// Blocks until the write lock is taken (no writer, no reader left).
    ///
    /// Fails with [`LockError::OwnerDied`] (holding the guard) when the
    /// previous writer died holding the lock.
    pub fn write(&self) -> RwLockWriteResult<'_> {
        self.do_write(Wait::Forever)
    }

    /// Takes the write lock if nobody holds the lock, without waiting.
    pub fn try_write(&self) -> RwLockWriteResult<'_> {
        self.do_write(Wait::Now)
    }

    /// Waits at most `timeout` for the write lock.
    pub fn write_timeout(&self, timeout: Duration) -> RwLockWriteResult<'_> {
        self.do_write(Wait::timeout(timeout))
    }

    /// Waits until `deadline` for the write lock.
    pub fn write_deadline(&self, deadline: Instant) -> RwLockWriteResult<'_> {
        self.do_write(Wait::Until(deadline))
    }

    /// Whether a writer holds the lock right now.
    pub fn is_write_locked(&self) -> bool {
        self.writer().is_some()
    }

    /// The writer holding the lock, and since when.
    pub fn writer(&self) -> Option<Holder> {
        self.imp().backend().writer()
    }

    /// The processes reading now (one entry per reading thread), with
    /// since when.
    pub fn readers(&self) -> Vec<Reader> {
        self.imp().backend().readers()
    }

    /// The writers waiting for the lock (for a writer, or for the readers
    /// to leave).
    pub fn waiting_writers(&self) -> Vec<Waiter> {
        self.imp().backend().waiting_writers()
    }

    /// How many processes wait to read.
    pub fn waiting_readers(&self) -> u32 {
        self.imp().backend().waiting_readers()
    }

    /// Frees the write lock whatever its state and forgets its writer: the
    /// way out of a damaged lock (`mproc lock break NAME`). A dead holder
    /// needs no breaking; a live writer loses its exclusion. Live readers
    /// keep their shares.
    pub fn force_release(&self) -> io::Result<()> {
        self.imp().backend().force_release()
    }
}

/// Whether the calling thread is its process's main thread, whose holdings
/// survive `exec`.
fn on_main_thread() -> io::Result<()> {
    if crate::sys::my_tid() == crate::sys::my_pid() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "only the main thread's holding can be kept until the process exits",
        ))
    }
}

/// Proof of a read share; gives it back when dropped.
///
/// A guard must be dropped by the thread that took the share, so it is not
/// `Send`.
#[must_use = "the share is given back as soon as the guard is dropped"]
pub struct RwLockReadGuard<'a> {
    lock: &'a RwLock,
    slot: usize,
    _not_send: PhantomData<*const ()>,
}

impl RwLockReadGuard<'_> {
    /// The lock this guard holds.
    pub fn lock(&self) -> &RwLock {
        self.lock
    }

    /// Keeps the share until this process exits, even across `exec` (a
    /// process that becomes another program keeps reading; its share is
    /// returned when that program ends, however it ends). Only the main
    /// thread's share can be kept; shared memory only.
    pub fn keep_until_exit(self) -> io::Result<()> {
        if !self.lock.imp().backend().keeps_across_exec() {
            return Err(lease_needs_a_process());
        }
        on_main_thread()?;
        std::mem::forget(self);
        Ok(())
    }
}

/// Why a lock on a server cannot outlive its process's code.
fn lease_needs_a_process() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "a lock on a server is a lease that this process must keep renewing: \
         it cannot be kept across exec",
    )
}

impl fmt::Debug for RwLockReadGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RwLockReadGuard")
            .field("lock", &self.lock.name())
            .finish()
    }
}

impl Drop for RwLockReadGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: a guard exists only after this thread took the share in
        // `slot`, and it is neither Send nor Clone, so this is that thread
        // and the share is given back exactly once.
        unsafe { self.lock.imp().backend().read_release(self.slot) };
    }
}

/// Proof that the write lock is held; releases it when dropped.
///
/// A guard must be dropped by the thread that acquired the lock, so it is
/// not `Send`.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RwLockWriteGuard<'a> {
    lock: &'a RwLock,
    _not_send: PhantomData<*const ()>,
}

impl RwLockWriteGuard<'_> {
    /// The lock this guard holds.
    pub fn lock(&self) -> &RwLock {
        self.lock
    }

    /// Attaches a short text (up to 64 bytes) to this holding, shown by
    /// [`RwLock::writer`] and `mproc lock status` (shared memory; a no-op
    /// on a server).
    pub fn set_tag(&self, tag: &str) {
        self.lock.imp().backend().set_tag(tag);
    }

    /// Keeps the write lock until this process exits, even across `exec`
    /// (`mproc lock -F`): the next holder waits for the process to end, and
    /// is told the lock was released cleanly, however it ended (as
    /// flock(1) does when the descriptor closes), even if the thread that
    /// took it ends first. Shared memory only.
    pub fn keep_until_exit(self) -> io::Result<()> {
        let backend = self.lock.imp().backend();
        if !backend.keeps_across_exec() {
            return Err(lease_needs_a_process());
        }
        // SAFETY: this guard proves that this thread holds the lock, and the
        // backend keeps holdings across exec (checked above).
        unsafe { backend.write_keep_until_exit() };
        std::mem::forget(self);
        Ok(())
    }
}

impl fmt::Debug for RwLockWriteGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RwLockWriteGuard")
            .field("lock", &self.lock.name())
            .finish()
    }
}

impl Drop for RwLockWriteGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: a guard exists only after this thread acquired the lock,
        // and it is neither Send nor Clone, so this is the acquiring thread
        // and the lock is released exactly once.
        unsafe { self.lock.imp().backend().write_release() };
    }
}
