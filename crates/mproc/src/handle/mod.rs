//! Handing objects to other processes: `Serialize`/`Deserialize` for handles.
//!
//! A named object travels as its namespace directory and name, and the
//! receiver opens it. An anonymous object travels as a descriptor number:
//! [`collect_fds`] records the descriptors a serialisation mentions so that
//! the process spawner can let exactly those be inherited, and the receiver
//! adopts a duplicate of the inherited descriptor after checking that it is a
//! segment of the right kind. The spawned child's list of inherited
//! descriptors ([`set_inherited`]) lives here too, so that every handle
//! (and pipe end) adopts its descriptor through [`adopt_fd`].

//!
//! The wire form and the descriptor bookkeeping are in [`wire`].

pub(crate) mod wire;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::flavor::{LockImpl, QueueImpl, RwLockImpl};
use crate::joinable::JoinableQueue;
use crate::lock::Lock;
use crate::namespace::Namespace;
use crate::queue::{ByteQueue, Queue};
use crate::rwlock::RwLock;
pub(crate) use wire::{adopt_fd, collect_fds, inode, note_fd, set_inherited, Repr};

use std::os::fd::{BorrowedFd, OwnedFd};

use crate::error::OpenError;

/// A handle that can travel to another process as a file descriptor, over
/// any channel that passes descriptors (`SCM_RIGHTS`, Python's
/// `multiprocessing.reduction.DupFd`), for programs that start their
/// processes without [`Process`](crate::Process).
///
/// Only anonymous shared-memory objects have a descriptor; named objects
/// travel by namespace and name, and server objects by URL and name.
///
/// ```
/// use mproc::{Lock, SharedFd};
///
/// let lock = Lock::new().unwrap();
/// let fd = lock.shared_fd().unwrap().try_clone_to_owned().unwrap(); // what another process receives
/// let same = Lock::from_shared_fd(fd).unwrap();
/// let _guard = lock.lock().unwrap();
/// assert!(same.is_locked());
/// ```
pub trait SharedFd: Sized {
    /// The memory file behind an anonymous object; `None` for a named or
    /// server object.
    fn shared_fd(&self) -> Option<BorrowedFd<'_>>;

    /// Opens the object behind a descriptor received from another process
    /// (the caller's own duplicate, which the handle keeps). Fails unless it
    /// is the memory file of an object of this kind.
    fn from_shared_fd(fd: OwnedFd) -> Result<Self, OpenError>;
}

impl SharedFd for Lock {
    fn shared_fd(&self) -> Option<BorrowedFd<'_>> {
        self.imp().shared_fd()
    }

    fn from_shared_fd(fd: OwnedFd) -> Result<Self, OpenError> {
        LockImpl::from_fd(fd).map(Lock::from_impl)
    }
}

impl SharedFd for ByteQueue {
    fn shared_fd(&self) -> Option<BorrowedFd<'_>> {
        self.imp().shared_fd()
    }

    fn from_shared_fd(fd: OwnedFd) -> Result<Self, OpenError> {
        QueueImpl::from_fd(fd).map(ByteQueue::from_impl)
    }
}

impl SharedFd for RwLock {
    fn shared_fd(&self) -> Option<BorrowedFd<'_>> {
        self.imp().shared_fd()
    }

    fn from_shared_fd(fd: OwnedFd) -> Result<Self, OpenError> {
        RwLockImpl::from_fd(fd).map(RwLock::from_impl)
    }
}

impl Serialize for Lock {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.imp().repr().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Lock {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Lock, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Named { dir, name } => {
                let ns = Namespace::dir(dir).map_err(D::Error::custom)?;
                Lock::open_in(&ns, &name).map_err(D::Error::custom)
            }
            Repr::Fd(fd, ino) => LockImpl::from_fd(adopt_fd(fd, ino)?)
                .map(Lock::from_impl)
                .map_err(D::Error::custom),
            #[cfg(feature = "redis")]
            Repr::Remote { url, name } => {
                let ns = Namespace::from_url(&url).map_err(D::Error::custom)?;
                Lock::open_in(&ns, &name).map_err(D::Error::custom)
            }
        }
    }
}

impl Serialize for RwLock {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.imp().repr().serialize(s)
    }
}

impl<'de> Deserialize<'de> for RwLock {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RwLock, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Named { dir, name } => {
                let ns = Namespace::dir(dir).map_err(D::Error::custom)?;
                RwLock::open_in(&ns, &name).map_err(D::Error::custom)
            }
            Repr::Fd(fd, ino) => RwLockImpl::from_fd(adopt_fd(fd, ino)?)
                .map(RwLock::from_impl)
                .map_err(D::Error::custom),
            #[cfg(feature = "redis")]
            Repr::Remote { url, name } => {
                let ns = Namespace::from_url(&url).map_err(D::Error::custom)?;
                RwLock::open_in(&ns, &name).map_err(D::Error::custom)
            }
        }
    }
}

impl Serialize for ByteQueue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.imp().repr().serialize(s)
    }
}

impl<'de> Deserialize<'de> for ByteQueue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ByteQueue, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Named { dir, name } => {
                let ns = Namespace::dir(dir).map_err(D::Error::custom)?;
                ByteQueue::open_in(&ns, &name).map_err(D::Error::custom)
            }
            Repr::Fd(fd, ino) => QueueImpl::from_fd(adopt_fd(fd, ino)?)
                .map(ByteQueue::from_impl)
                .map_err(D::Error::custom),
            #[cfg(feature = "redis")]
            Repr::Remote { url, name } => {
                let ns = Namespace::from_url(&url).map_err(D::Error::custom)?;
                ByteQueue::open_in(&ns, &name).map_err(D::Error::custom)
            }
        }
    }
}

impl<T> Serialize for Queue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.byte_queue().serialize(s)
    }
}

impl<'de, T: Serialize + DeserializeOwned> Deserialize<'de> for Queue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Queue<T>, D::Error> {
        ByteQueue::deserialize(d).map(Queue::from_bytes)
    }
}

impl<T> Serialize for JoinableQueue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.inner_queue().byte_queue().serialize(s)
    }
}

impl<'de, T: Serialize + DeserializeOwned> Deserialize<'de> for JoinableQueue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<JoinableQueue<T>, D::Error> {
        Queue::deserialize(d).map(JoinableQueue::from_queue)
    }
}
