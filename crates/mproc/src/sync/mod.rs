//! The rest of Python's `multiprocessing` synchronisation, across processes:
//!
//! * `rlock`     — [`RLock`](crate::RLock), re-entrant per thread, robust.
//! * `semaphore` — [`Semaphore`](crate::Semaphore) and
//!   [`BoundedSemaphore`](crate::BoundedSemaphore), with guards whose units
//!   come back when their holder dies.
//! * `event`     — [`Event`](crate::Event).
//! * `condition` — [`Condition`](crate::Condition), a lock with exact
//!   `notify(n)`.
//! * `barrier`   — [`Barrier`](crate::Barrier), broken by a timeout, an
//!   `abort`, or the death of a waiting party.
//! * `value`     — [`Value`](crate::Value) and [`Array`](crate::Array) of
//!   plain-old-data ([`Pod`](crate::Pod)) with a built-in robust lock.
//!
//! Every object is named (in a [`Namespace`](crate::Namespace)) or
//! anonymous (handed to children by [`Process`](crate::Process)).

pub(crate) mod barrier;
pub(crate) mod condition;
pub(crate) mod event;
mod handles;
pub(crate) mod rlock;
pub(crate) mod semaphore;
pub(crate) mod value;

use crate::error::IoError;

/// Why an [`RLock`](crate::RLock) could not be released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot release an RLock that this thread does not hold")]
pub struct NotOwner;

/// Why a semaphore operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SemaphoreError {
    /// No unit is free and the call could not wait (longer).
    #[error("no unit is free")]
    WouldBlock,
    /// A release would raise a bounded semaphore above its initial value.
    #[error("semaphore released too many times (its bound is {max})")]
    OverRelease {
        /// The bound.
        max: u32,
    },
    /// Every holder slot is taken: more guards are held at once than a
    /// semaphore tracks.
    #[error("too many holders at once (at most {0} guards are tracked)")]
    TooManyHolders(usize),
    /// The backend failed.
    #[error("semaphore failed: {0}")]
    Io(IoError),
}

impl SemaphoreError {
    /// Whether no unit was free in time.
    pub fn is_would_block(&self) -> bool {
        matches!(self, SemaphoreError::WouldBlock)
    }
}

/// Why a [`Condition`](crate::Condition) wait failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConditionError {
    /// The condition's lock was taken back, but the process holding it
    /// before died holding it: the data it protects may be half-updated.
    /// The guard is still valid and held.
    #[error("the lock was taken back, but its previous holder died while holding it")]
    OwnerDied,
    /// More processes wait at once than the condition tracks.
    #[error("too many waiters at once (at most {0})")]
    TooManyWaiters(usize),
    /// The backend failed.
    #[error("condition failed: {0}")]
    Io(IoError),
}

/// Why a [`Barrier`](crate::Barrier) wait failed: Python's
/// `BrokenBarrierError`, or a backend failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BarrierError {
    /// The barrier is broken: a party timed out, called `abort`, died while
    /// waiting, or `reset` was called while this party waited.
    #[error("the barrier is broken")]
    Broken,
    /// The backend failed.
    #[error("barrier failed: {0}")]
    Io(IoError),
}

impl BarrierError {
    /// Whether the barrier is broken.
    pub fn is_broken(&self) -> bool {
        matches!(self, BarrierError::Broken)
    }
}

crate::error::from_io!(SemaphoreError, ConditionError, BarrierError);
