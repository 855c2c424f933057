//! The cross-process [`Condition`]: a robust lock plus exact wake-ups.
//!
//! ```text
//! offset  size  field
//!     64    16  robust lock (see `sys`): the condition's lock
//!    112     8  next ticket (written under the lock)
//!    192  4096  64 waiter slots (see `watch`): payload = state, aux = ticket
//! ```
//!
//! A waiter, holding the lock, claims a slot (locking the slot's robust
//! lock, state WAITING, the next ticket), releases the lock and sleeps on
//! its slot's state word. `notify(n)` (under the lock) moves the `n` oldest
//! WAITING slots to NOTIFIED and wakes each; a waiter whose deadline passes
//! moves its own slot WAITING → 0. Both are compare-and-swaps on one word,
//! so a notification is either delivered to a waiter or never made:
//! `notify(n)` wakes exactly `min(n, waiting)` processes. A waiter that
//! dies leaves its slot's lock naming a thread that is gone (checked against
//! the process it belonged to, so a reused id does not fool it, and a
//! zombie counts as gone), so `notify` skips and frees it.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{CreateError, LockError, OpenError, OwnerDied};
use crate::local::segment::{Fixed, Place, Segment};
use crate::local::watch::{SlotState, Slots};
use crate::lock::{Lock, LockGuard, LockResult};
use crate::namespace::Namespace;
use crate::object::ObjectKind;
use crate::sync::ConditionError;
use crate::sys::{futex_wait, futex_wake, Acquired, RobustLock};
use crate::util::to_deadline;
use crate::wait::Wait;

const MUTEX: usize = 64;
const TICKET: usize = 112;
const SLOTS_OFF: usize = 192;
/// Threads that may wait on one condition at once.
const SLOTS: usize = 64;
const SEG_LEN: usize = SLOTS_OFF + Slots::len_for(SLOTS);

const GONE: u32 = 0;
const WAITING: u32 = 1;
const NOTIFIED: u32 = 2;

fn expected_len(_: &[u64; 4]) -> Result<usize, String> {
    Ok(SEG_LEN)
}

/// A condition variable shared by processes, with its own robust lock:
/// Python's `multiprocessing.Condition`.
///
/// [`lock`](Condition::lock) returns a [`ConditionGuard`]; waiting and
/// notifying are methods of the guard, so they can only be called with the
/// lock held (Python checks this at run time). `wait` releases the lock
/// while asleep and takes it back before returning. `notify(n)` wakes
/// exactly `n` waiters (the longest-waiting first) if that many wait.
/// To pair the condition with an existing [`Lock`] instead (Python's
/// `Condition(lock)`), use [`wait_with`](Condition::wait_with) and
/// [`notify_with`](Condition::notify_with).
///
/// ```
/// use std::time::Duration;
/// let c = mproc::Condition::new().unwrap();
/// let mut g = c.lock().unwrap();
/// assert_eq!(g.notify(1), 0); // nobody waits
/// assert!(!g.wait_timeout(Duration::from_millis(20)).unwrap()); // not notified
/// ```
#[derive(Clone)]
pub struct Condition {
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

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("name", &self.name())
            .field("waiting", &self.waiting())
            .finish()
    }
}

/// The result of the `lock` family of [`Condition`].
pub type ConditionLockResult<'a> = Result<ConditionGuard<'a>, LockError<ConditionGuard<'a>>>;

impl Condition {
    crate::util::named_constructors!("condition");

    /// Creates an anonymous condition.
    pub fn new() -> Result<Condition, CreateError> {
        Condition::make(Place::Anonymous)
    }

    /// Creates the named condition in `ns`; fails if it exists.
    pub fn create_in(ns: &Namespace, name: &str) -> Result<Condition, CreateError> {
        Condition::make(ns.create_place(ObjectKind::Condition, name)?)
    }

    /// Opens the existing named condition in `ns`.
    pub fn open_in(ns: &Namespace, name: &str) -> Result<Condition, OpenError> {
        Fixed::open(
            ns.open_dir(ObjectKind::Condition, name)?,
            name,
            ObjectKind::Condition,
            expected_len,
        )
        .map(Condition::wrap)
    }

    fn make(place: Place<'_>) -> Result<Condition, CreateError> {
        Fixed::create(place, ObjectKind::Condition, SEG_LEN, [0; 4], |seg| {
            seg.robust_lock::<MUTEX>().init()?;
            Slots::new(seg.segment(), SLOTS_OFF, SLOTS).init()
        })
        .map(Condition::wrap)
    }

    pub(crate) fn from_fd(fd: std::os::fd::OwnedFd) -> Result<Condition, OpenError> {
        Fixed::from_fd(fd, ObjectKind::Condition, expected_len).map(Condition::wrap)
    }

    fn wrap(seg: Fixed<SEG_LEN>) -> Condition {
        Condition {
            inner: Arc::new(Inner { seg }),
        }
    }

    pub(crate) fn segment(&self) -> &Segment {
        &self.inner.seg
    }

    /// The name; `None` when anonymous.
    pub fn name(&self) -> Option<&str> {
        self.inner.seg.name()
    }

    fn slots(&self) -> Slots<'_> {
        Slots::new(&self.inner.seg, SLOTS_OFF, SLOTS)
    }

    /// Processes waiting right now (not yet notified).
    pub fn waiting(&self) -> u32 {
        let s = self.slots();
        (0..SLOTS)
            .filter(|&i| {
                matches!(s.state(i), SlotState::Live(_))
                    && s.payload(i).load(Ordering::Acquire) == WAITING
            })
            .count() as u32
    }

    /// Claims a slot for this thread, WAITING with the next ticket (lock held).
    fn claim(&self) -> Result<Option<usize>, ConditionError> {
        let c = self;
        let s = c.slots();
        let mut slot = s.claim(WAITING)?;
        if slot.is_none() {
            // Free the slots of dead waiters and try again.
            for i in 0..SLOTS {
                if let SlotState::Dead(_) = s.state(i) {
                    s.reap(i, |_| {})?;
                }
            }
            slot = s.claim(WAITING)?;
        }
        if let Some(i) = slot {
            let t = c.inner.seg.view().at::<AtomicU64, TICKET>();
            s.aux(i)
                .store(t.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        }
        Ok(slot)
    }

    /// Wakes up to `n` waiters, the longest-waiting first (lock held).
    fn notify_n(&self, n: usize) -> usize {
        let s = self.slots();
        let mut waiting: Vec<(u64, usize)> = Vec::new();
        for i in 0..SLOTS {
            match s.state(i) {
                SlotState::Free => {}
                SlotState::Dead(_) => {
                    // A waiter that died: free its slot (nothing to return).
                    let _ = s.reap(i, |_| {});
                }
                SlotState::Live(_) => {
                    if s.payload(i).load(Ordering::Acquire) == WAITING {
                        waiting.push((s.aux(i).load(Ordering::Relaxed), i));
                    }
                }
            }
        }
        waiting.sort_unstable();
        let mut woken = 0;
        for (_, i) in waiting {
            if woken == n {
                break;
            }
            let st = s.payload(i);
            if st
                .compare_exchange(WAITING, NOTIFIED, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                crate::crash::crash_point!("condition.notify.slot");
                futex_wake(st, 1);
                woken += 1;
            }
        }
        woken
    }

    /// Claims a slot, runs `release` (which lets go of the lock), sleeps
    /// until notified or `deadline`, and leaves the slot; whether notified.
    fn sleep(
        &self,
        release: impl FnOnce(),
        deadline: Option<Instant>,
    ) -> Result<bool, ConditionError> {
        let i = self.claim()?.ok_or(ConditionError::TooManyWaiters(SLOTS))?;
        let slots = self.slots();
        let st = slots.payload(i);
        release();
        let notified = loop {
            if st.load(Ordering::Acquire) != WAITING {
                break true;
            }
            // Sliced: a notifier may have died between marking this slot
            // and waking it.
            let slice = Instant::now() + crate::local::watch::WATCH_SLICE;
            let _ = futex_wait(st, WAITING, Some(deadline.map_or(slice, |d| d.min(slice))));
            if deadline.is_some_and(|d| Instant::now() >= d)
                && st
                    .compare_exchange(WAITING, GONE, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                break false;
            }
        };
        // SAFETY: slot `i` was claimed by this thread above and is left
        // exactly once, here.
        unsafe { slots.leave(i) };
        Ok(notified)
    }

    /// Waits on this condition with an ordinary [`Lock`] instead of the
    /// built-in one (Python's `Condition(lock)`): releases `guard`'s lock,
    /// sleeps until notified (or `timeout`), and takes the lock back.
    /// Returns the lock's result and whether it was notified. Every waiter
    /// and notifier of the condition must use the same lock, and notify
    /// with [`notify_with`](Condition::notify_with) while holding it.
    ///
    /// `guard` must come from `lock` itself (`lock.lock()`), else the call
    /// fails with an `InvalidInput` error (and the guard is released).
    pub fn wait_with<'l>(
        &self,
        lock: &'l Lock,
        guard: LockGuard<'l>,
        timeout: Option<Duration>,
    ) -> Result<(LockResult<'l>, bool), ConditionError> {
        if !std::ptr::eq(guard.lock(), lock) {
            return Err(ConditionError::Io(
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the guard does not come from this lock handle",
                )
                .into(),
            ));
        }
        let deadline = timeout.and_then(to_deadline);
        let notified = self.sleep(move || drop(guard), deadline)?;
        Ok((lock.lock(), notified))
    }

    /// Wakes up to `n` waiters that wait with [`wait_with`](Condition::wait_with);
    /// `held` proves the caller holds their lock. Returns how many.
    pub fn notify_with(&self, held: &LockGuard<'_>, n: usize) -> usize {
        let _ = held;
        self.notify_n(n)
    }

    /// Whether some process holds the condition's lock.
    pub fn is_locked(&self) -> bool {
        self.inner.mutex().is_held()
    }

    fn acquire(&self, wait: Wait) -> ConditionLockResult<'_> {
        let m = self.inner.mutex();
        let r = m.acquire(wait);
        let g = || ConditionGuard {
            cond: self,
            _not_send: PhantomData,
        };
        match r {
            Ok(Some(Acquired::Clean)) => Ok(g()),
            Ok(Some(Acquired::OwnerDied)) => Err(LockError::OwnerDied(OwnerDied::new(g()))),
            Ok(None) => Err(LockError::WouldBlock),
            Err(e) => Err(LockError::Io(e.into())),
        }
    }

    /// Takes the condition's lock, waiting as long as it takes.
    pub fn lock(&self) -> ConditionLockResult<'_> {
        self.acquire(Wait::Forever)
    }

    /// Takes the condition's lock if it is free.
    pub fn try_lock(&self) -> ConditionLockResult<'_> {
        self.acquire(Wait::Now)
    }

    /// Waits at most `timeout` for the condition's lock.
    pub fn lock_timeout(&self, timeout: Duration) -> ConditionLockResult<'_> {
        self.acquire(Wait::timeout(timeout))
    }

    /// Waits until `deadline` for the condition's lock.
    pub fn lock_deadline(&self, deadline: Instant) -> ConditionLockResult<'_> {
        self.acquire(Wait::Until(deadline))
    }
}

/// The condition's lock, held; waiting and notifying happen through it.
/// Released when dropped. Not `Send`.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ConditionGuard<'a> {
    cond: &'a Condition,
    _not_send: PhantomData<*const ()>,
}

impl fmt::Debug for ConditionGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConditionGuard")
            .field("condition", &self.cond.name())
            .finish()
    }
}

impl Drop for ConditionGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: a guard exists only while this thread holds the mutex.
        unsafe { self.cond.inner.mutex().unlock() };
    }
}

impl<'a> ConditionGuard<'a> {
    /// The condition this guard holds the lock of.
    pub fn condition(&self) -> &'a Condition {
        self.cond
    }

    fn wait_inner(&mut self, deadline: Option<Instant>) -> Result<bool, ConditionError> {
        let c = self.cond;
        let notified = c.sleep(
            // SAFETY: this guard proves the thread holds the mutex; it is
            // taken back below before the guard is used again.
            || unsafe { c.inner.mutex().unlock() },
            deadline,
        )?;
        match c.inner.mutex().lock(None) {
            Ok(Some(Acquired::Clean)) => Ok(notified),
            Ok(Some(Acquired::OwnerDied)) => Err(ConditionError::OwnerDied),
            Ok(None) => Err(ConditionError::Io(
                std::io::Error::other("condition lock not taken back").into(),
            )),
            // The guard's unlock on drop then fails harmlessly (a robust
            // mutex refuses an unlock by a thread that does not own it).
            Err(e) => Err(ConditionError::Io(e.into())),
        }
    }

    /// Releases the lock, sleeps until notified, and takes the lock back.
    pub fn wait(&mut self) -> Result<(), ConditionError> {
        self.wait_inner(None).map(|_| ())
    }

    /// Like [`wait`](ConditionGuard::wait), for at most `timeout`; returns
    /// whether it was notified (Python's `wait(timeout)`).
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<bool, ConditionError> {
        self.wait_inner(to_deadline(timeout))
    }

    /// Like [`wait`](ConditionGuard::wait), until `deadline`; returns
    /// whether it was notified.
    pub fn wait_deadline(&mut self, deadline: Instant) -> Result<bool, ConditionError> {
        self.wait_inner(Some(deadline))
    }

    /// Waits until `pred()` is true (checked with the lock held), or until
    /// `deadline`; returns the last value of `pred()` (Python's `wait_for`).
    pub fn wait_for_deadline(
        &mut self,
        mut pred: impl FnMut() -> bool,
        deadline: Option<Instant>,
    ) -> Result<bool, ConditionError> {
        loop {
            if pred() {
                return Ok(true);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
            self.wait_inner(deadline)?;
        }
    }

    /// Waits until `pred()` is true (Python's `wait_for(pred)`).
    pub fn wait_for(&mut self, pred: impl FnMut() -> bool) -> Result<(), ConditionError> {
        self.wait_for_deadline(pred, None).map(|_| ())
    }

    /// Waits at most `timeout` for `pred()`; returns its last value
    /// (Python's `wait_for(pred, timeout)`).
    pub fn wait_for_timeout(
        &mut self,
        pred: impl FnMut() -> bool,
        timeout: Duration,
    ) -> Result<bool, ConditionError> {
        self.wait_for_deadline(pred, to_deadline(timeout))
    }

    /// Wakes up to `n` waiters, the longest-waiting first; returns how many.
    pub fn notify(&mut self, n: usize) -> usize {
        self.cond.notify_n(n)
    }

    /// Wakes every waiter; returns how many.
    pub fn notify_all(&mut self) -> usize {
        self.notify(usize::MAX)
    }
}
