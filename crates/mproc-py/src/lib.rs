//! `mproc._mproc`: the native half of the Python package `mproc`.
//!
//! Each class here wraps one handle of the `mproc` crate and speaks Python's
//! `multiprocessing` conventions (`block=True, timeout=None`, `queue.Full`,
//! `queue.Empty`, `acquire() -> bool`). The pure-Python package
//! (`python/mproc/__init__.py`) subclasses them to add pickling, named-object
//! constructors and the rest of the drop-in surface.
//!
//! Every blocking call releases the GIL while it waits, in slices of at most
//! [`SLICE`], and runs Python's signal handlers between slices, so that
//! Ctrl-C raises `KeyboardInterrupt` promptly in a blocked call.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use mproc::{
    BarrierError, ByteQueue, GetError, JoinError, JoinableQueue, LockError, Namespace,
    PutErrorKind, Queue, QueueOptions, SemaphoreError, SharedFd,
};
use pyo3::exceptions::{
    PyAssertionError, PyFileExistsError, PyFileNotFoundError, PyOSError, PyRuntimeError,
    PyTimeoutError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyList, PyTuple, PyType};

/// The longest a blocking call waits before it runs Python's signal
/// handlers (Ctrl-C) and waits again.
const SLICE: Duration = Duration::from_millis(100);

/// How a blocking call may wait, from Python's `block` and `timeout`.
#[derive(Clone, Copy)]
enum Wait {
    /// `block=False`, or a timeout of zero or less: never wait.
    Never,
    /// Wait until this instant.
    Until(Instant),
    /// `timeout=None`: wait as long as it takes.
    Forever,
}

impl Wait {
    fn new(block: bool, timeout: Option<f64>) -> PyResult<Wait> {
        if !block {
            return Ok(Wait::Never);
        }
        match timeout {
            None => Ok(Wait::Forever),
            Some(t) if t.is_nan() => Err(PyValueError::new_err("timeout must not be NaN")),
            Some(t) if t <= 0.0 => Ok(Wait::Never),
            Some(t) => Ok(Duration::try_from_secs_f64(t)
                .ok()
                .and_then(|d| Instant::now().checked_add(d))
                .map_or(Wait::Forever, Wait::Until)),
        }
    }

    /// The end of the next slice, or `None` when the wait is over.
    fn next_slice(self) -> Option<Instant> {
        let now = Instant::now();
        let slice = now + SLICE;
        match self {
            Wait::Never => None,
            Wait::Forever => Some(slice),
            Wait::Until(d) if d <= now => None,
            Wait::Until(d) => Some(d.min(slice)),
        }
    }
}

/// Runs `attempt(deadline)` with the GIL released, in slices, until it
/// returns `Some` or the wait is over (then `Ok(None)`). Between slices,
/// Python's signal handlers run, and their exception (`KeyboardInterrupt`)
/// ends the wait.
fn blocking<T: Send>(
    py: Python<'_>,
    wait: Wait,
    mut attempt: impl FnMut(Instant) -> Option<T> + Send,
) -> PyResult<Option<T>> {
    while let Some(end) = wait.next_slice() {
        if let Some(v) = py.detach(|| attempt(end)) {
            return Ok(Some(v));
        }
        py.check_signals()?;
    }
    Ok(None)
}

// ---------------------------------------------------------------- exceptions

static FULL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static EMPTY: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static BROKEN_BARRIER: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static SHUTDOWN: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static OWNER_DIED_WARNING: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static FORKING_DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn full(py: Python<'_>) -> PyErr {
    match FULL.import(py, "queue", "Full") {
        Ok(t) => PyErr::from_type(t.clone(), ()),
        Err(e) => e,
    }
}

fn empty(py: Python<'_>) -> PyErr {
    match EMPTY.import(py, "queue", "Empty") {
        Ok(t) => PyErr::from_type(t.clone(), ()),
        Err(e) => e,
    }
}

fn broken_barrier(py: Python<'_>) -> PyErr {
    match BROKEN_BARRIER.import(py, "threading", "BrokenBarrierError") {
        Ok(t) => PyErr::from_type(t.clone(), ()),
        Err(e) => e,
    }
}

fn shutdown(py: Python<'_>) -> PyErr {
    match SHUTDOWN.get(py).map(|t| t.bind(py).cast::<PyType>()) {
        Some(Ok(t)) => PyErr::from_type(t.clone(), "the queue is shut down"),
        _ => PyRuntimeError::new_err("the queue is shut down"),
    }
}

/// Registers the package's `ShutDown` exception and `OwnerDiedWarning`
/// category, which the native classes raise and warn with.
#[pyfunction]
fn _register(py: Python<'_>, shutdown: Py<PyAny>, owner_died_warning: Py<PyAny>) {
    let _ = SHUTDOWN.set(py, shutdown);
    let _ = OWNER_DIED_WARNING.set(py, owner_died_warning);
}

fn warn_owner_died(py: Python<'_>, what: &str) -> PyResult<()> {
    let Some(cat) = OWNER_DIED_WARNING.get(py) else {
        return Ok(());
    };
    let msg = std::ffi::CString::new(format!(
        "{what} was taken over from a holder that died holding it: \
         the data it protects may be half-updated"
    ))
    .unwrap_or_default();
    PyErr::warn(py, cat.bind(py), &msg, 1)
}

fn os_err(e: impl std::fmt::Display) -> PyErr {
    PyOSError::new_err(e.to_string())
}

fn open_err(e: mproc::OpenError) -> PyErr {
    match e {
        mproc::OpenError::NotFound { .. } => PyFileNotFoundError::new_err(e.to_string()),
        mproc::OpenError::InvalidName(_) => PyValueError::new_err(e.to_string()),
        e => os_err(e),
    }
}

fn create_err(e: mproc::CreateError) -> PyErr {
    match e {
        mproc::CreateError::AlreadyExists { .. } => PyFileExistsError::new_err(e.to_string()),
        mproc::CreateError::InvalidName(_) | mproc::CreateError::InvalidOptions(_) => {
            PyValueError::new_err(e.to_string())
        }
        e => os_err(e),
    }
}

fn open_or_create_err(e: mproc::OpenOrCreateError) -> PyErr {
    match e {
        mproc::OpenOrCreateError::Open(e) => open_err(e),
        mproc::OpenOrCreateError::Create(e) => create_err(e),
        e => os_err(e),
    }
}

fn get_err(py: Python<'_>, e: GetError) -> PyErr {
    match e {
        GetError::Empty => empty(py),
        GetError::Closed => shutdown(py),
        e => os_err(e),
    }
}

fn put_err(py: Python<'_>, e: &PutErrorKind) -> PyErr {
    match e {
        PutErrorKind::Full => full(py),
        PutErrorKind::Closed => shutdown(py),
        PutErrorKind::TooLarge { .. } => PyValueError::new_err(e.to_string()),
        e => os_err(e),
    }
}

// ------------------------------------------------------------- namespaces

/// The namespace at `location`: a directory, a `redis://` (or `file://`)
/// URL, or the environment's (`MPROC_URL`, `MPROC_DIR`, the default) when
/// `None`.
fn namespace(location: Option<&str>) -> PyResult<Namespace> {
    match location {
        None => Namespace::from_env(),
        Some(l) if l.contains("://") => Namespace::from_url(l),
        Some(l) => Namespace::dir(l),
    }
    .map_err(os_err)
}

/// How a constructor finds its object.
enum Source<'a> {
    Anonymous,
    Fd(i32),
    Named {
        ns: Box<Namespace>,
        name: &'a str,
        mode: &'a str,
    },
}

fn source<'a>(
    name: Option<&'a str>,
    namespace_: Option<&str>,
    mode: &'a str,
    fd: Option<i32>,
) -> PyResult<Source<'a>> {
    match (name, fd) {
        (Some(_), Some(_)) => Err(PyTypeError::new_err("give a name or an fd, not both")),
        (None, Some(fd)) => Ok(Source::Fd(fd)),
        (None, None) => Ok(Source::Anonymous),
        (Some(name), None) => {
            if !matches!(mode, "open" | "create" | "open_or_create") {
                return Err(PyValueError::new_err(
                    "mode must be 'open', 'create' or 'open_or_create'",
                ));
            }
            Ok(Source::Named {
                ns: Box::new(namespace(namespace_)?),
                name,
                mode,
            })
        }
    }
}

/// A duplicate of descriptor `fd` of this process, for a handle to keep.
fn dup_fd(fd: i32) -> PyResult<OwnedFd> {
    if fd < 0 {
        return Err(PyValueError::new_err("negative file descriptor"));
    }
    // SAFETY: the descriptor is only borrowed for the duplicating `fcntl`;
    // if it is not open, that call fails with EBADF, which is reported.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    borrowed.try_clone_to_owned().map_err(os_err)
}

/// Builds a handle from a [`Source`], with the kind's constructors.
macro_rules! make {
    ($src:expr, anon: $anon:expr, fd: $from_fd:expr, open: $open:expr, create: $create:expr, ooc: $ooc:expr) => {
        match $src {
            Source::Anonymous => $anon.map_err(create_err),
            Source::Fd(fd) => $from_fd(dup_fd(fd)?).map_err(open_err),
            Source::Named { ns, name, mode } => match mode {
                "open" => $open(&ns, name).map_err(open_err),
                "create" => $create(&ns, name).map_err(create_err),
                _ => $ooc(&ns, name).map_err(open_or_create_err),
            },
        }
    };
}

/// Where a named object lives, as given (a server URL keeps its
/// credentials), so that a pickled handle opens the same object.
fn location_of(name: Option<&str>, namespace_: Option<&str>) -> PyResult<Option<String>> {
    if name.is_none() {
        return Ok(None);
    }
    if let Some(l) = namespace_ {
        return Ok(Some(l.to_owned()));
    }
    match std::env::var("MPROC_URL") {
        Ok(url) if !url.is_empty() => Ok(Some(url)),
        _ => Ok(Some(namespace(None)?.location())),
    }
}

fn fd_of<T: SharedFd>(h: &T) -> Option<i32> {
    h.shared_fd().map(|fd| fd.as_raw_fd())
}

/// Reopens a server object in this process.
type Reopen<T> = Box<dyn Fn() -> Result<T, String> + Send + Sync>;

/// A handle, and for an object on a server, the handle's copy in a forked
/// child: a child must not share its parent's server connections, so it
/// opens the object again (by namespace and name) on first use.
/// Shared-memory handles need no such thing and are used as they are.
struct PerProcess<T> {
    own: T,
    pid: u32,
    reopen: Option<Reopen<T>>,
    child: Mutex<Option<(u32, T)>>,
}

impl<T: Clone> PerProcess<T> {
    fn new(own: T, reopen: Option<Reopen<T>>) -> Self {
        PerProcess {
            own,
            pid: my_pid(),
            reopen,
            child: Mutex::new(None),
        }
    }

    /// The handle to use in this process.
    fn get(&self) -> PyResult<std::borrow::Cow<'_, T>> {
        use std::borrow::Cow;
        let Some(reopen) = &self.reopen else {
            return Ok(Cow::Borrowed(&self.own));
        };
        let me = my_pid();
        if me == self.pid {
            return Ok(Cow::Borrowed(&self.own));
        }
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((pid, h)) = &*child {
            if *pid == me {
                return Ok(Cow::Owned(h.clone()));
            }
        }
        let h = reopen().map_err(PyOSError::new_err)?;
        *child = Some((me, h.clone()));
        Ok(Cow::Owned(h))
    }
}

/// How to reopen a named object of a server namespace in a forked child;
/// `None` for shared-memory objects.
fn reopener<T: 'static>(
    name: Option<&str>,
    location: Option<&str>,
    open: fn(&Namespace, &str) -> Result<T, mproc::OpenError>,
) -> PyResult<Option<Reopen<T>>> {
    let (Some(name), Some(location)) = (name, location) else {
        return Ok(None);
    };
    if !namespace(Some(location))?.is_remote() {
        return Ok(None);
    }
    let (name, location) = (name.to_owned(), location.to_owned());
    Ok(Some(Box::new(move || {
        let ns = Namespace::from_url(&location).map_err(|e| e.to_string())?;
        open(&ns, &name).map_err(|e| e.to_string())
    })))
}

// ------------------------------------------------------------------- Queue

/// A cross-process FIFO queue on shared memory (the native half of
/// `mproc.Queue`, `SimpleQueue`, `JoinableQueue` and `ByteQueue`).
///
/// With `raw=False` every item is pickled; with `raw=True` items are
/// `bytes`, stored exactly as given: the messages `mproc queue get` prints
/// and a Rust `ByteQueue` reads.
#[pyclass(subclass, module = "mproc._mproc", name = "_Queue")]
struct PyQueue {
    handle: PerProcess<ByteQueue>,
    raw: bool,
    closed: AtomicBool,
    location: Option<String>,
}

/// A lease on a queue item taken with `get_leased()`: acknowledge it with
/// `ack()` once the item is processed; if this process dies first, the item
/// is delivered again.
#[pyclass(module = "mproc._mproc", name = "Receipt", frozen)]
struct PyReceipt {
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
        let py = obj.py();
        if self.raw {
            return match obj.cast::<PyBytes>() {
                Ok(b) => Ok(b.clone()),
                Err(_) => {
                    let v: Vec<u8> = obj.extract().map_err(|_| {
                        PyTypeError::new_err("a raw queue takes bytes (or bytearray)")
                    })?;
                    Ok(PyBytes::new(py, &v))
                }
            };
        }
        let dumps = DUMPS.get_or_try_init(py, || -> PyResult<_> {
            Ok(py.import("pickle")?.getattr("dumps")?.unbind())
        })?;
        match dumps.bind(py).call1((obj, 5)) {
            Ok(b) => Ok(b.cast_into::<PyBytes>()?),
            // Objects that only multiprocessing's pickler reduces
            // (connections, sockets): let it try.
            Err(first) => {
                let fdumps = FORKING_DUMPS.get_or_try_init(py, || -> PyResult<_> {
                    Ok(py
                        .import("multiprocessing.reduction")?
                        .getattr("ForkingPickler")?
                        .getattr("dumps")?
                        .unbind())
                })?;
                match fdumps.bind(py).call1((obj,)) {
                    Ok(b) => Ok(PyBytes::new(py, &b.extract::<Vec<u8>>()?)),
                    Err(_) => Err(first),
                }
            }
        }
    }

    fn decode<'py>(&self, py: Python<'py>, msg: &[u8]) -> PyResult<Bound<'py, PyAny>> {
        let b = PyBytes::new(py, msg);
        if self.raw {
            return Ok(b.into_any());
        }
        let loads = LOADS.get_or_try_init(py, || -> PyResult<_> {
            Ok(py.import("pickle")?.getattr("loads")?.unbind())
        })?;
        loads.bind(py).call1((b,))
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
                q.put_many_deadline(&msgs[done..], Some(Instant::now()))
            } else {
                let Some(end) = wait.next_slice() else {
                    return Err(with_count(full(py), py, done));
                };
                let rest = &msgs[done..];
                let r = py.detach(|| q.put_many_deadline(rest, Some(end)));
                py.check_signals()?;
                r
            };
            match r {
                Ok(()) => return Ok(()),
                Err((n, PutErrorKind::Full)) => done += n,
                Err((n, kind)) => return Err(with_count(put_err(py, &kind), py, done + n)),
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
            match q.get_many_with(max, Some(end), |m| out.push(m.to_vec())) {
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

// -------------------------------------------------------------------- Lock

/// A robust cross-process lock (the native half of `mproc.Lock`).
#[pyclass(subclass, module = "mproc._mproc", name = "_Lock")]
struct PyLock {
    handle: PerProcess<mproc::Lock>,
    /// The process and thread holding the lock through this handle.
    owner: Mutex<Option<(u32, ThreadId)>>,
    owner_died: AtomicBool,
    timeout: Option<f64>,
    location: Option<String>,
}

/// This process's id, cached (`getpid` is a system call); a forked child
/// forgets the parent's.
static PID: AtomicU32 = AtomicU32::new(0);

extern "C" fn forget_pid() {
    PID.store(0, Ordering::Relaxed);
}

fn my_pid() -> u32 {
    let pid = PID.load(Ordering::Relaxed);
    if pid != 0 {
        return pid;
    }
    static AT_FORK: std::sync::Once = std::sync::Once::new();
    AT_FORK.call_once(|| {
        // SAFETY: `forget_pid` is async-signal-safe (one atomic store) and
        // lives for the whole program.
        unsafe { libc::pthread_atfork(None, None, Some(forget_pid)) };
    });
    let pid = std::process::id();
    PID.store(pid, Ordering::Relaxed);
    pid
}

/// The calling thread, in this process.
fn me() -> (u32, ThreadId) {
    (my_pid(), std::thread::current().id())
}

impl PyLock {
    fn owner(&self) -> Option<(u32, ThreadId)> {
        *self.owner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_owner(&self, o: Option<(u32, ThreadId)>) {
        *self.owner.lock().unwrap_or_else(|e| e.into_inner()) = o;
    }

    /// Records a successful acquisition (`died`: from a dead holder).
    fn acquired(&self, py: Python<'_>, guard: mproc::LockGuard<'_>, died: bool) -> PyResult<bool> {
        // The lock stays held after this call returns; `release` gives it
        // back with `release_forgotten`, on this thread (checked there).
        std::mem::forget(guard);
        self.set_owner(Some(me()));
        self.owner_died.store(died, Ordering::Relaxed);
        if died {
            warn_owner_died(py, "the lock")?;
        }
        Ok(true)
    }
}

#[pymethods]
impl PyLock {
    #[new]
    #[pyo3(signature = (name=None, timeout=None, *, namespace=None, mode="open_or_create", fd=None))]
    fn new(
        name: Option<&str>,
        timeout: Option<f64>,
        namespace: Option<&str>,
        mode: &str,
        fd: Option<i32>,
    ) -> PyResult<Self> {
        let location = location_of(name, namespace)?;
        let lock = make!(source(name, namespace, mode, fd)?,
            anon: mproc::Lock::new(),
            fd: mproc::Lock::from_shared_fd,
            open: mproc::Lock::open_in,
            create: mproc::Lock::create_in,
            ooc: mproc::Lock::open_or_create_in)?;
        let reopen = reopener(name, location.as_deref(), mproc::Lock::open_in)?;
        Ok(PyLock {
            handle: PerProcess::new(lock, reopen),
            owner: Mutex::new(None),
            owner_died: AtomicBool::new(false),
            timeout,
            location,
        })
    }

    /// Acquires the lock: waits forever when `timeout` is None, at most
    /// `timeout` seconds otherwise; `block=False` never waits. Returns
    /// whether it was acquired. If its previous holder died holding it, it
    /// is taken over: this returns True, warns with `OwnerDiedWarning` and
    /// sets `owner_died`.
    #[pyo3(signature = (block=true, timeout=None))]
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        let wait = Wait::new(block, timeout)?;
        if self.owner() == Some(me()) {
            // Python's Lock is not re-entrant: the holder waits for itself,
            // which only the deadline (or Ctrl-C) ends.
            blocking(py, wait, |end| {
                std::thread::sleep(end.saturating_duration_since(Instant::now()));
                None::<()>
            })?;
            return Ok(false);
        }
        let lock = self.handle.get()?;
        let lock: &mproc::Lock = &lock;
        match lock.try_lock() {
            Ok(g) => return self.acquired(py, g, false),
            Err(LockError::OwnerDied(o)) => return self.acquired(py, o.into_inner(), true),
            Err(LockError::WouldBlock) => {}
            Err(LockError::Io(e)) => return Err(os_err(e)),
            Err(e) => return Err(os_err(e)),
        }
        // A guard cannot leave the waiting thread's closure as a value (it
        // is not Send); the slice reports the outcome and forgets it, and
        // `acquired` runs with a fresh view of the lock below.
        let r = blocking(py, wait, |end| match lock.lock_deadline(end) {
            Ok(g) => {
                std::mem::forget(g);
                Some(Ok(false))
            }
            Err(LockError::OwnerDied(o)) => {
                std::mem::forget(o.into_inner());
                Some(Ok(true))
            }
            Err(LockError::WouldBlock) => None,
            Err(e) => Some(Err(e.to_string())),
        })?;
        match r {
            Some(Ok(died)) => {
                self.set_owner(Some(me()));
                self.owner_died.store(died, Ordering::Relaxed);
                if died {
                    warn_owner_died(py, "the lock")?;
                }
                Ok(true)
            }
            Some(Err(e)) => Err(PyOSError::new_err(e)),
            None => Ok(false),
        }
    }

    /// Releases the lock. Only the thread that acquired it through this
    /// handle may (a ValueError otherwise, as for an unlocked lock).
    fn release(&self) -> PyResult<()> {
        let mut owner = self.owner.lock().unwrap_or_else(|e| e.into_inner());
        match *owner {
            Some(o) if o == me() => {
                *owner = None;
                // SAFETY: this thread acquired the lock through this handle
                // and forgot the guard (`acquired` / the blocking path), and
                // `owner` is cleared under its mutex, so this is the one
                // release of that acquisition.
                unsafe { self.handle.get()?.release_forgotten() };
                Ok(())
            }
            Some(_) => Err(PyValueError::new_err(
                "lock is held by another thread or process: only its acquirer can release it",
            )),
            None => Err(PyValueError::new_err(
                "semaphore or lock released too many times",
            )),
        }
    }

    /// `with lock:` acquires (waiting at most the lock's `timeout`, then
    /// raising the built-in `TimeoutError`) and releases.
    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        if self.acquire(py, true, self.timeout)? {
            Ok(true)
        } else {
            Err(PyTimeoutError::new_err(format!(
                "could not acquire the lock within {} s",
                self.timeout.unwrap_or(0.0)
            )))
        }
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release()
    }

    /// Whether some process holds the lock now.
    fn locked(&self) -> PyResult<bool> {
        Ok(self.handle.get()?.is_locked())
    }

    /// Whether the last acquisition through this handle took the lock over
    /// from a holder that died holding it.
    #[getter]
    fn owner_died(&self) -> bool {
        self.owner_died.load(Ordering::Relaxed)
    }

    /// The pid of the process holding the lock, if any.
    #[getter]
    fn holder_pid(&self) -> PyResult<Option<u32>> {
        Ok(self
            .handle
            .get()?
            .holder()
            .map(|h| h.pid)
            .filter(|&p| p != 0))
    }

    /// The lock's name; None for an anonymous lock.
    #[getter]
    fn name(&self) -> Option<&str> {
        self.handle.own.name()
    }

    /// The namespace of a named lock (a directory or a URL).
    #[getter]
    fn namespace(&self) -> Option<&str> {
        self.location.as_deref()
    }

    /// The default timeout of `with lock:` (None: wait forever).
    #[getter]
    fn timeout(&self) -> Option<f64> {
        self.timeout
    }

    fn _fd(&self) -> Option<i32> {
        fd_of(&self.handle.own)
    }

    fn _is_mine(&self) -> bool {
        self.owner() == Some(me())
    }
}

// ------------------------------------------------------------------- RLock

/// A robust re-entrant cross-process lock (the native half of
/// `mproc.RLock`).
#[pyclass(subclass, module = "mproc._mproc", name = "_RLock")]
struct PyRLock {
    lock: mproc::RLock,
    owner_died: AtomicBool,
    location: Option<String>,
}

#[pymethods]
impl PyRLock {
    #[new]
    #[pyo3(signature = (name=None, *, namespace=None, mode="open_or_create", fd=None))]
    fn new(
        name: Option<&str>,
        namespace: Option<&str>,
        mode: &str,
        fd: Option<i32>,
    ) -> PyResult<Self> {
        let location = location_of(name, namespace)?;
        let lock = make!(source(name, namespace, mode, fd)?,
            anon: mproc::RLock::new(),
            fd: mproc::RLock::from_shared_fd,
            open: mproc::RLock::open_in,
            create: mproc::RLock::create_in,
            ooc: mproc::RLock::open_or_create_in)?;
        Ok(PyRLock {
            lock,
            owner_died: AtomicBool::new(false),
            location,
        })
    }

    /// Acquires (or re-enters) the lock; see `Lock.acquire`.
    #[pyo3(signature = (block=true, timeout=None))]
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        let wait = Wait::new(block, timeout)?;
        let lock = &self.lock;
        let r = match lock.try_acquire() {
            Err(LockError::WouldBlock) => {
                blocking(py, wait, |end| match lock.acquire_deadline(end) {
                    Err(LockError::WouldBlock) => None,
                    r => Some(r),
                })?
            }
            r => Some(r),
        };
        match r {
            Some(Ok(())) => {
                self.owner_died.store(false, Ordering::Relaxed);
                Ok(true)
            }
            Some(Err(LockError::OwnerDied(_))) => {
                self.owner_died.store(true, Ordering::Relaxed);
                warn_owner_died(py, "the lock")?;
                Ok(true)
            }
            Some(Err(e)) => Err(os_err(e)),
            None => Ok(false),
        }
    }

    /// Releases one level; AssertionError unless this thread holds it.
    fn release(&self) -> PyResult<()> {
        self.lock.release().map_err(|_| {
            PyAssertionError::new_err("attempt to release recursive lock not owned by thread")
        })
    }

    /// `with rlock:` acquires (or re-enters) and releases one level.
    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        self.acquire(py, true, None)
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release()
    }

    /// Whether some thread holds the lock now.
    fn locked(&self) -> bool {
        self.lock.is_locked()
    }

    fn _is_owned(&self) -> bool {
        self.lock.is_owned()
    }

    fn _count(&self) -> u32 {
        if self.lock.is_owned() {
            self.lock.count()
        } else {
            0
        }
    }

    /// Whether the last acquisition took the lock over from a dead holder.
    #[getter]
    fn owner_died(&self) -> bool {
        self.owner_died.load(Ordering::Relaxed)
    }

    /// The owner as (pid, thread id), if any.
    fn _owner(&self) -> Option<(u32, u32)> {
        self.lock.owner()
    }

    #[getter]
    fn name(&self) -> Option<&str> {
        self.lock.name()
    }

    #[getter]
    fn namespace(&self) -> Option<&str> {
        self.location.as_deref()
    }

    fn _fd(&self) -> Option<i32> {
        fd_of(&self.lock)
    }
}

// --------------------------------------------------------------- Semaphore

enum Sem {
    Plain(mproc::Semaphore),
    Bounded(mproc::BoundedSemaphore),
}

impl Sem {
    fn sem(&self) -> &mproc::Semaphore {
        match self {
            Sem::Plain(s) => s,
            Sem::Bounded(b) => b.as_semaphore(),
        }
    }
}

/// A cross-process counting semaphore (the native half of
/// `mproc.Semaphore` and `mproc.BoundedSemaphore`).
#[pyclass(subclass, module = "mproc._mproc", name = "_Semaphore")]
struct PySemaphore {
    s: Sem,
    location: Option<String>,
}

#[pymethods]
impl PySemaphore {
    #[new]
    #[pyo3(signature = (value=1, *, bounded=false, name=None, namespace=None, mode="open_or_create", fd=None))]
    fn new(
        value: i64,
        bounded: bool,
        name: Option<&str>,
        namespace: Option<&str>,
        mode: &str,
        fd: Option<i32>,
    ) -> PyResult<Self> {
        let value = u32::try_from(value)
            .map_err(|_| PyValueError::new_err("semaphore initial value must be >= 0"))?;
        let location = location_of(name, namespace)?;
        let src = source(name, namespace, mode, fd)?;
        let s = if bounded {
            Sem::Bounded(make!(src,
            anon: mproc::BoundedSemaphore::new(value),
            fd: mproc::BoundedSemaphore::from_shared_fd,
            open: mproc::BoundedSemaphore::open_in,
            create: |ns, n| mproc::BoundedSemaphore::create_in(ns, n, value),
            ooc: |ns: &Namespace, n: &str| -> Result<_, mproc::OpenOrCreateError> {
                match mproc::BoundedSemaphore::open_in(ns, n) {
                    Err(mproc::OpenError::NotFound { .. }) => {
                        match mproc::BoundedSemaphore::create_in(ns, n, value) {
                            Err(mproc::CreateError::AlreadyExists { .. }) => {
                                Ok(mproc::BoundedSemaphore::open_in(ns, n)?)
                            }
                            r => Ok(r?),
                        }
                    }
                    r => Ok(r?),
                }
            })?)
        } else {
            Sem::Plain(make!(src,
                anon: mproc::Semaphore::new(value),
                fd: mproc::Semaphore::from_shared_fd,
                open: mproc::Semaphore::open_in,
                create: |ns, n| mproc::Semaphore::create_in(ns, n, value),
                ooc: |ns, n| mproc::Semaphore::open_or_create_in(ns, n, value))?)
        };
        Ok(PySemaphore { s, location })
    }

    /// Takes a unit: waits forever when `timeout` is None, at most
    /// `timeout` seconds otherwise; `block=False` never waits. Returns
    /// whether a unit was taken.
    #[pyo3(signature = (block=true, timeout=None))]
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        let wait = Wait::new(block, timeout)?;
        let s = self.s.sem();
        let r = match s.try_acquire() {
            Err(SemaphoreError::WouldBlock) => {
                blocking(py, wait, |end| match s.acquire_deadline(end) {
                    Err(SemaphoreError::WouldBlock) => None,
                    r => Some(r),
                })?
            }
            r => Some(r),
        };
        match r {
            Some(Ok(())) => Ok(true),
            Some(Err(e)) => Err(os_err(e)),
            None => Ok(false),
        }
    }

    /// Gives a unit back (any process may); a bounded semaphore raises
    /// ValueError above its initial value.
    fn release(&self) -> PyResult<()> {
        self.s.sem().release().map_err(|e| match e {
            SemaphoreError::OverRelease { .. } => {
                PyValueError::new_err("semaphore or lock released too many times")
            }
            e => os_err(e),
        })
    }

    /// `with sem:` takes a unit and gives it back.
    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        self.acquire(py, true, None)
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release()
    }

    /// The number of free units.
    fn get_value(&self) -> u32 {
        self.s.sem().value()
    }

    #[getter]
    fn name(&self) -> Option<&str> {
        self.s.sem().name()
    }

    #[getter]
    fn namespace(&self) -> Option<&str> {
        self.location.as_deref()
    }

    #[getter]
    fn _bounded(&self) -> bool {
        matches!(self.s, Sem::Bounded(_))
    }

    fn _fd(&self) -> Option<i32> {
        match &self.s {
            Sem::Plain(s) => fd_of(s),
            Sem::Bounded(b) => fd_of(b),
        }
    }
}

// ------------------------------------------------------------------- Event

/// A cross-process event flag (the native half of `mproc.Event`).
#[pyclass(subclass, module = "mproc._mproc", name = "_Event")]
struct PyEvent {
    e: mproc::Event,
    location: Option<String>,
}

#[pymethods]
impl PyEvent {
    #[new]
    #[pyo3(signature = (name=None, *, namespace=None, mode="open_or_create", fd=None))]
    fn new(
        name: Option<&str>,
        namespace: Option<&str>,
        mode: &str,
        fd: Option<i32>,
    ) -> PyResult<Self> {
        let location = location_of(name, namespace)?;
        let e = make!(source(name, namespace, mode, fd)?,
            anon: mproc::Event::new(),
            fd: mproc::Event::from_shared_fd,
            open: mproc::Event::open_in,
            create: mproc::Event::create_in,
            ooc: mproc::Event::open_or_create_in)?;
        Ok(PyEvent { e, location })
    }

    /// Whether the flag is set.
    fn is_set(&self) -> bool {
        self.e.is_set()
    }

    /// Sets the flag and wakes every waiter.
    fn set(&self) {
        self.e.set();
    }

    /// Clears the flag.
    fn clear(&self) {
        self.e.clear();
    }

    /// Waits until the flag is set (at most `timeout` seconds); returns
    /// the flag.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        if self.e.is_set() {
            return Ok(true);
        }
        let e = &self.e;
        let r = blocking(py, Wait::new(true, timeout)?, |end| {
            e.wait_deadline(end).then_some(())
        })?;
        Ok(r.is_some() || self.e.is_set())
    }

    #[getter]
    fn name(&self) -> Option<&str> {
        self.e.name()
    }

    #[getter]
    fn namespace(&self) -> Option<&str> {
        self.location.as_deref()
    }

    fn _fd(&self) -> Option<i32> {
        fd_of(&self.e)
    }
}

// ----------------------------------------------------------------- Barrier

/// A cross-process barrier (the native half of `mproc.Barrier`).
#[pyclass(subclass, module = "mproc._mproc", name = "_Barrier")]
struct PyBarrier {
    b: mproc::Barrier,
    location: Option<String>,
}

#[pymethods]
impl PyBarrier {
    #[new]
    #[pyo3(signature = (parties=None, timeout=None, *, name=None, namespace=None, mode="open_or_create", fd=None))]
    fn new(
        parties: Option<u32>,
        timeout: Option<f64>,
        name: Option<&str>,
        namespace: Option<&str>,
        mode: &str,
        fd: Option<i32>,
    ) -> PyResult<Self> {
        let location = location_of(name, namespace)?;
        let parties_of = || {
            parties
                .filter(|&p| p > 0)
                .ok_or_else(|| PyValueError::new_err("parties must be > 0"))
        };
        let timeout = timeout
            .map(|t| Duration::try_from_secs_f64(t.max(0.0)))
            .transpose()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let src = source(name, namespace, mode, fd)?;
        let b = match src {
            Source::Anonymous => match timeout {
                Some(t) => mproc::Barrier::with_default_timeout(parties_of()?, t),
                None => mproc::Barrier::new(parties_of()?),
            }
            .map_err(create_err)?,
            Source::Fd(fd) => mproc::Barrier::from_shared_fd(dup_fd(fd)?).map_err(open_err)?,
            Source::Named { ns, name, mode } => match mode {
                "open" => mproc::Barrier::open_in(&ns, name).map_err(open_err)?,
                "create" => {
                    mproc::Barrier::create_in(&ns, name, parties_of()?).map_err(create_err)?
                }
                _ => mproc::Barrier::open_or_create_in(&ns, name, parties_of()?)
                    .map_err(open_or_create_err)?,
            },
        };
        Ok(PyBarrier { b, location })
    }

    /// Waits for every party; returns this party's index (exactly one party
    /// gets 0). The last party to arrive runs `action` (if given) before
    /// anyone is released. A timeout, `abort()`, `reset()` or the death of
    /// a waiting party raises `threading.BrokenBarrierError`.
    #[pyo3(signature = (timeout=None, action=None))]
    fn wait(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
        action: Option<Py<PyAny>>,
    ) -> PyResult<u32> {
        let timeout = timeout
            .map(|t| Duration::try_from_secs_f64(t.max(0.0)))
            .transpose()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let b = &self.b;
        let failed: Mutex<Option<PyErr>> = Mutex::new(None);
        let r = py.detach(|| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                b.wait_with(timeout, || {
                    if let Some(a) = &action {
                        if let Err(e) = Python::attach(|py| a.call0(py).map(drop)) {
                            *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                            // Breaks the barrier for every party, as
                            // threading.Barrier does when its action raises.
                            std::panic::resume_unwind(Box::new("barrier action raised"));
                        }
                    }
                })
            }))
        });
        if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        match r {
            Ok(Ok(i)) => Ok(i),
            Ok(Err(BarrierError::Broken)) => Err(broken_barrier(py)),
            Ok(Err(e)) => Err(os_err(e)),
            Err(_) => Err(PyRuntimeError::new_err("barrier wait panicked")),
        }
    }

    /// Breaks the barrier: current and future waiters get
    /// `BrokenBarrierError` until `reset()`.
    fn abort(&self) -> PyResult<()> {
        self.b.abort().map_err(os_err)
    }

    /// Returns the barrier to its initial state; current waiters get
    /// `BrokenBarrierError`.
    fn reset(&self) -> PyResult<()> {
        self.b.reset().map_err(os_err)
    }

    /// The number of parties needed to pass the barrier.
    #[getter]
    fn parties(&self) -> u32 {
        self.b.parties()
    }

    /// The number of parties waiting now.
    #[getter]
    fn n_waiting(&self) -> u32 {
        self.b.n_waiting()
    }

    /// Whether the barrier is broken.
    #[getter]
    fn broken(&self) -> bool {
        self.b.is_broken()
    }

    /// The default timeout of `wait()`, in seconds.
    #[getter]
    fn timeout(&self) -> Option<f64> {
        self.b.default_timeout().map(|d| d.as_secs_f64())
    }

    #[getter]
    fn name(&self) -> Option<&str> {
        self.b.name()
    }

    #[getter]
    fn namespace(&self) -> Option<&str> {
        self.location.as_deref()
    }

    fn _fd(&self) -> Option<i32> {
        fd_of(&self.b)
    }
}

/// The native half of the `mproc` package.
#[pymodule]
fn _mproc(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyQueue>()?;
    m.add_class::<PyReceipt>()?;
    m.add_class::<PyLock>()?;
    m.add_class::<PyRLock>()?;
    m.add_class::<PySemaphore>()?;
    m.add_class::<PyEvent>()?;
    m.add_class::<PyBarrier>()?;
    m.add_function(wrap_pyfunction!(_register, m)?)?;
    Ok(())
}
