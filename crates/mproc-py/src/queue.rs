//! `_Queue` (the native half of `mproc.Queue`, `SimpleQueue`,
//! `JoinableQueue` and `ByteQueue`) and `Receipt`, the lease of an item
//! taken with `get_leased()`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use mproc::{
    ByteQueue, GetError, JoinError, JoinableQueue, PutErrorKind, Queue, QueueOptions, SharedFd,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::codec;
use crate::errors::{empty, full, get_err, os_err, put_err};
use crate::handle::{fd_of, location_of, make, reopener, source, PerProcess};
use crate::wait::{blocking, Wait};

/// A cross-process FIFO queue on shared memory (the native half of
/// `mproc.Queue`, `SimpleQueue`, `JoinableQueue` and `ByteQueue`).
///
/// With `raw=False` every item is pickled; with `raw=True` items are
/// `bytes`, stored exactly as given: the messages `mproc queue get` prints
/// and a Rust `ByteQueue` reads.
#[pyclass(subclass, module = "mproc._mproc", name = "_Queue")]
pub(crate) struct PyQueue {
    handle: PerProcess<ByteQueue>,
    raw: bool,
    closed: AtomicBool,
    location: Option<String>,
}

/// A lease on a queue item taken with `get_leased()`: acknowledge it with
/// `ack()` once the item is processed; if this process dies first, the item
/// is delivered again.
#[pyclass(module = "mproc._mproc", name = "Receipt", frozen)]
pub(crate) struct PyReceipt {
    r: mproc::Receipt,
}

#[pymethods]
impl PyReceipt {
    /// How many times the item has been delivered, this time included.
    #[getter]
    fn deliveries(&self) -> u32 {
        self.r.deliveries()
    }

    fn __repr__(&self) -> String {
        format!("<Receipt deliveries={}>", self.r.deliveries())
    }
}

impl PyQueue {
    /// The queue handle to use in this process.
    fn q(&self) -> PyResult<std::borrow::Cow<'_, ByteQueue>> {
        self.handle.get()
    }

    fn joinable(&self) -> PyResult<JoinableQueue<()>> {
        Ok(JoinableQueue::from_queue(Queue::from_bytes(
            self.q()?.into_owned(),
        )))
    }

    fn check_open(&self) -> PyResult<()> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(PyValueError::new_err(
                "Queue is closed (close() was called in this process)",
            ));
        }
        Ok(())
    }

    fn encode<'py>(&self, obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
        codec::encode(obj, self.raw)
    }

    fn decode<'py>(&self, py: Python<'py>, msg: &[u8]) -> PyResult<Bound<'py, PyAny>> {
        codec::decode(py, msg, self.raw)
    }

    fn put_bytes(&self, py: Python<'_>, msg: &[u8], wait: Wait) -> PyResult<()> {
        let q = self.q()?;
        let q: &ByteQueue = &q;
        let kind = match q.try_put(msg) {
            Ok(()) => return Ok(()),
            Err(e) => e.kind().clone(),
        };
        if kind != PutErrorKind::Full {
            return Err(put_err(py, &kind));
        }
        let r = blocking(py, wait, |end| match q.put_deadline(msg, end) {
            Ok(()) => Some(Ok(())),
            Err(e) if e.is_full() => None,
            Err(e) => Some(Err(e.kind().clone())),
        })?;
        match r {
            Some(Ok(())) => Ok(()),
            Some(Err(kind)) => Err(put_err(py, &kind)),
            None => Err(full(py)),
        }
    }

    fn get_bytes(&self, py: Python<'_>, wait: Wait) -> PyResult<Vec<u8>> {
        let q = self.q()?;
        let q: &ByteQueue = &q;
        match q.try_get() {
            Ok(m) => return Ok(m),
            Err(GetError::Empty) => {}
            Err(e) => return Err(get_err(py, e)),
        }
        let r = blocking(py, wait, |end| match q.get_deadline(end) {
            Err(GetError::Empty) => None,
            r => Some(r),
        })?;
        match r {
            Some(Ok(m)) => Ok(m),
            Some(Err(e)) => Err(get_err(py, e)),
            None => Err(empty(py)),
        }
    }
}

#[pymethods]
impl PyQueue {
    #[new]
    #[pyo3(signature = (maxsize=0, *, raw=false, name=None, namespace=None, mode="open_or_create",
                        fd=None, max_bytes=None, max_deliveries=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        maxsize: i64,
        raw: bool,
        name: Option<&str>,
        namespace: Option<&str>,
        mode: &str,
        fd: Option<i32>,
        max_bytes: Option<usize>,
        max_deliveries: Option<u32>,
    ) -> PyResult<Self> {
        let mut opts = QueueOptions::new();
        if maxsize > 0 {
            opts = opts.maxsize(usize::try_from(maxsize).unwrap_or(usize::MAX));
        }
        if let Some(b) = max_bytes {
            opts = opts.max_bytes(b);
        }
        if let Some(n) = max_deliveries {
            opts = opts.max_deliveries(n);
        }
        let location = location_of(name, namespace)?;
        let q = make!(source(name, namespace, mode, fd)?,
            anon: ByteQueue::with_options(opts),
            fd: ByteQueue::from_shared_fd,
            open: ByteQueue::open_in,
            create: |ns, name| ByteQueue::create_in(ns, name, opts),
            ooc: |ns, name| ByteQueue::open_or_create_in(ns, name, opts))?;
        let reopen = reopener(name, location.as_deref(), ByteQueue::open_in)?;
        Ok(PyQueue {
            handle: PerProcess::new(q, reopen),
            raw,
            closed: AtomicBool::new(false),
            location,
        })
    }

    /// Puts `obj`, waiting for room while the queue is full: forever when
    /// `timeout` is None, at most `timeout` seconds otherwise (then
    /// `queue.Full`); `block=False` never waits. Raises `ShutDown` after
    /// `shutdown()`.
    #[pyo3(signature = (obj, block=true, timeout=None))]
    fn put(&self, obj: &Bound<'_, PyAny>, block: bool, timeout: Option<f64>) -> PyResult<()> {
        self.check_open()?;
        let msg = self.encode(obj)?;
        self.put_bytes(obj.py(), msg.as_bytes(), Wait::new(block, timeout)?)
    }

    /// `put(obj, block=False)`.
    fn put_nowait(&self, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        self.put(obj, false, None)
    }

    /// Removes and returns the oldest item, waiting while the queue is
    /// empty: forever when `timeout` is None, at most `timeout` seconds
    /// otherwise (then `queue.Empty`); `block=False` never waits. Once the
    /// queue is shut down and drained, raises `ShutDown`.
    #[pyo3(signature = (block=true, timeout=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.check_open()?;
        let m = self.get_bytes(py, Wait::new(block, timeout)?)?;
        self.decode(py, &m)
    }

    /// `get(block=False)`.
    fn get_nowait<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.get(py, false, None)
    }

    /// Puts every item of `items`, in order, in as few steps as room
    /// allows (one when they fit). Waits for room like `put`; when it
    /// raises (`queue.Full`, `ShutDown`), the exception's `put_count`
    /// attribute says how many items were put.
    #[pyo3(signature = (items, block=true, timeout=None))]
    fn put_many(
        &self,
        py: Python<'_>,
        items: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        self.check_open()?;
        let wait = Wait::new(block, timeout)?;
        let encoded = items
            .try_iter()?
            .map(|o| self.encode(&o?))
            .collect::<PyResult<Vec<_>>>()?;
        let msgs: Vec<&[u8]> = encoded.iter().map(|b| b.as_bytes()).collect();
        let q = self.q()?;
        let q: &ByteQueue = &q;
        let mut done = 0;
        let mut first = true;
        loop {
            let r = if first {
                first = false;
                q.try_put_many(&msgs[done..])
            } else {
                let Some(end) = wait.next_slice() else {
                    return Err(with_count(full(py), py, done));
                };
                let rest = &msgs[done..];
                let r = py.detach(|| q.put_many_deadline(rest, end));
                py.check_signals()?;
                r
            };
            match r {
                Ok(()) => return Ok(()),
                Err(e) if e.is_full() => done += e.put(),
                Err(e) => return Err(with_count(put_err(py, e.kind()), py, done + e.put())),
            }
        }
    }

    /// Takes up to `max` items at once (a list, oldest first), waiting like
    /// `get` until at least one is there.
    #[pyo3(signature = (max=1024, block=true, timeout=None))]
    fn get_many<'py>(
        &self,
        py: Python<'py>,
        max: usize,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyList>> {
        self.check_open()?;
        let wait = Wait::new(block, timeout)?;
        let q = self.q()?;
        let q: &ByteQueue = &q;
        let take = |end: Instant| {
            let mut out: Vec<Vec<u8>> = Vec::new();
            match q.get_many_with_deadline(max, end, |m| out.push(m.to_vec())) {
                Ok(_) => Some(Ok(out)),
                Err(GetError::Empty) => None,
                Err(e) => Some(Err(e)),
            }
        };
        let r = match take(Instant::now()) {
            Some(r) => Some(r),
            None => blocking(py, wait, take)?,
        };
        match r {
            Some(Ok(msgs)) => {
                let list = PyList::empty(py);
                for m in msgs {
                    list.append(self.decode(py, &m)?)?;
                }
                Ok(list)
            }
            Some(Err(e)) => Err(get_err(py, e)),
            None => Err(empty(py)),
        }
    }

    /// Takes the oldest item under a lease: returns `(item, receipt)`.
    /// Call `ack(receipt)` when done; if this process dies first, the item
    /// is delivered again, ahead of newer ones (at-least-once). Waits like
    /// `get`.
    #[pyo3(signature = (block=true, timeout=None))]
    fn get_leased<'py>(
        &self,
        py: Python<'py>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        self.check_open()?;
        let wait = Wait::new(block, timeout)?;
        let q = self.q()?;
        let q: &ByteQueue = &q;
        let r = match q.try_get_leased() {
            Err(GetError::Empty) => blocking(py, wait, |end| match q.get_leased_deadline(end) {
                Err(GetError::Empty) => None,
                r => Some(r),
            })?,
            r => Some(r),
        };
        match r {
            Some(Ok((m, r))) => {
                let obj = self.decode(py, &m)?;
                let receipt = Bound::new(py, PyReceipt { r })?;
                PyTuple::new(py, [obj, receipt.into_any()])
            }
            Some(Err(e)) => Err(get_err(py, e)),
            None => Err(empty(py)),
        }
    }

    /// Acknowledges a leased item: it is done and never delivered again.
    fn ack(&self, receipt: &PyReceipt) -> PyResult<()> {
        self.q()?
            .ack(&receipt.r)
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// Gives a leased item back: it is delivered again, first.
    fn nack(&self, receipt: &PyReceipt) -> PyResult<()> {
        self.q()?
            .nack(&receipt.r)
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// The exact number of items in the queue.
    fn qsize(&self) -> PyResult<usize> {
        Ok(self.q()?.len())
    }

    /// Whether the queue holds no item (exact).
    fn empty(&self) -> PyResult<bool> {
        Ok(self.q()?.is_empty())
    }

    /// Whether the queue is at its `maxsize` (exact).
    fn full(&self) -> PyResult<bool> {
        Ok(self.q()?.is_full())
    }

    /// The bound on the number of items (0: unbounded).
    #[getter]
    fn maxsize(&self) -> usize {
        self.handle.own.maxsize().unwrap_or(0)
    }

    /// The queue's name; None for an anonymous queue.
    #[getter]
    fn name(&self) -> Option<&str> {
        self.handle.own.name()
    }

    /// The namespace of a named queue (a directory or a URL).
    #[getter]
    fn namespace(&self) -> Option<&str> {
        self.location.as_deref()
    }

    /// Whether items are stored as given (`bytes`) rather than pickled.
    #[getter]
    fn raw(&self) -> bool {
        self.raw
    }

    /// Ends the stream for everyone: puts fail with `ShutDown` from now
    /// on, and consumers get the backlog, then `ShutDown`.
    fn shutdown(&self) -> PyResult<()> {
        self.q()?.close();
        Ok(())
    }

    /// Whether `shutdown()` was called (in any process).
    #[getter]
    fn is_shutdown(&self) -> PyResult<bool> {
        Ok(self.q()?.is_closed())
    }

    /// Says this process will use this handle no more (multiprocessing's
    /// `close()`); other processes and handles are not affected.
    fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    /// Whether `close()` was called on this handle.
    #[getter]
    fn _closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Marks one item taken with `get` as processed (`JoinableQueue`).
    fn task_done(&self) -> PyResult<()> {
        self.joinable()?
            .task_done()
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// Waits until every item put has been marked done with `task_done`
    /// (`JoinableQueue`); with a `timeout`, returns False if that did not
    /// happen in time.
    #[pyo3(signature = (timeout=None))]
    fn join(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let j = self.joinable()?;
        let j = &j;
        if j.unfinished() == 0 {
            return Ok(true);
        }
        let r = blocking(py, Wait::new(true, timeout)?, |end| {
            match j.join_deadline(end) {
                Err(JoinError::Timeout { .. }) => None,
                r => Some(r),
            }
        })?;
        match r {
            Some(Ok(())) => Ok(true),
            Some(Err(e)) => Err(os_err(e)),
            None => Ok(false),
        }
    }

    /// The number of items put and not yet marked done (`JoinableQueue`).
    fn unfinished(&self) -> PyResult<u64> {
        Ok(self.joinable()?.unfinished())
    }

    /// The memory file behind an anonymous queue (for pickling); None for
    /// a named one.
    fn _fd(&self) -> Option<i32> {
        fd_of(&self.handle.own)
    }
}

fn with_count(err: PyErr, py: Python<'_>, n: usize) -> PyErr {
    let _ = err.value(py).setattr("put_count", n);
    err
}
