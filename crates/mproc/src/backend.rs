//! The seam between the public types and the places objects live.
//!
//! [`QueueBackend`] and [`LockBackend`] are the operations every backend
//! provides with the same semantics; the public `Queue`, `Lock` and friends
//! hold an enum of the backends' types and add typing, method families and
//! errors. The shared-memory backend (`local`) implements them in its
//! segment types, the Redis backend (`redis`) in its server objects.

use std::fmt;
use std::io;
use std::time::Instant;

use crate::wait::Wait;
use std::time::SystemTime;

/// Failure of a queue operation, before it is turned into a public error.
#[derive(Debug)]
pub(crate) enum OpError {
    /// Would block (full for put, empty for get) or the deadline passed.
    WouldBlock,
    /// Closed (for get: closed and drained).
    Closed,
    /// The message exceeds the limit.
    TooLarge { size: usize, limit: usize },
    /// The shared state is inconsistent.
    Damaged(String),
    /// More `task_done` / `ack` calls than outstanding tasks.
    NothingOutstanding,
    /// The backend failed (a lock, a connection).
    Io(io::Error),
}

impl OpError {
    /// As an [`io::Error`], for an operation whose public error has no
    /// variant of its own for it: damage is `InvalidData`.
    pub(crate) fn into_io(self) -> io::Error {
        match self {
            OpError::Io(e) => e,
            OpError::Damaged(s) => io::Error::new(io::ErrorKind::InvalidData, s),
            other => io::Error::other(format!("{other:?}")),
        }
    }
}

impl From<io::Error> for OpError {
    fn from(e: io::Error) -> Self {
        // A lock word the kernel refuses is damage, not a failing system.
        if e.kind() == io::ErrorKind::InvalidData {
            return OpError::Damaged(e.to_string());
        }
        OpError::Io(e)
    }
}

/// A queue's fixed limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Message-count bound; 0 means unbounded.
    pub(crate) maxsize: u64,
    /// Byte budget for records.
    pub(crate) max_bytes: u64,
    /// The largest message.
    pub(crate) max_message: usize,
}

/// A snapshot of a queue's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Counters {
    pub(crate) len: u64,
    pub(crate) bytes_used: u64,
    pub(crate) closed: bool,
    pub(crate) total_put: u64,
    pub(crate) total_got: u64,
    pub(crate) total_done: u64,
    pub(crate) waiting_get: u32,
    pub(crate) waiting_put: u32,
    pub(crate) leased: u64,
    pub(crate) requeued: u64,
    pub(crate) dead_lettered: u64,
}

/// The operations of a bounded MPMC byte queue.
pub(crate) trait QueueBackend: Send + Sync + fmt::Debug {
    /// The name, `None` when anonymous.
    fn name(&self) -> Option<&str>;
    /// The fixed limits.
    fn limits(&self) -> Limits;
    /// Puts messages in order; returns how many were put before an error.
    /// Waits while full as long as `wait` allows.
    fn put(&self, msgs: &[&[u8]], wait: Wait) -> (usize, Result<(), OpError>);
    /// Takes up to `max` (≥ 1) messages, handing each to `sink`; waits for
    /// the first as long as `wait` allows. `scratch` is a reusable buffer.
    fn get(
        &self,
        max: usize,
        wait: Wait,
        sink: &mut dyn FnMut(&[u8]),
        scratch: &mut Vec<u8>,
    ) -> Result<usize, OpError>;
    /// Copies the next message without taking it; false when empty.
    fn peek(&self, out: &mut Vec<u8>) -> Result<bool, OpError>;
    /// Discards every message; returns how many.
    fn purge(&self) -> Result<u64, OpError>;
    /// Closes the queue for every process.
    fn close(&self) -> Result<(), OpError>;
    /// Messages in the queue.
    fn len(&self) -> u64;
    /// Whether an empty message could not be put now.
    fn is_full(&self) -> bool;
    /// Whether the queue is closed.
    fn is_closed(&self) -> bool;
    /// All counters.
    fn counters(&self) -> Counters;
    /// Marks one task done.
    fn task_done(&self) -> Result<(), OpError>;
    /// Tasks put but not marked done.
    fn unfinished(&self) -> u64;
    /// Waits until no task is unfinished; false on timeout.
    fn join(&self, deadline: Option<Instant>) -> Result<bool, OpError>;
    /// Takes one message under a lease held by this process.
    fn get_leased(&self, wait: Wait, out: &mut Vec<u8>) -> Result<Receipt, OpError>;
    /// Acknowledges a lease, or with `requeue` gives its item back for
    /// another delivery; `NothingOutstanding` if it is not (or no longer) held.
    fn settle(&self, receipt: &Receipt, requeue: bool) -> Result<(), OpError>;
    /// Puts the items leased by dead consumers back; returns how many.
    fn reclaim(&self) -> Result<u64, OpError>;
    /// Deliveries after which an item is dead-lettered (0: never).
    fn max_deliveries(&self) -> u32;
    /// Counts an item taken out of circulation after too many deliveries.
    fn note_dead_lettered(&self);
    /// The messages the backend itself set aside after too many deliveries
    /// (oldest first): a server queue keeps them; shared memory moves them
    /// to the queue `<name>.dlq` instead, and has none here.
    fn dead_letters(&self) -> io::Result<Vec<Vec<u8>>> {
        Ok(Vec::new())
    }
    /// Where the caller must move items delivered too often: the directory
    /// and name of the queue beside this one (`<name>.dlq`); `None` when
    /// the backend sets them aside itself, or the queue is anonymous.
    fn dead_letter_queue(&self) -> Option<(std::path::PathBuf, String)> {
        None
    }
}

/// Proof of a leased delivery, to acknowledge it with `ack`.
///
/// Receipts can be sent to other processes (they are `Serialize`), but only
/// the process that took the lease can acknowledge it: a lease dies with its
/// holder, and its item is delivered again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Receipt {
    pub(crate) deliveries: u32,
    pub(crate) token: ReceiptToken,
}

impl Receipt {
    /// How many times this item has been delivered, this time included.
    pub fn deliveries(&self) -> u32 {
        self.deliveries
    }
}

/// Backend-specific identification of a leased record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum ReceiptToken {
    /// Shared memory: the record's sequence and position, the owner slot and pid.
    Local {
        seq: u32,
        pos: u32,
        slot: u32,
        pid: u32,
    },
    /// Redis: the element and the processing list it sits in.
    #[cfg(feature = "redis")]
    Redis { elem: Vec<u8>, proc: String },
}

/// How a lock was acquired.
pub(crate) use crate::sys::Acquired;

/// The operations of a cross-process lock (a raw lock, in `lock_api`'s
/// sense: [`Lock`](crate::Lock) and its guard are the safe API on top).
///
/// # Safety
/// An implementation must give mutual exclusion: between an `acquire` that
/// returns `Ok(Some(_))` and the matching `release`, no other thread of any
/// process may acquire it (but for a holder that died or whose lease
/// expired, which the next acquisition reports as `OwnerDied`).
pub(crate) unsafe trait LockBackend: Send + Sync + fmt::Debug {
    /// The name, `None` when anonymous.
    fn name(&self) -> Option<&str>;
    /// Acquires: waiting no longer than `wait` allows.
    /// `Ok(None)`: not acquired.
    fn acquire(&self, wait: Wait) -> io::Result<Option<Acquired>>;
    /// Releases a holding acquired by this thread through `acquire`.
    ///
    /// # Safety
    /// The calling thread must hold the lock.
    unsafe fn release(&self);
    /// Attaches a tag to the current holding (and records its start).
    fn set_tag(&self, tag: &str);
    /// Records now as the start of the current holding, unless recorded.
    fn record_since(&self) {}
    /// Whether some process holds the lock.
    fn is_locked(&self) -> bool;
    /// The current holder.
    fn holder(&self) -> Option<Holder>;
    /// The processes waiting.
    fn waiters(&self) -> Vec<Waiter>;
    /// Frees the lock whatever its state (see `Lock::force_release`).
    fn force_release(&self) -> io::Result<()>;
    /// Whether the last grant through this handle followed a holder whose
    /// lease expired (rather than one that died).
    fn took_expired_lease(&self) -> bool {
        false
    }
}

/// Who holds a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Holder {
    /// Process id of the holder (0 if not yet recorded).
    pub pid: u32,
    /// When it acquired the lock, if recorded: always over Redis; on shared
    /// memory when the acquisition waited, or the holder tagged its holding
    /// or called [`LockGuard::record_since`](crate::LockGuard::record_since)
    /// (an acquisition that finds the lock free reads no clock).
    pub since: Option<SystemTime>,
    /// The tag it attached, if any.
    pub tag: Option<String>,
}

/// A process reading under a readers-writer lock.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reader {
    /// Process id of the reader.
    pub pid: u32,
    /// When it started reading.
    pub since: SystemTime,
}

/// Most threads reading a readers-writer lock at once (shared memory's
/// reader slots; a server has no limit).
pub(crate) const MAX_READERS: usize = 256;

/// The operations of a cross-process readers-writer lock (raw, as
/// [`LockBackend`]; [`RwLock`](crate::RwLock) is the safe API on top).
///
/// # Safety
/// An implementation must give readers-writer exclusion: between a `write`
/// that returns `Ok(Some(_))` and the matching `write_release`, no other
/// thread of any process holds a read share or the write lock; between a
/// `read` that returns `Ok(Some(_))` and its `read_release`, no thread holds
/// the write lock (but for a holder that died, reported as `OwnerDied`).
pub(crate) unsafe trait RwLockBackend: Send + Sync + fmt::Debug {
    /// The name, `None` when anonymous.
    fn name(&self) -> Option<&str>;
    /// Takes a read share (`Ok(None)`: not taken); returns how, and the
    /// share's slot for `read_release`.
    fn read(&self, wait: Wait) -> io::Result<Option<(Acquired, usize)>>;
    /// Gives back the share in `slot`.
    ///
    /// # Safety
    /// The calling thread must hold that share (taken through `read`).
    unsafe fn read_release(&self, slot: usize);
    /// Takes the write lock (`Ok(None)`: not taken).
    fn write(&self, wait: Wait) -> io::Result<Option<Acquired>>;
    /// Releases the write lock.
    ///
    /// # Safety
    /// The calling thread must hold it (taken through `write`).
    unsafe fn write_release(&self);
    /// Attaches a tag to the current write holding (where kept).
    fn set_tag(&self, _tag: &str) {}
    /// Whether holdings can be kept until the process exits, across exec.
    fn keeps_across_exec(&self) -> bool {
        false
    }
    /// Keeps the write lock until this process exits.
    ///
    /// # Safety
    /// The calling thread must hold it, and `keeps_across_exec` be true.
    unsafe fn write_keep_until_exit(&self) {}
    /// The writer holding the lock.
    fn writer(&self) -> Option<Holder>;
    /// The processes reading now.
    fn readers(&self) -> Vec<Reader>;
    /// The writers waiting.
    fn waiting_writers(&self) -> Vec<Waiter>;
    /// How many processes wait to read.
    fn waiting_readers(&self) -> u32;
    /// Frees the write lock whatever its state.
    fn force_release(&self) -> io::Result<()>;
}

/// A process waiting for a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Waiter {
    /// Process id of the waiter.
    pub pid: u32,
    /// When it started waiting.
    pub since: SystemTime,
}

/// A lock held as a lease on a server: what fencing needs of it (see
/// `fence.rs`). Locks in shared memory have no lease.
pub(crate) trait Lease {
    /// Until when the holding is valid, by this process's clock.
    fn lease_valid_until(&self) -> Option<Instant>;
    /// Whether the holding is still valid.
    fn lease_valid(&self) -> bool;
    /// Runs `f` once, on another thread, when the holding's lease is lost.
    fn on_lease_lost(&self, f: Box<dyn FnOnce() + Send>);
    /// The holding's fencing token.
    fn fence(&self) -> Option<u64>;
    /// Asks the server whether the holding's lease was lost.
    fn lease_lost(&self) -> io::Result<bool>;
    /// Adds `delta` to cell `cell` if the lease still holds and the result
    /// is at least `floor` (`set`: stores `delta` instead): `Ok(Ok(new))`,
    /// or `Ok(Err(current))` when the floor refused it.
    fn fenced(
        &self,
        cell: &str,
        delta: i64,
        floor: i64,
        set: bool,
    ) -> Result<Result<i64, i64>, FenceFail>;
    /// Reads cell `cell` (0 if never written).
    fn cell(&self, cell: &str) -> io::Result<i64>;
}

/// Why a fenced write was not made.
#[derive(Debug)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) enum FenceFail {
    /// The lease was lost: another holder may have the lock.
    Lost,
    /// The server failed.
    Io(io::Error),
}

/// The longest tag a lock holding keeps, in bytes (every backend).
pub(crate) const TAG_MAX: usize = 64;

/// The smallest byte budget of a queue.
pub(crate) const MIN_BYTES: usize = 64;
/// The largest byte budget of a queue (and so the largest message): a
/// shared-memory ring of 2 GiB holds it with its headers and end mark.
pub(crate) const MAX_BYTES: usize = (1 << 31) - 24;

/// A queue's settings, checked against the limits every backend keeps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueParams {
    /// Message-count bound; 0 means unbounded.
    pub(crate) maxsize: usize,
    /// The byte budget, and the largest message.
    pub(crate) max_bytes: usize,
    /// Deliveries after which a leased item is dead-lettered (0: never).
    pub(crate) max_deliveries: u32,
}

/// The largest `max_deliveries` (24 bits of a record's meta word).
pub(crate) const MAX_DELIVERIES: u32 = 0xff_ffff;

impl QueueParams {
    /// Checks the settings; the error says which one is out of range.
    pub(crate) fn new(
        maxsize: usize,
        max_bytes: usize,
        max_deliveries: u32,
    ) -> Result<QueueParams, String> {
        if !(MIN_BYTES..=MAX_BYTES).contains(&max_bytes) {
            return Err(format!(
                "max_bytes must be between {MIN_BYTES} and {MAX_BYTES}, got {max_bytes}"
            ));
        }
        if maxsize > u32::MAX as usize / 2 {
            return Err(format!(
                "maxsize must be at most {}, got {maxsize}",
                u32::MAX / 2
            ));
        }
        if max_deliveries > MAX_DELIVERIES {
            return Err(format!(
                "max_deliveries must be at most {MAX_DELIVERIES}, got {max_deliveries}"
            ));
        }
        Ok(QueueParams {
            maxsize,
            max_bytes,
            max_deliveries,
        })
    }
}
