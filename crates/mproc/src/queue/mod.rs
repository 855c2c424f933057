//! The cross-process [`ByteQueue`] (raw bytes), its options and counters;
//! [`Queue`], the typed layer over it, is in `typed.rs`.

mod typed;

pub use typed::{Leased, Queue};

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::Receipt;
use crate::backend::{OpError, QueueBackend, QueueParams};
use crate::error::{
    AckError, CreateError, GetError, OpenError, PutError, PutErrorKind, PutManyError,
};
use crate::flavor::QueueImpl;
use crate::namespace::Namespace;
use crate::wait::Wait;

/// The default byte budget of a queue: 1 MiB of records.
pub const DEFAULT_MAX_BYTES: usize = 1 << 20;

/// How a queue is sized at creation.
///
/// ```
/// let opts = mproc::QueueOptions::new().maxsize(5).max_bytes(32 << 20);
/// assert_eq!(opts.get_maxsize(), Some(5));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueOptions {
    maxsize: usize,
    max_bytes: usize,
    max_deliveries: u32,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            maxsize: 0,
            max_bytes: DEFAULT_MAX_BYTES,
            max_deliveries: 0,
        }
    }
}

impl QueueOptions {
    /// Unbounded in count, [`DEFAULT_MAX_BYTES`] of byte budget.
    pub fn new() -> Self {
        Self::default()
    }

    /// At most `n` messages at once; 0 means no count limit (Python's
    /// `Queue(maxsize=0)`), leaving only the byte budget.
    pub fn maxsize(mut self, n: usize) -> Self {
        self.maxsize = n;
        self
    }

    /// Byte budget: the largest message, and the bytes the queue holds at
    /// once (each message costs its length rounded up to 8, plus an 8-byte
    /// header; the budget has room for one header more than `max_bytes`,
    /// so that a message of `max_bytes` bytes fits). The queue's segment
    /// is memory (RAM, on tmpfs): `max_bytes` plus 2 KiB, rounded up to a
    /// power of two when that costs at most 1 MiB more (2 MiB for the
    /// default budget; 16 MiB and 16 bytes more for a 16 MiB one).
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// With leased gets, an item delivered more than `n` times (its
    /// consumers kept dying) is moved to the dead-letter queue
    /// `<name>.dlq` beside a named queue (counted and dropped for an
    /// anonymous one) instead of being delivered again. 0 (the default):
    /// no limit.
    pub fn max_deliveries(mut self, n: u32) -> Self {
        self.max_deliveries = n;
        self
    }

    /// The count limit, `None` when unbounded.
    pub fn get_maxsize(&self) -> Option<usize> {
        (self.maxsize > 0).then_some(self.maxsize)
    }

    /// The byte budget.
    pub fn get_max_bytes(&self) -> usize {
        self.max_bytes
    }

    fn params(&self) -> Result<QueueParams, CreateError> {
        QueueParams::new(self.maxsize, self.max_bytes, self.max_deliveries)
            .map_err(CreateError::InvalidOptions)
    }
}

/// Counters of a queue, read in one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// Messages in the queue.
    pub len: u64,
    /// The count limit, `None` when unbounded.
    pub maxsize: Option<u64>,
    /// Bytes of records in the queue (0 where the backend does not count
    /// them: a queue on a Redis server).
    pub bytes_used: u64,
    /// The byte budget; 0 where the backend enforces none (a queue on a
    /// Redis server, which enforces only `max_message`).
    pub max_bytes: u64,
    /// The largest message accepted, in bytes.
    pub max_message: u64,
    /// Whether the queue is closed.
    pub closed: bool,
    /// Messages ever put.
    pub total_put: u64,
    /// Messages ever taken.
    pub total_got: u64,
    /// Tasks not yet marked done (JoinableQueue).
    pub unfinished: u64,
    /// Processes blocked in `get`.
    pub waiting_get: u32,
    /// Processes blocked in `put`.
    pub waiting_put: u32,
    /// Items delivered under a lease and not yet acknowledged.
    pub leased: u64,
    /// Items given back after their consumer died, waiting for redelivery
    /// (included in `len`).
    pub requeued: u64,
    /// Items taken out of circulation after too many deliveries.
    pub dead_lettered: u64,
}

/// A bounded FIFO of byte messages shared by any number of producer and
/// consumer processes. [`Queue`] is the typed layer over it.
///
/// ```
/// let q = mproc::ByteQueue::new(2).unwrap();
/// q.put(b"hello").unwrap();
/// q.put(b"").unwrap();
/// assert!(q.try_put(b"x").unwrap_err().is_full());
/// assert_eq!(q.get().unwrap(), b"hello");
/// assert_eq!(q.len(), 1);
/// ```
#[derive(Clone)]
pub struct ByteQueue {
    inner: Arc<QueueImpl>,
}

impl fmt::Debug for ByteQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByteQueue")
            .field("name", &self.name())
            .field("len", &self.len())
            .finish()
    }
}

fn put_kind(e: OpError) -> PutErrorKind {
    match e {
        OpError::WouldBlock => PutErrorKind::Full,
        OpError::Closed => PutErrorKind::Closed,
        OpError::TooLarge { size, limit } => PutErrorKind::TooLarge { size, limit },
        OpError::Damaged(s) => PutErrorKind::Damaged(s),
        OpError::Io(e) => PutErrorKind::Io(e.into()),
        OpError::NothingOutstanding => PutErrorKind::Damaged("unexpected task state".into()),
    }
}

fn get_error(e: OpError) -> GetError {
    match e {
        OpError::WouldBlock => GetError::Empty,
        OpError::Closed => GetError::Closed,
        OpError::TooLarge { size, limit } => {
            GetError::Damaged(format!("record of {size} bytes over limit {limit}"))
        }
        OpError::Damaged(s) => GetError::Damaged(s),
        OpError::Io(e) => GetError::Io(e.into()),
        OpError::NothingOutstanding => GetError::Damaged("unexpected task state".into()),
    }
}

impl ByteQueue {
    /// Creates an anonymous queue holding at most `maxsize` messages (0: no
    /// count limit), to hand to child processes.
    pub fn new(maxsize: usize) -> Result<ByteQueue, CreateError> {
        ByteQueue::with_options(QueueOptions::new().maxsize(maxsize))
    }

    /// Creates an anonymous queue with the given options.
    pub fn with_options(opts: QueueOptions) -> Result<ByteQueue, CreateError> {
        QueueImpl::anonymous(&opts.params()?).map(ByteQueue::from_impl)
    }

    crate::util::named_constructors!("queue (created with `opts`)", opts: QueueOptions);

    /// Creates the named queue in `ns`; fails if it exists.
    pub fn create_in(
        ns: &Namespace,
        name: &str,
        opts: QueueOptions,
    ) -> Result<ByteQueue, CreateError> {
        QueueImpl::create(ns, name, &opts.params()?).map(ByteQueue::from_impl)
    }

    /// Opens the existing named queue in `ns`.
    pub fn open_in(ns: &Namespace, name: &str) -> Result<ByteQueue, OpenError> {
        QueueImpl::open(ns, name).map(ByteQueue::from_impl)
    }

    pub(crate) fn from_impl(q: QueueImpl) -> ByteQueue {
        ByteQueue { inner: Arc::new(q) }
    }

    pub(crate) fn imp(&self) -> &QueueImpl {
        &self.inner
    }

    #[inline]
    pub(crate) fn backend(&self) -> &dyn QueueBackend {
        self.inner.backend()
    }

    /// The queue's name; `None` for an anonymous queue.
    pub fn name(&self) -> Option<&str> {
        self.backend().name()
    }

    fn put_inner<'m>(&self, msg: &'m [u8], wait: Wait) -> Result<(), PutError<&'m [u8]>> {
        match self.backend().put(&[msg], wait) {
            (_, Ok(())) => Ok(()),
            (_, Err(e)) => Err(PutError::new(msg, put_kind(e))),
        }
    }

    /// Puts a message, waiting while the queue is full.
    pub fn put<'m>(&self, msg: &'m [u8]) -> Result<(), PutError<&'m [u8]>> {
        self.put_inner(msg, Wait::Forever)
    }

    /// Puts a message if there is room now.
    pub fn try_put<'m>(&self, msg: &'m [u8]) -> Result<(), PutError<&'m [u8]>> {
        self.put_inner(msg, Wait::Now)
    }

    /// Puts a message, waiting at most `timeout` for room.
    pub fn put_timeout<'m>(
        &self,
        msg: &'m [u8],
        timeout: Duration,
    ) -> Result<(), PutError<&'m [u8]>> {
        self.put_inner(msg, Wait::timeout(timeout))
    }

    /// Puts a message, waiting until `deadline` for room.
    pub fn put_deadline<'m>(
        &self,
        msg: &'m [u8],
        deadline: Instant,
    ) -> Result<(), PutError<&'m [u8]>> {
        self.put_inner(msg, Wait::Until(deadline))
    }

    fn put_many_inner(&self, msgs: &[&[u8]], wait: Wait) -> Result<(), PutManyError> {
        match self.backend().put(msgs, wait) {
            (_, Ok(())) => Ok(()),
            (put, Err(e)) => Err(PutManyError::new(put, put_kind(e))),
        }
    }

    /// Puts every message in order, waiting for room as needed; all that fit
    /// at once are published together (one wake-up for the batch). On error
    /// the [`PutManyError`] says how many were put: the first ones, in
    /// order.
    ///
    /// ```
    /// let q = mproc::ByteQueue::new(2).unwrap();
    /// q.put_many(&[b"a", b"b"]).unwrap();
    /// let e = q.try_put_many(&[b"c"]).unwrap_err();
    /// assert!(e.is_full());
    /// assert_eq!(e.put(), 0);
    /// ```
    pub fn put_many(&self, msgs: &[&[u8]]) -> Result<(), PutManyError> {
        self.put_many_inner(msgs, Wait::Forever)
    }

    /// Puts the messages that fit now, in order; [`PutManyError`] (full)
    /// says how many when not all did.
    pub fn try_put_many(&self, msgs: &[&[u8]]) -> Result<(), PutManyError> {
        self.put_many_inner(msgs, Wait::Now)
    }

    /// [`put_many`](Self::put_many), waiting at most `timeout` for room.
    pub fn put_many_timeout(&self, msgs: &[&[u8]], timeout: Duration) -> Result<(), PutManyError> {
        self.put_many_inner(msgs, Wait::timeout(timeout))
    }

    /// [`put_many`](Self::put_many), waiting until `deadline` for room.
    pub fn put_many_deadline(&self, msgs: &[&[u8]], deadline: Instant) -> Result<(), PutManyError> {
        self.put_many_inner(msgs, Wait::Until(deadline))
    }

    fn get_inner(&self, out: &mut Vec<u8>, wait: Wait) -> Result<(), GetError> {
        self.backend()
            .get(1, wait, &mut |_| {}, out)
            .map(|_| ())
            .map_err(get_error)
    }

    /// Takes the next message, waiting while the queue is empty.
    /// [`GetError::Closed`] marks the end of the stream.
    pub fn get(&self) -> Result<Vec<u8>, GetError> {
        let mut v = Vec::new();
        self.get_inner(&mut v, Wait::Forever).map(|()| v)
    }

    /// Takes the next message if there is one now.
    pub fn try_get(&self) -> Result<Vec<u8>, GetError> {
        let mut v = Vec::new();
        self.get_inner(&mut v, Wait::Now).map(|()| v)
    }

    /// Takes the next message, waiting at most `timeout`.
    pub fn get_timeout(&self, timeout: Duration) -> Result<Vec<u8>, GetError> {
        let mut v = Vec::new();
        self.get_inner(&mut v, Wait::timeout(timeout)).map(|()| v)
    }

    /// Takes the next message, waiting until `deadline`.
    pub fn get_deadline(&self, deadline: Instant) -> Result<Vec<u8>, GetError> {
        let mut v = Vec::new();
        self.get_inner(&mut v, Wait::Until(deadline)).map(|()| v)
    }

    /// Takes the next message into `out` (replacing its contents, reusing
    /// its allocation), waiting while the queue is empty.
    ///
    /// ```
    /// let q = mproc::ByteQueue::new(0).unwrap();
    /// q.put(b"one").unwrap();
    /// let mut buf = Vec::with_capacity(64);
    /// q.get_into(&mut buf).unwrap();
    /// assert_eq!(buf, b"one");
    /// assert!(q.try_get_into(&mut buf).unwrap_err().is_empty());
    /// ```
    pub fn get_into(&self, out: &mut Vec<u8>) -> Result<(), GetError> {
        self.get_inner(out, Wait::Forever)
    }

    /// Takes the next message into `out` if there is one now.
    pub fn try_get_into(&self, out: &mut Vec<u8>) -> Result<(), GetError> {
        self.get_inner(out, Wait::Now)
    }

    /// Takes the next message into `out`, waiting at most `timeout`.
    pub fn get_into_timeout(&self, out: &mut Vec<u8>, timeout: Duration) -> Result<(), GetError> {
        self.get_inner(out, Wait::timeout(timeout))
    }

    /// Takes the next message into `out`, waiting until `deadline`.
    pub fn get_into_deadline(&self, out: &mut Vec<u8>, deadline: Instant) -> Result<(), GetError> {
        self.get_inner(out, Wait::Until(deadline))
    }

    fn get_many_inner(
        &self,
        max: usize,
        wait: Wait,
        mut f: impl FnMut(&[u8]),
    ) -> Result<usize, GetError> {
        let mut scratch = Vec::new();
        self.backend()
            .get(max.max(1), wait, &mut f, &mut scratch)
            .map_err(get_error)
    }

    /// Takes up to `max` messages at once, waiting until at least one is
    /// there, and hands each to `f` in order. Returns how many were taken.
    ///
    /// ```
    /// let q = mproc::ByteQueue::new(0).unwrap();
    /// q.put_many(&[b"a", b"b", b"c"]).unwrap();
    /// let mut got = Vec::new();
    /// assert_eq!(q.get_many_with(2, |m| got.push(m.to_vec())).unwrap(), 2);
    /// assert_eq!(got, [b"a", b"b"]);
    /// ```
    pub fn get_many_with(&self, max: usize, f: impl FnMut(&[u8])) -> Result<usize, GetError> {
        self.get_many_inner(max, Wait::Forever, f)
    }

    /// [`get_many_with`](Self::get_many_with) of the messages there now.
    pub fn try_get_many_with(&self, max: usize, f: impl FnMut(&[u8])) -> Result<usize, GetError> {
        self.get_many_inner(max, Wait::Now, f)
    }

    /// [`get_many_with`](Self::get_many_with), waiting at most `timeout`
    /// for the first message.
    pub fn get_many_with_timeout(
        &self,
        max: usize,
        timeout: Duration,
        f: impl FnMut(&[u8]),
    ) -> Result<usize, GetError> {
        self.get_many_inner(max, Wait::timeout(timeout), f)
    }

    /// [`get_many_with`](Self::get_many_with), waiting until `deadline` for
    /// the first message.
    pub fn get_many_with_deadline(
        &self,
        max: usize,
        deadline: Instant,
        f: impl FnMut(&[u8]),
    ) -> Result<usize, GetError> {
        self.get_many_inner(max, Wait::Until(deadline), f)
    }

    fn get_leased_inner(&self, wait: Wait) -> Result<(Vec<u8>, Receipt), GetError> {
        let mut out = Vec::new();
        loop {
            let receipt = self
                .backend()
                .get_leased(wait, &mut out)
                .map_err(get_error)?;
            let limit = self.backend().max_deliveries();
            if limit == 0 || receipt.deliveries <= limit {
                return Ok((out, receipt));
            }
            // Delivered too often: every consumer that took it died.
            self.dead_letter(&out);
            self.backend().note_dead_lettered();
            let _ = self.backend().settle(&receipt, false);
        }
    }

    /// Moves an item to `<name>.dlq` beside a named queue.
    fn dead_letter(&self, item: &[u8]) {
        let Some((dir, dlq_name)) = self.backend().dead_letter_queue() else {
            return;
        };
        if let Ok(ns) = Namespace::dir(dir) {
            let opts = QueueOptions::new().max_bytes(self.backend().limits().max_bytes as usize);
            if let Ok(dlq) = ByteQueue::open_or_create_in(&ns, &dlq_name, opts) {
                let _ = dlq.try_put(item);
            }
        }
    }

    /// Takes the next message under a lease, waiting while the queue is
    /// empty: if this process dies before [`ack`](Self::ack), the message
    /// is delivered again (at-least-once), ahead of newer ones.
    ///
    /// ```
    /// let q = mproc::ByteQueue::new(0).unwrap();
    /// q.put(b"job").unwrap();
    /// let (job, receipt) = q.get_leased().unwrap();
    /// assert_eq!(job, b"job");
    /// assert_eq!(q.stats().leased, 1);
    /// q.ack(&receipt).unwrap();
    /// assert_eq!(q.stats().leased, 0);
    /// ```
    pub fn get_leased(&self) -> Result<(Vec<u8>, Receipt), GetError> {
        self.get_leased_inner(Wait::Forever)
    }

    /// Takes the next message under a lease if there is one now.
    pub fn try_get_leased(&self) -> Result<(Vec<u8>, Receipt), GetError> {
        self.get_leased_inner(Wait::Now)
    }

    /// Takes the next message under a lease, waiting at most `timeout`.
    pub fn get_leased_timeout(&self, timeout: Duration) -> Result<(Vec<u8>, Receipt), GetError> {
        self.get_leased_inner(Wait::timeout(timeout))
    }

    /// Takes the next message under a lease, waiting until `deadline`.
    pub fn get_leased_deadline(&self, deadline: Instant) -> Result<(Vec<u8>, Receipt), GetError> {
        self.get_leased_inner(Wait::Until(deadline))
    }

    /// Acknowledges a leased message: it is done and will not be delivered again.
    pub fn ack(&self, receipt: &Receipt) -> Result<(), AckError> {
        self.settle(receipt, false)
    }

    /// Gives a leased message back without processing it: it is delivered
    /// again (to any consumer) before newer messages, its delivery count kept.
    pub fn nack(&self, receipt: &Receipt) -> Result<(), AckError> {
        self.settle(receipt, true)
    }

    fn settle(&self, receipt: &Receipt, requeue: bool) -> Result<(), AckError> {
        self.backend()
            .settle(receipt, requeue)
            .map_err(|e| match e {
                OpError::NothingOutstanding => AckError::NotHeld,
                OpError::Damaged(s) => AckError::Damaged(s),
                OpError::Io(e) => AckError::Io(e.into()),
                other => AckError::Damaged(format!("{other:?}")),
            })
    }

    /// The messages set aside on the server after `max_deliveries`
    /// deliveries to consumers that died (oldest first). Only queues in a
    /// `redis://` namespace keep them here; for the others this is empty
    /// (their dead letters go to the queue `<name>.dlq`).
    pub fn dead_letters(&self) -> Result<Vec<Vec<u8>>, GetError> {
        self.backend()
            .dead_letters()
            .map_err(|e| GetError::Io(e.into()))
    }

    /// Gives back, now, the messages leased by consumers that have died
    /// (gets do this by themselves every few milliseconds); returns how many.
    pub fn reclaim(&self) -> Result<u64, GetError> {
        self.backend().reclaim().map_err(get_error)
    }

    /// A copy of the next message, without taking it.
    pub fn peek(&self) -> Result<Option<Vec<u8>>, GetError> {
        let mut v = Vec::new();
        match self.backend().peek(&mut v) {
            Ok(true) => Ok(Some(v)),
            Ok(false) => Ok(None),
            Err(e) => Err(get_error(e)),
        }
    }

    /// Number of messages in the queue, exact at the instant of reading.
    pub fn len(&self) -> usize {
        self.backend().len() as usize
    }

    /// Whether the queue holds no message.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a put would have to wait now (count or byte budget exhausted).
    pub fn is_full(&self) -> bool {
        self.backend().is_full()
    }

    /// The count limit, `None` when unbounded.
    pub fn maxsize(&self) -> Option<usize> {
        let m = self.backend().limits().maxsize as usize;
        (m > 0).then_some(m)
    }

    /// The largest message this queue accepts, in bytes.
    pub fn max_message(&self) -> usize {
        self.backend().limits().max_message
    }

    /// Closes the queue for every process: puts fail with `Closed` (blocked
    /// ones too); gets drain what is left, then fail with `Closed`.
    pub fn close(&self) {
        // The only failure is a broken lock, which a later put would report.
        let _ = self.backend().close();
    }

    /// Whether the queue has been closed.
    pub fn is_closed(&self) -> bool {
        self.backend().is_closed()
    }

    /// Discards every message; returns how many.
    pub fn purge(&self) -> Result<u64, GetError> {
        self.backend().purge().map_err(get_error)
    }

    /// All counters at once.
    pub fn stats(&self) -> QueueStats {
        let s = self.backend().counters();
        let p = self.backend().limits();
        QueueStats {
            len: s.len,
            maxsize: (p.maxsize > 0).then_some(p.maxsize),
            bytes_used: s.bytes_used,
            max_bytes: p.max_bytes,
            max_message: p.max_message as u64,
            closed: s.closed,
            total_put: s.total_put,
            total_got: s.total_got,
            unfinished: s.total_put.saturating_sub(s.total_done),
            waiting_get: s.waiting_get,
            waiting_put: s.waiting_put,
            leased: s.leased,
            requeued: s.requeued,
            dead_lettered: s.dead_lettered,
        }
    }
}
