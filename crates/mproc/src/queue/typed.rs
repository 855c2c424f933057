//! [`Queue`]: the typed layer over [`ByteQueue`]. Items are encoded with
//! postcard (or travel as raw bytes when they serialize as one string or
//! byte sequence), into per-thread buffers.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{ByteQueue, QueueOptions, QueueStats};
use crate::backend::Receipt;
use crate::error::{AckError, CreateError, GetError, OpenError, PutError, PutErrorKind};
use crate::namespace::Namespace;

thread_local! {
    static ENCODE_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static DECODE_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with a reusable per-thread buffer (a fresh one if re-entered).
fn with_buf<R>(
    key: &'static std::thread::LocalKey<RefCell<Vec<u8>>>,
    f: impl FnOnce(&mut Vec<u8>) -> R,
) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => f(&mut buf),
        Err(_) => f(&mut Vec::new()),
    })
}

use crate::codec::encode;
use crate::wait::Wait;

/// Decodes a whole message; on failure the error carries its bytes.
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, GetError> {
    crate::codec::decode(bytes).map_err(|message| GetError::Decode {
        message,
        bytes: bytes.to_vec(),
    })
}

/// A bounded, blocking FIFO of `T` shared by processes: Python's
/// `multiprocessing.Queue`, with exact `len` and a `close` that ends every
/// consumer cleanly.
///
/// Items are encoded with postcard, except a value that serializes as one
/// string or byte sequence (`String`, `Vec<u8>`, ...): it travels as its raw
/// bytes, so a `Queue<String>` and `mproc queue put`/`get` or a
/// [`ByteQueue`] read each other's messages. An item that cannot be decoded
/// is never dropped: [`GetError::Decode`] hands its bytes back. Each
/// producer's items arrive in its order. A killed producer or consumer
/// never leaves the queue torn or locked.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let ns = mproc::Namespace::dir(dir.path()).unwrap();
/// use mproc::{Queue, QueueOptions};
/// let q: Queue<String> = Queue::create_in(&ns, "jobs", QueueOptions::new().maxsize(5)).unwrap();
/// for i in 1..=5 {
///     q.put(format!("item {i}")).unwrap(); // five puts return at once
/// }
/// assert!(q.is_full());
/// assert!(q.try_put("six".into()).unwrap_err().is_full()); // a sixth would block
/// q.close();
/// let drained: Vec<String> = std::iter::from_fn(|| q.get().ok()).collect();
/// assert_eq!(drained.len(), 5);
/// assert!(q.get().unwrap_err().is_closed()); // end of stream, no sentinel
/// ```
pub struct Queue<T> {
    bytes: ByteQueue,
    /// Messages a `get_many` took after one that could not be decoded:
    /// the next gets of this handle (and its clones) return them first.
    held: Arc<Mutex<VecDeque<Vec<u8>>>>,
    _marker: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            bytes: self.bytes.clone(),
            held: Arc::clone(&self.held),
            _marker: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.bytes.name())
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl<T> Queue<T> {
    /// The underlying byte queue, whatever `T` is.
    pub(crate) fn byte_queue(&self) -> &ByteQueue {
        &self.bytes
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// Creates an anonymous queue holding at most `maxsize` items (0: no
    /// count limit), to hand to child processes.
    pub fn new(maxsize: usize) -> Result<Queue<T>, CreateError> {
        ByteQueue::new(maxsize).map(Queue::from_bytes)
    }

    /// Creates an anonymous queue with the given options.
    pub fn with_options(opts: QueueOptions) -> Result<Queue<T>, CreateError> {
        ByteQueue::with_options(opts).map(Queue::from_bytes)
    }

    crate::util::named_constructors!("queue (created with `opts`)", opts: QueueOptions);

    /// Creates the named queue in `ns`; fails if it exists.
    pub fn create_in(
        ns: &Namespace,
        name: &str,
        opts: QueueOptions,
    ) -> Result<Queue<T>, CreateError> {
        ByteQueue::create_in(ns, name, opts).map(Queue::from_bytes)
    }

    /// Opens the existing named queue in `ns`.
    pub fn open_in(ns: &Namespace, name: &str) -> Result<Queue<T>, OpenError> {
        ByteQueue::open_in(ns, name).map(Queue::from_bytes)
    }

    /// Wraps a byte queue (see the type's documentation for the encoding).
    pub fn from_bytes(bytes: ByteQueue) -> Queue<T> {
        Queue {
            bytes,
            held: Arc::default(),
            _marker: PhantomData,
        }
    }

    /// The next message held back by an earlier `get_many`, if any.
    fn take_held(&self) -> Option<Vec<u8>> {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    }

    /// The underlying byte queue.
    pub fn as_bytes(&self) -> &ByteQueue {
        &self.bytes
    }

    fn put_inner(&self, item: T, wait: Wait) -> Result<(), PutError<T>> {
        let r = with_buf(&ENCODE_BUF, |buf| {
            encode(&item, buf).map_err(PutErrorKind::Encode)?;
            self.bytes
                .put_inner(buf, wait)
                .map_err(|e| e.kind().clone())
        });
        r.map_err(|kind| PutError::new(item, kind))
    }

    /// Puts an item, waiting while the queue is full. A closed queue hands
    /// the item back with [`PutErrorKind::Closed`].
    pub fn put(&self, item: T) -> Result<(), PutError<T>> {
        self.put_inner(item, Wait::Forever)
    }

    /// Puts an item if there is room now (Python's `put_nowait`).
    pub fn try_put(&self, item: T) -> Result<(), PutError<T>> {
        self.put_inner(item, Wait::Now)
    }

    /// Puts an item, waiting at most `timeout` for room.
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.put_inner(item, Wait::timeout(timeout))
    }

    /// Puts an item, waiting until `deadline` for room.
    pub fn put_deadline(&self, item: T, deadline: Instant) -> Result<(), PutError<T>> {
        self.put_inner(item, Wait::Until(deadline))
    }

    /// Puts every item in order, waiting for room as needed; items that fit
    /// at once are published together (one wake-up for the batch). On error
    /// the items not put are handed back.
    pub fn put_many(&self, items: Vec<T>) -> Result<(), PutError<Vec<T>>> {
        self.put_many_inner(items, Wait::Forever)
    }

    /// Puts the items that fit now, in order; the rest are handed back.
    pub fn try_put_many(&self, items: Vec<T>) -> Result<(), PutError<Vec<T>>> {
        self.put_many_inner(items, Wait::Now)
    }

    /// [`put_many`](Self::put_many), waiting at most `timeout` for room.
    pub fn put_many_timeout(
        &self,
        items: Vec<T>,
        timeout: Duration,
    ) -> Result<(), PutError<Vec<T>>> {
        self.put_many_inner(items, Wait::timeout(timeout))
    }

    /// [`put_many`](Self::put_many), waiting until `deadline` for room.
    pub fn put_many_deadline(
        &self,
        items: Vec<T>,
        deadline: Instant,
    ) -> Result<(), PutError<Vec<T>>> {
        self.put_many_inner(items, Wait::Until(deadline))
    }

    fn put_many_inner(&self, items: Vec<T>, wait: Wait) -> Result<(), PutError<Vec<T>>> {
        let mut encoded = Vec::with_capacity(items.len());
        for item in &items {
            let mut buf = Vec::new();
            if let Err(e) = encode(item, &mut buf) {
                return Err(PutError::new(items, PutErrorKind::Encode(e)));
            }
            encoded.push(buf);
        }
        let slices: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
        match self.bytes.put_many_inner(&slices, wait) {
            Ok(()) => Ok(()),
            Err(e) => {
                let put = e.put();
                Err(PutError::new(
                    items.into_iter().skip(put).collect(),
                    e.into_kind(),
                ))
            }
        }
    }

    fn get_inner(&self, wait: Wait) -> Result<T, GetError> {
        if let Some(held) = self.take_held() {
            return decode(&held);
        }
        with_buf(&DECODE_BUF, |buf| {
            self.bytes.get_inner(buf, wait)?;
            decode(buf)
        })
    }

    /// Takes the next item, waiting while the queue is empty.
    /// [`GetError::Closed`] marks the end of the stream after `close`.
    pub fn get(&self) -> Result<T, GetError> {
        self.get_inner(Wait::Forever)
    }

    /// Takes the next item if there is one now (Python's `get_nowait`).
    pub fn try_get(&self) -> Result<T, GetError> {
        self.get_inner(Wait::Now)
    }

    /// Takes the next item, waiting at most `timeout`.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        self.get_inner(Wait::timeout(timeout))
    }

    /// Takes the next item, waiting until `deadline`.
    pub fn get_deadline(&self, deadline: Instant) -> Result<T, GetError> {
        self.get_inner(Wait::Until(deadline))
    }

    /// Takes up to `max` items at once, waiting until at least one is there.
    pub fn get_many(&self, max: usize) -> Result<Vec<T>, GetError> {
        self.get_many_inner(max, Wait::Forever)
    }

    /// Takes up to `max` of the items there now.
    pub fn try_get_many(&self, max: usize) -> Result<Vec<T>, GetError> {
        self.get_many_inner(max, Wait::Now)
    }

    /// [`get_many`](Self::get_many), waiting at most `timeout` for the
    /// first item.
    pub fn get_many_timeout(&self, max: usize, timeout: Duration) -> Result<Vec<T>, GetError> {
        self.get_many_inner(max, Wait::timeout(timeout))
    }

    /// [`get_many`](Self::get_many), waiting until `deadline` for the first
    /// item.
    pub fn get_many_deadline(&self, max: usize, deadline: Instant) -> Result<Vec<T>, GetError> {
        self.get_many_inner(max, Wait::Until(deadline))
    }

    fn get_many_inner(&self, max: usize, wait: Wait) -> Result<Vec<T>, GetError> {
        if let Some(held) = self.take_held() {
            return decode(&held).map(|v| vec![v]);
        }
        let mut out = Vec::new();
        // From the first message that cannot be decoded on, the batch is
        // kept as bytes: it is returned by this call's error or by the
        // next calls, never dropped.
        let mut rest: Vec<Vec<u8>> = Vec::new();
        self.bytes.get_many_inner(max, wait, |b| {
            if rest.is_empty() {
                if let Ok(v) = crate::codec::decode(b) {
                    out.push(v);
                    return;
                }
            }
            rest.push(b.to_vec());
        })?;
        let mut rest = rest.into_iter();
        if out.is_empty() {
            if let Some(first) = rest.next() {
                self.held
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend(rest);
                return decode(&first).map(|v| vec![v]);
            }
        }
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(rest);
        Ok(out)
    }

    fn get_leased_typed(&self, wait: Wait) -> Result<Leased<T>, GetError> {
        let (bytes, receipt) = self.bytes.get_leased_inner(wait)?;
        match decode(&bytes) {
            Ok(item) => Ok(Leased { item, receipt }),
            Err(e) => {
                // An undecodable item would come back forever: it goes to
                // the dead-letter queue, and its bytes to the caller.
                self.bytes.dead_letter(&bytes);
                self.bytes.backend().note_dead_lettered();
                let _ = self.bytes.ack(&receipt);
                Err(e)
            }
        }
    }

    /// Takes the next item under a lease (at-least-once): if this process
    /// dies before acknowledging it, the item is delivered again.
    pub fn get_leased(&self) -> Result<Leased<T>, GetError> {
        self.get_leased_typed(Wait::Forever)
    }

    /// Takes the next item under a lease if there is one now.
    pub fn try_get_leased(&self) -> Result<Leased<T>, GetError> {
        self.get_leased_typed(Wait::Now)
    }

    /// Takes the next item under a lease, waiting at most `timeout`.
    pub fn get_leased_timeout(&self, timeout: Duration) -> Result<Leased<T>, GetError> {
        self.get_leased_typed(Wait::timeout(timeout))
    }

    /// Takes the next item under a lease, waiting until `deadline`.
    pub fn get_leased_deadline(&self, deadline: Instant) -> Result<Leased<T>, GetError> {
        self.get_leased_typed(Wait::Until(deadline))
    }

    /// Acknowledges a leased item.
    pub fn ack(&self, receipt: &Receipt) -> Result<(), AckError> {
        self.bytes.ack(receipt)
    }

    /// Gives a leased item back for another delivery.
    pub fn nack(&self, receipt: &Receipt) -> Result<(), AckError> {
        self.bytes.nack(receipt)
    }

    /// A copy of the next item, without taking it.
    pub fn peek(&self) -> Result<Option<T>, GetError> {
        match self.bytes.peek()? {
            Some(b) => decode(&b).map(Some),
            None => Ok(None),
        }
    }

    /// Number of items in the queue, exact at the instant of reading.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the queue holds no item.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Whether a put would have to wait now.
    pub fn is_full(&self) -> bool {
        self.bytes.is_full()
    }

    /// The count limit, `None` when unbounded.
    pub fn maxsize(&self) -> Option<usize> {
        self.bytes.maxsize()
    }

    /// Closes the queue for every process: puts fail with `Closed` (blocked
    /// ones too); gets drain what is left, then fail with [`GetError::Closed`].
    pub fn close(&self) {
        self.bytes.close();
    }

    /// Whether the queue has been closed.
    pub fn is_closed(&self) -> bool {
        self.bytes.is_closed()
    }

    /// The queue's name; `None` for an anonymous queue.
    pub fn name(&self) -> Option<&str> {
        self.bytes.name()
    }

    /// All counters at once.
    pub fn stats(&self) -> QueueStats {
        self.bytes.stats()
    }
}

/// An item taken under a lease, with the receipt that acknowledges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leased<T> {
    /// The item.
    pub item: T,
    /// The receipt for [`Queue::ack`].
    pub receipt: Receipt,
}

impl<T> Leased<T> {
    /// How many times the item has been delivered, this time included.
    pub fn deliveries(&self) -> u32 {
        self.receipt.deliveries()
    }
}
