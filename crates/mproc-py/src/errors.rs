//! The exceptions and warnings the native classes raise: Python's own
//! (`queue.Full`, `queue.Empty`, `threading.BrokenBarrierError`, `OSError`
//! and its kin), the package's `ShutDown` and `OwnerDiedWarning` (registered
//! by `_register`), and the mapping of the `mproc` crate's errors to them.

use mproc::{GetError, PutErrorKind};
use pyo3::exceptions::{
    PyFileExistsError, PyFileNotFoundError, PyOSError, PyRuntimeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

static FULL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static EMPTY: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static BROKEN_BARRIER: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static SHUTDOWN: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static OWNER_DIED_WARNING: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

pub(crate) fn full(py: Python<'_>) -> PyErr {
    match FULL.import(py, "queue", "Full") {
        Ok(t) => PyErr::from_type(t.clone(), ()),
        Err(e) => e,
    }
}

pub(crate) fn empty(py: Python<'_>) -> PyErr {
    match EMPTY.import(py, "queue", "Empty") {
        Ok(t) => PyErr::from_type(t.clone(), ()),
        Err(e) => e,
    }
}

pub(crate) fn broken_barrier(py: Python<'_>) -> PyErr {
    match BROKEN_BARRIER.import(py, "threading", "BrokenBarrierError") {
        Ok(t) => PyErr::from_type(t.clone(), ()),
        Err(e) => e,
    }
}

pub(crate) fn shutdown(py: Python<'_>) -> PyErr {
    match SHUTDOWN.get(py).map(|t| t.bind(py).cast::<PyType>()) {
        Some(Ok(t)) => PyErr::from_type(t.clone(), "the queue is shut down"),
        _ => PyRuntimeError::new_err("the queue is shut down"),
    }
}

/// Registers the package's `ShutDown` exception and `OwnerDiedWarning`
/// category, which the native classes raise and warn with.
#[pyfunction]
pub(crate) fn _register(py: Python<'_>, shutdown: Py<PyAny>, owner_died_warning: Py<PyAny>) {
    let _ = SHUTDOWN.set(py, shutdown);
    let _ = OWNER_DIED_WARNING.set(py, owner_died_warning);
}

pub(crate) fn warn_owner_died(py: Python<'_>, what: &str) -> PyResult<()> {
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

pub(crate) fn os_err(e: impl std::fmt::Display) -> PyErr {
    PyOSError::new_err(e.to_string())
}

pub(crate) fn open_err(e: mproc::OpenError) -> PyErr {
    match e {
        mproc::OpenError::NotFound { .. } => PyFileNotFoundError::new_err(e.to_string()),
        mproc::OpenError::InvalidName(_) => PyValueError::new_err(e.to_string()),
        e => os_err(e),
    }
}

pub(crate) fn create_err(e: mproc::CreateError) -> PyErr {
    match e {
        mproc::CreateError::AlreadyExists { .. } => PyFileExistsError::new_err(e.to_string()),
        mproc::CreateError::InvalidName(_) | mproc::CreateError::InvalidOptions(_) => {
            PyValueError::new_err(e.to_string())
        }
        e => os_err(e),
    }
}

pub(crate) fn open_or_create_err(e: mproc::OpenOrCreateError) -> PyErr {
    match e {
        mproc::OpenOrCreateError::Open(e) => open_err(e),
        mproc::OpenOrCreateError::Create(e) => create_err(e),
        e => os_err(e),
    }
}

pub(crate) fn get_err(py: Python<'_>, e: GetError) -> PyErr {
    match e {
        GetError::Empty => empty(py),
        GetError::Closed => shutdown(py),
        e => os_err(e),
    }
}

pub(crate) fn put_err(py: Python<'_>, e: &PutErrorKind) -> PyErr {
    match e {
        PutErrorKind::Full => full(py),
        PutErrorKind::Closed => shutdown(py),
        PutErrorKind::TooLarge { .. } => PyValueError::new_err(e.to_string()),
        e => os_err(e),
    }
}
