//! Handing objects to other processes: `Serialize`/`Deserialize` for handles.
//!
//! A named object travels as its namespace directory and name, and the
//! receiver opens it. An anonymous object travels as a descriptor number:
//! [`collect_fds`] records the descriptors a serialisation mentions so that
//! the process spawner can let exactly those be inherited, and the receiver
//! adopts a duplicate of the inherited descriptor after checking that it is a
//! segment of the right kind.

use std::cell::RefCell;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::joinable::JoinableQueue;
use crate::local::lock::LocalLock;
use crate::local::ring::Ring;
use crate::local::segment::Segment;
use crate::lock::{Lock, LockImpl};
use crate::namespace::Namespace;
use crate::queue::{ByteQueue, Queue, QueueImpl};
use crate::OpenError;

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

/// The descriptor of an anonymous segment.
pub(crate) fn anonymous_fd(seg: &Segment) -> Option<BorrowedFd<'_>> {
    seg.name().is_none().then(|| seg.fd().as_fd())
}

/// The wire form of a handle.
#[derive(Serialize, Deserialize)]
pub(crate) enum Repr {
    Named {
        dir: PathBuf,
        name: String,
    },
    /// An anonymous object: the descriptor number the receiver inherits,
    /// and the inode of the memory file behind it, so that a number that
    /// names some other file in the receiver is refused.
    Fd(RawFd, u64),
    /// An object on a server: the namespace URL and the name.
    #[cfg(feature = "redis")]
    Remote {
        url: String,
        name: String,
    },
}

thread_local! {
    static COLLECTOR: RefCell<Option<Vec<RawFd>>> = const { RefCell::new(None) };
}

/// Runs `f`, returning with its result every descriptor that handles
/// serialised during `f` need the receiving process to inherit.
pub(crate) fn collect_fds<R>(f: impl FnOnce() -> R) -> (R, Vec<RawFd>) {
    let outer = COLLECTOR.with(|c| c.borrow_mut().replace(Vec::new()));
    let r = f();
    let fds = COLLECTOR.with(|c| std::mem::replace(&mut *c.borrow_mut(), outer));
    (r, fds.unwrap_or_default())
}

/// Records a descriptor that must be inherited (no-op outside `collect_fds`).
pub(crate) fn note_fd(fd: RawFd) {
    COLLECTOR.with(|c| {
        if let Some(v) = c.borrow_mut().as_mut() {
            if !v.contains(&fd) {
                v.push(fd);
            }
        }
    });
}

pub(crate) fn repr_of(seg: &Segment) -> Repr {
    match (seg.dir(), seg.name()) {
        (Some(dir), Some(name)) => Repr::Named {
            dir: dir.to_owned(),
            name: name.to_owned(),
        },
        _ => {
            let fd = seg.fd().as_raw_fd();
            note_fd(fd);
            Repr::Fd(fd, inode(seg.fd().as_fd()).unwrap_or(0))
        }
    }
}

fn inode(fd: BorrowedFd<'_>) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let file = std::fs::File::from(fd.try_clone_to_owned()?);
    Ok(file.metadata()?.ino())
}

/// Takes ownership of an inherited descriptor (or, if this process already
/// claimed it for another handle, a duplicate), after checking that it is
/// the memory file that was sent.
pub(crate) fn adopt_fd<E: serde::de::Error>(fd: RawFd, ino: u64) -> Result<OwnedFd, E> {
    if fd < 0 {
        return Err(E::custom("negative descriptor"));
    }
    // SAFETY: the descriptor is only borrowed for the duration of the fstat
    // and dup calls; if it is not open, they fail with EBADF and we report it.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    match inode(borrowed) {
        Ok(found) if found == ino => {}
        Ok(_) => {
            return Err(E::custom(format!(
                "descriptor {fd} is not the object that was sent (not inherited here)"
            )))
        }
        Err(e) => return Err(E::custom(format!("descriptor {fd} was not inherited: {e}"))),
    }
    if crate::process::take_inherited_fd(fd) {
        // SAFETY: the spawner passed this descriptor to this process for its
        // handles, and `take_inherited_fd` hands its ownership out once.
        return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    borrowed
        .try_clone_to_owned()
        .map_err(|e| E::custom(format!("descriptor {fd}: {e}")))
}

#[cfg(feature = "redis")]
impl crate::redis::lock::RedisLock {
    fn repr(&self) -> Repr {
        Repr::Remote {
            url: self.url().to_owned(),
            name: self.object_name().to_owned(),
        }
    }
}

#[cfg(feature = "redis")]
impl crate::redis::queue::RedisQueue {
    fn repr(&self) -> Repr {
        Repr::Remote {
            url: self.url().to_owned(),
            name: self.object_name().to_owned(),
        }
    }
}

impl SharedFd for Lock {
    fn shared_fd(&self) -> Option<BorrowedFd<'_>> {
        match self.imp() {
            LockImpl::Local(l) => anonymous_fd(l.segment()),
            #[cfg(feature = "redis")]
            LockImpl::Redis(_) => None,
        }
    }

    fn from_shared_fd(fd: OwnedFd) -> Result<Self, OpenError> {
        LocalLock::from_fd(fd).map(Lock::from_local)
    }
}

impl SharedFd for ByteQueue {
    fn shared_fd(&self) -> Option<BorrowedFd<'_>> {
        match self.imp() {
            QueueImpl::Local(r) => anonymous_fd(r.segment()),
            #[cfg(feature = "redis")]
            QueueImpl::Redis(_) => None,
        }
    }

    fn from_shared_fd(fd: OwnedFd) -> Result<Self, OpenError> {
        Ring::from_fd(fd).map(ByteQueue::from_ring)
    }
}

impl Serialize for Lock {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.imp() {
            LockImpl::Local(l) => repr_of(l.segment()).serialize(s),
            #[cfg(feature = "redis")]
            LockImpl::Redis(l) => l.repr().serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Lock {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Lock, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Named { dir, name } => {
                let ns = Namespace::dir(dir).map_err(D::Error::custom)?;
                Lock::open_in(&ns, &name).map_err(D::Error::custom)
            }
            Repr::Fd(fd, ino) => LocalLock::from_fd(adopt_fd(fd, ino)?)
                .map(Lock::from_local)
                .map_err(D::Error::custom),
            #[cfg(feature = "redis")]
            Repr::Remote { url, name } => {
                let ns = Namespace::from_url(&url).map_err(D::Error::custom)?;
                Lock::open_in(&ns, &name).map_err(D::Error::custom)
            }
        }
    }
}

impl Serialize for ByteQueue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.imp() {
            QueueImpl::Local(r) => repr_of(r.segment()).serialize(s),
            #[cfg(feature = "redis")]
            QueueImpl::Redis(q) => q.repr().serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for ByteQueue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ByteQueue, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Named { dir, name } => {
                let ns = Namespace::dir(dir).map_err(D::Error::custom)?;
                ByteQueue::open_in(&ns, &name).map_err(D::Error::custom)
            }
            Repr::Fd(fd, ino) => Ring::from_fd(adopt_fd(fd, ino)?)
                .map(ByteQueue::from_ring)
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
