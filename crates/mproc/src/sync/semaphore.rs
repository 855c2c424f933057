//! The cross-process counting semaphores, [`Semaphore`] and
//! [`BoundedSemaphore`].

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{CreateError, OpenError};
use crate::local::segment::Place;
use crate::local::sem::{LocalSem, ReleaseRefused, SLOTS};
use crate::namespace::Namespace;
use crate::object::ObjectKind;
use crate::sync::SemaphoreError;
use crate::wait::Wait;

/// A counting semaphore shared by processes: Python's
/// `multiprocessing.Semaphore`.
///
/// Two ways to take a unit:
///
/// * [`acquire`](Semaphore::acquire) / [`release`](Semaphore::release):
///   Python's counter. Any process may release, and a unit taken this way
///   belongs to nobody — if the taker dies, the unit is simply gone (as in
///   Python).
/// * [`hold`](Semaphore::hold) returns a [`SemaphoreGuard`] that gives the
///   unit back when dropped. Such a unit is recorded against the holding
///   thread. **If the holder dies** (killed at any instruction), the unit is
///   returned by the first process that then finds no unit free: processes
///   already waiting are woken by the death itself (no polling), later ones
///   notice it when they look. Up to 256 guards are tracked at once.
///
/// [`value`](Semaphore::value) is exact: the units free right now.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let ns = mproc::Namespace::dir(dir.path()).unwrap();
/// let s = mproc::Semaphore::create_in(&ns, "slots", 2).unwrap();
/// let a = s.hold().unwrap();
/// let b = s.hold().unwrap();
/// assert_eq!(s.value(), 0);
/// assert!(s.try_hold().unwrap_err().is_would_block());
/// drop(a);
/// assert_eq!(s.value(), 1);
/// # drop(b);
/// s.release().unwrap(); // Python's counter: unbounded
/// assert_eq!(s.value(), 3);
/// ```
#[derive(Clone)]
pub struct Semaphore {
    inner: Arc<LocalSem>,
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("name", &self.name())
            .field("value", &self.value())
            .field("bound", &self.bound())
            .finish()
    }
}

impl Semaphore {
    crate::util::named_constructors!("semaphore (created with `value` units)", value: u32);

    /// Creates an anonymous semaphore with `value` free units.
    pub fn new(value: u32) -> Result<Semaphore, CreateError> {
        Semaphore::make(Place::Anonymous, value, 0)
    }

    /// Creates the named semaphore in `ns`; fails if it exists.
    pub fn create_in(ns: &Namespace, name: &str, value: u32) -> Result<Semaphore, CreateError> {
        Semaphore::make(ns.create_place(ObjectKind::Semaphore, name)?, value, 0)
    }

    /// Opens the existing named semaphore (bounded or not) in `ns`.
    pub fn open_in(ns: &Namespace, name: &str) -> Result<Semaphore, OpenError> {
        LocalSem::open(ns.open_dir(ObjectKind::Semaphore, name)?, name).map(Semaphore::wrap)
    }

    fn make(place: Place<'_>, value: u32, max: u32) -> Result<Semaphore, CreateError> {
        LocalSem::create(place, value, max).map(Semaphore::wrap)
    }

    fn wrap(l: LocalSem) -> Semaphore {
        Semaphore { inner: Arc::new(l) }
    }

    pub(crate) fn local(&self) -> &LocalSem {
        &self.inner
    }

    pub(crate) fn from_local(l: LocalSem) -> Semaphore {
        Semaphore::wrap(l)
    }

    /// The name; `None` when anonymous.
    pub fn name(&self) -> Option<&str> {
        self.inner.segment().name()
    }

    /// Units free right now.
    pub fn value(&self) -> u32 {
        self.inner.value()
    }

    /// The bound of a bounded semaphore (its initial value), `None` when
    /// unbounded.
    pub fn bound(&self) -> Option<u32> {
        match self.inner.max() {
            0 => None,
            m => Some(m),
        }
    }

    /// Processes asleep waiting for a unit.
    pub fn waiting(&self) -> u32 {
        self.inner.waiting()
    }

    /// Processes holding units through guards: `(pid, units, alive)`. A dead
    /// holder stays listed until its units are returned.
    pub fn holders(&self) -> Vec<(u32, u32, bool)> {
        self.inner.holders()
    }

    /// Returns the units of dead holders now (it also happens by itself
    /// whenever a process finds no unit free); whether there were any.
    pub fn reclaim(&self) -> Result<bool, SemaphoreError> {
        Ok(self.inner.reap()?)
    }

    fn take(&self, slot: Option<usize>, wait: Wait) -> Result<(), SemaphoreError> {
        if self.inner.acquire(slot, wait)? {
            Ok(())
        } else {
            Err(SemaphoreError::WouldBlock)
        }
    }

    /// Takes a unit, waiting as long as it takes (Python's `acquire()`).
    pub fn acquire(&self) -> Result<(), SemaphoreError> {
        self.take(None, Wait::Forever)
    }

    /// Takes a unit if one is free (Python's `acquire(False)`).
    pub fn try_acquire(&self) -> Result<(), SemaphoreError> {
        self.take(None, Wait::Now)
    }

    /// Waits at most `timeout` for a unit (Python's `acquire(timeout=T)`).
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<(), SemaphoreError> {
        self.take(None, Wait::timeout(timeout))
    }

    /// Waits until `deadline` for a unit.
    pub fn acquire_deadline(&self, deadline: Instant) -> Result<(), SemaphoreError> {
        self.take(None, Wait::Until(deadline))
    }

    /// Adds a unit (Python's `release()`); any process may call it. A
    /// bounded semaphore refuses to exceed its bound
    /// ([`SemaphoreError::OverRelease`]).
    pub fn release(&self) -> Result<(), SemaphoreError> {
        match self.inner.release()? {
            Ok(()) => Ok(()),
            Err(ReleaseRefused::Bound(max)) => Err(SemaphoreError::OverRelease { max }),
        }
    }

    fn hold_inner(&self, wait: Wait) -> Result<SemaphoreGuard<'_>, SemaphoreError> {
        let slot = self
            .inner
            .claim_slot()?
            .ok_or(SemaphoreError::TooManyHolders(SLOTS))?;
        let guard = SemaphoreGuard {
            sem: self,
            slot,
            _not_send: PhantomData,
        };
        // On failure the guard leaves the slot (holding no unit).
        self.take(Some(slot), wait)?;
        Ok(guard)
    }

    /// Takes a unit held by the returned guard, waiting as long as it takes.
    pub fn hold(&self) -> Result<SemaphoreGuard<'_>, SemaphoreError> {
        self.hold_inner(Wait::Forever)
    }

    /// Like [`hold`](Semaphore::hold), without waiting.
    pub fn try_hold(&self) -> Result<SemaphoreGuard<'_>, SemaphoreError> {
        self.hold_inner(Wait::Now)
    }

    /// Like [`hold`](Semaphore::hold), waiting at most `timeout`.
    pub fn hold_timeout(&self, timeout: Duration) -> Result<SemaphoreGuard<'_>, SemaphoreError> {
        self.hold_inner(Wait::timeout(timeout))
    }

    /// Like [`hold`](Semaphore::hold), waiting until `deadline`.
    pub fn hold_deadline(&self, deadline: Instant) -> Result<SemaphoreGuard<'_>, SemaphoreError> {
        self.hold_inner(Wait::Until(deadline))
    }
}

/// A unit of a [`Semaphore`], returned when dropped — or, if the holding
/// thread dies, by the next process that finds no unit free. Not `Send`.
#[must_use = "the unit is returned as soon as the guard is dropped"]
pub struct SemaphoreGuard<'a> {
    sem: &'a Semaphore,
    slot: usize,
    _not_send: PhantomData<*const ()>,
}

impl fmt::Debug for SemaphoreGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreGuard")
            .field("semaphore", &self.sem.name())
            .finish()
    }
}

impl Drop for SemaphoreGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: the guard claimed `slot` in this thread (it is not Send)
        // and leaves it exactly once, here.
        let _ = unsafe { self.sem.inner.release_slot(self.slot) };
    }
}

/// A semaphore that refuses to be released above its initial value:
/// Python's `multiprocessing.BoundedSemaphore`. It has every method of
/// [`Semaphore`] (through `Deref`).
///
/// ```
/// let s = mproc::BoundedSemaphore::new(1).unwrap();
/// s.acquire().unwrap();
/// s.release().unwrap();
/// assert!(s.release().is_err()); // over-release
/// ```
#[derive(Clone, Debug)]
pub struct BoundedSemaphore {
    sem: Semaphore,
}

impl BoundedSemaphore {
    /// Creates an anonymous bounded semaphore with `value` units (and bound).
    pub fn new(value: u32) -> Result<BoundedSemaphore, CreateError> {
        BoundedSemaphore::make(Place::Anonymous, value)
    }

    /// Creates the named bounded semaphore in the environment's namespace.
    pub fn create(name: &str, value: u32) -> Result<BoundedSemaphore, CreateError> {
        BoundedSemaphore::create_in(&Namespace::from_env()?, name, value)
    }

    /// Creates the named bounded semaphore in `ns`; fails if it exists.
    pub fn create_in(
        ns: &Namespace,
        name: &str,
        value: u32,
    ) -> Result<BoundedSemaphore, CreateError> {
        BoundedSemaphore::make(ns.create_place(ObjectKind::Semaphore, name)?, value)
    }

    /// Opens the existing named semaphore in `ns`; it must be bounded.
    pub fn open_in(ns: &Namespace, name: &str) -> Result<BoundedSemaphore, OpenError> {
        BoundedSemaphore::from_semaphore(Semaphore::open_in(ns, name)?)
    }

    fn make(place: Place<'_>, value: u32) -> Result<BoundedSemaphore, CreateError> {
        if value == 0 {
            return Err(CreateError::InvalidOptions(
                "a bounded semaphore needs an initial value of at least 1".into(),
            ));
        }
        Ok(BoundedSemaphore {
            sem: Semaphore::make(place, value, value)?,
        })
    }

    pub(crate) fn from_semaphore(sem: Semaphore) -> Result<BoundedSemaphore, OpenError> {
        if sem.bound().is_none() {
            return Err(OpenError::Damaged {
                name: sem.name().unwrap_or("(anonymous)").to_owned(),
                reason: "it is an unbounded semaphore, not a bounded one".into(),
            });
        }
        Ok(BoundedSemaphore { sem })
    }

    /// The semaphore (for APIs that take a [`Semaphore`]).
    pub fn as_semaphore(&self) -> &Semaphore {
        &self.sem
    }
}

impl Deref for BoundedSemaphore {
    type Target = Semaphore;
    fn deref(&self) -> &Semaphore {
        &self.sem
    }
}
