//! Fencing: the lock's grant number and writes refused to a holder whose
//! lease was lost.
//!
//! A lock on a server is a lease: a holder that stalls (a long pause, a
//! stopped process, a partition) past its lease loses the lock to the next
//! acquirer without knowing it. Every grant carries a fencing token that
//! only increases ([`LockGuard::fence`]); a *fenced cell* is an integer kept
//! beside the lock whose writes check, atomically with the write, that the
//! writer still holds the lease ([`LockGuard::fenced_add`]). A stale holder's
//! write is refused with [`FenceError::LeaseLost`].
//!
//! Locks in a directory namespace cannot be lost while their process lives
//! (the kernel releases them only when it dies), so they have no fencing
//! token and no cells.

use crate::backend::FenceFail;
use crate::error::IoError;
use crate::lock::{Lock, LockGuard};
use crate::name::validate_name;

/// Why a fenced operation was not done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FenceError {
    /// The lease was lost: another process may hold the lock now. Nothing
    /// was written.
    #[error("the lock's lease was lost (another process may hold it); the write was refused")]
    LeaseLost,
    /// Fenced cells exist only for locks on a server (`redis://` namespaces).
    #[error("fenced cells need a lock on a server (a redis:// namespace)")]
    Unsupported,
    /// The cell name is invalid.
    #[error("invalid cell name: {0}")]
    InvalidName(String),
    /// The server failed.
    #[error("lock backend error: {0}")]
    Io(IoError),
}

fn fail(e: FenceFail) -> FenceError {
    match e {
        FenceFail::Lost => FenceError::LeaseLost,
        FenceFail::Io(e) => FenceError::Io(e.into()),
    }
}

fn check_name(cell: &str) -> Result<(), FenceError> {
    validate_name(cell).map_err(|e| FenceError::InvalidName(e.to_string()))
}

impl LockGuard<'_> {
    /// Until when this holding's lease is valid, by this process's
    /// monotonic clock: the sending of the last grant or renewal the server
    /// confirmed, plus the lease (the server's lease started later, so this
    /// errs early). Renewals move it forward; once the lease is lost it is
    /// the instant the loss was noticed, in the past. `None` for a lock in
    /// a directory namespace, which has no lease: it is held until
    /// released or its holder dies.
    pub fn lease_valid_until(&self) -> Option<std::time::Instant> {
        self.lock().imp().lease()?.lease_valid_until()
    }

    /// Whether this holding is still valid: always for a lock in a
    /// directory namespace; for a lock on a server, while no renewal was
    /// refused and [`lease_valid_until`](Self::lease_valid_until) is ahead.
    pub fn lease_valid(&self) -> bool {
        self.lock().imp().lease().is_none_or(|l| l.lease_valid())
    }

    /// Runs `f` once, on another thread, when this holding's lease is lost:
    /// the server refused a renewal, or no renewal succeeded before
    /// [`lease_valid_until`](Self::lease_valid_until) (even while the
    /// server does not answer at all). At once if it is already lost; never
    /// if the guard is released first, nor for a lock in a directory
    /// namespace. `f` should be short (set a flag, signal a worker).
    pub fn on_lease_lost(&self, f: impl FnOnce() + Send + 'static) {
        if let Some(l) = self.lock().imp().lease() {
            l.on_lease_lost(Box::new(f));
        }
    }

    /// The fencing token of this holding: it increases with every grant of
    /// the lock, so a resource that remembers the highest token it has seen
    /// can refuse writes from older holders. `None` for a lock in a
    /// directory namespace.
    pub fn fence(&self) -> Option<u64> {
        self.lock().imp().lease()?.fence()
    }

    /// Checks with the server that this holding's lease is still valid.
    /// Always `Ok` for a lock in a directory namespace.
    pub fn check(&self) -> Result<(), FenceError> {
        match self.lock().imp().lease().map(|l| l.lease_lost()) {
            None | Some(Ok(false)) => Ok(()),
            Some(Ok(true)) => Err(FenceError::LeaseLost),
            Some(Err(e)) => Err(FenceError::Io(e.into())),
        }
    }

    /// Adds `delta` to the fenced cell `cell` (a name like an object's),
    /// unless the result would be below `floor`: `Ok(Some(new value))`, or
    /// `Ok(None)` when the floor refused it. The ownership check and the
    /// write are one atomic step on the server, so a holder whose lease was
    /// lost gets [`FenceError::LeaseLost`] and writes nothing.
    ///
    /// Selling a ticket: `guard.fenced_add("tickets", -1, 0)`.
    pub fn fenced_add(
        &self,
        cell: &str,
        delta: i64,
        floor: i64,
    ) -> Result<Option<i64>, FenceError> {
        check_name(cell)?;
        let lease = self.lock().imp().lease().ok_or(FenceError::Unsupported)?;
        lease
            .fenced(cell, delta, floor, false)
            .map(Result::ok)
            .map_err(fail)
    }

    /// Sets the fenced cell `cell` to `value`, if this holding's lease is
    /// still valid.
    pub fn fenced_set(&self, cell: &str, value: i64) -> Result<(), FenceError> {
        check_name(cell)?;
        let lease = self.lock().imp().lease().ok_or(FenceError::Unsupported)?;
        lease.fenced(cell, value, 0, true).map(|_| ()).map_err(fail)
    }
}

impl Lock {
    /// Reads the fenced cell `cell` (0 if never written); no holding needed.
    pub fn fenced_get(&self, cell: &str) -> Result<i64, FenceError> {
        check_name(cell)?;
        let lease = self.imp().lease().ok_or(FenceError::Unsupported)?;
        lease.cell(cell).map_err(|e| FenceError::Io(e.into()))
    }
}

crate::error::from_io!(FenceError);
