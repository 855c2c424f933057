//! The one switch between backends: which one an object lives in.
//!
//! [`Lock`](crate::Lock) and [`ByteQueue`](crate::ByteQueue) (and through
//! it `Queue` and `JoinableQueue`) hold a [`LockImpl`] or a [`QueueImpl`]:
//! an enum of the backends' types, matched here once per operation, as
//! crossbeam-channel's `SenderFlavor` is. The namespace says which flavour
//! a named object gets; nothing above this module names a backend.

use std::os::fd::{BorrowedFd, OwnedFd};

use crate::backend::{Acquired, Lease, LockBackend, QueueBackend, QueueParams, RwLockBackend};
use crate::error::{CreateError, OpenError};
use crate::handle::wire::Repr;
use crate::local::lock::LocalLock;
use crate::local::ring::{Ring, RingParams};
use crate::local::rwlock::LocalRwLock;
use crate::local::segment::Place;
use crate::namespace::Namespace;
use crate::object::ObjectKind;
use crate::wait::Wait;

/// The backends a queue can live in.
#[derive(Debug)]
pub(crate) enum QueueImpl {
    /// A ring in shared memory.
    Local(Ring),
    /// Lists on a Redis server.
    #[cfg(feature = "redis")]
    Redis(crate::redis::queue::RedisQueue),
}

/// The ring parameters for checked queue settings.
fn ring_params(p: &QueueParams) -> Result<RingParams, CreateError> {
    let mut r = RingParams::new(p.maxsize, p.max_bytes).map_err(CreateError::InvalidOptions)?;
    r.max_deliveries = p.max_deliveries;
    Ok(r)
}

impl QueueImpl {
    /// A new anonymous queue (shared memory), to hand to child processes.
    pub(crate) fn anonymous(p: &QueueParams) -> Result<QueueImpl, CreateError> {
        Ring::create(Place::Anonymous, ring_params(p)?).map(QueueImpl::Local)
    }

    /// Creates the named queue in `ns`.
    pub(crate) fn create(
        ns: &Namespace,
        name: &str,
        p: &QueueParams,
    ) -> Result<QueueImpl, CreateError> {
        #[cfg(feature = "redis")]
        if let Some(r) = ns.remote() {
            return crate::redis::queue::RedisQueue::create(r, name, p).map(QueueImpl::Redis);
        }
        Ring::create(ns.create_place(ObjectKind::Queue, name)?, ring_params(p)?)
            .map(QueueImpl::Local)
    }

    /// Opens the named queue in `ns`.
    pub(crate) fn open(ns: &Namespace, name: &str) -> Result<QueueImpl, OpenError> {
        #[cfg(feature = "redis")]
        if let Some(r) = ns.remote() {
            return crate::redis::queue::RedisQueue::open(r, name).map(QueueImpl::Redis);
        }
        Ring::open(ns.open_dir(ObjectKind::Queue, name)?, name).map(QueueImpl::Local)
    }

    /// Adopts an anonymous queue's descriptor, inherited from a parent.
    pub(crate) fn from_fd(fd: OwnedFd) -> Result<QueueImpl, OpenError> {
        Ring::from_fd(fd).map(QueueImpl::Local)
    }

    /// The queue's operations.
    #[inline]
    pub(crate) fn backend(&self) -> &dyn QueueBackend {
        match self {
            QueueImpl::Local(r) => r,
            #[cfg(feature = "redis")]
            QueueImpl::Redis(q) => q,
        }
    }

    /// The memory file of an anonymous object; `None` for a named or a
    /// server object.
    pub(crate) fn shared_fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            QueueImpl::Local(r) => r.segment().anonymous_fd(),
            #[cfg(feature = "redis")]
            QueueImpl::Redis(_) => None,
        }
    }

    /// How the queue travels to another process.
    pub(crate) fn repr(&self) -> Repr {
        match self {
            QueueImpl::Local(r) => r.segment().repr(),
            #[cfg(feature = "redis")]
            QueueImpl::Redis(q) => Repr::Remote {
                url: q.url().to_owned(),
                name: q.object_name().to_owned(),
            },
        }
    }
}

/// The backends a lock can live in.
#[derive(Debug)]
pub(crate) enum LockImpl {
    /// A robust futex lock in shared memory.
    Local(LocalLock),
    /// A lease on a Redis server.
    #[cfg(feature = "redis")]
    Redis(crate::redis::lock::RedisLock),
}

impl LockImpl {
    /// A new anonymous lock (shared memory), to hand to child processes.
    pub(crate) fn anonymous() -> Result<LockImpl, CreateError> {
        LocalLock::create(Place::Anonymous).map(LockImpl::Local)
    }

    /// Creates the named lock in `ns`.
    pub(crate) fn create(ns: &Namespace, name: &str) -> Result<LockImpl, CreateError> {
        #[cfg(feature = "redis")]
        if let Some(r) = ns.remote() {
            return crate::redis::lock::RedisLock::create(r, name).map(LockImpl::Redis);
        }
        LocalLock::create(ns.create_place(ObjectKind::Lock, name)?).map(LockImpl::Local)
    }

    /// Opens the named lock in `ns`.
    pub(crate) fn open(ns: &Namespace, name: &str) -> Result<LockImpl, OpenError> {
        #[cfg(feature = "redis")]
        if let Some(r) = ns.remote() {
            return crate::redis::lock::RedisLock::open(r, name).map(LockImpl::Redis);
        }
        LocalLock::open(ns.open_dir(ObjectKind::Lock, name)?, name).map(LockImpl::Local)
    }

    /// Adopts an anonymous lock's descriptor, inherited from a parent.
    pub(crate) fn from_fd(fd: OwnedFd) -> Result<LockImpl, OpenError> {
        LocalLock::from_fd(fd).map(LockImpl::Local)
    }

    /// The lock's operations.
    #[inline]
    pub(crate) fn backend(&self) -> &dyn LockBackend {
        match self {
            LockImpl::Local(l) => l,
            #[cfg(feature = "redis")]
            LockImpl::Redis(l) => l,
        }
    }

    /// [`LockBackend::acquire`], matched here rather than through
    /// [`backend`](Self::backend) so that the shared-memory fast path
    /// inlines into the caller.
    #[inline]
    pub(crate) fn acquire(&self, wait: Wait) -> std::io::Result<Option<Acquired>> {
        match self {
            LockImpl::Local(l) => l.acquire(wait),
            #[cfg(feature = "redis")]
            LockImpl::Redis(l) => l.acquire(wait),
        }
    }

    /// [`LockBackend::release`], inlined as [`acquire`](Self::acquire) is.
    ///
    /// # Safety
    /// The calling thread must hold the lock (acquired through `acquire`).
    #[inline]
    pub(crate) unsafe fn release(&self) {
        // SAFETY: the caller holds the lock (function contract).
        unsafe {
            match self {
                LockImpl::Local(l) => l.release(),
                #[cfg(feature = "redis")]
                LockImpl::Redis(l) => l.release(),
            }
        }
    }

    /// The lease of a lock on a server; `None` in shared memory (a lock
    /// that cannot be lost while its holder lives).
    pub(crate) fn lease(&self) -> Option<&dyn Lease> {
        match self {
            LockImpl::Local(_) => None,
            #[cfg(feature = "redis")]
            LockImpl::Redis(l) => Some(l),
        }
    }

    /// The memory file of an anonymous object; `None` for a named or a
    /// server object.
    pub(crate) fn shared_fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            LockImpl::Local(l) => l.segment().anonymous_fd(),
            #[cfg(feature = "redis")]
            LockImpl::Redis(_) => None,
        }
    }

    /// How the lock travels to another process.
    pub(crate) fn repr(&self) -> Repr {
        match self {
            LockImpl::Local(l) => l.segment().repr(),
            #[cfg(feature = "redis")]
            LockImpl::Redis(l) => Repr::Remote {
                url: l.url().to_owned(),
                name: l.object_name().to_owned(),
            },
        }
    }
}

/// The backends a readers-writer lock can live in.
#[derive(Debug)]
pub(crate) enum RwLockImpl {
    /// A writers' robust lock and reader slots in shared memory.
    Local(LocalRwLock),
    /// Leases on a Redis server.
    #[cfg(feature = "redis")]
    Redis(crate::redis::rwlock::RedisRwLock),
}

impl RwLockImpl {
    /// A new anonymous readers-writer lock (shared memory).
    pub(crate) fn anonymous() -> Result<RwLockImpl, CreateError> {
        LocalRwLock::create(Place::Anonymous).map(RwLockImpl::Local)
    }

    /// Creates the named readers-writer lock in `ns`.
    pub(crate) fn create(ns: &Namespace, name: &str) -> Result<RwLockImpl, CreateError> {
        #[cfg(feature = "redis")]
        if let Some(r) = ns.remote() {
            return crate::redis::rwlock::RedisRwLock::create(r, name).map(RwLockImpl::Redis);
        }
        LocalRwLock::create(ns.create_place(ObjectKind::RwLock, name)?).map(RwLockImpl::Local)
    }

    /// Opens the named readers-writer lock in `ns`.
    pub(crate) fn open(ns: &Namespace, name: &str) -> Result<RwLockImpl, OpenError> {
        #[cfg(feature = "redis")]
        if let Some(r) = ns.remote() {
            return crate::redis::rwlock::RedisRwLock::open(r, name).map(RwLockImpl::Redis);
        }
        LocalRwLock::open(ns.open_dir(ObjectKind::RwLock, name)?, name).map(RwLockImpl::Local)
    }

    /// Adopts an anonymous lock's descriptor, inherited from a parent.
    pub(crate) fn from_fd(fd: OwnedFd) -> Result<RwLockImpl, OpenError> {
        LocalRwLock::from_fd(fd).map(RwLockImpl::Local)
    }

    /// The lock's operations.
    #[inline]
    pub(crate) fn backend(&self) -> &dyn RwLockBackend {
        match self {
            RwLockImpl::Local(l) => l,
            #[cfg(feature = "redis")]
            RwLockImpl::Redis(l) => l,
        }
    }

    /// The memory file of an anonymous object; `None` for a named or a
    /// server object.
    pub(crate) fn shared_fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            RwLockImpl::Local(l) => l.segment().anonymous_fd(),
            #[cfg(feature = "redis")]
            RwLockImpl::Redis(_) => None,
        }
    }

    /// How the lock travels to another process.
    pub(crate) fn repr(&self) -> Repr {
        match self {
            RwLockImpl::Local(l) => l.segment().repr(),
            #[cfg(feature = "redis")]
            RwLockImpl::Redis(l) => Repr::Remote {
                url: l.url().to_owned(),
                name: l.object_name().to_owned(),
            },
        }
    }
}
